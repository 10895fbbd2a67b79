"""The load seatrial sends during every experiment: locust users posting real chat completions
through the stack's front door, each request one CSV row (start, latency, ok, status, error).

Run by ``seatrial.chaos.loadgen`` as its own process (``import locust`` monkey-patches the
standard library with gevent, which breaks ssl and threads inside pytest). Everything it needs
comes from the environment, the token included, so nothing secret is on its command line.
"""

from __future__ import annotations

import csv
import os
import random
from typing import Any

from locust import HttpUser, constant_pacing, events, task

LOG = os.environ.get("SEATRIAL_LOAD_LOG", "requests.csv")
PATH = os.environ.get("SEATRIAL_LOAD_PATH", "/v1/chat/completions")
TOKEN = os.environ.get("SEATRIAL_LOAD_TOKEN", "")
PROMPTS = int(os.environ.get("SEATRIAL_LOAD_PROMPTS", "200"))  # distinct prompts: the cache's hit ratio
PACING = float(os.environ.get("SEATRIAL_LOAD_PACING", "0.1"))  # seconds per request per user, at most

_log = open(LOG, "a", newline="")  # noqa: SIM115 - one file for the process's life, flushed per row
_rows = csv.writer(_log)
if _log.tell() == 0:
    _rows.writerow(["t", "latency_s", "ok", "status", "error"])


def _record(response_time: float, response: Any, exception: BaseException | None, start_time: float, **_: Any) -> None:
    status = getattr(response, "status_code", 0) or 0
    error = "" if exception is None else f"{type(exception).__name__}: {str(exception)[:120]}"
    _rows.writerow([f"{start_time:.4f}", f"{response_time / 1000:.4f}", int(exception is None), status, error])
    _log.flush()


events.request.add_listener(_record)  # type: ignore[no-untyped-call]


class Chat(HttpUser):
    """One client, as most are written: python-requests with keep-alive, which checks a pooled
    connection before reusing it (FastHttpUser's client does not, and failed on connections the
    server had closed normally: errors of the load tool, not of the stack)."""

    wait_time = constant_pacing(PACING)

    @task
    def ask(self) -> None:
        headers: dict[str, str] = {}
        if TOKEN:
            headers["Authorization"] = f"Bearer {TOKEN}"
        if PATH.rstrip("/").endswith("/chat/completions"):
            prompt = f"Say hello to visitor {random.randrange(PROMPTS)} in one word."  # noqa: S311 - not crypto
            body = {"model": "seatrial-tiny", "messages": [{"role": "user", "content": prompt}], "max_tokens": 8}
            self.client.post(PATH, json=body, headers=headers, name="chat", timeout=(2, 5))
        else:
            self.client.get(PATH, headers=headers, name="get", timeout=(2, 5))
