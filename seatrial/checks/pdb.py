"""PodDisruptionBudgets: every multi-replica workload has one that matches exactly its pods,
allows a drain to make progress, and still keeps enough serving."""

from __future__ import annotations

from collections.abc import Iterator

from seatrial import schema
from seatrial.checks import crds
from seatrial.checks.inventory import Facts, Inventory, Obj, Workload, home, int_or_percent, ref_of, selector_matches
from seatrial.checks.model import Finding
from seatrial.checks.registry import check


def _pdbs(inv: Inventory, w: Workload) -> list[Obj]:
    return inv.pdbs_for(w)


def _custom(inv: Inventory) -> dict[str, list[Obj]]:
    """Custom resources no rule reads, by the namespace they land in."""
    out: dict[str, list[Obj]] = {}
    for o in inv.objects:
        kind = str(o.get("kind"))
        if not schema.known(str(o.get("apiVersion")), kind) and kind not in crds.KINDS:
            out.setdefault(home(o), []).append(o)
    return out


def _operator_owner(custom: dict[str, list[Obj]], pdb: Obj) -> str | None:
    """The custom resource (Prometheus/k8s, Alertmanager/main …) whose operator-made pods a PDB
    selects: one in its namespace whose name or kind is a value of the selector's labels."""
    labels = ((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    values = {str(v).lower() for v in labels.values()}
    for o in custom.get(home(pdb), []):
        if str(o["metadata"].get("name")).lower() in values or str(o["kind"]).lower() in values:
            return f"{o['kind']}/{o['metadata'].get('name')}"
    return None


def _replicated(inv: Inventory) -> list[Workload]:
    return [w for w in inv.workloads if w.kind in ("Deployment", "StatefulSet") and (w.replicas or 0) > 1]


def allowed(p: Obj, replicas: int) -> int:
    """Voluntary disruptions the budget allows with every pod healthy."""
    spec = p.get("spec") or {}
    if spec.get("maxUnavailable") is not None:
        return int_or_percent(spec["maxUnavailable"], replicas, round_up=True)
    if spec.get("minAvailable") is not None:
        return replicas - int_or_percent(spec["minAvailable"], replicas, round_up=True)
    return replicas  # an empty budget allows everything


@check(
    "PDB-001",
    "Multi-replica workloads have a PodDisruptionBudget",
    family="pdb",
    severity="high",
    why="Without a PDB a node drain (upgrade, autoscaler, spot rebalancing) may evict every replica at "
    "once; StatefulSets need one as much as Deployments.",
    fix="Add a PodDisruptionBudget selecting the workload's pods, e.g. maxUnavailable: 1.",
)
def pdb_present(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in _replicated(inv):
        if not _pdbs(inv, w):
            yield Finding("PDB-001", w.ref, "", f"{w.replicas} replicas and no PodDisruptionBudget selects its pods")


@check(
    "PDB-002",
    "A PodDisruptionBudget selects exactly one workload's pods",
    family="pdb",
    severity="medium",
    why="A budget that matches no pods protects nothing; one that matches several workloads counts "
    "them together and lets one of them lose every pod.",
    fix="Make the PDB's selector equal the workload's own pod labels (app.kubernetes.io/name).",
)
def pdb_selector(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    # by namespace and by each pod label: a budget is tried only against the workloads that
    # carry one of its labels (thousands of both in one namespace stay linear)
    in_home: dict[str, list[Workload]] = {}
    by_label: dict[tuple[str, str, str], list[Workload]] = {}
    for w in inv.workloads:
        if w.kind in ("Deployment", "StatefulSet", "ReplicaSet"):
            in_home.setdefault(w.home, []).append(w)
            for k, v in w.pod_labels.items():
                by_label.setdefault((w.home, k, str(v)), []).append(w)
    custom = _custom(inv)
    for p in inv.of("PodDisruptionBudget"):
        sel = (p.get("spec") or {}).get("selector")
        labels = (sel or {}).get("matchLabels") or {}
        if labels:
            k, v = next(iter(labels.items()))
            candidates = by_label.get((home(p), str(k), str(v)), [])
        else:
            candidates = in_home.get(home(p), [])
        hits = [w.name for w in candidates if selector_matches(sel, w.pod_labels)]
        owner = _operator_owner(custom, p) if not hits else None
        if owner:
            yield Finding(
                "PDB-002",
                ref_of(p),
                "spec.selector",
                f"selects no pods seatrial could read: they are {owner}'s, which its operator creates (not checked)",
            )
        elif not hits:
            yield Finding("PDB-002", ref_of(p), "spec.selector", "selects no workload's pods")
        elif len(hits) > 1:
            yield Finding(
                "PDB-002", ref_of(p), "spec.selector", f"selects the pods of {len(hits)} workloads: {', '.join(hits)}"
            )


@check(
    "PDB-003",
    "PodDisruptionBudgets allow at least one disruption",
    family="pdb",
    severity="high",
    why="A budget that allows no disruption (minAvailable = replicas, maxUnavailable 0) blocks every "
    "node drain: upgrades stall and spot nodes are reclaimed without a graceful eviction.",
    fix="Use maxUnavailable: 1, or a minAvailable below the replica count.",
)
def pdb_allows(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in _replicated(inv):
        for p in _pdbs(inv, w):
            if allowed(p, w.replicas or 0) < 1:
                yield Finding(
                    "PDB-003", ref_of(p), "spec", f"allows no disruption of {w.kind}/{w.name}'s {w.replicas} pods"
                )


@check(
    "PDB-004",
    "PodDisruptionBudgets keep enough replicas, consistent with the HPA",
    family="pdb",
    severity="medium",
    why="A budget that allows every pod to go (minAvailable 0, maxUnavailable ≥ replicas) protects "
    "nothing; one whose minAvailable reaches the HPA's minReplicas blocks drains at low load.",
    fix="Keep at least one pod (more for serving) and stay below the HPA's minReplicas.",
)
def pdb_keeps(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in _replicated(inv):
        replicas = w.replicas or 0
        for p in _pdbs(inv, w):
            n = allowed(p, replicas)
            if n >= replicas:
                yield Finding(
                    "PDB-004", ref_of(p), "spec", f"allows all {replicas} pods of {w.kind}/{w.name} to go at once"
                )
            hpa = inv.hpa_for(w)
            low = int(hpa["spec"].get("minReplicas") or 1) if hpa else None
            if low is not None and low != replicas and allowed(p, low) < 1:
                yield Finding(
                    "PDB-004", ref_of(p), "spec", f"at the HPA's minReplicas {low} it allows no disruption of {w.name}"
                )
