"""The supervisor restarts a process that exits while starting, as often as its spec allows,
and fails the bring-up (naming the process and its log) once it may not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from seatrial.cluster.supervisor import Plan, ProcessSpec

# first run: exit 1 at once; second run: listen on a unix socket (ready) and stay up
FLAKY = """
import os, socket, sys, time
d = sys.argv[1]
if not os.path.exists(os.path.join(d, "tried")):
    open(os.path.join(d, "tried"), "w").close()
    sys.exit(1)
s = socket.socket(socket.AF_UNIX); s.bind(os.path.join(d, "ready.sock")); s.listen(); time.sleep(60)
"""


def _run(tmp_path: Path, restarts: int, script: str = FLAKY, umask: int = 0o022) -> dict[str, object]:
    spec = ProcessSpec(
        name="flaky",
        argv=[sys.executable, "-c", script, str(tmp_path)],
        log=str(tmp_path / "flaky.log"),
        stage=0,
        ready_path=str(tmp_path / "ready.sock"),
        restarts=restarts,
    )
    (tmp_path / "plan.json").write_text(json.dumps(asdict(Plan(processes=[spec], start_timeout=20))))
    sup = subprocess.Popen(
        [sys.executable, "-m", "seatrial.cluster.supervisor", str(tmp_path)], cwd=Path(__file__).parents[2], umask=umask
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                status = json.loads((tmp_path / "status.json").read_text())
            except (OSError, ValueError):
                status = {}
            if status.get("phase") in ("ready", "failed"):
                return status
            time.sleep(0.1)
        pytest.fail("the supervisor neither got ready nor failed")
    finally:
        os.kill(sup.pid, signal.SIGTERM)
        sup.wait(timeout=20)


def test_an_early_exit_is_restarted_when_the_spec_allows(tmp_path: Path) -> None:
    status = _run(tmp_path, restarts=1)
    assert status["phase"] == "ready"
    assert status["processes"]["flaky"]["restarts"] == 1  # type: ignore[index]


def test_without_restarts_an_early_exit_fails_naming_the_log(tmp_path: Path) -> None:
    status = _run(tmp_path, restarts=0)
    assert status["phase"] == "failed"
    assert "flaky exited with code 1" in str(status["error"]) and "flaky.log" in str(status["error"])


# write the umask it was started with, then get ready
UMASK = """
import os, socket, sys, time
d = sys.argv[1]
open(os.path.join(d, "umask"), "w").write(oct(os.umask(0)))
s = socket.socket(socket.AF_UNIX); s.bind(os.path.join(d, "ready.sock")); s.listen(); time.sleep(60)
"""


def test_daemons_run_with_a_service_umask_whatever_the_users(tmp_path: Path) -> None:
    # under the user's 077, containerd made container roots 0700 and non-root pods found no executable
    status = _run(tmp_path, restarts=0, script=UMASK, umask=0o077)
    assert status["phase"] == "ready"
    assert (tmp_path / "umask").read_text() == "0o22"
