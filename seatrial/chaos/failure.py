"""A node that stops: what the control plane does about it, and how long the stack takes.

A real node of the local cluster is switched off (kubelet, containerd and every container die, its
link goes down); simulated nodes stop heartbeating (KWOK lets go of them). Nothing tells the
control plane: it notices the missing heartbeat after the node monitor's grace period, marks the
node NotReady, taints it ``node.kubernetes.io/unreachable:NoExecute``, and evicts each pod once
its toleration of that taint runs out — 300 s unless the pod says otherwise, which is why a stack
can lose a replica for five minutes to one dead node. A ``Timeline`` keeps those moments, and the
probe after the fault judges them against the profile's recovery SLO, naming the toleration
when it is the cause.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from seatrial import kube, workloads
from seatrial.chaos import drain, ledger, nodeops
from seatrial.chaos.actions import Configuration, _api, _namespace
from seatrial.cluster.pools import KWOK_LABEL
from seatrial.errors import ConfigError

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
DEFAULT_TOLERATION = 300  # what DefaultTolerationSeconds gives a pod that says nothing
log = logging.getLogger("seatrial.chaos")


@dataclass
class Timeline:
    """Seconds from the failure to each moment, per node; and the pods it held."""

    nodes: list[str]
    real: bool
    zone: str = ""
    not_ready: dict[str, float] = field(default_factory=dict)
    tainted: dict[str, float] = field(default_factory=dict)
    evicted: dict[str, float] = field(default_factory=dict)  # pod -> when it was marked for deletion
    whole: float | None = None  # every workload that had a pod there ready again, as many as before
    pods: dict[str, str] = field(default_factory=dict)  # "ns/pod" -> "Kind/name" of its workload
    tolerations: dict[str, int] = field(default_factory=dict)  # "ns/pod" -> unreachable tolerationSeconds

    def movable(self) -> list[str]:
        """Pods Kubernetes replaces elsewhere: a Deployment's. A StatefulSet's pod keeps its
        identity and waits for its node (at most one pod per identity, by design)."""
        return [p for p, owner in self.pods.items() if owner.startswith("Deployment/")]

    def waiting(self) -> list[str]:
        return sorted(p for p in self.pods if p not in self.movable())

    def summary(self) -> dict[str, Any]:
        return dict(self.__dict__)


def toleration_seconds(pod: Mapping[str, Any]) -> int:
    """How long the pod stays bound to an unreachable node (its NoExecute toleration)."""
    for t in (pod.get("spec") or {}).get("tolerations") or []:
        if t.get("key") in (UNREACHABLE, None) and t.get("effect") in ("NoExecute", None):
            if t.get("operator") == "Exists" and t.get("key") is None:
                return 10**9  # tolerates everything: never evicted
            return int(t["tolerationSeconds"]) if t.get("tolerationSeconds") is not None else 10**9
    return DEFAULT_TOLERATION


def _workload_of(api: client.ApiClient, pod: Mapping[str, Any]) -> str | None:
    """The Deployment or StatefulSet that owns a pod (through its ReplicaSet for a Deployment)."""
    meta = pod.get("metadata") or {}
    for o in meta.get("ownerReferences") or []:
        if o.get("kind") == "StatefulSet":
            return f"StatefulSet/{o['name']}"
        if o.get("kind") == "ReplicaSet":
            with kube.translate(f"reading ReplicaSet {o['name']}"):
                rs = kube.as_dict(client.AppsV1Api(api).read_namespaced_replica_set(o["name"], meta["namespace"]))
            for ro in (rs.get("metadata") or {}).get("ownerReferences") or []:
                if ro.get("kind") == "Deployment":
                    return f"Deployment/{ro['name']}"
    return None


def _follow(api: client.ApiClient, ns: str, tl: Timeline, stop: threading.Event) -> None:
    core, t0 = client.CoreV1Api(api), time.monotonic()
    kinds = sorted(k for k in set(tl.pods.values()) if k.startswith("Deployment/"))
    while not stop.is_set():
        now = round(time.monotonic() - t0, 2)
        try:
            for name in tl.nodes:
                node = kube.as_dict(core.read_node(name))
                ready = any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (node.get("status") or {}).get("conditions") or []
                )
                if not ready:
                    tl.not_ready.setdefault(name, now)
                if any(
                    t.get("key") == UNREACHABLE and t.get("effect") == "NoExecute"
                    for t in node["spec"].get("taints") or []
                ):
                    tl.tainted.setdefault(name, now)
            for key in tl.pods:
                pns, pname = key.split("/")
                try:
                    pod = kube.as_dict(core.read_namespaced_pod(pname, pns))
                    if pod["metadata"].get("deletionTimestamp"):
                        tl.evicted.setdefault(key, now)
                except client.exceptions.ApiException as exc:
                    if exc.status == 404:
                        tl.evicted.setdefault(key, now)
            evicted = all(tl.evicted.get(p) is not None for p in tl.movable())
            if kinds and tl.whole is None and evicted and all(_whole(api, ns, k) for k in kinds):
                tl.whole = now
        except Exception as exc:  # a missed poll is retried; the clock keeps running
            log.debug("node-failure clock: %s", exc)
        time.sleep(0.5)


def _whole(api: client.ApiClient, ns: str, kind_name: str) -> bool:
    kind, name = kind_name.split("/")
    obj = workloads.read(api, kind, name, ns)
    want = int((obj.get("spec") or {}).get("replicas") or 0)
    ready = [p for p in workloads.pods(api, kind, name, ns) if workloads.pod_ready(p)]
    return len(ready) >= want


def fail_node(
    holding: str | None = None,
    *,
    pool: str | None = None,
    count: int = 1,
    configuration: Configuration = None,
) -> dict[str, Any]:
    """Stop a node without warning: the real node running a pod ``holding`` picks (switched off),
    or ``count`` simulated nodes of ``pool`` (their heartbeat stops). The ledger switches them on
    again. Returns the timeline so far; the probe after reads it when the recovery had its time."""
    from seatrial.chaos.nodes import node_holding

    ns, api = _namespace(configuration), _api(configuration)
    book = ledger.current()
    book.allow(ns, "fail a node of the stack")
    core = client.CoreV1Api(api)
    if holding:
        names = [node_holding(api, ns, holding)]
    elif pool:
        with kube.translate(f"listing nodes of pool {pool}"):
            items = core.list_node(label_selector=f"seatrial.dev/pool={pool},{KWOK_LABEL}=fake").items
        names = sorted(kube.name_of(n) for n in items)[:count]
        if not names:
            raise ConfigError(f"no simulated node of pool {pool} to fail")
    else:
        raise ConfigError("fail_node needs holding (a real node) or pool (simulated nodes)")
    real = holding is not None
    local = nodeops.local_cluster(configuration) if real else None
    if real and local is None:
        raise ConfigError("switching a real node off needs seatrial's local cluster")
    tl = Timeline(names, real)
    _note_pods(api, book, tl, names)
    stop = threading.Event()
    book.records.setdefault("failure", []).append((tl, stop))
    book.will("the node-failure clock stopped", stop.set)
    if local is None:
        book.will("the stack's pods on the simulated nodes replaced",
                  lambda: _kick_simulated_pods(api, names, book.namespaces))  # fmt: skip
    for name in names:
        if local is not None:
            nodeops.power_off(api, name, local.kill_node, local.revive_node)
        else:
            _stop_heartbeat(api, name)
    threading.Thread(target=_follow, args=(api, ns, tl, stop), daemon=True, name="node-failure-clock").start()
    return tl.summary()


def _stop_heartbeat(api: client.ApiClient, name: str) -> None:
    """A simulated node fails: KWOK lets it go (it manages only nodes with its label) and its
    heartbeat lease is held, so nothing renews it even if KWOK missed the change."""
    nodeops.set_label(api, name, KWOK_LABEL, None)
    nodeops.hold_lease(api, name)


def fail_zone(holding: str, configuration: Configuration = None) -> dict[str, Any]:
    """Every node of one zone fails at once: the zone of the node running a pod ``holding``
    picks. Its real nodes are switched off, its simulated nodes stop heartbeating."""
    from seatrial.chaos.nodes import node_holding

    ns, api = _namespace(configuration), _api(configuration)
    book = ledger.current()
    book.allow(ns, "fail a zone of the stack")
    core = client.CoreV1Api(api)
    zone_label = "topology.kubernetes.io/zone"
    zone = (nodeops.read(api, node_holding(api, ns, holding))["metadata"].get("labels") or {}).get(zone_label)
    if not zone:
        raise ConfigError(f"the node of {holding} has no {zone_label} label: no zone to fail")
    with kube.translate(f"listing the nodes of zone {zone}"):
        members = [kube.as_dict(n) for n in core.list_node(label_selector=f"{zone_label}={zone}").items]
    real = sorted(
        n["metadata"]["name"] for n in members if n["metadata"]["labels"].get("seatrial.dev/real-node") == "true"
    )
    simulated = sorted(n["metadata"]["name"] for n in members if n["metadata"]["labels"].get(KWOK_LABEL) == "fake")
    other = sorted({n["metadata"]["name"] for n in members} - set(real) - set(simulated))
    if other:
        raise ConfigError(f"zone {zone} has nodes seatrial cannot stop: {', '.join(other)}")
    for name in real + simulated:  # every node allowed before any is touched
        book.allow_node(name, nodeops.read(api, name)["metadata"].get("labels") or {}, f"fail node {name} of {zone}")
    local = nodeops.local_cluster(configuration) if real else None
    if real and local is None:
        raise ConfigError("switching real nodes off needs seatrial's local cluster")
    tl = Timeline(real + simulated, bool(real), zone=zone)
    _note_pods(api, book, tl, real)
    stop = threading.Event()
    book.records.setdefault("failure", []).append((tl, stop))
    book.will("the zone-outage clock stopped", stop.set)
    if simulated:
        book.will(
            "the stack's pods on the simulated nodes replaced",
            lambda: _kick_simulated_pods(api, simulated, book.namespaces),
        )
    for name in simulated:
        _stop_heartbeat(api, name)
    for name in real:
        assert local is not None
        nodeops.power_off(api, name, local.kill_node, local.revive_node)
    threading.Thread(target=_follow, args=(api, ns, tl, stop), daemon=True, name="zone-outage-clock").start()
    return tl.summary()


def _note_pods(api: client.ApiClient, book: ledger.Ledger, tl: Timeline, names: list[str]) -> None:
    for name in names:
        for pod in drain.pods_on(api, name):
            meta = pod["metadata"]
            if meta["namespace"] not in book.namespaces or (pod.get("status") or {}).get("phase") != "Running":
                continue
            owner = _workload_of(api, pod)
            if owner:
                tl.pods[f"{meta['namespace']}/{meta['name']}"] = owner
                tl.tolerations[f"{meta['namespace']}/{meta['name']}"] = toleration_seconds(pod)


def noticed(timeout: float = 60.0, configuration: Configuration = None) -> str:
    """After a failure: wait until the control plane has noticed every failed node (NotReady), the
    moment the Services stop sending to what ran there. (Not the NoExecute taint: when most of
    a zone fails, the node lifecycle controller slows its evictions there, and in a cluster
    under 50 nodes stops them, taking the zone for cut off rather than dead.)"""
    failed: list[tuple[Timeline, threading.Event]] = ledger.current().records.get("failure", [])
    if not failed:
        return "ok: no node failed yet (the steady state before the fault)"
    deadline = time.monotonic() + timeout
    api = _api(configuration)
    ready_nodes: list[str] = []
    in_service: list[str] = []
    while time.monotonic() < deadline:
        ready_nodes = sorted(n for tl, _ in failed for n in tl.nodes if n not in tl.not_ready)
        in_service = [] if ready_nodes else _in_service(api, failed)
        if not ready_nodes and not in_service:
            time.sleep(SYNC_SECONDS)
            slowest = max(max(tl.not_ready.values()) for tl, _ in failed)
            tainted = sum(len(tl.tainted) for tl, _ in failed)
            count = sum(len(tl.nodes) for tl, _ in failed)
            return (
                f"ok: {count} node(s) NotReady after {slowest:.0f} s ({tainted} tainted unreachable:NoExecute so far)"
            )
        time.sleep(0.5)
    return f"the control plane did not notice the failed nodes within {timeout:.0f} s: " + unnoticed(
        ready_nodes, in_service
    )


def unnoticed(ready_nodes: list[str], in_service: list[str]) -> str:
    """Pure: what the control plane had not yet done, so a late notice names its node or pod."""
    if ready_nodes:
        return f"{len(ready_nodes)} still Ready ({', '.join(ready_nodes[:5])})"
    return f"every node NotReady, but {', '.join(in_service[:5])} still ready in their Services"


SYNC_SECONDS = 3.0  # from a pod marked not ready to every kube-proxy's rules without it


def _in_service(api: client.ApiClient, failed: list[tuple[Timeline, threading.Event]]) -> list[str]:
    """The stack pods that ran on a failed node and are not yet marked not ready (or going):
    once none is left, the endpoint controllers take them out of the Services."""
    core = client.CoreV1Api(api)
    left: list[str] = []
    for tl, _ in failed:
        for key in tl.pods:
            pns, pname = key.split("/")
            try:
                pod = kube.as_dict(core.read_namespaced_pod(pname, pns))
            except client.exceptions.ApiException as exc:
                if exc.status == 404:
                    continue
                raise
            if drain.healthy(pod):
                left.append(key)
    return left


def _kick_simulated_pods(api: client.ApiClient, names: list[str], namespaces: frozenset[str]) -> None:
    """After simulated nodes heartbeat again: the stack's pods there stay marked not ready (KWOK
    does not revisit a pod it did not see change), so delete them; their DaemonSet or controller
    makes new ones, which KWOK runs."""
    core = client.CoreV1Api(api)
    kube.wait_for("the simulated nodes Ready again", lambda: all(
        kube.node_ready(core.read_node(n)) for n in names), timeout=60, interval=0.5)  # fmt: skip
    for name in names:
        for pod in drain.pods_on(api, name):
            meta = pod["metadata"]
            if meta["namespace"] in namespaces and not drain.healthy(pod) and not meta.get("deletionTimestamp"):
                with kube.translate(f"replacing {meta['namespace']}/{meta['name']} on {name}"):
                    core.delete_namespaced_pod(meta["name"], meta["namespace"], grace_period_seconds=0)


def recovered(within: float | None = None, configuration: Configuration = None) -> str:
    """After the failure: wait up to ``within`` seconds (default: the recovery SLO given in the
    configuration, else 60) for every workload that had a pod on the node to be whole again.
    ``ok: …`` with the timeline, or the cause: which pods stayed bound, and their toleration."""
    failed: list[tuple[Timeline, threading.Event]] = ledger.current().records.get("failure", [])
    if not failed:
        return "ok: no node failed yet (the steady state before the fault)"
    budget = float(within if within is not None else (configuration or {}).get("recovery_seconds") or 60)
    deadline = time.monotonic() + budget

    def settled(tl: Timeline) -> bool:
        return tl.whole is not None if tl.movable() else len(tl.tainted) == len(tl.nodes)

    while not all(settled(tl) for tl, _ in failed) and time.monotonic() < deadline:
        time.sleep(0.5)
    for _, stop in failed:
        stop.set()
    verdicts = [failure_verdict(tl, budget) for tl, _ in failed]
    bad = [v for v in verdicts if not v.startswith("ok")]
    return "; ".join(bad) if bad else "ok: " + "; ".join(v.removeprefix("ok: ") for v in verdicts)


def failure_verdict(tl: Timeline, budget: float) -> str:
    """Pure: the timeline against the recovery budget, in one line."""

    def first(d: dict[str, float]) -> str:
        return f"{min(d.values()):.0f} s" if d else "never"

    moments = f"NotReady after {first(tl.not_ready)}, tainted unreachable after {first(tl.tainted)}"
    waits = f"; {', '.join(tl.waiting())} wait(s) for the node (StatefulSet identity)" if tl.waiting() else ""
    if not tl.movable():
        if len(tl.tainted) < len(tl.nodes):
            return f"{len(tl.nodes) - len(tl.tainted)} of {len(tl.nodes)} node(s) never tainted within {budget:.0f} s"
        return f"ok: {len(tl.nodes)} node(s) stopped: {moments}; no pod of the stack to replace{waits}"
    if tl.whole is not None:
        return (
            f"ok: {moments}, pods evicted after {first(tl.evicted)}, "
            f"{', '.join(sorted({tl.pods[p] for p in tl.movable()}))} whole again after {tl.whole:.0f} s "
            f"(budget {budget:.0f} s){waits}"
        )
    stuck = sorted(p for p in tl.movable() if p not in tl.evicted)
    if stuck:
        slow = {p: tl.tolerations.get(p, DEFAULT_TOLERATION) for p in stuck}
        worst = max(slow.values())
        told = "the default" if worst == DEFAULT_TOLERATION else "their"
        return (
            f"not whole within {budget:.0f} s: {', '.join(stuck)} stayed bound to the failed node "
            f"({moments}); {told} toleration of {UNREACHABLE} is {worst} s "
            f"(tolerationSeconds), longer than the {budget:.0f} s recovery SLO"
        )
    return (
        f"not whole within {budget:.0f} s: pods evicted after {first(tl.evicted)} but "
        f"{', '.join(sorted({tl.pods[p] for p in tl.movable()}))} not ready again ({moments})"
    )
