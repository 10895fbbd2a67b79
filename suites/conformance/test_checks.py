"""The catalogue against the target: each check passes, fails with its findings, or says why it
was skipped. ``docs/checks.md`` explains every ID; waivers and ``--fail-on`` are the gate's policy.

The reports (verdict, summary, JUnit, allure results) are written from the judged results by
``seatrial.report`` at the end of the session; these tests give pytest's own view of the same."""

from __future__ import annotations

import pytest

from seatrial import report


def test_check(check_id: str, conformance_results: dict[str, report.Judged]) -> None:
    j = conformance_results[check_id]
    c = j.result.check
    if j.status == "skipped":
        pytest.skip(j.result.reason)
    if j.status == "error":
        pytest.fail(f"{check_id} could not run: {j.result.reason}", pytrace=False)
    if j.status == "failed":
        lines = [f"{check_id} [{c.severity}] {c.title}", *(f"  - {line}" for line in report.check_lines(j))]
        pytest.fail("\n".join([*lines, f"  fix: {c.fix}"]), pytrace=False)
