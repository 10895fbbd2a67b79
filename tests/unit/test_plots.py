"""Plots from a load series recorded on the local cluster (tests/data/: chat completions through
the gateway while an inference pod was deleted and came back), through the reporting API."""

from __future__ import annotations

import json
from pathlib import Path

from seatrial import plots

DATA = Path(__file__).resolve().parents[1] / "data" / "load-inference-pod-delete.json"


def _recorded() -> tuple[list[plots.Sample], list[plots.Event], tuple[float, float]]:
    doc = json.loads(DATA.read_text())
    samples = [plots.Sample(s["t"], s["latency"], s["ok"]) for s in doc["samples"]]
    events = [plots.Event(e["t"], e["label"]) for e in doc["events"]]
    return samples, events, (doc["fault"][0], doc["fault"][1])


def test_per_second_statistics_account_for_every_request() -> None:
    samples, _, _ = _recorded()
    rows = plots.per_second(samples)
    assert sum(r["rps"] for r in rows) == len(samples)
    assert all(0.0 <= r["errors"] <= 1.0 for r in rows)
    assert all(r["p50"] <= r["p95"] <= r["p99"] for r in rows if r["rps"])


def test_timeline_marks_the_fault_and_the_actions(tmp_path: Path) -> None:
    samples, events, fault = _recorded()
    png = plots.timeline(samples, tmp_path / "t.png", title="inference pod delete", fault=fault, events=events)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000  # three panels with data, not an empty canvas


def test_failures_show_in_the_error_panel(tmp_path: Path) -> None:
    samples = [plots.Sample(t / 10, 0.05, not (50 <= t < 60)) for t in range(100)]
    rows = plots.per_second(samples)
    assert rows[5]["errors"] == 1.0 and rows[4]["errors"] == 0.0
    plots.timeline(samples, tmp_path / "f.png", title="synthetic outage", fault=(5, 6), slo_error_rate=0.01)
