"""The catalogue, proven both ways: the reference stack passes every check, and for every check a
known-bad variant of it (one realistic defect, tests/checks/<family>/<ID>-<scenario>.yaml) fails
exactly that check, naming the right object and field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from seatrial import checks, stack
from seatrial.checks import facts
from seatrial.checks.registry import FAMILIES

CASES = sorted((Path(__file__).resolve().parents[1] / "checks").rglob("*.yaml"))
POOLS = Path(__file__).resolve().parents[2] / "manifests" / "cluster"
NS = "stack"

pytestmark = pytest.mark.needs_binaries


@pytest.fixture(scope="module")
def reference() -> list[dict[str, Any]]:
    return stack.render(stack.overlay_dir("local"), NS)


@pytest.fixture(scope="module")
def assumed() -> checks.Facts:
    """The local cluster as it runs: simulated pools carry KWOK's taint, which keeps the
    reference stack's real pods off them."""
    return facts.from_pools(POOLS, simulated=True)


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def apply_op(doc: Any, op: dict[str, Any]) -> None:
    """The subset of RFC 6902 the cases use: add, replace, remove."""
    *parents, last = _pointer(op["path"])
    node = doc
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if op["op"] == "remove":
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        node.insert(len(node) if last == "-" else int(last), op["value"]) if op["op"] == "add" else node.__setitem__(
            int(last), op["value"]
        )
    else:
        if op["op"] == "replace" and last not in node:
            raise KeyError(f"replace of missing {op['path']}")
        node[last] = op["value"]


def mutate(objects: list[dict[str, Any]], case: dict[str, Any]) -> list[dict[str, Any]]:
    out = copy.deepcopy(objects)
    for p in case.get("patch") or []:
        kind, name = p["target"].split("/")
        [obj] = [o for o in out if o["kind"] == kind and o["metadata"]["name"] == name]
        for op in p["ops"]:
            apply_op(obj, op)
    for r in case.get("remove") or []:
        before = len(out)
        out = [o for o in out if not (o["kind"] == r["kind"] and o["metadata"]["name"] == r["name"])]
        assert len(out) == before - 1, f"nothing to remove: {r}"
    return out + copy.deepcopy(case.get("add") or [])


def failed(objects: list[dict[str, Any]], f: checks.Facts) -> dict[str, list[checks.Finding]]:
    results = checks.run(checks.Inventory(objects), f, mode="static")
    errors = [f"{r.check.id}: {r.reason}" for r in results if r.status == "error"]
    assert not errors, errors
    return {r.check.id: list(r.findings) for r in results if r.status == "failed"}


@pytest.mark.parametrize("overlay", ["local", "staging"])
def test_reference_stack_passes_every_check(overlay: str, assumed: checks.Facts) -> None:
    objects = stack.render(stack.overlay_dir(overlay), NS)
    bad = failed(objects, assumed if overlay == "local" else facts.from_pools(POOLS))  # staging: real pools
    assert not bad, "\n".join(str(f) for fs in bad.values() for f in fs)


@pytest.mark.parametrize("case_file", CASES, ids=lambda p: p.stem)
def test_known_bad_stack_fails_exactly_its_check(
    case_file: Path, reference: list[dict[str, Any]], assumed: checks.Facts
) -> None:
    case = yaml.safe_load(case_file.read_text())
    expect = case["expect"]
    assert case_file.stem.startswith(expect["check"] + "-"), "name cases <CHECK-ID>-<scenario>.yaml"
    assert case_file.parent.name == checks.catalogue()[[c.id for c in checks.catalogue()].index(expect["check"])].family
    bad = failed(mutate(reference, case), assumed)
    assert set(bad) - set(expect.get("also", [])) == {expect["check"]}, {k: [str(f) for f in v] for k, v in bad.items()}
    targets = [f"{f.target.kind}/{f.target.name}" for f in bad[expect["check"]]]
    assert expect["target"] in targets
    if "field" in expect:
        assert any(f.field == expect["field"] for f in bad[expect["check"]]), [f.field for f in bad[expect["check"]]]
    assert all(f.message for f in bad[expect["check"]])


def test_every_check_has_a_known_bad_case_and_a_complete_entry() -> None:
    covered = {p.stem.split("-")[0] + "-" + p.stem.split("-")[1] for p in CASES}
    # live-only checks are proven both ways on the cluster: tests/cluster/test_live_checks.py
    ids = [c.id for c in checks.catalogue() if "static" in c.modes]
    assert sorted(set(ids) - covered) == []
    for c in checks.catalogue():
        assert c.family in FAMILIES and c.title and c.why and c.fix and c.modes


def test_docs_table_is_generated_from_the_registry() -> None:
    from seatrial.checks import docs

    assert docs.path().read_text() == docs.render(), "docs/checks.md is stale: python -m seatrial.checks.docs"
    for c in checks.catalogue():
        assert f"### {c.id}" in docs.render()
