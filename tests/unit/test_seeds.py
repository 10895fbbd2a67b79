"""Static mode over the manifests printed in the seed documents (tests/seeds/, reconstructed
from ../shared/seeds): exactly the reviewed findings of tests/seeds/expected-findings.yaml, no
more and no fewer. These are stacks nobody here wrote."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from seatrial import checks, manifests
from seatrial.checks import Facts

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
EXPECTED = yaml.safe_load((SEEDS / "expected-findings.yaml").read_text())


@pytest.mark.parametrize("seed", sorted(EXPECTED))
def test_seed_findings_are_exactly_the_reviewed_ones(seed: str) -> None:
    results = checks.run(checks.Inventory(manifests.load(SEEDS / seed)), Facts(), mode="static")
    assert not [r for r in results if r.status == "error"]
    got = [f"{x.check} {x.target}" + (f" ({x.field})" if x.field else "") for r in results for x in r.findings]
    assert sorted(got) == sorted(EXPECTED[seed])
