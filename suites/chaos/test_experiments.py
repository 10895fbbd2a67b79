"""Every experiment in ``experiments/``, under load, judged by the profile's SLOs: one test each,
so JUnit and allure list every experiment; the reports (timeline, journal, steps, SLO numbers)
are written from the same results at the end of the session."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.chaos import Chaos
from seatrial import report
from seatrial.chaos import runner
from seatrial.chaos.runner import EXPERIMENTS


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.json")), ids=lambda p: p.stem)
def test_experiment(path: Path, chaos: Chaos) -> None:
    cannot = runner.needs_host(runner.load_file(path), chaos.where)
    if cannot:
        pytest.skip(cannot)
    e = chaos.run_experiment(path)
    causes = e.violations() + [f"{s.phase} {s.name}: {s.status} {s.output}" for s in e.steps if s.status == "error"]
    if e.status == "error":
        pytest.fail(f"{e.name} could not be judged: " + "; ".join(causes), pytrace=False)
    if e.status == "failed":
        pytest.fail(f"{e.name}: " + "; ".join(e.violations()) + f"\n{report.experiment_summary(e)}", pytrace=False)
    print(report.experiment_summary(e))
