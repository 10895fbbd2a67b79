"""Acceptance 5 and 6: up/down leave nothing behind, a warm up builds nothing, bad input starts nothing.

These run a second, small cluster beside the session's (own state dir, ports shifted by 100), so
they can stop and crash it freely.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from seatrial.cluster.local import LocalCluster, Ports, port_in_use

from .conftest import sleep_until

SMALL_POOLS = """\
name: cpu
count: 2
zones: [zone-a, zone-b]
capacity: {cpu: "8", memory: 32Gi, pods: "110"}
---
name: gpu
count: 1
zones: [zone-a]
capacity: {cpu: "32", memory: 256Gi, pods: "110"}
gpu: {product: NVIDIA-L4, count: 4}
"""
OFFSET = 100


@pytest.fixture
def second(tmp_path: Path, kube_target: object) -> Iterator[tuple[dict[str, str], LocalCluster]]:
    """Env and handle of the second cluster (kube_target: binaries are built by then)."""
    pools_dir = tmp_path / "pools"
    pools_dir.mkdir()
    (pools_dir / "small.yaml").write_text(SMALL_POOLS)
    env = {
        "SEATRIAL_CLUSTER_DIR": str(tmp_path / "state"),
        "SEATRIAL_POOLS": str(pools_dir),
        "SEATRIAL_PORT_OFFSET": str(OFFSET),
    }
    cluster = LocalCluster(tmp_path / "state", pools_dir=pools_dir, ports=Ports.from_env_offset(OFFSET))
    yield env, cluster
    cluster.down(quiet=True)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seatrial", "cluster", *args],
        capture_output=True,
        text=True,
        env=os.environ | env,
        timeout=300,
        check=False,
    )


def nothing_left(cluster: LocalCluster) -> list[str]:
    problems = [f"process {pid}" for pid in cluster.leftovers()]
    problems += [f"port {p} ({n})" for n, p in cluster.ports.named().items() if port_in_use(p)]
    problems += [str(p) for p in (cluster.run, cluster.kubeconfig) if p.exists()]
    return problems


def test_up_down_up_warm_leaves_nothing(second: tuple[dict[str, str], LocalCluster]) -> None:
    env, cluster = second
    first = cli("up", env=env)
    assert first.returncode == 0, first.stderr
    assert "building" not in first.stderr  # the session cluster already built every binary
    assert "nodes Ready: 3/3" in first.stdout
    again = cli("up", env=env)  # a running cluster is reused, not restarted
    assert again.returncode == 0 and "reusing it" in again.stderr
    down = cli("down", env=env)
    assert down.returncode == 0, down.stderr
    assert nothing_left(cluster) == []
    warm = cli("up", env=env)
    assert warm.returncode == 0, warm.stderr
    assert "building" not in warm.stderr
    assert cli("status", env=env).returncode == 0
    assert cli("down", env=env).returncode == 0
    assert nothing_left(cluster) == []
    assert cli("status", env=env).returncode == 3


def test_supervisor_crash_leaves_no_orphans(second: tuple[dict[str, str], LocalCluster]) -> None:
    env, cluster = second
    assert cli("up", env=env).returncode == 0
    children = cluster.leftovers()
    assert len(children) >= 5  # supervisor + etcd, apiserver, controller-manager, scheduler, kwok
    pid = int((cluster.run / "supervisor.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    assert sleep_until(lambda: not cluster.leftovers(), timeout=15), cluster.leftovers()
    assert sleep_until(lambda: not any(port_in_use(p) for p in cluster.ports.named().values()), timeout=15)
    # the next up notices the dead supervisor and starts cleanly
    assert cli("up", env=env).returncode == 0
    assert cli("down", env=env).returncode == 0
    assert nothing_left(cluster) == []


def test_port_in_use_is_one_clear_message(tmp_path: Path, kube_target: object) -> None:
    """The session cluster holds the default ports: a second cluster on them must refuse, exit 2."""
    state = tmp_path / "state"
    started = time.monotonic()
    proc = cli("up", env={"SEATRIAL_CLUSTER_DIR": str(state)})
    assert proc.returncode == 2, proc.stderr
    assert f"{Ports().apiserver} (apiserver)" in proc.stderr
    assert "SEATRIAL_PORT_OFFSET" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - started < 30
    assert LocalCluster(state).leftovers() == []
    assert not (state / "run").exists()
