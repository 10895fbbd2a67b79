"""The control plane's processes: etcd, kube-apiserver, kube-controller-manager, kube-scheduler
and kwok as the supervisor starts them, on loopback ports of their own.

Kept apart from ``local`` (which brings the cluster up, waits for it and takes it down) so the
flags that make the local cluster what it is -- the node monitor's grace, kwok's label selector
and lease term, the lifted rate limits of the scale profile -- read in one place.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from seatrial.cluster import build, pki, pools
from seatrial.cluster.supervisor import ProcessSpec
from seatrial.errors import ConfigError

SERVICE_CIDR = "10.96.0.0/16"


@dataclass(frozen=True)
class Ports:
    """Loopback ports, away from the usual 6443/2379/1025x so a dev box's own cluster is untouched."""

    apiserver: int = 16443
    etcd: int = 16379
    etcd_peer: int = 16380
    controller_manager: int = 16257
    scheduler: int = 16259
    kwok: int = 16247

    @classmethod
    def from_env(cls) -> Ports:
        raw = os.environ.get("SEATRIAL_PORT_OFFSET")
        if raw is None:
            return cls()
        try:
            offset = int(raw)
        except ValueError:
            raise ConfigError(f"SEATRIAL_PORT_OFFSET must be a whole number, got {raw!r}") from None
        return cls.from_env_offset(offset)

    @classmethod
    def from_env_offset(cls, offset: int) -> Ports:
        d = cls()
        ports = [getattr(d, f) + offset for f in d.__dataclass_fields__]
        if min(ports) < 1024 or max(ports) > 65535:
            raise ConfigError(f"port offset {offset} moves ports outside 1024-65535")
        return cls(*ports)

    def named(self) -> dict[str, int]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def processes(
    bins: build.Binaries,
    keys: pki.Pki,
    kcfg: dict[str, Path],
    *,
    ports: Ports,
    run: Path,
    advertise: str | None,
    node_monitor_grace: int,
    unthrottled: bool,
) -> list[ProcessSpec]:
    """etcd, the API server, the controller manager, the scheduler and kwok, in the stages the
    supervisor starts them in. ``advertise`` is the host bridge's address when real nodes must
    reach the API server; ``unthrottled`` lifts the controllers' client rate limits (the scale
    profile). Every argv names ``run``, which is how a sweep recognises this cluster's leftovers."""
    p, logs = ports, run / "logs"
    limits = ["--kube-api-qps=5000", "--kube-api-burst=10000"] if unthrottled else []
    etcd_url = f"http://127.0.0.1:{p.etcd}"
    admin_tls = {"ca": str(keys.ca), "cert": str(keys.cert("admin")), "key": str(keys.key("admin"))}
    return [
        ProcessSpec(
            name="etcd",
            stage=0,
            log=str(logs / "etcd.log"),
            ready_url=f"{etcd_url}/health",
            argv=[
                str(bins["etcd"]),
                "--name=seatrial",
                f"--data-dir={run / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{p.etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{p.etcd_peer}",
                f"--initial-cluster=seatrial=http://127.0.0.1:{p.etcd_peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
                "--quota-backend-bytes=2147483648",
            ],
        ),
        ProcessSpec(
            name="kube-apiserver",
            stage=1,
            log=str(logs / "kube-apiserver.log"),
            ready_url=f"https://127.0.0.1:{p.apiserver}/readyz",
            ready_tls=admin_tls,
            argv=[
                str(bins["kube-apiserver"]),
                f"--etcd-servers={etcd_url}",
                # with real nodes the API server must answer on the host bridge too
                f"--bind-address={'0.0.0.0' if advertise else '127.0.0.1'}",  # noqa: S104
                f"--advertise-address={advertise or '127.0.0.1'}",
                f"--secure-port={p.apiserver}",
                f"--tls-cert-file={keys.cert('apiserver')}",
                f"--tls-private-key-file={keys.key('apiserver')}",
                f"--client-ca-file={keys.ca}",
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-client-certificate={keys.cert('apiserver-kubelet-client')}",
                f"--kubelet-client-key={keys.key('apiserver-kubelet-client')}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={keys.sa_pub}",
                f"--service-account-signing-key-file={keys.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--requestheader-client-ca-file={keys.ca}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={keys.cert('front-proxy-client')}",
                f"--proxy-client-key-file={keys.key('front-proxy-client')}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                f"--endpoint-reconciler-type={'lease' if advertise else 'none'}",
                "--profiling=false",
                "--event-ttl=2h",
                f"--cert-dir={run / 'apiserver-certs'}",
                "--v=0",
            ],
        ),
        ProcessSpec(
            name="kube-controller-manager",
            stage=2,
            log=str(logs / "kube-controller-manager.log"),
            ready_url=f"https://127.0.0.1:{p.controller_manager}/healthz",
            ready_tls={"insecure": "1"},
            argv=[
                str(bins["kube-controller-manager"]),
                *_serving_client_flags(kcfg["controller-manager"], p.controller_manager, run / "kcm-certs"),
                f"--service-account-private-key-file={keys.sa_key}",
                f"--root-ca-file={keys.ca}",
                f"--cluster-signing-cert-file={keys.ca}",
                f"--cluster-signing-key-file={keys.key('ca')}",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                "--controllers=*,bootstrapsigner,tokencleaner",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--node-monitor-grace-period={node_monitor_grace}s",
                "--node-monitor-period=2s",
                "--profiling=false",
                "--v=0",
                *limits,
            ],
        ),
        ProcessSpec(
            name="kube-scheduler",
            stage=2,
            log=str(logs / "kube-scheduler.log"),
            ready_url=f"https://127.0.0.1:{p.scheduler}/healthz",
            ready_tls={"insecure": "1"},
            argv=[
                str(bins["kube-scheduler"]),
                *_serving_client_flags(kcfg["scheduler"], p.scheduler, run / "scheduler-certs"),
                "--leader-elect=false",
                "--profiling=false",
                *limits,
            ],
        ),
        ProcessSpec(
            name="kwok",
            stage=2,
            log=str(logs / "kwok.log"),
            ready_url=f"http://127.0.0.1:{p.kwok}/healthz",
            argv=[
                str(bins["kwok"]),
                f"--kubeconfig={kcfg['kwok']}",
                f"--config={kwok_config(run)}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-label-selector={pools.KWOK_LABEL}=fake",
                "--node-lease-duration-seconds=40",
                f"--server-address=127.0.0.1:{p.kwok}",
                "--cidr=10.0.0.1/16",
            ],
        ),
    ]


def kwok_config(run: Path) -> Path:
    """An explicit config, so a user's ~/.kwok/kwok.yaml never changes our simulated nodes."""
    path = run / "kwok.yaml"
    path.write_text(
        "apiVersion: config.kwok.x-k8s.io/v1alpha1\n"
        "kind: KwokConfiguration\n"
        "options:\n"
        "  enablePodsOnNodeSyncStreamWatch: false\n"
    )
    return path


def _serving_client_flags(kubeconfig: Path, port: int, cert_dir: Path) -> list[str]:
    """Controller-manager and scheduler: talk to the API server as themselves, serve health on loopback."""
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
    ]
