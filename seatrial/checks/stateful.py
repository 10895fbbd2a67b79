"""Stateful stores: caches, databases and quorum stores keep their data on volumes and cannot
lose quorum to a voluntary disruption."""

from __future__ import annotations

import re
from collections.abc import Iterator

from seatrial.checks.inventory import STORE_IMAGE, Facts, Inventory, Workload
from seatrial.checks.model import Finding
from seatrial.checks.pdb import _pdbs, allowed
from seatrial.checks.registry import check

QUORUM_IMAGE = re.compile(r"(^|/)(etcd|zookeeper|consul)[^/]*(:|@|$)")


def _is_store(w: Workload) -> bool:
    if w.role == "stateful":
        return True
    images = [str(c.spec.get("image") or "") for c in w.containers()]
    return w.kind in ("Deployment", "StatefulSet") and any(STORE_IMAGE.search(i) for i in images)


def _is_quorum(w: Workload) -> bool:
    names = [w.name, *(str(c.spec.get("image") or "") for c in w.containers())]
    return any(QUORUM_IMAGE.search(n) or n in ("etcd", "zookeeper", "consul") for n in names)


def _persistent(w: Workload) -> bool:
    if w.spec.get("volumeClaimTemplates"):
        return True
    return any("persistentVolumeClaim" in v for v in w.pod.get("volumes") or [])


@check(
    "STATE-001",
    "Stateful stores keep their data on persistent volumes",
    family="stateful",
    severity="high",
    why="A cache or database on emptyDir loses everything on every restart, eviction or node drain; a "
    "cold cache after a rollout can take the serving tier down with it.",
    fix="Use a StatefulSet with volumeClaimTemplates (or a PersistentVolumeClaim volume).",
)
def persistent(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in inv.workloads:
        if _is_store(w) and not _persistent(w):
            yield Finding("STATE-001", w.ref, "spec.volumeClaimTemplates", "keeps its data on no persistent volume")


@check(
    "STATE-002",
    "Quorum stores cannot lose quorum to a voluntary disruption",
    family="stateful",
    severity="critical",
    why="etcd-like stores need a majority: a PDB that allows more than a minority to go, or members "
    "that may share a node, turns one drain into an outage of everything that depends on them.",
    fix="Run an odd number ≥ 3 of members with required anti-affinity on hostname and a PDB whose "
    "allowed disruptions stay below half (maxUnavailable: 1).",
)
def quorum(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in inv.workloads:
        if not _is_quorum(w) or w.replicas is None:
            continue
        n = w.replicas
        if n < 3 or n % 2 == 0:
            yield Finding("STATE-002", w.ref, "spec.replicas", f"{n} members: a quorum store needs an odd number ≥ 3")
            continue
        minority = (n - 1) // 2
        for p in _pdbs(inv, w):
            if allowed(p, n) > minority:
                yield Finding(
                    "STATE-002",
                    w.ref,
                    f"PodDisruptionBudget/{p['metadata']['name']}",
                    f"allows {allowed(p, n)} of {n} members to go",
                )
        if not _pdbs(inv, w):
            yield Finding("STATE-002", w.ref, "PodDisruptionBudget", "no PDB: a drain may take the majority")
        required = ((w.pod.get("affinity") or {}).get("podAntiAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        ) or []
        if not any(t.get("topologyKey") == "kubernetes.io/hostname" for t in required):
            yield Finding(
                "STATE-002", w.ref, "podAntiAffinity", "members may share a node: one node loss can take the majority"
            )
