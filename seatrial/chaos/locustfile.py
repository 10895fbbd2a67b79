"""The load seatrial sends during every experiment: locust users posting real chat completions
through the stack's front door, each request one CSV row (start, latency, ok, status, error,
local port).

Run by ``seatrial.chaos.loadgen`` as its own process (``import locust`` monkey-patches the
standard library with gevent, which breaks ssl and threads inside pytest), or in pods by
``seatrial.chaos.distributed``. Everything it needs comes from the environment, the token
included, so nothing secret is on its command line.

Where the rows go: a file (``SEATRIAL_LOAD_LOG``, one process); from a worker to its master as
a locust message; from the master to its stdout, each line marked ``ROW_MARK`` (``-`` as the
log), which seatrial follows through the pod's log. The local port names the connection, so a
failed request can be matched with the server's, kube-proxy's or conntrack's view of it.
"""

from __future__ import annotations

import csv
import io
import os
import random
import sys
import threading
from collections.abc import Callable
from typing import Any

from locust import HttpUser, constant_pacing, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

LOG = os.environ.get("SEATRIAL_LOAD_LOG", "requests.csv")
PATH = os.environ.get("SEATRIAL_LOAD_PATH", "/v1/chat/completions")
TOKEN = os.environ.get("SEATRIAL_LOAD_TOKEN", "")
PROMPTS = int(os.environ.get("SEATRIAL_LOAD_PROMPTS", "200"))  # distinct prompts: the cache's hit ratio
PACING = float(os.environ.get("SEATRIAL_LOAD_PACING", "0.1"))  # seconds per request per user, at most
HEADER = ["t", "latency_s", "ok", "status", "error", "port"]
ROW_MARK = "SEATRIAL-ROW "
MESSAGE = "seatrial-row"

_here = threading.local()  # greenlet-local once locust has patched threading: one per user


def _line(row: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue()


class _File:
    """Rows into the log file, flushed per row so a reader sees them as they happen."""

    def __init__(self, path: str) -> None:
        self.fh = open(path, "a", newline="")  # noqa: SIM115 - one file for the process's life
        self.rows = csv.writer(self.fh)
        if self.fh.tell() == 0:
            self.rows.writerow(HEADER)

    def __call__(self, row: list[str]) -> None:
        self.rows.writerow(row)
        self.fh.flush()


def _stdout(row: list[str]) -> None:
    sys.stdout.write(ROW_MARK + _line(row) + "\n")
    sys.stdout.flush()


_sink: Callable[[list[str]], None] | None = None


def _emit(row: list[str]) -> None:
    global _sink  # noqa: PLW0603 - chosen once per process, by the role locust gave it
    if _sink is None:
        _sink = _stdout if LOG == "-" else _File(LOG)
    _sink(row)


def _roles(environment: Environment, **_: Any) -> None:
    """A worker forwards its rows to the master; the master writes every worker's rows."""
    global _sink  # noqa: PLW0603
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        _sink = lambda row: runner.send_message(MESSAGE, {"row": row})  # noqa: E731
    elif isinstance(runner, MasterRunner):
        runner.register_message(MESSAGE, lambda msg, **_: _emit(list(msg.data["row"])))


events.init.add_listener(_roles)  # type: ignore[no-untyped-call]


def _record(response_time: float, response: Any, exception: BaseException | None, start_time: float, **_: Any) -> None:
    status = getattr(response, "status_code", 0) or 0
    error = "" if exception is None else f"{type(exception).__name__}: {str(exception)[:120]}"
    port = getattr(_here, "port", 0)
    ok = str(int(exception is None))
    _emit([f"{start_time:.4f}", f"{response_time / 1000:.4f}", ok, str(status), error, str(port)])


events.request.add_listener(_record)  # type: ignore[no-untyped-call]


def _remember_port(conn: HTTPConnection) -> None:
    try:
        _here.port = conn.sock.getsockname()[1] if conn.sock is not None else 0
    except OSError:
        _here.port = 0


class _PortHTTP(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().request(*args, **kwargs)
        finally:
            _remember_port(self)


class _PortHTTPS(_PortHTTP, HTTPSConnection):
    """TLS, with the same port-recording ``request`` (the MRO puts it before HTTPSConnection's)."""


class _PortPool(HTTPConnectionPool):
    ConnectionCls = _PortHTTP


class _PortPoolS(HTTPSConnectionPool):
    ConnectionCls = _PortHTTPS


class Chat(HttpUser):
    """One client, as most are written: python-requests with keep-alive, which checks a pooled
    connection before reusing it (FastHttpUser's client does not, and failed on connections the
    server had closed normally: errors of the load tool, not of the stack)."""

    wait_time = constant_pacing(PACING)

    def on_start(self) -> None:
        for adapter in self.client.adapters.values():  # connections that say which port they use
            adapter.poolmanager.pool_classes_by_scheme = {"http": _PortPool, "https": _PortPoolS}  # type: ignore[attr-defined]

    @task
    def ask(self) -> None:
        _here.port = 0
        headers: dict[str, str] = {}
        if TOKEN:
            headers["Authorization"] = f"Bearer {TOKEN}"
        if PATH.rstrip("/").endswith("/chat/completions"):
            prompt = f"Say hello to visitor {random.randrange(PROMPTS)} in one word."  # noqa: S311 - not crypto
            body = {"model": "seatrial-tiny", "messages": [{"role": "user", "content": prompt}], "max_tokens": 8}
            self.client.post(PATH, json=body, headers=headers, name="chat", timeout=(2, 5))
        else:
            self.client.get(PATH, headers=headers, name="get", timeout=(2, 5))
