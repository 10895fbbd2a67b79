"""The workload experiments, proven both ways on the local cluster under real load.

Each experiment passes on the reference stack and fails on a deliberately weakened one, naming
the cause and the numbers: pod-kill and burst-kill against a single gateway replica, the rolling
restart against a gateway without preStop or grace period. ``chaos run`` alone passes and fails
the same way. After every run the stack is as it was: replica counts and ready pods."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from seatrial import kube, profile, workloads
from seatrial.chaos import actions, runner
from seatrial.stack import Deployed

from ..unit.test_report_html import _build, _rendered

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"


@pytest.fixture(scope="module")
def where(api: client.ApiClient, kube_target: kube.Target, reference_stack: Deployed) -> runner.Where:
    return runner.Where(api, kube_target, reference_stack.namespace, profile.load(None))


def _replicas(where: runner.Where) -> dict[str, int]:
    out = {}
    for kind, name in (
        ("StatefulSet", "etcd"),
        ("Deployment", "gateway"),
        ("Deployment", "hub"),
        ("StatefulSet", "inference"),
        ("StatefulSet", "redis"),
    ):
        obj = workloads.read(where.api, kind, name, where.namespace)
        assert workloads.rolled_out(obj | {"kind": kind}), f"{kind}/{name} is not whole after the experiment"
        out[f"{kind}/{name}"] = obj["spec"]["replicas"]
    return out


@contextmanager
def weakened(where: runner.Where, weakness: Weakness) -> Iterator[None]:
    """Weaken one workload (and its HPA) for the length of the block, then put back what was
    there: the original object, and for a StatefulSet its pods recreated (a StatefulSet does not
    replace a crash-looping pod by itself)."""
    kind, name, patch, hpa = weakness
    apps, scaling, ns = client.AppsV1Api(where.api), client.AutoscalingV2Api(where.api), where.namespace
    read, write = (
        (apps.read_namespaced_deployment, apps.patch_namespaced_deployment)
        if kind == "Deployment"
        else (apps.read_namespaced_stateful_set, apps.patch_namespaced_stateful_set)
    )
    before = kube.as_dict(read(name, ns))
    hpa_before = scaling.read_namespaced_horizontal_pod_autoscaler(name, ns) if hpa else None
    try:
        if hpa:
            scaling.patch_namespaced_horizontal_pod_autoscaler(name, ns, {"spec": hpa})
        write(name, ns, patch(before) if callable(patch) else patch)
        workloads.wait_rolled_out(where.api, kind, name, ns, timeout=120, settled=True)
        yield
    finally:
        if hpa_before is not None:
            spec = {"minReplicas": hpa_before.spec.min_replicas, "maxReplicas": hpa_before.spec.max_replicas}
            scaling.patch_namespaced_horizontal_pod_autoscaler(name, ns, {"spec": spec})
        current = kube.as_dict(read(name, ns))
        restore = {"spec": before["spec"], "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]}}
        (apps.replace_namespaced_deployment if kind == "Deployment" else apps.replace_namespaced_stateful_set)(
            name, ns, {**current, **restore, "metadata": {**current["metadata"], **restore["metadata"]}}
        )
        if kind == "StatefulSet":
            for pod in workloads.pods(where.api, kind, name, ns):
                client.CoreV1Api(where.api).delete_namespaced_pod(pod["metadata"]["name"], ns)
        workloads.wait_rolled_out(where.api, kind, name, ns, timeout=240, settled=True)


Patch = dict[str, Any] | Callable[[dict[str, Any]], list[dict[str, Any]]]
Weakness = tuple[str, str, Patch, dict[str, Any] | None]
# one replica whose replacement needs 10 s to be ready, as a model server or a JVM does: the
# outage a single replica costs, made long enough to be unmistakable on our fast local stack
ONE_GATEWAY: Weakness = (
    "Deployment",
    "gateway",
    {"spec": {"replicas": 1, "template": {"spec": {"containers": [
        {"name": "gateway", "readinessProbe": {"initialDelaySeconds": 10}}]}}}},
    {"minReplicas": 1, "maxReplicas": 1},
)  # fmt: skip
NO_DRAIN: Weakness = (
    "Deployment",
    "gateway",
    {"spec": {"template": {"spec": {"terminationGracePeriodSeconds": 0,
                                    "containers": [{"name": "gateway", "lifecycle": None}]}}}},
    None,
)  # fmt: skip
ONE_INFERENCE: Weakness = ("StatefulSet", "inference", {"spec": {"replicas": 1}}, None)


def _cache_in_the_container(redis: dict[str, Any]) -> list[dict[str, Any]]:
    """Redis keeps its data in the container's own filesystem instead of on its volume."""
    script = redis["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "dir /data" in script
    path = "/spec/template/spec/containers/0/args/0"
    return [{"op": "replace", "path": path, "value": script.replace("dir /data", "dir /tmp")}]


NO_VOLUME: Weakness = ("StatefulSet", "redis", _cache_in_the_container, None)
ONE_ETCD: Weakness = ("StatefulSet", "etcd", {}, None)  # see one_member_etcd


def _fresh_etcd(where: runner.Where, spec: dict[str, Any]) -> None:
    """Replace the etcd StatefulSet's spec and start its members on empty volumes (a member's
    data names its cluster: a one-member etcd cannot start on a three-member data dir)."""
    apps, core, ns = client.AppsV1Api(where.api), client.CoreV1Api(where.api), where.namespace
    apps.patch_namespaced_stateful_set("etcd", ns, {"spec": {"replicas": 0}})
    kube.wait_for("etcd pods gone", lambda: not workloads.pods(where.api, "StatefulSet", "etcd", ns, terminating=True),
                  timeout=120, interval=0.5)  # fmt: skip
    for pvc in core.list_namespaced_persistent_volume_claim(ns).items:
        if pvc.metadata.name.startswith("data-etcd-"):
            core.delete_namespaced_persistent_volume_claim(pvc.metadata.name, ns)
    current = kube.as_dict(apps.read_namespaced_stateful_set("etcd", ns))
    apps.replace_namespaced_stateful_set("etcd", ns, {**current, "spec": spec})
    workloads.wait_rolled_out(where.api, "StatefulSet", "etcd", ns, timeout=180, settled=True)
    # the hub's readiness follows etcd's health: it is back in the Service only once etcd is
    workloads.wait_rolled_out(where.api, "Deployment", "hub", ns, timeout=120, settled=True)
    ok = {"namespace": ns, "kubeconfig": str(where.target.kubeconfig)}
    kube.wait_for("the front door to serve again", lambda: actions.error_rate(2, configuration=ok) == 0,
                  timeout=120, interval=1)  # fmt: skip


@contextmanager
def one_member_etcd(where: runner.Where) -> Iterator[None]:
    before = kube.as_dict(client.AppsV1Api(where.api).read_namespaced_stateful_set("etcd", where.namespace))["spec"]
    args = [a for a in before["template"]["spec"]["containers"][0]["args"] if not a.startswith("--initial-cluster=")]
    single = json.loads(json.dumps(before))
    single["replicas"] = 1
    single["template"]["spec"]["containers"][0]["args"] = [*args, "--initial-cluster=etcd-0=http://etcd-0.etcd:2380"]
    try:
        _fresh_etcd(where, single)
        yield
    finally:
        _fresh_etcd(where, before)


def _chaos_run(where: runner.Where, name: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``chaos run`` alone, as a user would, against the current kubeconfig."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"KUBECONFIG": str(where.target.kubeconfig), "SEATRIAL_NAMESPACE": where.namespace}
    return subprocess.run(
        [str(Path(sys.executable).with_name("chaos")), "--log-file", str(tmp_path / "chaos.log"), "run",
         "--rollback-strategy", "always", "--journal-path", str(tmp_path / "journal.json"),
         str(EXPERIMENTS / f"{name}.json")],
        capture_output=True, text=True, timeout=600, check=False, env=env, cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "weakness", "says"),
    [
        ("pod-kill", ONE_GATEWAY, "error rate"),
        ("burst-kill", ONE_GATEWAY, "error rate"),
        ("rolling-restart", NO_DRAIN, "error rate"),
        ("inference-kill", ONE_INFERENCE, "error rate"),
        ("cache-restart", NO_VOLUME, "steady state not met after the fault: cache-keeps-its-data"),
        ("etcd-member-loss", ONE_ETCD, "steady state not met after the fault: registry-answers"),
    ],
    ids=["pod-kill", "burst-kill", "rolling-restart", "inference-kill", "cache-restart", "etcd-member-loss"],
)
def test_experiment_passes_on_the_reference_and_fails_when_weakened(
    where: runner.Where, tmp_path: Path, name: str, weakness: Weakness, says: str
) -> None:
    replicas = _replicas(where)
    good = runner.run(EXPERIMENTS / f"{name}.json", where, tmp_path / "good")
    assert good.status == "passed", f"{name} on the reference stack: {good.violations()} {good.steps}"
    assert good.overall.requests > 100 and good.fault is not None
    assert _replicas(where) == replicas

    with one_member_etcd(where) if weakness is ONE_ETCD else weakened(where, weakness):
        bad = runner.run(EXPERIMENTS / f"{name}.json", where, tmp_path / "bad")
    assert bad.status == "failed", f"{name} on the weakened stack: {bad.status} {bad.violations()} {bad.steps}"
    cause = "; ".join(bad.violations())
    assert says in cause, cause
    assert " of " in cause or "steady state" in says, cause  # the numbers: "error rate 3.10% ... (41 of 1320)"
    assert _replicas(where) == replicas


def test_chaos_run_alone_passes_then_fails_on_one_replica(where: runner.Where, tmp_path: Path) -> None:
    ok = _chaos_run(where, "pod-kill", tmp_path / "ok")
    assert ok.returncode == 0, (ok.stdout + ok.stderr)[-3000:]
    assert (tmp_path / "ok" / "journal.json").exists()
    with weakened(where, ONE_GATEWAY):
        bad = _chaos_run(where, "pod-kill", tmp_path / "bad")
    assert bad.returncode == 1, (bad.stdout + bad.stderr)[-3000:]
    assert "deviated" in (bad.stdout + bad.stderr + (tmp_path / "bad" / "chaos.log").read_text())


# A user's terminal delivers Ctrl-C; a CI job started in the background (``cmd &`` in a
# non-interactive shell) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt.
# The suite under test takes SIGINT as a user's shell would give it.
_PYTEST_WITH_CTRL_C = (
    "import signal, sys, pytest; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.exit(pytest.main(sys.argv[1:]))"
)


def _suite(where: runner.Where, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _PYTEST_WITH_CTRL_C, "suites/chaos", "-p", "no:cacheprovider", "-q",
         "--kubeconfig", str(where.target.kubeconfig), "--stack-namespace", where.namespace,
         "--report-dir", str(tmp_path / "reports"), *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def test_nox_chaos_suite_writes_the_report_set(where: runner.Where, tmp_path: Path) -> None:
    """What ``nox -s chaos`` runs, for one experiment: verdict, JUnit (a case per step and one for
    the SLOs), allure with the timeline and the journal, summary, the request log."""
    from junitparser import JUnitXml

    proc = _suite(where, tmp_path, "-k", "pod-kill")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    run_dir = (tmp_path / "reports" / "latest").resolve()
    doc = json.loads((run_dir / "verdict.json").read_text())
    assert doc["verdict"] == "pass" and doc["run"]["kind"] == "chaos"
    [exp] = doc["experiments"]
    assert exp["name"] == "pod-kill" and exp["status"] == "passed"
    assert [s["phase"] for s in exp["steps"]].count("method") == 1
    assert exp["load"]["fromFault"]["requests"] > 50
    cases = [c.name for suite in JUnitXml.fromfile(str(run_dir / "junit.xml")) for c in suite]
    assert any("kill-one-gateway-pod" in c for c in cases) and any("SLOs under load" in c for c in cases)
    allure = "".join(p.read_text(errors="replace") for p in (run_dir / "allure-results").glob("*-result.json"))
    assert "timeline" in allure and "journal" in allure
    assert (run_dir / "experiments" / "pod-kill" / "requests.csv").read_text().startswith("t,latency_s,ok,status")
    assert "pod-kill | passed" in (run_dir / "summary.md").read_text()

    # the other way, and in a browser: on one replica the suite fails with the cause and the
    # numbers, and the HTML report of that live run, rendered by headless Chromium, shows the
    # experiment's SLO case and the run's verdict
    with weakened(where, ONE_GATEWAY):
        proc = _suite(where, tmp_path / "weak", "-k", "pod-kill")
        out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out[-3000:]
    assert "error rate" in out and " of " in out, out[-3000:]
    weak_dir = (tmp_path / "weak" / "reports" / "latest").resolve()
    _build(weak_dir)
    text = _rendered(weak_dir / "html" / "index.html", "SLOs under load")
    title = json.loads((EXPERIMENTS / "pod-kill.json").read_text())["title"]
    assert f"SLOs under load: {title}" in text, "the experiment's SLO case is not on the page"
    assert re.search(r"verdict\s+fail", text), "the run's verdict is not on the page"


def test_ctrl_c_during_a_rollout_leaves_the_stack_whole(where: runner.Where, tmp_path: Path) -> None:
    """SIGINT while the gateway is half rolled out: the undo waits for the rollout, the stack ends
    as it began (replica counts, every pod ready, none terminating), and the run says interrupted."""
    replicas = _replicas(where)
    proc = _suite(where, tmp_path, "-k", "rolling-restart")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the restart has begun
        obj = workloads.read(where.api, "Deployment", "gateway", where.namespace)
        annotations = obj["spec"]["template"]["metadata"].get("annotations") or {}
        if annotations.get(workloads.RESTARTED_AT) and not workloads.rolled_out(obj | {"kind": "Deployment"}):
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the rolling restart never started")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, out[-3000:]
    assert "Interrupted" in out or "KeyboardInterrupt" in out, out[-3000:]
    workloads.wait_rolled_out(where.api, "Deployment", "gateway", where.namespace, timeout=5, settled=True)
    assert _replicas(where) == replicas


def _load_objects(where: runner.Where) -> list[str]:
    core, ns = client.CoreV1Api(where.api), where.namespace
    selector = "app.kubernetes.io/name=seatrial-load"
    pods = core.list_namespaced_pod(ns, label_selector=selector).items
    maps = core.list_namespaced_config_map(ns, label_selector=selector).items
    return [f"Pod/{kube.name_of(p)}" for p in pods] + [f"ConfigMap/{kube.name_of(m)}" for m in maps]


def test_distributed_load_gives_the_same_request_log_both_ways(where: runner.Where, tmp_path: Path) -> None:
    """``--load-workers 2``: a locust master and two workers as pods send the load. The suite's
    request log has the local load's columns and a row per request from every user (one
    keep-alive connection, so one local port, each); the same experiment still fails on one
    replica, so the log from the cluster sees failures; no load pod or ConfigMap is left."""
    proc = _suite(where, tmp_path, "-k", "pod-kill", "--load-workers", "2")
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, out[-3000:]
    log = (tmp_path / "reports" / "latest" / "experiments" / "pod-kill" / "requests.csv").resolve()
    header, *rows = log.read_text().splitlines()
    assert header == "t,latency_s,ok,status,error,port"
    assert len(rows) > 100
    users = where.profile.load.users
    assert len({r.rsplit(",", 1)[1] for r in rows}) >= users, "every user's connection is in the log"
    assert _load_objects(where) == []

    from seatrial.cluster.local import LocalCluster

    spread = dataclasses.replace(where.profile, load=dataclasses.replace(where.profile.load, workers=2))
    remote = dataclasses.replace(where, profile=spread, local=LocalCluster())
    with weakened(where, ONE_GATEWAY):
        bad = runner.run(EXPERIMENTS / "pod-kill.json", remote, tmp_path / "bad")
    assert bad.status == "failed" and "error rate" in "; ".join(bad.violations()), bad.violations()
    assert _load_objects(where) == []
