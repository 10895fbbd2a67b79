"""Issue 3, acceptance 2-3: while real requests flow through a Service, a pod in its grace period
gets no new connections, and deleting a pod, killing a node and draining a node each leave the
Service answering from the remaining pods. Every request is counted."""

from __future__ import annotations

import contextlib
import itertools
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client

from seatrial import kube
from seatrial.cluster import network
from seatrial.cluster.local import LocalCluster

from .conftest import daemon_pods_ready, deployment, pods_of, ready_pods, wait
from .test_real_nodes import REAL, kubectl, wait_routed, web_spec

REPLICAS = 4


@dataclass
class Load:
    """Sequential HTTP requests from the host to a Service's port 80, each recorded with its time
    and answer. A failed request also records its local port: a new connection that reuses the
    port of an earlier unanswered one meets that connection's conntrack entry (see ``stale``)."""

    url: str
    timeout: float = 3.0
    workers: int = 1
    results: list[tuple[float, str | None]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed_ports: dict[float, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _get(self, sock: socket.socket) -> str:
        sock.settimeout(self.timeout)
        sock.connect((self.url.split("/")[2], 80))
        sock.sendall(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.0 200") and not head.startswith(b"HTTP/1.1 200"):
            raise OSError(f"answer {head[:40]!r}")
        return body.decode()

    def run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            with socket.socket() as sock:
                try:
                    self.results.append((t, self._get(sock)))
                except OSError as exc:
                    self.results.append((t, None))
                    self.failed_ports[t] = -1  # no port: never explained by a stale entry
                    with contextlib.suppress(OSError):
                        self.failed_ports[t] = sock.getsockname()[1]
                    self.errors.append(f"{t - self.results[0][0]:.1f}s: {exc!r}")
            time.sleep(0.02)

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self.run, daemon=True) for _ in range(self.workers)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
        self.results.sort()

    @property
    def failed(self) -> int:
        return sum(1 for _, who in self.results if who is None)

    def longest_gap(self) -> float:
        """Longest time without a successful answer: how long the Service was down, if at all."""
        ok = [t for t, who in self.results if who is not None]
        return max((b - a for a, b in itertools.pairwise(ok)), default=float("inf"))


@pytest.fixture(scope="module")
def service(core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str) -> str:
    if not core.list_node(label_selector="seatrial.dev/real-node=true").items:
        pytest.skip("the cluster has no real nodes")
    spec: dict[str, Any] = web_spec()
    spec["nodeSelector"] = REAL | {"seatrial.dev/pool": "real-cpu"}
    # preStop covers the time kube-proxies need to drop the endpoint (seconds on a busy 2-core host)
    spec["terminationGracePeriodSeconds"] = 15
    spec["containers"][0]["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", "6"]}}}
    spec["topologySpreadConstraints"] = [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}},
        }
    ]
    apps.create_namespaced_deployment(namespace, deployment("web", REPLICAS, spec))
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    ready_pods(core, namespace, "web", REPLICAS, timeout=120)
    ip = str(core.read_namespaced_service("web", namespace).spec.cluster_ip)
    wait_routed(ip, {p.metadata.name for p in pods_of(core, namespace, "web")})
    return ip


def test_pod_in_grace_period_gets_no_new_connections_and_delete_loses_nothing(
    service: str, core: client.CoreV1Api, namespace: str
) -> None:
    victim = pods_of(core, namespace, "web")[0].metadata.name
    with Load(f"http://{service}/") as load:
        time.sleep(1)
        core.delete_namespaced_pod(victim, namespace)
        time.sleep(3)  # well inside its 6 s preStop: the pod is alive, Terminating, and out of rotation
        assert core.read_namespaced_pod(victim, namespace).metadata.deletion_timestamp is not None
        mark = time.monotonic()
        time.sleep(1.5)
        ready_pods(core, namespace, "web", REPLICAS, timeout=60)
    late = [who for t, who in load.results if t > mark]
    assert victim not in late, "a Terminating pod still got new connections"
    assert load.failed == 0, f"{load.failed} of {len(load.results)} requests failed while deleting a pod"
    assert len(load.results) > 50


@pytest.fixture
def killed(core: client.CoreV1Api) -> Iterator[list[str]]:
    nodes: list[str] = []
    yield nodes
    cluster = LocalCluster()
    for name in nodes:
        cluster.revive_node(name)
        # Ready is not whole: the node's DaemonSet pods restart only now, and a later module
        # asserting "every workload ready" must not meet one still starting. Give it back as found.
        wait(f"the DaemonSet pods on {name} to be ready again", lambda n=name: daemon_pods_ready(core, n), timeout=120)


ROUTER = "real-cpu-0"  # the host reaches ClusterIPs through the first real node's kube-proxy rules


def on_router(*cmd: str) -> str:
    """A command's output inside the routing node's network namespace."""
    argv = ["ip", "netns", "exec", f"{network.PREFIX}-{ROUTER}", *cmd]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def routed_to(namespace: str) -> set[str]:
    """The pod IPs the routing node's kube-proxy currently sends new connections for Service web
    to: the ground truth of where a request starting now can go."""
    rules = on_router("iptables-save", "-t", "nat")
    return set(re.findall(rf'--comment "{namespace}/web[:"].*--to-destination ([0-9.]+):', rules))


def stale(service: str, live: set[str]) -> set[int]:
    """Source ports of the host's connections that the routing node's conntrack still sends to a
    pod that is gone (any IP not in ``live``, also from an earlier test): unanswered SYN_SENT
    entries, kept 120 s. The rules no longer send new connections there, so a request on one of
    these ports met the old entry and followed it: kube-proxy clears stale entries for UDP only
    (kubernetes/kubernetes#101607: one client, one Service port, few source ports)."""
    ports = set()
    for row in on_router("conntrack", "-L", "-p", "tcp", "-d", service).splitlines():
        m = re.search(r"SYN_SENT .*sport=(\d+) dport=80 \[UNREPLIED\] src=([0-9.]+) ", row)
        if m and m.group(2) not in live:
            ports.add(int(m.group(1)))
    return ports


@pytest.mark.slow  # slow: about a minute of one node dying and being revived
def test_node_kill_keeps_service_answering(
    service: str, core: client.CoreV1Api, namespace: str, killed: list[str]
) -> None:
    # the host reaches ClusterIPs through the first real node, so kill the other CPU node
    victim = "real-cpu-1"
    on_victim = {p.metadata.name for p in pods_of(core, namespace, "web") if p.spec.node_name == victim}
    victim_ips = {p.status.pod_ip for p in pods_of(core, namespace, "web") if p.spec.node_name == victim}
    assert on_victim, "the spread constraint should have put pods on both CPU nodes"
    assert victim_ips <= routed_to(namespace)
    cluster = LocalCluster()
    # eight clients: a request that hits a dead pod costs its timeout, not the Service. The timeout
    # leaves room for one TCP SYN retransmission (1 s), as any real client has.
    with Load(f"http://{service}/", timeout=2.5, workers=8) as load:
        time.sleep(1)
        killed.append(victim)
        cluster.kill_node(victim)

        def node_not_ready() -> bool:
            return not kube.node_ready(core.read_node(victim))

        wait(f"{victim} to go NotReady", node_not_ready, timeout=90)
        not_ready = time.monotonic()
        # Healed is when the routing node's rules stop naming the dead pods, not when the client
        # sees a run of answers: requests stuck on a dead pod are not counted until they time
        # out, so a run of quick successes from the survivors says nothing yet.
        wait(
            "the routing node to stop sending connections to the dead pods",
            lambda: not routed_to(namespace) & victim_ips,
            timeout=60,
            interval=0.1,
        )
        healed = time.monotonic()
        time.sleep(4)
    stale_ports = stale(
        service, {p.status.pod_ip for p in pods_of(core, namespace, "web") if p.metadata.name not in on_victim}
    )
    after = [who for t, who in load.results if t > healed]
    assert load.longest_gap() < 3, f"the Service stopped answering for {load.longest_gap():.1f}s"
    # Every request that starts after the routing node stopped naming the dead pods succeeds,
    # except one that reuses the source port of an earlier unanswered request to a dead pod: its
    # SYN matches that request's conntrack entry and follows it (kubernetes#101607, see stale()).
    # On 2 cores about one run in two has one to six of those, 2-4 s after the change.
    reused = [
        (round(t - healed, 2), load.failed_ports.get(t))
        for t, who in load.results
        if t > healed and who is None and load.failed_ports.get(t) in stale_ports
    ]
    bad = [
        (round(t - healed, 2), who, load.failed_ports.get(t))
        for t, who in load.results
        if t > healed and (who is None or who in on_victim) and load.failed_ports.get(t) not in stale_ports
    ]
    assert len(after) > 20 and not bad, f"requests started after the dead pods left the rules: {bad[:10]}"
    print(
        f"node kill: {load.failed} of {len(load.results)} requests failed; the routing node dropped the dead pods"
        f" {healed - not_ready:.1f} s after NotReady; of the {len(after)} started after, {len(reused)} failed, each"
        f" on a source port still in conntrack towards a dead pod: {reused}"
    )


@pytest.mark.slow  # slow: a drain of a real node under load, about half a minute
def test_drain_keeps_service_answering(
    service: str, core: client.CoreV1Api, namespace: str, kube_target: kube.Target
) -> None:
    victim = "real-cpu-1"
    wait(f"{victim} to be Ready", lambda: kube.node_ready(core.read_node(victim)), timeout=120)
    core.delete_collection_namespaced_pod(namespace, label_selector="app=web")  # let the spread refill it
    ready_pods(core, namespace, "web", REPLICAS, timeout=120)
    drained = {p.status.pod_ip for p in pods_of(core, namespace, "web") if p.spec.node_name == victim}
    assert drained
    try:
        with Load(f"http://{service}/", timeout=2.5, workers=4) as load:
            time.sleep(1)
            proc = kubectl(kube_target, "drain", victim, "--pod-selector=app=web", "--timeout=90s")
            assert proc.returncode == 0, proc.stderr
            time.sleep(2)
    finally:
        core.patch_node(victim, {"spec": {"unschedulable": None}})
    stale_ports = stale(service, {p.status.pod_ip for p in pods_of(core, namespace, "web")} - drained)
    reused = sum(1 for port in load.failed_ports.values() if port in stale_ports)
    print(f"drain: {load.failed} of {len(load.results)} requests failed, {reused} on a source port stale in conntrack")
    # The Service never stops answering and every failed request is explained. Alone, a drain
    # loses no request (6 of 6 runs). After other tests in this module killed pods, a few new
    # connections reuse a source port whose unanswered SYN to such a pod is still in the routing
    # node's conntrack and go there again (kubernetes#101607, see stale()): 7 of 3,339 once.
    first = load.results[0][0]
    unexplained = [(round(t - first, 1), port) for t, port in load.failed_ports.items() if port not in stale_ports]
    assert load.longest_gap() < 3, f"the Service stopped answering for {load.longest_gap():.1f}s"
    assert not unexplained, (
        f"{len(unexplained)} of {len(load.results)} failed, not on a stale port (s, port): {unexplained} {load.errors}"
    )
    assert reused <= len(load.results) // 50, f"{reused} of {len(load.results)} failed on stale conntrack ports"
    assert all(p.spec.node_name != victim for p in pods_of(core, namespace, "web") if p.status.phase == "Running")
