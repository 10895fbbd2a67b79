"""Resources and QoS: every container says what it needs, so the scheduler places it honestly and
the kubelet evicts it last."""

from __future__ import annotations

from collections.abc import Iterator

from seatrial.checks.inventory import Facts, Inventory, Workload
from seatrial.checks.inventory import quantity as q
from seatrial.checks.model import Finding
from seatrial.checks.registry import check


def _best_effort(w: Workload) -> bool:
    cs = w.containers(init=True)
    return bool(cs) and all(not (c.resources.get("requests") or c.resources.get("limits")) for c in cs)


@check(
    "RES-001",
    "Containers request CPU and memory",
    family="resources",
    severity="medium",
    why="Without requests the scheduler packs pods onto nodes that cannot hold them, and under pressure "
    "the kubelet evicts them first.",
    fix="Set resources.requests.cpu and resources.requests.memory from observed usage.",
)
def requests(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in inv.workloads:
        if _best_effort(w):
            continue  # RES-003 says it once for the pod
        for c in w.containers(init=True):
            missing = [r for r in ("cpu", "memory") if c.request(r) is None and c.limit(r) is None]
            if missing:
                yield Finding("RES-001", w.ref, f"{c.where}.resources.requests", f"no {' or '.join(missing)} request")


@check(
    "RES-002",
    "Containers limit memory, at or above the request",
    family="resources",
    severity="medium",
    why="Without a memory limit one leaking container takes the node's memory and the OOM killer picks "
    "its neighbours; a limit below the request is rejected or OOM-kills at once.",
    fix="Set resources.limits.memory ≥ resources.requests.memory.",
)
def memory_limit(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in inv.workloads:
        if _best_effort(w):
            continue
        for c in w.containers(init=True):
            lim, req = c.limit("memory"), c.request("memory")
            if lim is None:
                yield Finding("RES-002", w.ref, f"{c.where}.resources.limits", "no memory limit")
            elif req is not None and q(lim) < q(req):
                yield Finding(
                    "RES-002", w.ref, f"{c.where}.resources.limits", f"memory limit {lim} is below the request {req}"
                )


@check(
    "RES-003",
    "No BestEffort pods",
    family="resources",
    severity="high",
    why="A pod with no request or limit on any container is BestEffort: evicted first under any "
    "pressure and scheduled with no regard to capacity.",
    fix="Give every container CPU and memory requests (and a memory limit).",
)
def best_effort(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in inv.workloads:
        if _best_effort(w):
            yield Finding("RES-003", w.ref, "spec.template.spec.containers", "every container is BestEffort")
