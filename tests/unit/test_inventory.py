"""The inventory rules read: where an object lands, and lookups that cost the same per object at
any size (issue 12: SEC-004 grew as n^2.7 and 131,577 Deployments did not finish in 15 minutes)."""

from __future__ import annotations

import copy
from collections import Counter

from seatrial import checks, synth
from seatrial.checks import Facts


def _found(objects: list[dict[str, object]]) -> Counter[str]:
    results = checks.run(checks.Inventory(objects), Facts(), mode="static")
    return Counter({r.check.id: len(r.findings) for r in results if r.status == "failed"})


def test_findings_grow_exactly_with_the_namespaces() -> None:
    """Each synthetic namespace is self-contained, so k of them must give k times the findings of
    one: a lookup that crossed namespaces (or missed its neighbour) would break the ratio."""
    one, many = _found(synth.stack(synth.PER_NAMESPACE)), _found(synth.stack(40 * synth.PER_NAMESPACE))
    assert one, "the synthetic namespace has findings to count"
    assert many == Counter({k: 40 * v for k, v in one.items()})


def test_an_object_without_a_namespace_lands_in_default_beside_its_budget() -> None:
    """kubectl puts an object without a namespace in ``default``; its PDB, written with
    ``namespace: default``, protects it (no false PDB-001), and its RoleBinding binds its account."""
    objects = synth.namespace(0)
    for o in objects:
        o["metadata"].pop("namespace")  # type: ignore[attr-defined]
        for subject in o.get("subjects") or []:  # type: ignore[attr-defined]
            subject["namespace"] = "default"
    baseline = _found(copy.deepcopy(objects))
    for o in objects:
        if o["kind"] in ("PodDisruptionBudget", "RoleBinding", "ServiceAccount", "HorizontalPodAutoscaler"):
            o["metadata"]["namespace"] = "default"  # type: ignore[index]
    assert _found(objects) == baseline == _found(synth.namespace(0))


def test_static_mode_judges_against_the_release_the_local_cluster_runs() -> None:
    from seatrial import schema
    from seatrial.cluster import versions

    assert schema.KUBERNETES == versions.KUBERNETES
