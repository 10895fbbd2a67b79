"""Network exposure: internal services stay internal and every namespace starts from deny."""

from __future__ import annotations

from collections.abc import Iterator

from seatrial.checks.inventory import Facts, Inventory, home, ref_of
from seatrial.checks.model import Finding, Ref
from seatrial.checks.registry import check

PUBLIC = "seatrial.dev/public"


@check(
    "NET-001",
    "Internal Services are not exposed outside the cluster",
    family="exposure",
    severity="medium",
    why="A LoadBalancer or NodePort Service for a cache, a registry or a model server puts it on the "
    "network with no gateway, auth or rate limit in front.",
    fix=f"Use type ClusterIP behind the gateway/Ingress; annotate {PUBLIC}: 'true' on the one Service "
    "meant to be public.",
)
def exposed(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    for s in inv.of("Service"):
        kind = (s.get("spec") or {}).get("type", "ClusterIP")
        if kind in ("LoadBalancer", "NodePort") and (s["metadata"].get("annotations") or {}).get(PUBLIC) != "true":
            yield Finding("NET-001", ref_of(s), "spec.type", f"is {kind} without the {PUBLIC} annotation")


@check(
    "NET-002",
    "Namespaces with workloads have a default-deny NetworkPolicy",
    family="exposure",
    severity="medium",
    why="Without a default deny, any pod in the cluster can reach the model servers, the cache and the "
    "quorum store directly, around the gateway.",
    fix="Add a NetworkPolicy with podSelector: {} and policyTypes [Ingress, Egress] and no rules, then "
    "allow what each component needs.",
)
def default_deny(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    del facts
    denied: set[str] = set()
    for p in inv.of("NetworkPolicy"):
        spec = p.get("spec") or {}
        if (
            spec.get("podSelector") in ({}, None)
            and "Ingress" in (spec.get("policyTypes") or ["Ingress"])
            and not spec.get("ingress")
        ):
            denied.add(home(p))
    # namespaces as they land (an unset one is "default", as with kubectl apply)
    for ns in sorted({w.home for w in inv.workloads} & inv.managed_namespaces() - denied):
        yield Finding("NET-002", Ref("", "Namespace", ns), "", "has no default-deny NetworkPolicy")
