"""The gate's policy and what a run writes: waivers (and their expiry), --fail-on, verdict.json,
summary.md, and no secret value anywhere under reports/."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from seatrial import checks, report
from seatrial.checks.model import Finding, Ref, Result
from seatrial.errors import ConfigError

from .test_conformance_cli import conformance

ROOT = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 11, 23)


def _result(check_id: str, *targets: Ref) -> Result:
    c = next(c for c in checks.catalogue() if c.id == check_id)
    return Result(c, "failed" if targets else "passed", tuple(Finding(check_id, t, "f", "wrong") for t in targets))


def _waivers(tmp_path: Path, text: str) -> list[report.Waiver]:
    p = tmp_path / "waivers.yaml"
    p.write_text(text)
    return report.load_waivers(p)


GATEWAY = Ref("prod", "Deployment", "gateway")


def test_a_waiver_waives_and_an_expired_one_fails_saying_so(tmp_path: Path) -> None:
    active = _waivers(
        tmp_path,
        "waivers:\n- {check: PDB-001, target: prod/Deployment/gateway, reason: r, owner: o, expires: 2026-12-31}\n",
    )
    [j] = report.judge([_result("PDB-001", GATEWAY)], fail_on="high", waivers=active, today=TODAY)
    assert j.status == "waived" and not j.fails_run
    expired = _waivers(
        tmp_path, "waivers:\n- {check: PDB-001, target: Deployment/gateway, reason: r, owner: o, expires: 2026-11-01}\n"
    )
    [j] = report.judge([_result("PDB-001", GATEWAY)], fail_on="high", waivers=expired, today=TODAY)
    assert j.status == "failed" and j.expired
    run = report.Run(
        "conformance", "static", {"name": "t"}, [j], "high", dt.datetime.now(dt.UTC), dt.datetime.now(dt.UTC)
    )
    assert "EXPIRED on 2026-11-01" in report.summary_md(run)


def test_fail_on_reports_findings_below_the_threshold() -> None:
    medium = _result("ROLL-006", GATEWAY)  # severity medium
    [j] = report.judge([medium], fail_on="high", waivers=[], today=TODAY)
    assert j.status == "reported" and not j.fails_run
    [j] = report.judge([medium], fail_on="medium", waivers=[], today=TODAY)
    assert j.status == "failed"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("waivers:\n- {check: PDB-001, target: x}\n", "required"),
        ("waivers:\n- {check: PDB-001, target: x, reason: r, owner: o, expires: soon}\n", "must be a date"),
        (
            "waivers:\n- {check: PDB-001, target: x, reason: r, owner: o, expires: 2027-01-01, team: t}\n",
            "unknown field",
        ),
        ("- just a list\n", "top-level 'waivers:'"),
    ],
)
def test_malformed_waivers_are_config_errors(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        _waivers(tmp_path, text)


def test_verdict_json_is_schema_versioned_with_every_check(tmp_path: Path) -> None:
    judged = report.judge([_result("PDB-001", GATEWAY), _result("GPU-001")], fail_on="high", waivers=[], today=TODAY)
    run = report.Run(
        "conformance", "static", {"name": "t"}, judged, "high", dt.datetime.now(dt.UTC), dt.datetime.now(dt.UTC)
    )
    out = report.write(run, tmp_path)
    doc = json.loads((out / "verdict.json").read_text())
    assert doc["schema"] == report.SCHEMA and doc["verdict"] == "fail"
    assert {c["id"]: c["status"] for c in doc["checks"]} == {"PDB-001": "failed", "GPU-001": "passed"}
    assert doc["checks"][0]["findings"] == [{"target": "prod/Deployment/gateway", "field": "f", "message": "wrong"}]
    assert (tmp_path / "latest").resolve() == out.resolve()


def test_redact_removes_known_values_and_token_shapes() -> None:
    text = "key sk-abcdefghijklmnopqrstuvwx and Bearer abc.def-123456 and hunter2hunter2"
    out = report.redact(text, ["hunter2hunter2"])
    assert "sk-abc" not in out and "abc.def" not in out and "hunter2" not in out


def test_canary_secret_never_reaches_the_reports(tmp_path: Path) -> None:
    canaries = ("sk-canary-7Hq2Zt9Lm4Vx8Rk1Pw6Ny3Bc", "CanaryPassw0rd-Do-Not-Leak")
    proc = conformance(
        "--static", "tests/stacks/canary", "--report-dir", str(tmp_path), f"--junitxml={tmp_path / 'junit.xml'}"
    )
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "SEC-001" in proc.stdout
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "verdict.json" for p in written)
    for p in written:
        body = p.read_text(errors="replace")
        for canary in canaries:
            assert canary not in body, f"{canary} leaked into {p}"
    for canary in canaries:
        assert canary not in proc.stdout + proc.stderr
