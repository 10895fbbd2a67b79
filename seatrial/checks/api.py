"""API validity: objects the API server of the target release would refuse, caught before a
deploy fails half-way. Every peer tool flags these; the schema check in ``manifests`` refuses
wrong types, these say what a valid-looking object still gets wrong."""

from __future__ import annotations

from collections.abc import Iterator

from seatrial import schema
from seatrial.checks.inventory import Facts, Inventory, ref_of, selector_matches
from seatrial.checks.model import Finding
from seatrial.checks.registry import check

SELECTED = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")


@check(
    "API-001",
    "Objects use an API version the target Kubernetes serves",
    family="api",
    severity="critical",
    why="A removed version (extensions/v1beta1 Deployments, policy/v1beta1 PodDisruptionBudgets) is refused "
    "by the API server: the deploy stops part-way, or a budget silently never exists.",
    fix="Move the object to the version the target serves (kubectl convert, or the Kubernetes deprecation "
    "guide's notes for its kind).",
)
def served(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for o in inv.objects:
        api, kind = str(o.get("apiVersion")), str(o.get("kind"))
        versions = schema.served_versions(kind)
        groups = {v.rpartition("/")[0] for v in versions} | {"extensions"}  # extensions: removed in 1.22
        # a custom resource may share a built-in's kind (Knative's Service, Volcano's Job): only
        # a built-in group at a version the release no longer serves is an error
        if versions and api not in versions and api.rpartition("/")[0] in groups:
            inv.asked.add(kind)
            yield Finding(
                "API-001",
                ref_of(o),
                "apiVersion",
                f"{api} {kind} is not served by Kubernetes {schema.target()}; use {' or '.join(versions)}",
            )


@check(
    "API-002",
    "Workloads select their own pods",
    family="api",
    severity="critical",
    why="An apps/v1 workload needs spec.selector, and its pod template's labels must match it: the API "
    "server refuses either mistake, and nothing of the workload is created.",
    fix="Set spec.selector.matchLabels to labels the pod template carries (app.kubernetes.io/name).",
)
def selects_own_pods(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for w in inv.workloads:
        if w.kind not in SELECTED or not str(w.obj.get("apiVersion", "")).startswith("apps/"):
            continue
        selector = w.spec.get("selector")
        if not selector:
            yield Finding("API-002", w.ref, "spec.selector", "has no selector (apps/v1 requires one)")
        elif not selector_matches(selector, w.pod_labels):
            yield Finding(
                "API-002", w.ref, "spec.selector", "does not match the pod template's labels: no pod would be its own"
            )
