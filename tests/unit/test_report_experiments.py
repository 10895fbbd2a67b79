"""Chaos experiments report through the same layer as checks: steps, load statistics and the
timeline plot attach through ``report.Experiment``, exercised here with a load series recorded on
the local cluster (chat completions while an inference pod was deleted and came back)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from junitparser import JUnitXml

from seatrial import load, report
from seatrial.profile import Slos

from .test_plots import _recorded as recorded_series

T0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def _at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


DEFAULT_SLOS = Slos()


def _recorded(slos: Slos = DEFAULT_SLOS) -> report.Experiment:
    samples, events, fault = recorded_series()
    steps = [
        report.Step("steady-state-before", "gateway answers chat completions", "passed", _at(0), _at(1)),
        report.Step("method", "delete pod inference-0", "passed", _at(10.05), _at(10.2)),
        report.Step("steady-state-after", "gateway answers chat completions", "passed", _at(25), _at(26)),
    ]
    return report.Experiment(
        "pod-kill-inference",
        "Inference pod killed under load",
        slos,
        steps,
        samples=samples,
        fault=fault,
        events=events,
        attachments=[report.Attachment("journal", json.dumps({"status": "completed"}), "application/json")],
    )


def _run(*experiments: report.Experiment) -> report.Run:
    return report.Run("chaos", "live", {"name": "reference"}, [], "high", T0, _at(30), experiments=list(experiments))


def test_a_recorded_experiment_writes_steps_statistics_and_its_timeline(tmp_path: Path) -> None:
    exp = _recorded()
    out = report.write(_run(exp), tmp_path)
    doc = json.loads((out / "verdict.json").read_text())
    assert doc["verdict"] == "pass"
    [e] = doc["experiments"]
    assert e["status"] == "passed" and e["violations"] == []
    assert e["load"]["overall"]["requests"] == len(exp.samples) and e["load"]["overall"]["failed"] == 0
    assert e["load"]["fromFault"]["requests"] < e["load"]["overall"]["requests"]
    assert e["recoverySeconds"] == 0.0 and [s["phase"] for s in e["steps"]] == [
        "steady-state-before",
        "method",
        "steady-state-after",
    ]
    png = out / e["timeline"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load.read_log(out / "experiments" / "pod-kill-inference" / "requests.csv") == [
        load.Sample(round(s.t, 4), round(s.latency, 4), s.ok) for s in exp.samples
    ]
    assert (out / "experiments" / "pod-kill-inference" / "journal.json").exists()
    summary = (out / "summary.md").read_text()
    assert "| pod-kill-inference | passed |" in summary and "timeline.png" in summary

    xml = JUnitXml.fromfile(str(out / "junit.xml"))
    cases = [c for suite in xml for c in suite]
    assert [c.name for c in cases] == [s.name for s in exp.steps] + ["SLOs under load"]
    assert xml.failures == 0 and xml.errors == 0

    results = [json.loads(p.read_text()) for p in (out / "allure-results").glob("*-result.json")]
    assert len(results) == 4 and all(r["status"] == "passed" for r in results)
    [slo] = [r for r in results if r["fullName"].endswith(".slo")]
    kinds = {a["name"]: a["type"] for a in slo["attachments"]}
    assert kinds == {"load statistics": "application/json", "timeline": "image/png", "journal": "application/json"}
    for a in slo["attachments"]:
        assert (out / "allure-results" / a["source"]).stat().st_size > 0


def test_an_experiment_over_its_slos_fails_the_run_saying_which(tmp_path: Path) -> None:
    exp = _recorded(Slos(error_rate=0.01, p99_ms=100.0, recovery_seconds=60))  # the recorded p99 is ~200 ms
    out = report.write(_run(exp), tmp_path)
    doc = json.loads((out / "verdict.json").read_text())
    assert doc["verdict"] == "fail" and doc["experiments"][0]["status"] == "failed"
    [violation] = doc["experiments"][0]["violations"]
    assert violation.startswith("p99 latency") and "SLO 100 ms" in violation
    xml = JUnitXml.fromfile(str(out / "junit.xml"))
    [slo] = [c for suite in xml for c in suite if c.name == "SLOs under load"]
    assert "p99 latency" in slo.result[0].message
    assert "p99 latency" in (out / "summary.md").read_text()


def test_an_outage_is_measured_as_error_rate_and_recovery_time() -> None:
    # 10 requests/s for 60 s; every request fails from 20 s to 32 s
    samples = [load.Sample(i / 10, 0.05, not (200 <= i < 320)) for i in range(600)]
    slos = Slos(error_rate=0.01, recovery_seconds=10)
    exp = report.Experiment("outage", "outage", slos, samples=samples, fault=(20, 21))
    assert exp.recovery == 12.0
    assert exp.from_fault.failed == 120 and exp.overall.requests == 600
    assert [v.split()[0] for v in exp.violations()] == ["error", "recovered"]
    still_down = [load.Sample(i / 10, 0.05, i < 300) for i in range(600)]
    exp = report.Experiment("down", "down", Slos(), samples=still_down, fault=(30, 31))
    assert exp.recovery is None and any("no recovery" in v for v in exp.violations())


def test_an_unhealthy_start_or_a_broken_rollback_is_an_error_not_a_pass() -> None:
    exp = _recorded()
    exp.steps[0] = report.Step("steady-state-before", "gateway answers", "failed", _at(0), _at(1), "HTTP 503")
    assert exp.status == "error"
    exp = _recorded()
    exp.steps.append(report.Step("rollback", "uncordon real-cpu-1", "error", _at(27), _at(28), "node not found"))
    assert exp.status == "error" and _run(exp).verdict == "fail"
    assert report.Experiment("idle", "no load", Slos()).status == "failed"  # nothing measured is not a pass
