"""The bench's verdict comparison for ``repeat N`` (issue 15): a flake is any verdict that is not
the same in every run, including one a run did not produce at all."""

from __future__ import annotations

from pathlib import Path

import pytest

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


def test_the_table_is_kept_with_the_machine_it_was_measured_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from seatrial import bench

    monkeypatch.setattr(bench, "repo_root", lambda: tmp_path)
    bench._table([("warm bring-up", "4.2 s", "goal ≤ 10 s")], "all")
    doc = json.loads((tmp_path / "reports" / "bench.json").read_text())
    assert doc["rows"] == [{"benchmark": "warm bring-up", "value": "4.2 s", "note": "goal ≤ 10 s: met"}]
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["memory_gib"] > 0
    assert "| warm bring-up" in capsys.readouterr().out


def test_an_unknown_bench_is_refused_with_what_exists(capsys: pytest.CaptureFixture[str]) -> None:
    from seatrial import bench

    assert bench.main(["speed"]) == 2
    out = capsys.readouterr().out
    assert "'static', 'peers' or 'scale'" in out and "speed" in out


def test_the_bench_session_installs_what_its_conformance_runs_need() -> None:
    """The bench runs the conformance suite as users do, so its session needs the test extra
    (pytest-timeout): without it a fresh clone's ``nox -s bench`` died on its first row."""
    source = (Path(__file__).parents[2] / "noxfile.py").read_text()
    body = source[source.index("def bench(") :].split("\n@nox.session", 1)[0]
    assert '_install(session, "test")' in body


@pytest.mark.parametrize(
    ("value", "note", "verdict"),
    [
        ("9.6 s", "goal ≤ 30 s; reading 7.5 s", "met"),
        ("19.9 s", "goal ≤ 15 s", "missed by 4.9 s (+33 %)"),
        ("368 MiB", "goal ≤ 500 MiB", "met"),
        ("3,200 MiB", "goal ≤ 3 GiB", "missed by 128.0 MiB (+4 %)"),
        ("540 s", "goal ≤ 8 min", "missed by 60.0 s (+12 %)"),
        ("820", "list pods 51", ""),
        ("32.2 s, 520 MiB", "goal ≤ 60 s, ≤ 1 GiB", "met"),
        ("70.0 s, 1200 MiB", "goal ≤ 60 s, ≤ 1 GiB", "missed by 10.0 s (+17 %); missed by 176.0 MiB (+17 %)"),
        ("700 MiB", "goal ≤ 10 s", ""),  # no figure of that kind: not judged
        ("45.2 s", "beyond the fault window: 10.1 s, its goal 15 s: met", ""),  # judged on the overhead
        ("5.6 % of one core", "goal ≤ 30 %", "met"),
        ("the same", "goal: the same", ""),
    ],
)
def test_a_goal_is_judged_in_the_table(value: str, note: str, verdict: str) -> None:
    from seatrial.bench import against_goal

    assert against_goal(value, note) == verdict


def test_a_part_of_the_bench_keeps_its_own_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from seatrial import bench

    monkeypatch.setattr(bench, "repo_root", lambda: tmp_path)
    bench._table([("whole", "1 s", "")], "all")
    bench._table([("part", "2 s", "")], "scale")
    assert (tmp_path / "reports" / "bench.json").read_text().count("whole") == 1
    assert "part" in (tmp_path / "reports" / "bench-scale.json").read_text()
