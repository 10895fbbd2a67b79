"""Real nodes: containerd, kubelet and kube-proxy per node, each node in its own network namespace.

KWOK nodes run no processes, so serving traffic, readiness, drains and node kills need nodes
that really run pods. Each real node gets its own containerd (root, state, socket, runc root),
kubelet (root dir, cert dir, pod logs, cgroup root) and kube-proxy (iptables in the node's
namespace), all started by the supervisor through ``nsenter --net`` so they share the host's
mounts but not its network. Everything a node writes lives under the cluster's run directory or
a short ``/run/seatrial-<id>`` directory (unix sockets have a 108-byte path limit), and
``cleanup`` removes it: container processes (by cgroup), mounts, cgroups, kernel settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from seatrial.cluster import pki, pools
from seatrial.cluster.build import GPU_PLUGIN
from seatrial.cluster.images import UNUSED_PLUGINS, Image, plant_store
from seatrial.cluster.network import NetworkPlan, NodeNet
from seatrial.cluster.supervisor import ProcessSpec
from seatrial.errors import ConfigError, ToolMissingError

CGROUP_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "systemd", "blkio", "freezer", "devices")
KERNEL_TUNABLES = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")
"""The kubelet sets these host-wide; we save them before and put them back after."""
CLUSTER_DNS = "10.96.0.10"
KUBELET_PORT = 10250
KUBELET_HEALTHZ = 10248
PROXY_HEALTHZ = 10256


@dataclass(frozen=True)
class RealNode:
    pool: pools.NodePool
    net: NodeNet
    zone: str
    conf: Path  # config files, logs, kubelet root, containerd root
    runtime: Path  # sockets and containerd state (short path)
    cgroup: str

    @property
    def name(self) -> str:
        return self.net.name

    @property
    def socket(self) -> Path:
        return self.runtime / "containerd.sock"

    @property
    def device_plugins(self) -> Path:
        """What this node's kubelet sees as /var/lib/kubelet/device-plugins (sockets, its checkpoint)."""
        return self.runtime / "device-plugins"

    @property
    def gpu_health(self) -> Path:
        """One file per simulated GPU, read by the device plugin and, read-only, by the pods using it."""
        return self.runtime / "gpus"


HOST_TOOLS = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "nsenter": "util-linux",
    "iptables": "iptables",
    "umoci": "umoci",
    "catatonit": "catatonit",
    "debootstrap": "debootstrap",
}


def require_host() -> None:
    """Real nodes need root and a few Debian packages; say exactly which are missing."""
    if os.geteuid() != 0:
        raise ConfigError(
            "real nodes need root (network namespaces, cgroups, mounts)",
            hint="run as root, or drop the RealNodePool files from the node pools",
        )
    missing = sorted({pkg for tool, pkg in HOST_TOOLS.items() if shutil.which(tool) is None})
    if not Path("/usr/lib/cni/bridge").exists():
        missing.append("containernetworking-plugins")
    if missing:
        raise ToolMissingError(
            f"real nodes need these Debian packages: {' '.join(missing)}",
            hint=f"apt-get update && apt-get install -y {' '.join(missing)}",
        )


def runtime_root(state: Path) -> Path:
    """A short, per-cluster directory under /run, derived from the state dir so it is stable."""
    return Path("/run") / f"seatrial-{hashlib.sha256(str(state).encode()).hexdigest()[:8]}"


def cgroup_parent() -> str:
    """Nest pods under our own memory cgroup, so whatever limits this session limits them too."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return path.rstrip("/")
    return ""


def layout(real_pools: list[pools.NodePool], net: NetworkPlan, *, run: Path) -> list[RealNode]:
    rt = runtime_root(run)
    parent = cgroup_parent()
    by_name = {n.name: n for n in net.nodes}
    nodes = []
    for p in real_pools:
        for i in range(p.count):
            name = f"{p.name}-{i}"
            nn = by_name[name]
            nodes.append(
                RealNode(
                    pool=p,
                    net=nn,
                    zone=p.zones[i % len(p.zones)],
                    conf=run / "nodes" / name,
                    runtime=rt / str(nn.index),
                    cgroup=f"{parent}/{rt.name}-{nn.index}",
                )
            )
    return nodes


def node_labels(node: RealNode) -> dict[str, str]:
    """Labels the kubelet may set on itself (NodeRestriction allows these prefixes)."""
    p = node.pool
    labels = {
        "topology.kubernetes.io/zone": node.zone,
        "topology.kubernetes.io/region": p.region,
        pools.CAPACITY_TYPE_LABEL: p.capacity_type,
        pools.POOL_LABEL: p.name,
        "seatrial.dev/real-node": "true",
    }
    if p.instance_type:
        labels["node.kubernetes.io/instance-type"] = p.instance_type
    if p.gpu is not None:
        labels |= {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": p.gpu.product,
            "nvidia.com/gpu.count": str(p.gpu.count),
        }
    return labels | dict(p.labels)


def node_taints(node: RealNode) -> list[dict[str, str]]:
    taints = [t.as_dict() for t in node.pool.taints]
    if node.pool.gpu is not None:
        taints.insert(0, {"key": pools.GPU_RESOURCE, "effect": "NoSchedule"})
    return taints


def containerd_config(node: RealNode, pause: str) -> str:
    rt, conf = node.runtime, node.conf
    return f"""version = 2
root = "{conf / "containerd-root"}"
state = "{rt / "containerd"}"
disabled_plugins = [{", ".join(f'"{p}"' for p in UNUSED_PLUGINS)}]
[grpc]
  address = "{node.socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  netns_mounts_under_state_dir = true
  # our sandbox may lack CAP_SYS_RESOURCE: never ask runc for an oom_score_adj below our own
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{rt / "runc"}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{conf / "cni"}"
    max_conf_num = 1
"""


def cni_config(node: RealNode) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "name": f"seatrial-{node.net.index}",
        "plugins": [
            {
                "type": "bridge",
                "bridge": "cni0",
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": node.net.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(node.conf / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(node: RealNode, keys: pki.Pki, serving: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": True,
        "cgroupRoot": node.cgroup,
        "containerRuntimeEndpoint": f"unix://{node.socket}",
        "podLogsDir": str(node.conf / "pod-logs"),
        "address": node.net.ip,
        "port": KUBELET_PORT,
        "healthzBindAddress": node.net.ip,
        "healthzPort": KUBELET_HEALTHZ,
        "readOnlyPort": 0,
        "staticPodPath": "",
        "failSwapOn": False,
        "evictionHard": {
            "memory.available": "50Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "protectKernelDefaults": False,
        "resolvConf": str(node.conf / "resolv.conf"),
        "clusterDNS": [CLUSTER_DNS],
        "clusterDomain": "cluster.local",
        "tlsCertFile": str(keys.cert(serving)),
        "tlsPrivateKeyFile": str(keys.key(serving)),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(keys.ca)},
        },
        "authorization": {"mode": "Webhook"},
        "registerWithTaints": node_taints(node),
        "nodeStatusReportFrequency": "10s",
        "shutdownGracePeriod": "0s",
        "oomScoreAdj": 0,  # lowering it needs CAP_SYS_RESOURCE, which a sandboxed host may not grant
    }


def proxy_config(node: RealNode, kubeconfig: Path, net: NetworkPlan) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": node.name,
        "bindAddress": node.net.ip,
        "healthzBindAddress": f"{node.net.ip}:{PROXY_HEALTHZ}",
        "metricsBindAddress": f"127.0.0.1:{10249}",
        "clusterCIDR": net.pod_supernet,
        "iptables": {"localhostNodePorts": False, "masqueradeAll": True},
        # nf_conntrack_max is read-only outside the host's namespace: never try to set it
        "oomScoreAdj": 0,
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }


def prepare(
    nodes: list[RealNode],
    *,
    keys: pki.Pki,
    server: str,
    net: NetworkPlan,
    images: list[Image],
    store: Path,
    bins: dict[str, Path],
    context: str,
) -> list[ProcessSpec]:
    """Write every node's config and return the supervisor's process specs (stages 3-5)."""
    specs: list[ProcessSpec] = []
    pause = images[0].ref
    for node in nodes:
        for d in (node.conf / "cni", node.conf / "pod-logs", node.conf / "logs", node.runtime):
            d.mkdir(parents=True, exist_ok=True)
        make_cgroup(node.cgroup)
        plant_store(store, node.conf / "containerd-root")
        (node.conf / "containerd.toml").write_text(containerd_config(node, pause))
        (node.conf / "cni" / "10-seatrial.conflist").write_text(json.dumps(cni_config(node), indent=2))
        (node.conf / "resolv.conf").write_text("nameserver 127.0.0.1\noptions ndots:1\n")
        client_name, serving = pki.issue_node_certs(keys, node=node.name, ip=node.net.ip)
        kubelet_kc = pki.write_kubeconfig(
            node.conf / "kubelet.kubeconfig", pki=keys, client=client_name, server=server, context=context
        )
        proxy_kc = pki.write_kubeconfig(
            node.conf / "kube-proxy.kubeconfig", pki=keys, client="kube-proxy", server=server, context=context
        )
        (node.conf / "kubelet.yaml").write_text(yaml.safe_dump(kubelet_config(node, keys, serving)))
        (node.conf / "kube-proxy.yaml").write_text(yaml.safe_dump(proxy_config(node, proxy_kc, net)))
        ns = ["nsenter", f"--net=/run/netns/{node.net.netns}", "--"]
        logs = node.conf / "logs"
        specs.append(
            ProcessSpec(
                name=f"{node.name}/containerd",
                stage=3,
                log=str(logs / "containerd.log"),
                ready_path=str(node.socket),
                argv=[*ns, "containerd", f"--config={node.conf / 'containerd.toml'}"],
            )
        )
        labels = ",".join(f"{k}={v}" for k, v in node_labels(node).items())
        specs.append(
            ProcessSpec(
                name=f"{node.name}/kubelet",
                stage=4,
                log=str(logs / "kubelet.log"),
                ready_url=f"http://{node.net.ip}:{KUBELET_HEALTHZ}/healthz",
                argv=[
                    *ns,
                    *own_device_plugin_dir(node),
                    str(bins["kubelet"]),
                    f"--config={node.conf / 'kubelet.yaml'}",
                    f"--kubeconfig={kubelet_kc}",
                    f"--hostname-override={node.name}",
                    f"--node-ip={node.net.ip}",
                    f"--root-dir={node.conf / 'kubelet'}",
                    f"--cert-dir={node.conf / 'kubelet-pki'}",
                    f"--node-labels={labels}",
                    f"--containerd={node.socket}",
                    "--v=1",
                ],
            )
        )
        if node.pool.gpu is not None:
            specs.append(
                ProcessSpec(
                    name=f"{node.name}/gpu-plugin",
                    stage=4,
                    log=str(logs / "gpu-plugin.log"),
                    argv=[
                        str(bins[GPU_PLUGIN]),
                        f"-dir={node.device_plugins}",
                        f"-state={node.gpu_health}",
                        f"-node={node.name}",
                        f"-count={node.pool.gpu.count}",
                    ],
                )
            )
        specs.append(
            ProcessSpec(
                name=f"{node.name}/kube-proxy",
                stage=4,
                log=str(logs / "kube-proxy.log"),
                ready_url=f"http://{node.net.ip}:{PROXY_HEALTHZ}/healthz",
                argv=[*ns, str(bins["kube-proxy"]), f"--config={node.conf / 'kube-proxy.yaml'}"],
            )
        )
    return specs


DEVICE_PLUGIN_PATH = "/var/lib/kubelet/device-plugins"
_OWN_PLUGIN_DIR = f"""set -e
root=$1 plugins=$2; shift 2
mkdir -p "$root" "$plugins" {DEVICE_PLUGIN_PATH}
mountpoint -q "$root" || mount --bind "$root" "$root"
mount --make-shared "$root"
exec unshare --mount --propagation unchanged -- sh -c '
  set -e
  mount --make-private "$(findmnt -n -o TARGET --target {DEVICE_PLUGIN_PATH})"
  mount --bind "$0" {DEVICE_PLUGIN_PATH}
  exec "$@"' "$plugins" "$@"
"""


def own_device_plugin_dir(node: RealNode) -> list[str]:
    """A prefix that runs the kubelet in a mount namespace of its own with this node's directory
    mounted at /var/lib/kubelet/device-plugins, the path every kubelet binds (no flag moves it).

    So each node has its own device plugins, as a real node has, and kubelets starting together no
    longer race for one kubelet.sock. The kubelet's root dir is made a shared mount first, so the
    volume mounts the kubelet makes inside its namespace reach containerd outside it; the mount the
    plugin directory sits on is made private inside, so the bind never leaks back to the host."""
    return ["sh", "-c", _OWN_PLUGIN_DIR, "kubelet-mounts", str(node.conf / "kubelet"), str(node.device_plugins)]


def make_cgroup(path: str) -> None:
    """The kubelet requires its cgroup root to exist in every v1 hierarchy it validates."""
    for ctrl in CGROUP_CONTROLLERS:
        base = Path("/sys/fs/cgroup") / ctrl
        if not base.is_dir():
            continue
        target = base / path.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        if ctrl == "cpuset":  # a new v1 cpuset is empty until given its parent's cpus and mems
            for f in ("cpuset.cpus", "cpuset.mems"):
                cur = target
                chain = []
                while cur != base and not (cur / f).read_text().strip():
                    chain.append(cur)
                    cur = cur.parent
                value = (cur / f).read_text().strip()
                for c in reversed(chain):
                    (c / f).write_text(value)


def save_kernel_tunables(state: Path) -> None:
    saved = state / "kernel-tunables.json"
    if not saved.exists():
        saved.write_text(json.dumps({k: (Path("/proc/sys") / k).read_text().strip() for k in KERNEL_TUNABLES}))


def restore_kernel_tunables(state: Path) -> None:
    saved = state / "kernel-tunables.json"
    if saved.exists():
        for key, value in json.loads(saved.read_text()).items():
            with contextlib.suppress(OSError):
                (Path("/proc/sys") / key).write_text(value)
        saved.unlink()


def our_cgroups(run: Path) -> list[Path]:
    """The cgroup roots of this cluster's real nodes, in every v1 hierarchy."""
    rt, parent = runtime_root(run), cgroup_parent()
    roots: list[Path] = []
    for ctrl in CGROUP_CONTROLLERS:
        base = Path("/sys/fs/cgroup") / ctrl / parent.lstrip("/")
        if base.is_dir():
            roots += [p for p in base.iterdir() if p.is_dir() and p.name.startswith(f"{rt.name}-")]
    return roots


def kill_until_gone(find: Callable[[], set[int]], *, rounds: int = 3) -> None:
    """SIGKILL whatever ``find`` returns until it returns nothing (a dying shim may fork once more)."""
    for _ in range(rounds):
        pids = find()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def cleanup(run: Path) -> list[str]:
    """Kill container processes (by cgroup), unmount, remove cgroups and runtime dirs.

    Containers outlive containerd by design (their shims are re-parented), so stopping the
    node processes is not enough. Returns what could not be removed."""
    rt = runtime_root(run)
    roots = our_cgroups(run)
    kill_until_gone(
        lambda: {int(pid) for root in roots for procs in root.rglob("cgroup.procs") for pid in _read(procs).split()}
    )
    unmount_under([str(run), str(rt)])
    for root in roots:
        for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()
    subprocess.run(["rm", "-rf", str(rt)], check=False)
    return [str(r) for r in roots if r.exists()] + mounts_under([str(run), str(rt)])


def cgroup_pids(cgroup: str) -> list[int]:
    """Every process in one node's cgroup tree (the pids hierarchy holds them all)."""
    base = Path("/sys/fs/cgroup/pids") / cgroup.lstrip("/")
    if not base.is_dir():
        return []
    return [int(pid) for procs in base.rglob("cgroup.procs") for pid in _read(procs).split()]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def unmount_under(prefixes: list[str]) -> None:
    """Lazily unmount every mount point below the given directories, deepest first."""
    for _ in range(3):
        points = mounts_under(prefixes)
        if not points:
            return
        for mp in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True, check=False)


def mounts_under(prefixes: list[str]) -> list[str]:
    """Mount points at or below the given directories (mountinfo escapes spaces as \\040)."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4].replace("\\040", " ")
        if any(mp == p or mp.startswith(p.rstrip("/") + "/") for p in prefixes):
            out.append(mp)
    return out
