"""The host network of the real nodes: one bridge, one network namespace and veth pair per node.

Every real node lives in its own network namespace so it can be cut off or killed alone. The
host bridge carries node traffic; each node's pods live on a per-node /24 that the host routes
to that node. Nothing here is NATed: pod IPs are seen as they are across nodes, as a conformant
cluster network requires. Plans are pure data (tested without root); ``apply`` and ``teardown``
run them, and teardown removes exactly what this module created, named with the ``strial``
prefix and the ``seatrial`` iptables comment.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from seatrial.errors import ClusterError, ToolMissingError

PREFIX = "strial"
COMMENT = "seatrial"


@dataclass(frozen=True)
class NodeNet:
    name: str
    index: int
    netns: str
    host_veth: str
    ip: str
    pod_cidr: str
    pod_gateway: str


@dataclass(frozen=True)
class NetworkPlan:
    """Addresses are fixed by index, so a node keeps its IP and pod range across restarts."""

    nodes: tuple[NodeNet, ...]
    bridge: str = f"{PREFIX}0"
    node_cidr: str = "10.250.0.0/24"
    pod_supernet: str = "10.251.0.0/16"

    @property
    def host_ip(self) -> str:
        return str(next(ipaddress.ip_network(self.node_cidr).hosts()))

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.node_cidr).prefixlen


def plan(
    node_names: list[str], *, node_cidr: str = "10.250.0.0/24", pod_supernet: str = "10.251.0.0/16"
) -> NetworkPlan:
    net = ipaddress.IPv4Network(node_cidr)
    pods = list(ipaddress.IPv4Network(pod_supernet).subnets(new_prefix=24))
    if len(node_names) > min(200, len(pods)):
        raise ClusterError(f"too many real nodes ({len(node_names)}) for {node_cidr}/{pod_supernet}")
    nodes = []
    for i, name in enumerate(node_names):
        cidr = pods[i]
        nodes.append(
            NodeNet(
                name=name,
                index=i,
                netns=f"{PREFIX}-{name}",
                host_veth=f"{PREFIX}v{i}",
                ip=str(net.network_address + 10 + i),
                pod_cidr=str(cidr),
                pod_gateway=str(cidr.network_address + 1),
            )
        )
    return NetworkPlan(nodes=tuple(nodes), node_cidr=node_cidr, pod_supernet=pod_supernet)


def setup_commands(p: NetworkPlan) -> list[list[str]]:
    """The commands that build the network, in order; each is idempotent-checked by ``apply``."""
    cmds: list[list[str]] = [
        ["ip", "link", "add", p.bridge, "type", "bridge"],
        ["ip", "addr", "add", f"{p.host_ip}/{p.prefixlen}", "dev", p.bridge],
        ["ip", "link", "set", p.bridge, "up"],
    ]
    for n in p.nodes:
        cmds += [
            ["ip", "netns", "add", n.netns],
            ["ip", "link", "add", n.host_veth, "type", "veth", "peer", "name", "eth0", "netns", n.netns],
            ["ip", "link", "set", n.host_veth, "master", p.bridge, "up"],
            ["ip", "-n", n.netns, "addr", "add", f"{n.ip}/{p.prefixlen}", "dev", "eth0"],
            ["ip", "-n", n.netns, "link", "set", "eth0", "up"],
            ["ip", "-n", n.netns, "link", "set", "lo", "up"],
            ["ip", "-n", n.netns, "route", "add", "default", "via", p.host_ip],
            ["ip", "netns", "exec", n.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
            ["ip", "netns", "exec", n.netns, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"],
            ["ip", "route", "add", n.pod_cidr, "via", n.ip, "dev", p.bridge],
        ]
    return cmds


def forward_rules(p: NetworkPlan) -> list[list[str]]:
    """Host FORWARD rules so a restrictive host firewall does not drop node and pod traffic."""
    return [
        ["FORWARD", "-i", p.bridge, "-m", "comment", "--comment", COMMENT, "-j", "ACCEPT"],
        ["FORWARD", "-o", p.bridge, "-m", "comment", "--comment", COMMENT, "-j", "ACCEPT"],
    ]


def _run(cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise ClusterError(f"network setup failed: {' '.join(cmd)}: {proc.stderr.strip()}")
    return proc


def require_tools() -> None:
    missing = [t for t in ("ip", "iptables", "nsenter", "sysctl") if shutil.which(t) is None]
    if missing:
        raise ToolMissingError(
            f"real nodes need {', '.join(missing)}",
            hint="apt-get install iproute2 iptables util-linux procps",
        )


def apply(p: NetworkPlan, *, state: Path) -> None:
    """Build the network; records the host's ip_forward so teardown can put it back."""
    require_tools()
    teardown(p, state=state)  # a crashed run may have left a half-built network
    forward = Path("/proc/sys/net/ipv4/ip_forward")
    state.mkdir(parents=True, exist_ok=True)
    (state / "ip_forward.saved").write_text(forward.read_text().strip())
    for cmd in setup_commands(p):
        _run(cmd)
    forward.write_text("1")
    for rule in forward_rules(p):
        if _run(["iptables", "-C", *rule], check=False).returncode != 0:
            _run(["iptables", "-I", *rule])


def teardown(p: NetworkPlan, *, state: Path) -> None:
    """Remove namespaces (their veths go with them), the bridge, its routes and our rules."""
    for n in p.nodes:
        if Path(f"/run/netns/{n.netns}").exists():
            _run(["ip", "netns", "delete", n.netns], check=False)
        _run(["ip", "link", "delete", n.host_veth], check=False)
    _run(["ip", "link", "delete", p.bridge], check=False)
    for rule in forward_rules(p):
        while _run(["iptables", "-C", *rule], check=False).returncode == 0:
            _run(["iptables", "-D", *rule], check=False)
    saved = state / "ip_forward.saved"
    if saved.exists():
        Path("/proc/sys/net/ipv4/ip_forward").write_text(saved.read_text().strip())
        saved.unlink()


def leftovers(p: NetworkPlan) -> list[str]:
    """What of the plan still exists on the host (empty after a clean teardown)."""
    found = [f"netns {n.netns}" for n in p.nodes if Path(f"/run/netns/{n.netns}").exists()]
    links = _run(["ip", "-o", "link", "show"], check=False).stdout
    found += [f"link {name}" for name in (p.bridge, *(n.host_veth for n in p.nodes)) if f": {name}" in links]
    rules = _run(["iptables", "-S", "FORWARD"], check=False).stdout
    found += [f"iptables: {line}" for line in rules.splitlines() if f"--comment {COMMENT}" in line]
    return found


def route_services(p: NetworkPlan, service_cidr: str, *, via: NodeNet | None = None) -> None:
    """Reach ClusterIPs from the host through a real node's kube-proxy (the first, unless told;
    it masquerades, so replies come back the same way). The route goes with the bridge on
    teardown."""
    _run(["ip", "route", "replace", service_cidr, "via", (via or p.nodes[0]).ip, "dev", p.bridge])


def set_link(name: str, *, up: bool) -> None:
    """Cut a node off the host bridge (or reconnect it), as a pulled cable or a dead host would."""
    _run(["ip", "link", "set", name, "up" if up else "down"])
