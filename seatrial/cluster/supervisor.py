"""The one parent of every process the local cluster runs.

``up`` starts this module detached (``python -m seatrial.cluster.supervisor STATE_DIR``); it
starts the processes listed in ``STATE_DIR/plan.json`` stage by stage, waits for each stage to be
healthy, reports progress in ``status.json`` and then keeps watch. On SIGTERM/SIGINT it stops
its children in reverse order. Every child is started with a parent-death signal, so even a
``kill -9`` of the supervisor leaves no orphan behind: the kernel kills the children.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1
STOP_GRACE = 10.0
# The daemons run with the umask a service manager gives them (systemd: 0022), not the user's: under
# 077 containerd made each container's root directory 0700, and no process of a non-root pod
# could find its executable ("python3": executable file not found in $PATH).
DAEMON_UMASK = 0o022


@dataclass
class ProcessSpec:
    name: str
    argv: list[str]
    log: str
    stage: int
    env: dict[str, str] = field(default_factory=dict)
    ready_url: str | None = None
    ready_tls: dict[str, str] | None = None  # {"ca": …, "cert": …, "key": …} or {"insecure": "1"}
    ready_port: int | None = None
    ready_path: str | None = None
    oneshot: bool = False  # runs to completion (exit 0) before the next stage starts
    restarts: int = 0  # times an early exit is answered with a restart (see realnodes: kubelet)


@dataclass
class Plan:
    processes: list[ProcessSpec]
    start_timeout: float = 90.0

    @classmethod
    def load(cls, path: Path) -> Plan:
        raw = json.loads(path.read_text())
        return cls(
            processes=[ProcessSpec(**p) for p in raw["processes"]],
            start_timeout=raw.get("start_timeout", 90.0),
        )

    def dump(self, path: Path) -> None:
        path.write_text(
            json.dumps(
                {"processes": [asdict(p) for p in self.processes], "start_timeout": self.start_timeout}, indent=2
            )
        )


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: the kernel sends SIGKILL when we die."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def probe(spec: ProcessSpec) -> bool:
    """True when the process answers its health endpoint (or accepts on its port)."""
    if spec.ready_url:
        ctx: ssl.SSLContext | None = None
        if spec.ready_url.startswith("https"):
            tls = spec.ready_tls or {}
            if tls.get("insecure"):
                ctx = ssl._create_unverified_context()  # noqa: S323 - self-signed loopback health port
            else:
                ctx = ssl.create_default_context(cafile=tls.get("ca"))
                if tls.get("cert"):
                    ctx.load_cert_chain(tls["cert"], tls["key"])
        try:
            with urllib.request.urlopen(spec.ready_url, timeout=2, context=ctx) as resp:  # noqa: S310 - plan URLs are http(s) on loopback
                return bool(resp.status == 200)
        except (OSError, ValueError):
            return False
    if spec.ready_path:  # a unix socket that is listening, not merely a path that exists
        return Path(spec.ready_path).is_socket()
    if spec.ready_port:
        try:
            with socket.create_connection(("127.0.0.1", spec.ready_port), timeout=1):
                return True
        except OSError:
            return False
    return True


class Supervisor:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.plan = Plan.load(state / "plan.json")
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.restarted: dict[str, int] = {}
        self.status: dict[str, Any] = {"phase": "starting", "pid": os.getpid(), "processes": {}, "error": None}
        self.stopping = False
        self.started = time.monotonic()

    def _since_start(self) -> float:
        """Seconds since the supervisor began: where a slow bring-up spends its time."""
        return round(time.monotonic() - self.started, 2)

    def write_status(self) -> None:
        tmp = self.state / "status.json.tmp"
        tmp.write_text(json.dumps(self.status, indent=2))
        tmp.replace(self.state / "status.json")

    def spawn(self, spec: ProcessSpec) -> None:
        log = open(spec.log, "ab", buffering=0)  # noqa: SIM115 - handed to the child
        env = dict(os.environ) | spec.env
        proc = subprocess.Popen(
            spec.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - the supervisor runs no threads
            close_fds=True,
            umask=DAEMON_UMASK,
        )
        log.close()
        self.children[spec.name] = proc
        self.status["processes"][spec.name] = {"pid": proc.pid, "state": "starting", "log": spec.log}
        self.write_status()

    def fail(self, message: str) -> None:
        self.status["phase"] = "failed"
        self.status["error"] = message
        self.write_status()

    def start(self) -> bool:
        stages = sorted({p.stage for p in self.plan.processes})
        deadline = time.monotonic() + self.plan.start_timeout
        for stage in stages:
            specs = [p for p in self.plan.processes if p.stage == stage]
            for spec in specs:
                self.spawn(spec)
            waiting = {s.name: s for s in specs}
            while waiting:
                if self.stopping:
                    return False
                for spec in self.plan.processes:  # a process already up may die while later ones start
                    proc = self.children.get(spec.name)
                    if spec.name in waiting or spec.oneshot or proc is None or proc.poll() is None:
                        continue
                    if not self._restart(spec):
                        self.fail(f"{spec.name} exited with code {proc.returncode}; see its log: {spec.log}")
                        return False
                    waiting[spec.name] = spec
                for name, spec in list(waiting.items()):
                    code = self.children[name].poll()
                    if spec.oneshot and code == 0:
                        self.status["processes"][name]["state"] = "done"
                        self.status["processes"][name]["ready_after_s"] = self._since_start()
                        del waiting[name]
                        self.write_status()
                        continue
                    if code is not None and not self._restart(spec):
                        self.fail(f"{name} exited with code {code} while starting; see its log: {spec.log}")
                        return False
                    if code is not None:
                        continue
                    if not spec.oneshot and probe(spec):
                        self.status["processes"][name]["state"] = "running"
                        self.status["processes"][name]["ready_after_s"] = self._since_start()
                        del waiting[name]
                        self.write_status()
                if time.monotonic() > deadline:
                    names = ", ".join(waiting)
                    logs = ", ".join(s.log for s in waiting.values())
                    self.fail(f"{names} did not become healthy within {self.plan.start_timeout:.0f}s; logs: {logs}")
                    return False
                time.sleep(0.1)
        self.status["phase"] = "ready"
        self.write_status()
        return True

    def _restart(self, spec: ProcessSpec) -> bool:
        """Restart a process that exited, if its spec allows another try."""
        used = self.restarted.get(spec.name, 0)
        if spec.oneshot or used >= spec.restarts:
            return False
        self.restarted[spec.name] = used + 1
        time.sleep(0.5 * (used + 1))
        self.spawn(spec)
        self.status["processes"][spec.name]["restarts"] = used + 1
        self.write_status()
        return True

    def watch(self) -> None:
        """Keep watch; also obey ``control.json`` ({"stopped": [names]}), the way a node is killed
        (its processes SIGKILLed, as at power loss) and later revived (restarted stage by stage)."""
        control = self.state / "control.json"
        while not self.stopping:
            try:
                wanted_down = set(json.loads(control.read_text()).get("stopped", []))
            except (OSError, ValueError):
                wanted_down = set()
            specs = {p.name: p for p in self.plan.processes if not p.oneshot}
            for name in list(self.children):
                proc, entry = self.children[name], self.status["processes"][name]
                code = proc.poll()
                if name in wanted_down and entry["state"] != "stopped (requested)":
                    if code is None:
                        proc.kill()
                        proc.wait()
                    entry["state"] = "stopped (requested)"
                    self.write_status()
                elif code is not None and entry["state"] == "running" and name in specs and self._restart(specs[name]):
                    self.status["processes"][name]["state"] = "reviving"
                    self.write_status()
                elif code is not None and entry["state"] == "running" and name in specs:
                    entry["state"] = f"exited ({code})"
                    self.status["phase"] = "degraded"
                    self.status["error"] = f"{name} exited with code {code}; see {entry['log']}"
                    self.write_status()
            self._revive({n: s for n, s in specs.items() if n not in wanted_down})
            time.sleep(0.25)

    def _revive(self, specs: dict[str, ProcessSpec]) -> None:
        """Restart processes no longer requested down, lowest stage first, each stage once healthy."""
        pending = [
            s
            for n, s in specs.items()
            if self.status["processes"].get(n, {}).get("state") in ("stopped (requested)", "reviving")
        ]
        if not pending:
            return
        stage = min(s.stage for s in pending)
        for spec in (s for s in pending if s.stage == stage):
            entry = self.status["processes"][spec.name]
            if entry["state"] == "stopped (requested)":
                self.spawn(spec)
                self.status["processes"][spec.name]["state"] = "reviving"
                self.write_status()
            elif self.children[spec.name].poll() is None and probe(spec):
                entry["state"] = "running"
                self.write_status()

    def stop(self) -> None:
        failed = self.status["phase"] == "failed"  # keep the failure visible to whoever waits on it
        if not failed:
            self.status["phase"] = "stopping"
            self.write_status()
        for spec in reversed(self.plan.processes):
            proc = self.children.get(spec.name)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            self.status["processes"][spec.name]["state"] = "stopped"
        if not failed:
            self.status["phase"] = "stopped"
        self.write_status()

    def on_signal(self, signum: int, frame: object) -> None:
        del signum, frame
        self.stopping = True


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--daemon":
        # Detach: the caller gets its exit status at once and never holds a child it must reap.
        argv = argv[1:]
        if os.fork() > 0:
            os._exit(0)
        os.setsid()
    state = Path(argv[0])
    sup = Supervisor(state)
    signal.signal(signal.SIGTERM, sup.on_signal)
    signal.signal(signal.SIGINT, sup.on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    (state / "supervisor.pid").write_text(str(os.getpid()))
    try:
        if sup.start():
            sup.watch()
    finally:
        sup.stop()
        (state / "supervisor.pid").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
