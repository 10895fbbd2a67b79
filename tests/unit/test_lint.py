"""``seatrial check PATH…``: the static catalogue as a linter (issue 16, speed). Each path on its
own, exit codes as the gate's, and none of the weight of a pytest session or a cluster client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CANARY = "tests/stacks/canary/deployment.yaml"  # SEC-001 critical, RES-003 and ROLL-004 high


def check(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "seatrial", "check", *args]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_each_path_is_judged_on_its_own(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: three}\n")
    out = check(CANARY, str(bad), "tests/stacks/ml-crds")
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"{bad}: error: {bad} has objects the Kubernetes API would refuse" in out.stdout
    assert "spec.replicas: an integer, not a string" in out.stdout
    assert "critical SEC-001" in out.stdout and "ml/RayCluster/ray/workers-gpu" in out.stdout  # the others still judged
    assert out.stdout.splitlines()[-1].startswith("ERROR: ")
    assert "Traceback" not in out.stdout + out.stderr


@pytest.mark.parametrize(("fail_on", "code"), [("critical", 1), ("high", 1)])
def test_exit_code_follows_fail_on(fail_on: str, code: int) -> None:
    out = check(CANARY, "--fail-on", fail_on)
    assert out.returncode == code and out.stdout.splitlines()[-1].startswith("FAIL: 8 finding(s)"), out.stdout


def test_json_lists_every_finding(tmp_path: Path) -> None:
    out = check(CANARY, "--json")
    doc = json.loads(out.stdout)
    [path] = doc["paths"]
    assert path["path"] == CANARY and len(path["findings"]) == 8
    assert path["findings"][0]["severity"] == "critical"  # worst first


def test_a_clean_file_passes(tmp_path: Path) -> None:
    ok = tmp_path / "svc.yaml"
    ok.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: x}\nspec: {ports: [{port: 80}]}\n")
    out = check(str(ok))
    assert out.returncode == 0 and out.stdout.splitlines()[-1].startswith("PASS: 0 finding(s)"), out.stdout


def test_the_linter_path_loads_no_cluster_client() -> None:
    """What keeps it fast: no Kubernetes client, no pytest, no report writer is imported."""
    heavy = ("kubernetes", "pytest", "seatrial.report", "seatrial.cluster.local")
    code = (
        f"import sys\nfrom seatrial import cli\ncli.main(['check', '{CANARY}'])\n"
        f"print('HEAVY', sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert "HEAVY []" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
