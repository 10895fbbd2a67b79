"""The workload experiments, proven both ways on the local cluster under real load.

Each experiment passes on the reference stack and fails on a deliberately weakened one, naming
the cause and the numbers: pod-kill and burst-kill against a single gateway replica, the rolling
restart against a gateway without preStop or grace period. ``chaos run`` alone passes and fails
the same way. After every run the stack is as it was: replica counts and ready pods."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from seatrial import kube, profile, workloads
from seatrial.chaos import runner
from seatrial.stack import Deployed

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"


@pytest.fixture(scope="module")
def where(api: client.ApiClient, kube_target: kube.Target, reference_stack: Deployed) -> runner.Where:
    return runner.Where(api, kube_target, reference_stack.namespace, profile.load(None))


def _replicas(where: runner.Where) -> dict[str, int]:
    out = {}
    for kind, name in (("Deployment", "gateway"), ("Deployment", "hub"), ("StatefulSet", "inference")):
        obj = workloads.read(where.api, kind, name, where.namespace)
        assert workloads.rolled_out(obj | {"kind": kind}), f"{kind}/{name} is not whole after the experiment"
        out[f"{kind}/{name}"] = obj["spec"]["replicas"]
    return out


@contextmanager
def weakened(where: runner.Where, deployment: dict[str, Any], hpa: dict[str, Any] | None = None) -> Iterator[None]:
    """Patch the gateway (and its HPA) for the length of the block, then put back what was there."""
    apps, scaling = client.AppsV1Api(where.api), client.AutoscalingV2Api(where.api)
    ns = where.namespace
    before = apps.read_namespaced_deployment("gateway", ns)
    hpa_before = scaling.read_namespaced_horizontal_pod_autoscaler("gateway", ns)
    try:
        if hpa:
            scaling.patch_namespaced_horizontal_pod_autoscaler("gateway", ns, {"spec": hpa})
        apps.patch_namespaced_deployment("gateway", ns, deployment)
        workloads.wait_rolled_out(where.api, "Deployment", "gateway", ns, timeout=120, settled=True)
        yield
    finally:
        spec = hpa_before.spec
        scaling.patch_namespaced_horizontal_pod_autoscaler(
            "gateway", ns, {"spec": {"minReplicas": spec.min_replicas, "maxReplicas": spec.max_replicas}}
        )
        original = kube.as_dict(before)
        apps.replace_namespaced_deployment(
            "gateway",
            ns,
            {**original, "metadata": {**original["metadata"], "resourceVersion": None}, "status": None},
        )
        workloads.wait_rolled_out(where.api, "Deployment", "gateway", ns, timeout=180, settled=True)


ONE_REPLICA = ({"spec": {"replicas": 1}}, {"minReplicas": 1, "maxReplicas": 1})
NO_DRAIN = (
    {
        "spec": {
            "template": {
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "gateway", "lifecycle": None}],
                }
            }
        }
    },
    None,
)


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
        ("pod-kill", ONE_REPLICA, "error rate"),
        ("burst-kill", ONE_REPLICA, "error rate"),
        ("rolling-restart", NO_DRAIN, "error rate"),
    ],
    ids=["pod-kill", "burst-kill", "rolling-restart"],
)
def test_experiment_passes_on_the_reference_and_fails_when_weakened(
    where: runner.Where, tmp_path: Path, name: str, weakness: tuple[dict[str, Any], dict[str, Any] | None], says: str
) -> None:
    replicas = _replicas(where)
    good = runner.run(EXPERIMENTS / f"{name}.json", where, tmp_path / "good")
    assert good.status == "passed", f"{name} on the reference stack: {good.violations()} {good.steps}"
    assert good.overall.requests > 100 and good.fault is not None
    assert _replicas(where) == replicas

    with weakened(where, *weakness):
        bad = runner.run(EXPERIMENTS / f"{name}.json", where, tmp_path / "bad")
    assert bad.status == "failed", f"{name} on the weakened stack: {bad.status} {bad.violations()} {bad.steps}"
    cause = "; ".join(bad.violations())
    assert says in cause and " of " in cause, cause  # the numbers: "error rate 3.10% ... (41 of 1320)"
    assert _replicas(where) == replicas


def test_chaos_run_alone_passes_then_fails_on_one_replica(where: runner.Where, tmp_path: Path) -> None:
    ok = _chaos_run(where, "pod-kill", tmp_path / "ok")
    assert ok.returncode == 0, (ok.stdout + ok.stderr)[-3000:]
    assert (tmp_path / "ok" / "journal.json").exists()
    with weakened(where, *ONE_REPLICA):
        bad = _chaos_run(where, "pod-kill", tmp_path / "bad")
    assert bad.returncode == 1, (bad.stdout + bad.stderr)[-3000:]
    assert "deviated" in (bad.stdout + bad.stderr + (tmp_path / "bad" / "chaos.log").read_text())
