"""A live conformance run's reports on the local cluster: evidence beside the failed check (object
excerpt and events), the cluster's facts, and a planted canary secret nowhere in them — not in a
Secret's value, not in an env literal, not on the terminal."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from seatrial import kube
from seatrial.cluster import pools

from ..unit.test_canaries import CANARIES as HIDDEN
from ..unit.test_canaries import leaked
from ..unit.test_conformance_cli import ROOT, conformance
from .conftest import TEST_LABEL
from .test_live_checks import kwok_spec

CANARIES = ("CanaryLivePassw0rd-Do-Not-Leak", "sk-livecanary-9Jd3Kf8Lq2Wm5Xn7Rt4Vb1Zc")


def test_live_reports_carry_evidence_and_no_canary(
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    namespace: str,
    kube_target: kube.Target,
    tmp_path: Path,
) -> None:
    core.create_namespaced_secret(
        namespace,
        {"metadata": {"name": "creds"}, "data": {"password": base64.b64encode(CANARIES[0].encode()).decode()}},
    )
    spec = kwok_spec()
    spec["containers"][0]["env"] = [
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "OPENAI_API_KEY", "value": CANARIES[1]},  # the known-bad: SEC-001
    ]
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "leaky", "labels": {"app": "leaky"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "leaky"}},
                "template": {"metadata": {"labels": {"app": "leaky"}}, "spec": spec},
            },
        },
    )
    prof = tmp_path / "profile.yaml"
    prof.write_text(f"kind: Profile\nname: canary\nnamespaces: [{namespace}]\n")
    reports = tmp_path / "reports"
    proc = conformance(
        "--kubeconfig", str(kube_target.kubeconfig), "--profile", str(prof), "--report-dir", str(reports), timeout=300
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "SEC-001" in proc.stdout and "Deployment/leaky" in proc.stdout

    run_dir = (reports / "latest").resolve()
    doc = json.loads((run_dir / "verdict.json").read_text())
    assert doc["run"]["mode"] == "live" and doc["run"]["facts"]["server"].startswith("v1.")
    assert doc["run"]["facts"]["gpus"] > 0
    [sec] = [c for c in doc["checks"] if c["id"] == "SEC-001"]
    assert sec["status"] == "failed" and len(sec["evidence"]) == 2
    excerpt, events = (run_dir / p for p in sec["evidence"])
    assert "OPENAI_API_KEY" in excerpt.read_text() and "<redacted>" in excerpt.read_text()
    assert "Deployment/leaky" in events.read_text() or "ReplicaSet/leaky-" in events.read_text()
    assert "server=v1." in (run_dir / "allure-results" / "environment.properties").read_text()

    written = [p for p in reports.rglob("*") if p.is_file()]
    assert len(written) > 40
    for p in written:
        body = p.read_bytes()
        for canary in CANARIES:
            assert canary.encode() not in body, f"{canary} leaked into {p}"
            assert base64.b64encode(canary.encode()) not in body, f"{canary} (base64) leaked into {p}"
    for canary in CANARIES:
        assert canary not in out


@pytest.fixture
def own_namespace(core: client.CoreV1Api, namespace: str) -> Iterator[str]:
    """A namespace of its own: the canary stack reuses the names of the module's other test."""
    name = f"{namespace}-hidden"
    core.create_namespace(
        {"metadata": {"name": name, "labels": {pools.MANAGED_BY_LABEL: pools.MANAGED_BY, TEST_LABEL: "true"}}}
    )
    yield name
    core.delete_namespace(name, grace_period_seconds=0)


def test_live_run_flags_every_hidden_secret_and_shows_none(
    core: client.CoreV1Api, apps: client.AppsV1Api, own_namespace: str, kube_target: kube.Target, tmp_path: Path
) -> None:
    """The static canary stack (tests/stacks/canaries), created in the cluster: every place is
    flagged by its check from the live objects, and no canary reaches a file or the terminal."""
    namespace = own_namespace
    docs = list(yaml.safe_load_all((ROOT / "tests" / "stacks" / "canaries" / "leaky.yaml").read_text()))
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        if doc["kind"] == "Deployment":
            doc["spec"]["template"]["spec"] |= {k: v for k, v in kwok_spec().items() if k != "containers"}
            apps.create_namespaced_deployment(namespace, doc)
        elif doc["kind"] == "ConfigMap":
            core.create_namespaced_config_map(namespace, doc)
        else:
            core.create_namespaced_secret(namespace, doc)
    prof = tmp_path / "profile.yaml"
    prof.write_text(f"kind: Profile\nname: canaries\nnamespaces: [{namespace}]\n")
    reports = tmp_path / "reports"
    proc = conformance(
        "--kubeconfig", str(kube_target.kubeconfig), "--profile", str(prof), "--report-dir", str(reports),
        "--fail-on", "low", timeout=300,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    summary = (reports / "latest" / "summary.md").read_text()
    for _, check, target, field in HIDDEN:
        if check != "SEC-003":  # committed Secrets are a static-only check
            assert f"{target} ({field})" in summary, f"{check} did not flag {target} ({field}) live"
    found = {str(p): leaked(p.read_text(errors="replace")) for p in reports.rglob("*") if p.is_file()}
    assert not {p: c for p, c in found.items() if c}, "canaries leaked into report files"
    assert not leaked(out), "canaries leaked onto the terminal"
