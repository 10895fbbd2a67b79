"""A run killed with ``kill -9`` at its worst moments leaves nothing behind for long: the next run,
or ``seatrial cleanup``, finds what it created and changed by its marks and puts it right.

Each case starts a real seatrial run in a subprocess (the conformance suite, which deploys a
stack of its own, or the chaos suite on the session's stack), kills it with SIGKILL at one point
(during the evictions, while a probe namespace exists, after a cordon, after a taint, after a
preempted node was deleted, after a scale-down, during a rollout), then checks what ``cleanup
--dry-run`` lists (and that it changed nothing), runs ``cleanup`` (or the next run) and asserts:
nodes as before (no cordon, no seatrial taint, condition or mark), replica counts as before, no
namespace of a dead run. With SIGINT instead, the run's own undos do the same with no cleanup
call."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from seatrial import kube, profile, runs, workloads
from seatrial.chaos import ledger, runner
from seatrial.checks.live import PROBE_LABEL
from seatrial.cluster.local import LocalCluster
from seatrial.stack import STACK_LABEL, Deployed

from .test_chaos import _PYTEST_WITH_CTRL_C, ROOT, _replicas, _suite
from .test_node_chaos import _as_before, _nodes


@pytest.fixture(scope="module")
def where(api: client.ApiClient, kube_target: kube.Target, reference_stack: Deployed) -> runner.Where:
    return runner.Where(api, kube_target, reference_stack.namespace, profile.load(None), LocalCluster())


def _foreign_namespaces(where: runner.Where) -> dict[str, dict[str, str]]:
    """Namespaces of runs other than this test session: each one's labels."""
    out = {}
    for n in client.CoreV1Api(where.api).list_namespace(label_selector=runs.RUN_LABEL).items:
        labels = kube.as_dict(n)["metadata"].get("labels") or {}
        if runs.owner(labels[runs.RUN_LABEL]) != runs.session():
            out[kube.name_of(n)] = labels
    return out


def _conformance(tmp_path: Path) -> subprocess.Popen[str]:
    """``nox -s conformance`` as a user runs it: the live suite deploys a stack of its own."""
    return subprocess.Popen(
        [sys.executable, "-c", _PYTEST_WITH_CTRL_C, "suites/conformance", "-p", "no:cacheprovider", "-q",
         "--report-dir", str(tmp_path / "reports")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _stop_when(proc: subprocess.Popen[str], what: str, seen: Callable[[], bool], sig: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if seen():
            proc.send_signal(sig)
            out, _ = proc.communicate(timeout=300)
            if sig == signal.SIGINT:
                assert proc.returncode != 0, out[-3000:]
            return
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"the run never got to {what}: {(proc.communicate()[0] or '')[-3000:]}")


def _processes_under(path: Path) -> list[str]:
    """Processes whose command line names ``path`` (the run's load generator writes its log there)."""
    out = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmd:
            out.append(f"{proc.name}: {cmd[:200]}")
    return out


def _no_load_left(tmp_path: Path) -> None:
    """A killed run leaves no load generator behind on this machine (it would load the stack for good)."""
    deadline = time.monotonic() + 10
    while _processes_under(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_under(tmp_path), _processes_under(tmp_path)


def _cleanup(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seatrial", "cleanup", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip


def _node_marked(where: runner.Where, key: str) -> Callable[[], bool]:
    core = client.CoreV1Api(where.api)

    def seen() -> bool:
        from seatrial.chaos import nodeops

        return any(any(k.startswith(key) for k in nodeops.marks(kube.as_dict(n))) for n in core.list_node().items)

    return seen


def _scaled(where: runner.Where) -> Callable[[], bool]:
    def seen() -> bool:
        obj = workloads.read(where.api, "StatefulSet", "etcd", where.namespace)
        return ledger.ORIGINAL_ANNOTATION in (obj["metadata"].get("annotations") or {})

    return seen


def _rolling(where: runner.Where) -> Callable[[], bool]:
    def seen() -> bool:
        obj = workloads.read(where.api, "Deployment", "gateway", where.namespace)
        annotations = obj["spec"]["template"]["metadata"].get("annotations") or {}
        return bool(annotations.get(workloads.RESTARTED_AT)) and not workloads.rolled_out(obj | {"kind": "Deployment"})

    return seen


def _probe_namespace(where: runner.Where) -> Callable[[], bool]:
    return lambda: any(PROBE_LABEL in labels for labels in _foreign_namespaces(where).values())


def _evicting(where: runner.Where) -> Callable[[], bool]:
    """A pod of the run's own stack on its way out once that stack was ready: an eviction."""
    core = client.CoreV1Api(where.api)
    ready: set[str] = set()

    def seen() -> bool:
        for ns, labels in _foreign_namespaces(where).items():
            if STACK_LABEL not in labels:
                continue
            pods = [kube.as_dict(p) for p in core.list_namespaced_pod(ns).items]
            if ns in ready:
                return any(p["metadata"].get("deletionTimestamp") for p in pods)
            gw = workloads.read(where.api, "Deployment", "gateway", ns) if pods else None
            if gw is not None and workloads.rolled_out(gw | {"kind": "Deployment"}):
                ready.add(ns)
        return False

    return seen


def _node_deleted(where: runner.Where) -> Callable[[], bool]:
    """A run lease records a Node its run deleted (a preempted spot node, gone with its marks)."""
    coord = client.CoordinationV1Api(where.api)

    def seen() -> bool:
        leases = coord.list_namespaced_lease(runs.LEASE_NAMESPACE, label_selector=runs.RUN_LABEL).items
        return any(runs.deleted_nodes(kube.as_dict(lease)) for lease in leases)

    return seen


CASES: dict[str, tuple[str, Callable[[runner.Where], Callable[[], bool]], str]] = {
    # point: (what runs, when to stop it, what the dry run must list)
    "during-evictions": ("conformance", _evicting, "delete Namespace seatrial-stack-"),
    "probe-namespace": ("conformance", _probe_namespace, "delete Namespace seatrial-probe-"),
    "after-cordon": ("node-drain", lambda w: _node_marked(w, "unschedulable"), "unschedulable"),
    "after-taint": ("spot-preemption", lambda w: _node_marked(w, "taint/karpenter.sh/disrupted"), "taint/karpenter"),
    "after-preemption": ("spot-preemption", _node_deleted, "bring back Node"),
    "after-scaling": ("etcd-member-loss", _scaled, "scale back StatefulSet"),
    "during-rollout": ("rolling-restart", _rolling, "delete Lease default/seatrial-run-"),
}


@pytest.mark.parametrize("point", list(CASES))
def test_kill_9_then_cleanup_leaves_the_cluster_as_before(where: runner.Where, tmp_path: Path, point: str) -> None:
    suite, stop_at, listed = CASES[point]
    nodes, replicas = _nodes(where), _replicas(where)
    proc = _conformance(tmp_path) if suite == "conformance" else _suite(where, tmp_path, "-k", suite)
    _stop_when(proc, point, stop_at(where), signal.SIGKILL, timeout=240)
    _no_load_left(tmp_path)

    dry = _cleanup("--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert listed in dry.stdout and "nothing changed (--dry-run)" in dry.stdout, dry.stdout
    assert stop_at(where)() or point in ("during-evictions", "during-rollout"), "the dry run changed something"

    done = _cleanup()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cleaned up" in done.stdout, done.stdout
    _whole_again(where, nodes, replicas)
    again = _cleanup("--dry-run")
    assert "0 thing(s) left" in again.stdout, again.stdout  # idempotent: nothing is left to do


def _whole_again(where: runner.Where, nodes: dict[str, Any], replicas: dict[str, int]) -> None:
    _as_before(where, nodes)
    for kind, name in (("Deployment", "gateway"), ("StatefulSet", "etcd"), ("StatefulSet", "inference")):
        workloads.wait_rolled_out(where.api, kind, name, where.namespace, timeout=240, settled=True)
    assert _replicas(where) == replicas
    assert _foreign_namespaces(where) == {}


def test_the_next_run_cleans_up_after_a_killed_one(where: runner.Where, tmp_path: Path) -> None:
    """No cleanup call: the next run's start finds the dead run's cordon and says what it undid."""
    nodes, replicas = _nodes(where), _replicas(where)
    proc = _suite(where, tmp_path / "killed", "-k", "node-drain")
    _stop_when(proc, "a cordon", _node_marked(where, "unschedulable"), signal.SIGKILL, timeout=240)
    nxt = _suite(where, tmp_path / "next", "-k", "pod-kill")
    out, _ = nxt.communicate(timeout=300)
    assert nxt.returncode == 0, out[-3000:]
    assert "seatrial: cleanup: restore Node" in out and "unschedulable" in out, out[-3000:]
    _whole_again(where, nodes, replicas)


@pytest.mark.parametrize("point", ["probe-namespace", "after-taint"])
def test_ctrl_c_leaves_the_cluster_as_before_with_no_cleanup_call(
    where: runner.Where, tmp_path: Path, point: str
) -> None:
    suite, stop_at, _ = CASES[point]
    nodes, replicas = _nodes(where), _replicas(where)
    proc = _conformance(tmp_path) if suite == "conformance" else _suite(where, tmp_path, "-k", suite)
    _stop_when(proc, point, stop_at(where), signal.SIGINT, timeout=240)
    _whole_again(where, nodes, replicas)
    dry = _cleanup("--dry-run")
    assert "0 thing(s) left" in dry.stdout, dry.stdout
