"""The reference gateway's routing table: once the hub has answered, a request never waits on
it. A real HTTP server plays the hub, slow when the test says so."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "apps"))
from stack.gateway import Backends


class Hub:
    def __init__(self) -> None:
        self.backends = ["http://10.0.0.1:8000"]
        self.delay = 0.0
        self.calls = 0


@pytest.fixture
def hub() -> Iterator[tuple[Hub, str]]:
    state = Hub()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.calls += 1
            time.sleep(state.delay)
            body = json.dumps({"backends": [{"url": u} for u in state.backends]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _timed(backends: Backends) -> tuple[list[str], float]:
    started = time.monotonic()
    return backends.urls("m"), time.monotonic() - started


def test_a_stale_table_is_served_while_one_call_renews_it(hub: tuple[Hub, str]) -> None:
    state, url = hub
    backends = Backends(url, ttl=0.2)
    assert _timed(backends)[0] == ["http://10.0.0.1:8000"]  # no table yet: the first request waits
    state.delay, state.backends = 0.8, ["http://10.0.0.2:8000"]
    time.sleep(0.3)
    answers = []
    for _ in range(5):  # stale: each is answered at once from the old table, one call renews it
        urls, took = _timed(backends)
        answers.append(urls)
        assert took < 0.5, took  # the hub takes 0.8 s to answer
    assert answers == [["http://10.0.0.1:8000"]] * 5
    time.sleep(1.0)
    assert state.calls == 2  # the first answer and one renewal, not one per stale request
    assert backends.urls("m") == ["http://10.0.0.2:8000"]


def test_a_hub_that_does_not_answer_leaves_the_table_as_it_was(hub: tuple[Hub, str]) -> None:
    state, url = hub
    backends = Backends(url, ttl=0.1)
    backends.urls("m")
    backends.hub = "http://127.0.0.1:9"  # nothing listens there: refused at once
    time.sleep(0.2)
    assert backends.urls("m") == ["http://10.0.0.1:8000"]
    time.sleep(0.2)
    assert backends.urls("m") == ["http://10.0.0.1:8000"] and state.calls == 1
