"""Anti-affinity and spread: replicas of one workload do not share a fate, and the rules that
say so can be met on the cluster's real topology."""

from __future__ import annotations

from collections.abc import Iterator

from seatrial.checks.inventory import Facts, Inventory, Workload, selector_matches
from seatrial.checks.model import Finding
from seatrial.checks.registry import check

EXCEPTION = "seatrial.dev/exception"


def _anti_affinity(w: Workload, kind: str) -> list[dict[str, object]]:
    terms = ((w.pod.get("affinity") or {}).get("podAntiAffinity") or {}).get(kind) or []
    return [t.get("podAffinityTerm", t) for t in terms]


def _spreads(w: Workload) -> bool:
    own = dict(w.pod_labels)
    for t in _anti_affinity(w, "requiredDuringSchedulingIgnoredDuringExecution") + _anti_affinity(
        w, "preferredDuringSchedulingIgnoredDuringExecution"
    ):
        if selector_matches(t.get("labelSelector"), own):  # type: ignore[arg-type]
            return True
    return any(selector_matches(c.get("labelSelector"), own) for c in w.pod.get("topologySpreadConstraints") or [])


@check(
    "SPREAD-001",
    "Multi-replica workloads spread their replicas",
    family="spread",
    severity="high",
    why="Without pod anti-affinity or a topology spread constraint the scheduler may stack every replica "
    "on one node, and one node failure takes the whole service down.",
    fix="Add podAntiAffinity on kubernetes.io/hostname (preferred or required) or a "
    "topologySpreadConstraint on the zone, selecting the workload's own pod labels.",
)
def spread_declared(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in inv.workloads:
        if (w.replicas or 0) > 1 and not _spreads(w):
            yield Finding(
                "SPREAD-001",
                w.ref,
                "spec.template.spec.affinity",
                f"{w.replicas} replicas with no anti-affinity or spread",
            )


@check(
    "SPREAD-002",
    "Required spread rules can be satisfied on the cluster",
    family="spread",
    severity="high",
    why="Required anti-affinity per node with more replicas than eligible nodes leaves the extra replicas "
    "Pending for ever, and a rollout with surge never finishes.",
    fix="Use preferred anti-affinity, lower replicas, or widen the node selection.",
)
def spread_satisfiable(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    if not facts.known:
        return
    for w in inv.workloads:
        if not w.replicas or w.replicas < 2:
            continue
        eligible = facts.usable(w)
        if not eligible:
            continue  # not a spread problem: the pod fits no node at all
        for t in _anti_affinity(w, "requiredDuringSchedulingIgnoredDuringExecution"):
            key = str(t.get("topologyKey"))
            domains = {n.labels.get(key) for n in eligible if n.labels.get(key)}
            if w.replicas > len(domains):
                yield Finding(
                    "SPREAD-002",
                    w.ref,
                    "podAntiAffinity.required",
                    f"{w.replicas} replicas must each have their own {key} but only {len(domains)} eligible ones exist",
                )


@check(
    "SPREAD-003",
    "Serving workloads run more than one replica",
    family="spread",
    severity="medium",
    why="A single replica serves nothing while it restarts, is evicted by a node drain, or rolls out.",
    fix=f"Run at least 2 replicas (with a PDB), or annotate {EXCEPTION} with the reason it may be single.",
)
def single_replica(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in inv.workloads:
        if w.role in ("serving", "gpu-inference") and w.replicas == 1 and EXCEPTION not in w.annotations:
            yield Finding(
                "SPREAD-003", w.ref, "spec.replicas", "serves with a single replica and no documented exception"
            )
