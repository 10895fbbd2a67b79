"""The catalogue against the target: each check passes, fails with its findings, or says why it
was skipped. ``docs/checks.md`` explains every ID; waivers and ``--fail-on`` are the gate's policy."""

from __future__ import annotations

import json

import allure
import pytest

from seatrial import report

ALLURE_SEVERITY = {"critical": "blocker", "high": "critical", "medium": "normal", "low": "minor"}


def test_check(check_id: str, conformance_results: dict[str, report.Judged]) -> None:
    j = conformance_results[check_id]
    c = j.result.check
    allure.dynamic.title(f"{c.id} {c.title}")
    allure.dynamic.label("family", c.family)
    allure.dynamic.label("check", c.id)
    allure.dynamic.label("seatrial_severity", c.severity)
    allure.dynamic.severity(ALLURE_SEVERITY[c.severity])
    allure.dynamic.parent_suite("conformance")
    allure.dynamic.suite(c.family)
    allure.dynamic.description(f"Why: {c.why}\n\nFix: {c.fix}")
    for target in sorted({str(f.target) for f in j.open}):
        allure.dynamic.label("workload", target)
    if j.open or j.waived or j.expired:
        findings = [{"target": str(f.target), "field": f.field, "message": f.message} for f in j.open]
        waived = [{"target": str(f.target), "owner": w.owner, "expires": str(w.expires)} for f, w in j.waived]
        body = json.dumps({"status": j.status, "findings": findings, "waived": waived}, indent=2)
        allure.attach(report.redact(body), name=f"{c.id} findings", attachment_type=allure.attachment_type.JSON)
    if j.status == "skipped":
        pytest.skip(j.result.reason)
    if j.status == "error":
        pytest.fail(f"{check_id} could not run: {j.result.reason}", pytrace=False)
    if j.status == "failed":
        lines = [f"{check_id} [{c.severity}] {c.title}"]
        lines += [f"  - {f.target}{f' ({f.field})' if f.field else ''}: {f.message}" for f in j.open]
        lines += [f"  - waiver for {f.target} ({w.owner}) expired on {w.expires}: {w.reason}" for f, w in j.expired]
        lines.append(f"  fix: {c.fix}")
        pytest.fail("\n".join(lines), pytrace=False)
