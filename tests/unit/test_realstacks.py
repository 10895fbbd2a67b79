"""Static mode on stacks as their projects publish them (tests/realstacks, copied unchanged; see
its README for repositories, commits and licences): a plain manifest tree (kube-prometheus), a
kustomize root (KServe), a Helm chart (vLLM production-stack) and one multi-document file of
custom resources (KubeRay, LeaderWorkerSet). The seeds and fixtures are written for seatrial; these
were not, so they catch what real layouts do that ours do not. Each must reach a verdict (exit 0
or 1) with objects read, never a failure to read (exit 2) or a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REAL = Path("tests") / "realstacks"

pytestmark = pytest.mark.needs_binaries  # the kustomize root and the chart render with kubectl and helm

CASES = [  # every object each one holds, counted with kubectl kustomize / helm template / by hand
    pytest.param(REAL / "kube-prometheus", 92, id="kube-prometheus"),  # 86 objects and two *List files of 3
    pytest.param(REAL / "kserve" / "config" / "default", 19, id="kserve"),
    # its Chart.yaml lists two subcharts that are not vendored (off by default): rendered without them
    pytest.param(REAL / "vllm-production-stack" / "helm", 8, id="vllm-production-stack"),
    pytest.param(REAL / "kuberay-lws.yaml", 4, id="kuberay-lws"),
]


@pytest.mark.parametrize(("path", "objects"), CASES)
def test_a_published_stack_reaches_a_verdict(path: Path, objects: int) -> None:
    assert (ROOT / path).exists(), f"{path} is missing from the work tree"
    proc = subprocess.run(
        [sys.executable, "-m", "seatrial", "check", "--json", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), f"exit {proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr}"
    report = json.loads(proc.stdout)
    [entry] = report["paths"]
    assert entry["path"] == str(path)
    assert "error" not in entry, entry["error"]
    assert entry["objects"] == objects, entry.get("notes")
    assert entry["findings"], f"{path}: published stacks all have something to say"
