"""The local cluster: a real control plane on loopback plus KWOK-simulated GPU node pools.

``LocalCluster.up()`` validates the node pools, checks ports, builds (or reuses) the binaries,
writes PKI and kubeconfigs, hands a process plan to the supervisor and waits until the API
server answers and every node is Ready. It reuses a cluster that is already up. ``down()``
stops the supervisor (which stops its children), sweeps any process that still names this
cluster's state directory, and removes the run state; only the PKI (a cache) stays.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from seatrial import kube
from seatrial.cluster import build, controlplane, images, network, pki, pools, realnodes, versions
from seatrial.cluster.controlplane import SERVICE_CIDR, Ports, port_in_use
from seatrial.cluster.supervisor import Plan, probe
from seatrial.errors import ClusterError, ConfigError

CONTEXT = "seatrial-local"
NODE_PROCESSES = ("containerd", "kubelet", "kube-proxy", "gpu-plugin")
"""What a real node runs (a GPU node only has the device plugin)."""


VOLUMES_PER_NODE = 4
VOLUME_LABEL = "seatrial.dev/local-volume=true"


def _local_pv(name: str, node: str, path: Path) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "labels": {"seatrial.dev/local-volume": "true", pools.MANAGED_BY_LABEL: pools.MANAGED_BY},
        },
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "seatrial-local",
            "volumeMode": "Filesystem",
            "local": {"path": str(path)},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}
                    ]
                }
            },
        },
    }


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


@dataclass
class Status:
    running: bool
    phase: str
    error: str | None = None
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)
    server_version: str | None = None
    nodes_ready: int = 0
    nodes_total: int = 0
    kubeconfig: Path | None = None

    def lines(self) -> list[str]:
        out = [f"phase: {self.phase}"]
        if self.error:
            out.append(f"error: {self.error}")
        for name, p in self.processes.items():
            ready = f" at {p['ready_after_s']}s" if "ready_after_s" in p else ""
            out.append(f"  {name:<24} pid {p.get('pid')!s:<8} {p.get('state')}{ready}  log: {p.get('log')}")
        if self.server_version:
            out.append(f"server: {self.server_version}  nodes Ready: {self.nodes_ready}/{self.nodes_total}")
        if self.kubeconfig:
            out.append(f"kubeconfig: {self.kubeconfig}")
        return out


class LocalCluster:
    def __init__(
        self,
        state: Path | None = None,
        *,
        pools_dir: Path | None = None,
        ports: Ports | None = None,
        cache: Path | None = None,
        node_monitor_grace: int = 20,
        unthrottled: bool = False,
    ) -> None:
        root = repo_root()
        self.state = (state or Path(os.environ.get("SEATRIAL_CLUSTER_DIR") or root / ".cluster")).resolve()
        # a cluster found by its state dir alone (a chaos action, cleanup) keeps the ports and pools
        # it was started with; what the caller or the environment names wins
        saved = self._settings()
        self.pools_dir = pools_dir or Path(
            os.environ.get("SEATRIAL_POOLS") or saved.get("pools_dir") or root / "manifests" / "cluster"
        )
        self.ports = ports or self._saved_ports(saved) or Ports.from_env()
        self.cache = cache
        self.node_monitor_grace = node_monitor_grace
        # the scale profile's thousands of pods: the controller manager's and scheduler's
        # client-side limits (20 and 50 requests/s) would pace them, not the cluster (kwokctl
        # lifts them the same way for its own scale tests)
        self.unthrottled = unthrottled
        self.run = self.state / "run"
        self.pki_dir = self.state / "pki"
        self.kubeconfig = self.state / "kubeconfig"
        self.timings: dict[str, float] = {}
        self._t0 = time.monotonic()

    def _mark(self, milestone: str) -> None:
        """Record how long into the bring-up a milestone was reached, for the benchmark's breakdown."""
        self.timings[milestone] = round(time.monotonic() - self._t0, 2)

    # ---- state ---------------------------------------------------------------------------
    def _settings(self) -> dict[str, Any]:
        try:
            doc = json.loads((self.state / "settings.json").read_text())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    @staticmethod
    def _saved_ports(saved: dict[str, Any]) -> Ports | None:
        if os.environ.get("SEATRIAL_PORT_OFFSET") is not None:
            return None
        try:
            return Ports(**saved["ports"])
        except (KeyError, TypeError):
            return None

    def _save_settings(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        doc = {"ports": self.ports.named(), "pools_dir": str(self.pools_dir)}
        (self.state / "settings.json").write_text(json.dumps(doc, indent=2) + "\n")

    def _supervisor_pid(self) -> int | None:
        pid_file = self.run / "supervisor.pid"
        try:
            pid = int(pid_file.read_text())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        return pid if "seatrial.cluster.supervisor" in cmdline else None

    def _read_status(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.run / "status.json").read_text()))
        except (OSError, ValueError):
            return {}

    def target(self) -> kube.Target:
        return kube.Target(self.kubeconfig)

    def serves(self, target: kube.Target) -> bool:
        """``target`` is this cluster: named by its kubeconfig, with no other context."""
        path = target.kubeconfig.expanduser()
        return not target.context and path.exists() and path.resolve() == self.kubeconfig.resolve()

    def status(self) -> Status:
        pid = self._supervisor_pid()
        raw = self._read_status()
        if pid is None:
            return Status(running=False, phase="down")
        st = Status(
            running=True,
            phase=raw.get("phase", "starting"),
            error=raw.get("error"),
            processes=raw.get("processes", {}),
            kubeconfig=self.kubeconfig if self.kubeconfig.exists() else None,
        )
        if st.phase in ("ready", "degraded") and self.kubeconfig.exists():
            try:
                api = kube.api_client(self.target())
                st.server_version = kube.server_version(api, timeout=3)
                with kube.translate("listing nodes"):
                    nodes = client.CoreV1Api(api).list_node(_request_timeout=5).items
                st.nodes_total = len(nodes)
                st.nodes_ready = sum(1 for n in nodes if kube.node_ready(n))
            except ClusterError as exc:
                st.error = st.error or str(exc)
        return st

    # ---- up ------------------------------------------------------------------------------
    def up(self, *, timeout: float = 120.0) -> Status:
        """Start (or reuse) the cluster and return once every pool node is Ready."""
        node_pools = pools.load_pools(self.pools_dir)  # fail on bad input before touching anything
        if self._supervisor_pid() is not None:
            st = self.status()
            if st.phase == "ready":
                say("local cluster already running; reusing it")
                self._ensure_nodes(node_pools, timeout=timeout)
                return self.status()
            say(f"local cluster is {st.phase}; restarting it")
            self.down(quiet=True)
        else:
            self._sweep()
        busy = {n: p for n, p in self.ports.named().items() if port_in_use(p)}
        if busy:
            desc = ", ".join(f"{p} ({n.replace('_', '-')})" for n, p in busy.items())
            raise ConfigError(
                f"port(s) already in use on 127.0.0.1: {desc}",
                hint="stop whatever listens there (ss -ltnp), or shift every port with SEATRIAL_PORT_OFFSET=100",
            )
        self._save_settings()
        real_pools = [p for p in node_pools if p.real]
        started = self._t0 = time.monotonic()
        self.timings = {}
        bins, node_images, store = self.prepare(node_pools)
        self._mark("binaries and images ready")
        try:
            self._start(bins, real_pools, node_images, store)
            self._mark("processes started")
            self._ensure_nodes(node_pools, timeout=timeout)
        except BaseException:
            kept = self._keep_logs()
            say(f"bring-up failed; tearing down what was started (logs kept in {kept})")
            self.down(quiet=True)
            raise
        steps = ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
        say(f"local cluster ready in {time.monotonic() - started:.1f}s ({steps}); KUBECONFIG={self.kubeconfig}")
        return self.status()

    def prepare(
        self, node_pools: list[pools.NodePool] | None = None
    ) -> tuple[build.Binaries, list[images.Image], Path | None]:
        """Build (or find cached) every binary and node image the pools need, starting nothing.

        ``up`` calls it first; ``nox -s tests`` calls it (``cluster build``) before pytest, so a
        cold machine builds once, with progress, before any test looks for a binary."""
        node_pools = pools.load_pools(self.pools_dir) if node_pools is None else node_pools
        real = any(p.real for p in node_pools)
        if real:
            realnodes.require_host()
        bins = build.ensure_binaries(root=self.cache, node_binaries=real)
        if not real:
            return bins, [], None
        node_images = images.node_images(bins.paths, self.cache, repo_root() / "apps")
        return bins, node_images, images.image_store(node_images, self.cache)

    def _keep_logs(self) -> Path:
        """Copy every log out of the run dir before teardown removes it, for the post-mortem."""
        dest = self.state / "last-failure"
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for log in self.run.rglob("*.log"):
            target = dest / log.relative_to(self.run)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(log, target)
        for extra in ("status.json", "plan.json"):
            if (self.run / extra).exists():
                shutil.copy2(self.run / extra, dest / extra)
        return dest

    def _start(
        self,
        bins: build.Binaries,
        real_pools: list[pools.NodePool],
        node_images: list[images.Image],
        store: Path | None,
    ) -> None:
        self.run.mkdir(parents=True, exist_ok=True)
        (self.run / "logs").mkdir(exist_ok=True)
        net = network.plan([n for p in real_pools for n in p.node_names()]) if real_pools else None
        names: tuple[str, ...] = (
            "localhost",
            "127.0.0.1",
            "10.96.0.1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        )
        if net is not None:
            names = (*names, net.host_ip)
        keys = pki.ensure_pki(self.pki_dir, server_names=names)
        server = f"https://127.0.0.1:{self.ports.apiserver}"
        kcfg = {
            c: pki.write_kubeconfig(self.run / f"{c}.kubeconfig", pki=keys, client=c, server=server, context=CONTEXT)
            for c in ("controller-manager", "scheduler", "kwok")
        }
        processes = controlplane.processes(
            bins,
            keys,
            kcfg,
            ports=self.ports,
            run=self.run,
            advertise=net.host_ip if net else None,
            node_monitor_grace=self.node_monitor_grace,
            unthrottled=self.unthrottled,
        )
        if net is not None and store is not None:
            say(f"preparing {len(net.nodes)} real nodes: network namespaces, bridge {net.bridge}, containerd, kubelet")
            (self.run / "network.json").write_text(json.dumps([n.name for n in net.nodes]))
            network.apply(net, state=self.run)
            realnodes.save_kernel_tunables(self.run)
            nodes = realnodes.layout(real_pools, net, run=self.run)
            processes += realnodes.prepare(
                nodes,
                keys=keys,
                server=f"https://{net.host_ip}:{self.ports.apiserver}",
                net=net,
                images=node_images,
                store=store,
                bins=bins.paths,
                context=CONTEXT,
            )
        plan = Plan(processes=processes, start_timeout=240.0 if net else 90.0)
        plan.dump(self.run / "plan.json")
        for stale in ("status.json", "supervisor.pid"):
            (self.run / stale).unlink(missing_ok=True)
        with (self.run / "logs" / "supervisor.log").open("ab") as log:
            subprocess.run(
                [sys.executable, "-m", "seatrial.cluster.supervisor", "--daemon", str(self.run)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(repo_root()),
                check=True,
            )
        say("starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok")
        reported: set[str] = set()
        deadline = time.monotonic() + plan.start_timeout + 10
        while True:
            raw = self._read_status()
            phase = raw.get("phase")
            if phase == "ready":
                break
            if phase == "failed":
                raise ClusterError(f"the local cluster did not start: {raw.get('error')}")
            if phase in ("stopping", "stopped"):
                raise ClusterError(f"the supervisor stopped while starting; see {self.run / 'logs'}")
            for name, proc in raw.get("processes", {}).items():
                if proc.get("state") == "running" and name not in reported:
                    reported.add(name)
                    say(f"  {name} is up")
            if time.monotonic() > deadline:
                raise ClusterError(f"the supervisor did not report ready; see {self.run / 'logs'}")
            time.sleep(0.1)
        pki.write_kubeconfig(self.kubeconfig, pki=keys, client="admin", server=server, context=CONTEXT)
        if net is not None:
            network.route_services(net, SERVICE_CIDR)

    def _ensure_nodes(self, node_pools: list[pools.NodePool], *, timeout: float) -> None:
        """Create the pools' Nodes that are missing, then wait until all are Ready."""
        api = kube.api_client(self.target())
        core = client.CoreV1Api(api)
        wanted = pools.render_nodes(node_pools, kubelet_version=versions.KUBERNETES)
        with kube.translate("listing nodes"):
            have = {kube.name_of(n) for n in core.list_node().items}

        def create(node: dict[str, Any]) -> None:
            with kube.translate(f"creating node {node['metadata']['name']}"):
                core.create_node(client.V1Node.model_validate(node))

        # a thousand nodes (the scale profile) one request at a time would take longer than
        # kwok takes to make them Ready
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(create, [n for n in wanted if n["metadata"]["name"] not in have]))
        names = {n["metadata"]["name"] for n in wanted}
        say(f"waiting for {len(names)} simulated nodes in {sum(not p.real for p in node_pools)} pools to be Ready")

        def not_ready() -> list[str]:
            with kube.translate("listing nodes"):
                nodes = core.list_node().items
            return sorted(kube.name_of(n) for n in nodes if kube.name_of(n) in names and not kube.node_ready(n))

        kube.wait_for(
            "the simulated nodes to become Ready",
            lambda: not not_ready(),
            timeout=timeout,
            on_timeout=lambda: f"still not Ready: {', '.join(not_ready()[:10])}; see {self.run / 'logs' / 'kwok.log'}",
        )
        self._mark("simulated nodes Ready")
        real = [p for p in node_pools if p.real]
        if real:
            self._ensure_real_nodes(core, real, timeout=timeout)

    def _ensure_real_nodes(
        self, core: client.CoreV1Api, real: list[pools.NodePool], *, timeout: float, only: str | None = None
    ) -> None:
        """Real nodes register themselves; we add what the kubelet may not set and wait for Ready.

        A GPU node is Ready for us once its device plugin (seatrial/cluster/gpuplugin) has
        registered and the kubelet reports every GPU allocatable."""
        names = {n: p for p in real for n in p.node_names() if only is None or n == only}
        say(f"waiting for {len(names)} real node{'s' if len(names) != 1 else ''} to register and be Ready")

        def registered() -> bool:
            with kube.translate("listing nodes"):
                have = {kube.name_of(n) for n in core.list_node(label_selector="seatrial.dev/real-node=true").items}
            return set(names) <= have

        kube.wait_for(
            "the real nodes to register",
            registered,
            timeout=timeout,
            on_timeout=lambda: f"see the kubelet logs under {self.run / 'nodes'}",
        )
        self._mark("real nodes registered")
        for name in names:
            with kube.translate(f"labelling node {name}"):
                core.patch_node(name, {"metadata": {"labels": {pools.MANAGED_BY_LABEL: pools.MANAGED_BY}}})

        def not_ready() -> list[str]:
            with kube.translate("listing nodes"):
                nodes = {kube.name_of(n): n for n in core.list_node(label_selector="seatrial.dev/real-node=true").items}
            bad = [n for n in names if n not in nodes or not kube.node_ready(nodes[n])]
            for n, pool in names.items():
                gpus = str(pool.gpu.count) if pool.gpu else None
                if gpus and n in nodes and kube.allocatable(nodes[n]).get(pools.GPU_RESOURCE) != gpus:
                    bad.append(f"{n} (nvidia.com/gpu not yet allocatable)")
            return bad

        kube.wait_for(
            "the real nodes to become Ready",
            lambda: not not_ready(),
            timeout=timeout,
            on_timeout=lambda: f"not Ready: {', '.join(not_ready())}; see {self.run / 'nodes'}/*/logs",
        )
        self._mark("real nodes Ready")
        if only is None:  # a revived node: the addons were applied at bring-up and may wait on other nodes
            self._apply_addons(core, timeout=timeout)

    def _apply_addons(self, core: client.CoreV1Api, *, timeout: float) -> None:
        """Cluster DNS (and any other add-on under manifests/cluster/addons), on the real nodes."""
        addons = repo_root() / "manifests" / "cluster" / "addons"
        bins = build.cached_binaries()
        if bins is None or not addons.is_dir():
            return
        proc = subprocess.run(
            [str(bins["kubectl"]), "apply", "--server-side", "--field-manager=seatrial", "-f", str(addons)],
            capture_output=True,
            text=True,
            env=os.environ | {"KUBECONFIG": str(self.kubeconfig)},
            check=False,
        )
        if proc.returncode != 0:
            raise ClusterError(f"applying the cluster add-ons failed: {proc.stderr.strip()}")
        apps = client.AppsV1Api(core.api_client)

        def dns_ready() -> bool:
            with kube.translate("reading the coredns deployment"):
                d = apps.read_namespaced_deployment("coredns", "kube-system")
            return bool(d.spec and d.status and d.status.ready_replicas == d.spec.replicas)

        say("waiting for cluster DNS (CoreDNS) on the real nodes")
        kube.wait_for(
            "CoreDNS to be ready",
            dns_ready,
            timeout=timeout,
            on_timeout=lambda: "see: kubectl -n kube-system describe pods -l k8s-app=kube-dns",
        )
        self._mark("cluster DNS ready")
        self.ensure_volumes(core)

    def ensure_volumes(self, core: client.CoreV1Api | None = None) -> None:
        """Keep VOLUMES_PER_NODE Available local PersistentVolumes on every real node.

        A released volume (its claim was deleted) is wiped and offered again, which is what a
        dynamic provisioner's delete would do; so stack after stack binds its claims here."""
        core = core or client.CoreV1Api(kube.api_client(self.target()))
        saved = self.run / "network.json"
        nodes = json.loads(saved.read_text()) if saved.exists() else []
        with kube.translate("listing persistent volumes"):
            have = {kube.name_of(pv): pv for pv in core.list_persistent_volume(label_selector=VOLUME_LABEL).items}
        released = [n for n, pv in have.items() if pv.status and pv.status.phase in ("Released", "Failed")]
        for name in released:
            with kube.translate(f"recycling volume {name}"):
                core.delete_persistent_volume(name)

        def released_gone() -> bool:
            with kube.translate("listing persistent volumes"):
                left = {kube.name_of(pv) for pv in core.list_persistent_volume(label_selector=VOLUME_LABEL).items}
            return not left & set(released)

        kube.wait_for("released local volumes to be deleted", released_gone, timeout=60)
        for node in nodes:
            for i in range(VOLUMES_PER_NODE):
                name = f"local-{node}-{i}"
                path = self.run / "nodes" / node / "volumes" / str(i)
                if name in released:
                    shutil.rmtree(path, ignore_errors=True)
                elif name in have:
                    continue
                path.mkdir(parents=True, exist_ok=True)
                with kube.translate(f"creating volume {name}"):
                    core.create_persistent_volume(client.V1PersistentVolume.model_validate(_local_pv(name, node, path)))

    def ensure_images(self, wanted: list[images.Image]) -> list[str]:
        """Import images that changed since the nodes started (e.g. the stack's, after a code
        change) into every running real node; returns the refs imported."""
        saved = self.run / "network.json"
        names = json.loads(saved.read_text()) if saved.exists() else []
        rt = realnodes.runtime_root(self.run)
        todo: list[tuple[str, images.Image, Path]] = []
        digests = {img.ref: images.manifest_digest(img.archive) for img in wanted}  # read each archive once
        for index, node in enumerate(names):
            sock = rt / str(index) / "containerd.sock"
            if not sock.exists():
                continue  # a killed node gets the image from the store when it comes back
            listed = subprocess.run(
                ["ctr", f"--address={sock}", "-n", "k8s.io", "images", "ls"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            have = {f[0]: f[2] for f in (line.split() for line in listed.splitlines()[1:]) if len(f) > 2}
            todo += [(node, img, sock) for img in wanted if have.get(img.ref) != digests[img.ref]]
        if todo:
            refs, nodes = {i.ref for _, i, _ in todo}, {n for n, _, _ in todo}
            say(f"importing {len(refs)} changed image(s) into {len(nodes)} node(s)")
        procs = [
            (node, img, subprocess.Popen(
                ["ctr", f"--address={sock}", "-n", "k8s.io", "images", "import", str(img.archive)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            ))
            for node, img, sock in todo
        ]  # fmt: skip
        for node, img, proc in procs:
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise ClusterError(f"importing {img.ref} into {node} failed: {err.strip()}")
        return sorted({img.ref for _, img, _ in todo})

    # ---- node faults ---------------------------------------------------------------------
    def _real_node(self, name: str) -> tuple[int, network.NetworkPlan]:
        saved = self.run / "network.json"
        names = json.loads(saved.read_text()) if saved.exists() else []
        if name not in names:
            raise ConfigError(f"{name} is not a real node of the local cluster (real nodes: {', '.join(names)})")
        return names.index(name), network.plan(names)

    def _control(self, node: str, *, down: bool) -> None:
        control = self.run / "control.json"
        try:
            stopped = set(json.loads(control.read_text()).get("stopped", []))
        except (OSError, ValueError):
            stopped = set()
        names = {f"{node}/{c}" for c in NODE_PROCESSES}
        stopped = stopped | names if down else stopped - names
        tmp = control.with_suffix(".tmp")
        tmp.write_text(json.dumps({"stopped": sorted(stopped)}))
        tmp.replace(control)

    def _stopped_nodes(self) -> set[str]:
        try:
            down = json.loads((self.run / "control.json").read_text()).get("stopped", [])
        except (OSError, ValueError):
            return set()
        return {n.split("/", 1)[0] for n in down}

    def _route_services(self, net: network.NetworkPlan) -> None:
        """The host reaches Services through one real node, as an external load balancer would:
        through the first one that is switched on (a health-checking balancer skips a dead one).
        A revived node does not take the traffic back: its kube-proxy is still catching up."""
        stopped = self._stopped_nodes()
        live = [n for n in net.nodes if n.name not in stopped]
        if live:
            network.route_services(net, SERVICE_CIDR, via=live[0])

    def _wait_node_processes(self, name: str, state: str, *, timeout: float) -> None:
        def reached() -> bool:
            procs = self._read_status().get("processes", {})
            mine = [p for n, p in procs.items() if n.split("/", 1)[0] == name]
            return bool(mine) and all(p.get("state") == state for p in mine)

        kube.wait_for(f"{name}'s processes to be {state}", reached, timeout=timeout)

    def kill_node(self, name: str, *, timeout: float = 30) -> None:
        """Power a real node off: kubelet, containerd, kube-proxy and every container die at once
        and the node drops off the network. The control plane notices only by the missing heartbeat."""
        index, net = self._real_node(name)
        self._control(name, down=True)
        self._wait_node_processes(name, "stopped (requested)", timeout=timeout)
        runtime = realnodes.runtime_root(self.run) / str(index)
        marker = str(runtime).encode()
        cgroup = f"{realnodes.cgroup_parent()}/{realnodes.runtime_root(self.run).name}-{index}"
        realnodes.kill_until_gone(lambda: set(realnodes.cgroup_pids(cgroup)) | set(_pids_naming(marker)))
        # what a reboot loses: everything under /run (sandbox network namespaces, container
        # mounts, runtime state), the pod bridge, and the IP allocations of pods that are gone
        realnodes.unmount_under([str(runtime)])
        shutil.rmtree(runtime, ignore_errors=True)
        runtime.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.run / "nodes" / name / "cni-ipam", ignore_errors=True)
        subprocess.run(["ip", "-n", net.nodes[index].netns, "link", "delete", "cni0"], capture_output=True, check=False)
        network.set_link(net.nodes[index].host_veth, up=False)
        self._route_services(net)

    def revive_node(self, name: str, *, timeout: float = 90) -> None:
        """Power the node back on and wait until it is Ready again (GPU capacity re-advertised)."""
        index, net = self._real_node(name)
        network.set_link(net.nodes[index].host_veth, up=True)
        self._control(name, down=False)
        self._wait_node_processes(name, "running", timeout=timeout)
        node_pools = [p for p in pools.load_pools(self.pools_dir) if p.real]
        core = client.CoreV1Api(kube.api_client(self.target()))
        self._ensure_real_nodes(core, node_pools, timeout=timeout, only=name)

    def _node_runtime(self, name: str) -> Path:
        index, _ = self._real_node(name)
        return realnodes.runtime_root(self.run) / str(index)

    def set_gpu_health(self, name: str, device: str, state: str) -> None:
        """What the GPU's health check reports: ``Healthy``, or ``Unhealthy …`` with the XID. The
        node's device plugin passes it to the kubelet; the pods using the GPU read it too."""
        target = self._node_runtime(name) / "gpus" / device
        if not target.exists():
            raise ConfigError(f"node {name} has no GPU {device}")
        tmp = target.with_name(f".{device}.tmp")
        tmp.write_text(state + "\n")
        tmp.chmod(0o644)
        tmp.replace(target)

    def gpu_allocations(self, name: str) -> dict[str, list[str]]:
        """Pod UID -> the GPU device IDs the node's kubelet assigned it (from its device-manager
        checkpoint, the kubelet's own record of assignments)."""
        path = self._node_runtime(name) / "device-plugins" / "kubelet_internal_checkpoint"
        try:
            data = json.loads(path.read_text()).get("Data") or {}
        except (OSError, ValueError):
            return {}
        out: dict[str, list[str]] = {}
        for entry in data.get("PodDeviceEntries") or []:
            if entry.get("ResourceName") != pools.GPU_RESOURCE:
                continue
            ids = entry.get("DeviceIDs") or []
            flat = [d for v in ids.values() for d in v] if isinstance(ids, dict) else list(ids)
            out.setdefault(str(entry.get("PodUID")), []).extend(flat)
        return out

    # ---- down ----------------------------------------------------------------------------
    def down(self, *, quiet: bool = False) -> None:
        """Stop everything this cluster started; safe to call when nothing runs."""
        pid = self._supervisor_pid()
        if pid is not None:
            if not quiet:
                say("stopping the local cluster")
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while self._supervisor_pid() is not None and time.monotonic() < deadline:
                time.sleep(0.1)
            if self._supervisor_pid() is not None:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
        self._sweep()
        saved = self.run / "network.json"
        if saved.exists():  # real nodes: containers, mounts, cgroups, network, kernel settings
            remaining = realnodes.cleanup(self.run)
            network.teardown(network.plan(json.loads(saved.read_text())), state=self.run)
            realnodes.restore_kernel_tunables(self.run)
            if remaining:
                say(f"WARNING: could not remove: {', '.join(remaining[:5])}")
        for leftover in (self.run, self.kubeconfig):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        if not quiet:
            say("local cluster stopped; nothing of it is left running")

    def leftovers(self) -> list[int]:
        """PIDs of processes whose command line names this cluster's run or runtime directory."""
        return sorted(
            set(_pids_naming(str(self.run).encode()))
            | set(_pids_naming(str(realnodes.runtime_root(self.run)).encode()))
        )

    def all_pids(self) -> list[int]:
        """Every process of the cluster: supervisor, components, shims and the real nodes' containers."""
        pids = set(self.leftovers())
        for root in realnodes.our_cgroups(self.run):
            for procs in root.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    pids |= {int(x) for x in procs.read_text().split()}
        return sorted(pids)

    def _sweep(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.leftovers()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while pids and self.leftovers() and time.monotonic() < deadline:
                time.sleep(0.1)


def _pids_naming(marker: bytes) -> list[int]:
    """Processes (other than us) whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def say(message: str) -> None:
    build.say(message)


__all__ = ["LocalCluster", "Ports", "Status", "port_in_use", "probe"]
