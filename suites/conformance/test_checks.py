"""The catalogue against the target: each check passes, fails with its findings, or says why it
was skipped. ``docs/checks.md`` explains every ID."""

from __future__ import annotations

import pytest

from seatrial import checks


def test_check(check_id: str, conformance_results: dict[str, checks.Result]) -> None:
    r = conformance_results[check_id]
    if r.status == "skipped":
        pytest.skip(r.reason)
    if r.status == "error":
        pytest.fail(f"{check_id} could not run: {r.reason}", pytrace=False)
    if r.status == "failed":
        lines = [f"{check_id} [{r.check.severity}] {r.check.title}"]
        lines += [f"  - {f.target}{f' ({f.field})' if f.field else ''}: {f.message}" for f in r.findings]
        lines.append(f"  fix: {r.check.fix}")
        pytest.fail("\n".join(lines), pytrace=False)
