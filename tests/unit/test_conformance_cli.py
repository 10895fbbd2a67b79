"""The conformance suite as users run it, in static mode (no cluster): what it writes. Exit codes
for every case are in test_exit_codes.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.needs_binaries


def conformance(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "suites/conformance", "-p", "no:cacheprovider", "-q", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=os.environ | {"PYTHONWARNINGS": "ignore"} | (env or {}),
    )


def test_junit_has_one_case_per_check_beside_the_verdict(tmp_path: Path) -> None:
    from junitparser import JUnitXml

    from seatrial import checks

    proc = conformance("--static", "tests/stacks/bad-image", "--report-dir", str(tmp_path))
    assert proc.returncode == 1
    [run_dir] = [p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink()]
    assert (run_dir / "verdict.json").exists()
    xml = JUnitXml.fromfile(str(run_dir / "junit.xml"))
    cases = [case for suite in xml for case in suite]
    assert sorted(c.name.split()[0] for c in cases) == sorted(c.id for c in checks.catalogue())
    assert all(c.classname.startswith("seatrial.conformance.") for c in cases)
    failed = [c for c in cases if any(type(r).__name__ == "Failure" for r in c.result)]
    assert [c.name.split()[0] for c in failed] == ["ROLL-004"]  # the medium findings are reported: --fail-on high
    [failure] = failed[0].result
    assert "Deployment/ghost" in (failure.text or "") and "fix:" in (failure.text or "")
    skipped = sum(any(type(r).__name__ == "Skipped" for r in c.result) for c in cases)
    assert xml.tests == len(cases) and xml.failures == 1 and xml.skipped == skipped


GKE = """apiVersion: apps/v1
kind: Deployment
metadata: {name: vllm, namespace: serving}
spec:
  replicas: 2
  selector: {matchLabels: {app: vllm}}
  template:
    metadata: {labels: {app: vllm}}
    spec:
      nodeSelector: {cloud.google.com/gke-accelerator: nvidia-l4}
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.11.0
        resources: {limits: {nvidia.com/gpu: 1}}
"""


def test_static_mode_without_pools_judges_only_what_the_manifests_show(tmp_path: Path) -> None:
    """Issue 16: a GKE manifest got a critical "no GPU node matches" and toleration advice naming
    our test bed's taints (kwok, karpenter), because static mode judged it against the local
    cluster's pool files. Without --pools there is no cluster to judge capacity against."""
    path = tmp_path / "gke.yaml"
    path.write_text(GKE)
    out = conformance("--static", str(path), "--report-dir", str(tmp_path / "r"))
    text = out.stdout + out.stderr
    assert "no GPU node" not in text and "kwok" not in text and "karpenter" not in text, text[-3000:]
    with_pools = conformance("--static", str(path), "--pools", "manifests/cluster", "--report-dir", str(tmp_path / "p"))
    assert "GPU-002" in with_pools.stdout, with_pools.stdout[-3000:]  # the same file, judged against named pools
