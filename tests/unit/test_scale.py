"""The scale profile (issue 17): its stack is clean but for the planted defects, which the
catalogue names exactly, and it grows by replicas alone. The live run is ``nox -s bench -- scale``;
these are the pure parts it rests on, judged here against the pool files' nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from seatrial import checks, scale
from seatrial.checks import Facts, Inventory, facts
from seatrial.checks.inventory import Workload, schedulable_on


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Facts:
    where: Path = tmp_path_factory.mktemp("pools")
    (where / "scale.yaml").write_text(yaml.safe_dump_all(scale.pool_documents()))
    return facts.from_pools(where)


def _found(objects: list[dict[str, Any]], fx: Facts) -> list[tuple[str, str, str]]:
    results = checks.run(Inventory(objects), fx, mode="static")
    assert not [r.reason for r in results if r.status == "error"]
    return sorted((f.check, f.target.namespace, f.target.name) for r in results for f in r.findings)


def test_the_fleet_is_a_thousand_nodes_mostly_gpu(fleet: Facts) -> None:
    assert len(fleet.nodes) == 1_000
    assert sum(n.gpus > 0 for n in fleet.nodes) == 800
    assert {n.zone for n in fleet.nodes} == {"zone-a", "zone-b", "zone-c"}


@pytest.mark.parametrize("pods", [1_000, 10_000])
def test_the_catalogue_names_exactly_the_planted_defects(fleet: Facts, pods: int) -> None:
    assert _found(scale.stack(pods), fleet) == scale.expected_findings()


def test_without_the_defects_nothing_is_found(fleet: Facts, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other way round: the same stack with nothing planted is clean, so each planted defect
    is what makes its finding (a rule that fired on every namespace would fail here)."""
    monkeypatch.setattr(scale, "PLANTED", ())
    assert _found(scale.stack(1_000), fleet) == []


def test_the_stack_grows_by_replicas_alone() -> None:
    """1,000 and 10,000 pods are the same objects: the API requests of a run can be compared."""

    def shape(objects: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return [(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objects]

    small, large = scale.stack(1_000), scale.stack(10_000)
    assert shape(small) == shape(large)
    assert len(scale.namespaces()) > 50 and sum(o["kind"] in scale.WORKLOAD_KINDS for o in small) >= 500
    assert scale.expected_pods(1_000) == 1_250
    assert scale.expected_pods(10_000) == 10_000


def test_every_store_claim_has_a_volume_bound_to_it() -> None:
    claims = {
        (o["metadata"]["namespace"], f"{t['metadata']['name']}-{o['metadata']['name']}-{i}")
        for o in scale.stack(1_000)
        if o["kind"] == "StatefulSet"
        for t in o["spec"].get("volumeClaimTemplates", [])
        for i in range(o["spec"]["replicas"])
    }
    bound = {
        (v["spec"]["claimRef"]["namespace"], v["spec"]["claimRef"]["name"])
        for v in scale.volumes()
        if v["kind"] == "PersistentVolume"
    }
    assert claims and claims <= bound


def test_usable_nodes_are_worked_out_once_per_placement_and_agree(fleet: Facts) -> None:
    workloads = Inventory(scale.stack(1_000)).workloads
    for w in workloads[:40]:
        assert fleet.usable(w) == tuple(n for n in fleet.nodes if schedulable_on(w, n))
    assert len(fleet._usable) < 10  # a handful of placements, not one per workload
    gpu = next(w for w in workloads if w.name == "llm")
    assert isinstance(gpu, Workload) and all(n.gpus for n in fleet.usable(gpu))


def test_facts_with_other_nodes_work_placements_out_afresh(fleet: Facts) -> None:
    import dataclasses

    w = Inventory(scale.stack(1_000)).workloads[0]
    assert fleet.usable(w)
    fewer = dataclasses.replace(fleet, nodes=fleet.nodes[:1])
    assert len(fewer.usable(w)) <= 1
