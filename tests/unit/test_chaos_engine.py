"""The chaos engine's pure parts: the ledger's blast radius and undo order, the journal's
translation into report steps and a fault window, and per-experiment SLOs. The engine itself is
proven on the local cluster under load (tests/cluster/test_chaos.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seatrial import load
from seatrial.chaos import ledger, runner
from seatrial.errors import ConfigError
from seatrial.profile import Profile, Slos

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_blast_radius_refuses_system_and_foreign_namespaces_before_acting() -> None:
    book = ledger.Ledger(frozenset({"stack"}))
    book.allow("stack", "kill pods")
    with pytest.raises(ledger.OutsideBlastRadius, match="system namespace"):
        book.allow("kube-system", "kill pods of Deployment/coredns")
    with pytest.raises(ledger.OutsideBlastRadius, match=r"outside this run's blast radius \(allowed: stack\)"):
        book.allow("team-b", "kill pods of Deployment/web")


def test_undos_run_newest_first_once_each_and_a_broken_one_does_not_stop_the_rest() -> None:
    book, done = ledger.Ledger(frozenset({"s"})), []
    book.will("first", lambda: done.append("first"))
    book.will("broken", lambda: 1 / 0)
    book.will("last", lambda: done.append("last"))
    assert book.unwind() == ["undo of broken failed: ZeroDivisionError: division by zero"]
    assert done == ["last", "first"]
    book.unwind()
    assert done == ["last", "first"]


def test_a_new_run_undoes_what_the_last_one_left() -> None:
    done: list[str] = []
    ledger.begin(["a"]).will("left over", lambda: done.append("undone"))
    ledger.begin(["b"])
    assert done == ["undone"] and ledger.current().namespaces == {"b"}


JOURNAL = {
    "experiment": {"title": "A pod dies"},
    "status": "completed",
    "steady_states": {
        "before": {"probes": [{"activity": {"name": "serves"}, "status": "succeeded", "output": 0.0,
                               "tolerance_met": True, "start": "2026-12-01T10:00:01+00:00",
                               "end": "2026-12-01T10:00:06+00:00"}]},
        "after": {"probes": [{"activity": {"name": "serves", "tolerance": {"type": "range", "range": [0, 0.01]}},
                              "status": "succeeded", "output": 0.2,
                              "tolerance_met": False, "start": "2026-12-01T10:00:08+00:00",
                              "end": "2026-12-01T10:00:13+00:00"}]},
    },
    "run": [{"activity": {"name": "kill", "type": "action"}, "status": "succeeded", "output": ["gateway-1"],
             "start": "2026-12-01T10:00:06+00:00", "end": "2026-12-01T10:00:07+00:00"}],
    "rollbacks": [{"activity": {"name": "ready-again", "type": "action"}, "status": "succeeded", "output": 3.1,
                   "start": "2026-12-01T10:00:13+00:00", "end": "2026-12-01T10:00:16+00:00"}],
}  # fmt: skip


def test_journal_becomes_steps_a_fault_window_and_events_on_the_loads_clock() -> None:
    started = runner._when("2026-12-01T10:00:00+00:00").timestamp()
    samples = [load.Sample(t / 10, 0.01, True) for t in range(200)]
    e = runner.experiment("pod-kill", JOURNAL, load_started=started, samples=samples, profile=Profile("t", "test"),
                          undo_failures=["undo of x failed: boom"])  # fmt: skip
    assert [(s.phase, s.name, s.status) for s in e.steps] == [
        ("steady-state-before", "serves", "passed"),
        ("method", "kill", "passed"),
        ("steady-state-after", "serves", "failed"),
        ("rollback", "ready-again", "passed"),
        ("rollback", "seatrial undo", "error"),
    ]
    assert e.fault == (6.0, 7.0)
    assert e.steps[2].output == "0.2 (tolerated: 0 to 0.01)"  # how far off, not the number alone
    assert [(ev.t, ev.label) for ev in e.events] == [(6.0, "kill"), (13.0, "ready-again")]
    assert e.status == "error"  # a broken undo: the numbers say nothing


def test_a_fault_given_back_by_a_rollback_lasts_until_then() -> None:
    started = runner._when("2026-12-01T10:00:00+00:00").timestamp()
    journal = {**JOURNAL, "experiment": {"title": "A member is lost",
                                         "extensions": [{"name": "seatrial", "faultUntil": "rollbacks"}]}}  # fmt: skip
    e = runner.experiment("x", journal, load_started=started, samples=[], profile=Profile("t", "test"))
    assert e.fault == (6.0, 16.0)
    with pytest.raises(ConfigError, match="faultUntil must be one of method, rollbacks"):
        runner.extension({"extensions": [{"name": "seatrial", "faultUntil": "forever"}]})


def test_experiment_slos_tighten_the_profile_and_reject_unknown_names() -> None:
    exp = json.loads((EXPERIMENTS / "rolling-restart.json").read_text())
    assert runner.experiment_slos(exp, Slos()).error_rate == 0
    with pytest.raises(ConfigError, match="seatrial extension slos: unknown field 'errorBudget'"):
        runner.experiment_slos({"extensions": [{"name": "seatrial", "slos": {"errorBudget": 0}}]}, Slos())
    with pytest.raises(ConfigError, match="did you mean 'load'"):
        runner.extension({"extensions": [{"name": "seatrial", "loads": {}}]})


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.json")), ids=lambda p: p.stem)
def test_every_experiment_file_is_valid_and_declares_the_undo_control(path: Path) -> None:
    exp = runner.load_file(path)
    assert {"title", "description", "tags", "steady-state-hypothesis", "method", "rollbacks"} <= set(exp)
    assert any(c["provider"].get("module") == "seatrial.chaos.control" for c in exp["controls"])


def test_the_locustfile_and_seatrial_agree_on_the_row_format() -> None:
    """The locustfile runs alone in pods, so it repeats the header and the stdout mark; read
    them from its source (importing it would let gevent patch the test process)."""
    import ast

    from seatrial.chaos import loadgen

    tree = ast.parse(loadgen.LOCUSTFILE.read_text())
    consts = {
        t.id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name) and t.id in ("HEADER", "ROW_MARK")
    }
    assert consts == {"HEADER": loadgen.HEADER, "ROW_MARK": loadgen.ROW_MARK}
    assert [s.strip() for s in loadgen.HEADER] == ["t", "latency_s", "ok", "status", "error", "port"]


def test_every_probe_request_asks_something_new_so_the_cache_cannot_answer_it() -> None:
    url = "http://gateway/v1/chat/completions"
    bodies = [load.request(url, {"Authorization": "Bearer k"}).data for _ in range(3)]
    assert len(set(bodies)) == 3
    assert all(isinstance(b, bytes) and b"seatrial-tiny" in b for b in bodies)
    assert load.request("http://hub/registry", {}).get_method() == "GET"


def test_request_log_round_trips_the_local_port(tmp_path: Path) -> None:
    samples = [load.Sample(0.5, 0.02, True, 200, "", 40112), load.Sample(1.0, 2.0, False, 0, "ConnectTimeout", 40114)]
    assert load.read_log(load.write_log(samples, tmp_path / "requests.csv")) == samples


@pytest.mark.parametrize(
    ("given", "says"),
    [({"workers": -1}, "load.workers"), ({"workers": 1.5}, "load.workers"), ({"spawnRate": -2}, "spawnRate")],
)
def test_profile_load_workers_and_spawn_rate_are_checked(given: dict[str, object], says: str) -> None:
    from seatrial import profile

    with pytest.raises(ConfigError, match=says):
        profile.parse({"kind": "Profile", "name": "p", "load": given}, "p.yaml")
    ok = profile.parse({"kind": "Profile", "name": "p", "load": {"workers": 2, "spawnRate": 5}}, "p.yaml")
    assert (ok.load.workers, ok.load.spawn_rate) == (2, 5.0)


def test_experiments_that_act_on_the_host_say_so_and_are_refused_elsewhere() -> None:
    """What switches real nodes off or fails a GPU in its device plugin needs the machine under
    the nodes: on a cluster seatrial did not start it is skipped with that reason, not errored."""
    needing = {p.stem for p in EXPERIMENTS.glob("*.json") if runner.extension(runner.load_file(p)).get("needsHost")}
    assert needing == {"node-failure", "zone-outage", "gpu-fault", "spot-preemption"}
    elsewhere = runner.Where(None, None, "ns", Profile("t", "test"))  # type: ignore[arg-type]
    why = runner.needs_host(runner.load_file(EXPERIMENTS / "gpu-fault.json"), elsewhere)
    assert why is not None and "device plugin" in why and "local cluster" in why
    assert runner.needs_host(runner.load_file(EXPERIMENTS / "node-drain.json"), elsewhere) is None
    at_home = runner.Where(None, None, "ns", Profile("t", "test"), local=object())  # type: ignore[arg-type]
    assert runner.needs_host(runner.load_file(EXPERIMENTS / "gpu-fault.json"), at_home) is None
    with pytest.raises(ConfigError, match="needsHost must say"):
        runner.extension({"extensions": [{"name": "seatrial", "needsHost": True}]})


def test_a_signal_during_an_experiment_stops_the_suite_not_just_the_experiment() -> None:
    """SIGTERM reaches Chaos Toolkit as an activity failed with InterruptExecution, and the run is
    only "failed": the suite must still stop (the bench's repeat ran five experiments after one)."""
    from seatrial.chaos.runner import stop_asked

    killed = {"status": "failed", "steady_states": {"after": {"probes": [{"status": "failed",
              "exception": ["chaoslib.exceptions.InterruptExecution: SIGTERM signal received\n"]}]}}}  # fmt: skip
    stop = stop_asked(killed)
    assert isinstance(stop, SystemExit) and stop.code == 143
    assert isinstance(stop_asked({"status": "interrupted"}), KeyboardInterrupt)
    assert stop_asked({"status": "failed", "deviated": True}) is None
