"""The command line's edge: bad input is one line and exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "seatrial", *args],
        capture_output=True,
        text=True,
        env=(os.environ | (env or {})),
        timeout=120,
        check=False,
        cwd=REPO,
    )


def test_unknown_action_is_usage_error() -> None:
    proc = run("cluster", "sideways")
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_bad_pool_file_exits_2_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "pools.yaml").write_text(
        "name: gpu\ncount: 1\nzones: [a]\ncapacity: {cpu: '1', memory: 1Gi, pods: '10'}\ngpus: 8\n"
    )
    state = tmp_path / "state"
    proc = run("cluster", "up", env={"SEATRIAL_POOLS": str(tmp_path), "SEATRIAL_CLUSTER_DIR": str(state)})
    assert proc.returncode == 2, proc.stderr
    assert "pools.yaml: pool 'gpu': unknown field 'gpus'" in proc.stderr
    assert "did you mean 'gpu'?" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not state.exists()


def test_status_of_stopped_cluster_exits_3(tmp_path: Path) -> None:
    proc = run("cluster", "status", env={"SEATRIAL_CLUSTER_DIR": str(tmp_path)})
    assert proc.returncode == 3
    assert "phase: down" in proc.stdout


def test_kill_unknown_node_is_usage_error(tmp_path: Path) -> None:
    proc = run("cluster", "kill-node", "nope-0", env={"SEATRIAL_CLUSTER_DIR": str(tmp_path)})
    assert proc.returncode == 2
    assert "nope-0 is not a real node of the local cluster" in proc.stderr
    assert "Traceback" not in proc.stderr
