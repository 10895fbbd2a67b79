"""The bench's verdict comparison for ``repeat N`` (issue 15): a flake is any verdict that is not
the same in every run, including one a run did not produce at all."""

from __future__ import annotations

from seatrial.bench import differing


def test_same_verdicts_in_every_run_differ_nowhere() -> None:
    run = {"check GPU-001": "passed", "chaos pod-kill": "passed"}
    assert differing([run, dict(run), dict(run)]) == {}


def test_a_verdict_that_changes_is_named_with_its_sequence() -> None:
    runs = [
        {"check GPU-001": "passed", "chaos pod-kill": "passed"},
        {"check GPU-001": "passed", "chaos pod-kill": "failed"},
        {"check GPU-001": "passed", "chaos pod-kill": "passed"},
    ]
    assert differing(runs) == {"chaos pod-kill": ["passed", "failed", "passed"]}


def test_a_verdict_missing_from_one_run_counts_as_differing() -> None:
    runs = [{"chaos gpu-fault": "passed"}, {}]
    assert differing(runs) == {"chaos gpu-fault": ["passed", "absent"]}
