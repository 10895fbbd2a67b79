"""Locust as a child process for the length of an experiment, and its request log as ``Sample``s.

The load starts before the steady state is checked and stops after recovery, so the log covers
the whole experiment; its clock is wall time (epoch seconds), the same clock Chaos Toolkit's
journal stamps each activity with, so faults and actions land on the timeline exactly.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from seatrial import load
from seatrial.chaos.target import LoadTarget
from seatrial.errors import ClusterError

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
# The locustfile's own constants (it runs alone in a pod, importing nothing of seatrial's, and
# importing it here would let gevent patch this process); a unit test keeps the two the same.
HEADER = load.LOG_FIELDS
ROW_MARK = "SEATRIAL-ROW "


# Locust must not outlive the run that started it: a run killed with ``kill -9`` cannot stop it,
# and an orphaned locust would load the stack for good (and skew every later run). The child asks
# the kernel for SIGKILL when its parent dies (PR_SET_PDEATHSIG, kept across exec), checks that the
# parent did not die before it asked, then becomes locust. ``--run-time 1h`` is the last resort.
DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, signal.SIGKILL)\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit(0)\n"
    "os.execv(sys.executable, [sys.executable, '-m', 'locust', *sys.argv[2:]])\n"
)


class Locust:
    """``with Locust(target, users=10, log=path) as lg:`` — headless locust until the block ends."""

    def __init__(
        self, target: LoadTarget, *, users: int, log: Path, spawn_rate: float | None = None, prompts: int = 200
    ) -> None:
        self.target, self.users, self.log, self.prompts = target, users, log, prompts
        self.spawn_rate = spawn_rate or float(users)
        self.started = 0.0
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Locust:
        parts = urlsplit(self.target.url)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.unlink(missing_ok=True)
        env = os.environ | {
            "SEATRIAL_LOAD_LOG": str(self.log),
            "SEATRIAL_LOAD_PATH": parts.path or "/",
            "SEATRIAL_LOAD_TOKEN": self.target.token,
            "SEATRIAL_LOAD_PROMPTS": str(self.prompts),
        }
        args = [
            sys.executable, "-c", DIE_WITH_PARENT, str(os.getpid()), "-f", str(LOCUSTFILE), "--headless",
            "-u", str(self.users), "-r", str(self.spawn_rate), "-H", f"{parts.scheme}://{parts.netloc}",
            "--only-summary", "--stop-timeout", "5", "--csv", str(self.log.with_suffix("")) + "-locust",
            "--exit-code-on-error", "0", "--loglevel", "WARNING", "--run-time", "1h",
        ]  # fmt: skip
        self.started = time.time()
        out = self.log.with_name("locust.log").open("w")
        self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        return self

    def wait_for_requests(self, count: int = 10, timeout: float = 30.0) -> None:
        """Block until the load is really flowing, or say why it is not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ClusterError(
                    f"locust exited {self.proc.returncode} at start; see {self.log.with_name('locust.log')}"
                )
            if len(self.samples()) >= count:
                return
            time.sleep(0.2)
        raise ClusterError(f"the load sent fewer than {count} requests in {timeout:.0f}s to {self.target.url}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def samples(self) -> list[load.Sample]:
        """Every request so far, on the load's clock (seconds since it started)."""
        out = []
        try:
            with self.log.open(newline="") as fh:
                for r in csv.DictReader(fh):
                    try:
                        out.append(load.sample_of(r, since=self.started))
                    except (TypeError, ValueError, KeyError):
                        continue  # a half-written last line
        except OSError:
            pass
        return out
