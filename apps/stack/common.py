"""What every reference-stack service shares: an HTTP server that drains on SIGTERM, Prometheus
metrics, and small clients for Redis (RESP) and etcd (its v3 JSON gateway).

Standard library only: the image is a bare Debian Python and no package index is reachable
where the local cluster builds it. The services are test beds, so each behaviour a check or an
experiment relies on (cold start, graceful drain, retries, cache hits) is explicit here.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("stack")

Handler = Callable[["Request"], tuple[int, Any]]


def setup_logging(name: str) -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"),
        format=f"%(asctime)s {name} %(levelname)s %(message)s",
        stream=sys.stdout,
    )


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def read_secret(env: str) -> str:
    """Secrets come as files (``<NAME>_FILE``), never as literal env values, so they stay out of
    ``kubectl describe`` and process listings."""
    path = os.environ.get(f"{env}_FILE")
    if not path:
        raise SystemExit(f"{env}_FILE is not set: mount the Secret and point {env}_FILE at it")
    return Path(path).read_text().strip()


# ---- metrics -------------------------------------------------------------------------------
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Counters, gauges and histograms in the Prometheus text format, keyed by name and labels."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._types: dict[str, str] = {}
        self._hist: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._types.setdefault(name, "counter")
            self._values[key] = self._values.get(key, 0.0) + value

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._types.setdefault(name, "gauge")
            self._values[(name, tuple(sorted(labels.items())))] = value

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._types.setdefault(name, "histogram")
            counts = self._hist.setdefault(key, [0.0] * (len(BUCKETS) + 2))  # buckets, +Inf, sum
            for i, bound in enumerate(BUCKETS):
                if value <= bound:
                    counts[i] += 1
            counts[len(BUCKETS)] += 1
            counts[len(BUCKETS) + 1] += value

    def get(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))), 0.0)

    def render(self) -> str:
        def fmt(labels: Iterable[tuple[str, str]]) -> str:
            inner = ",".join(f'{k}="{v}"' for k, v in labels)
            return f"{{{inner}}}" if inner else ""

        lines: list[str] = []
        with self._lock:
            for name, kind in sorted(self._types.items()):
                lines.append(f"# TYPE {name} {kind}")
                for (n, labels), v in sorted(self._values.items()):
                    if n == name:
                        lines.append(f"{n}{fmt(labels)} {v:g}")
                for (n, labels), counts in sorted(self._hist.items()):
                    if n != name:
                        continue
                    for bound, c in zip(BUCKETS, counts, strict=False):
                        lines.append(f"{n}_bucket{fmt((*labels, ('le', f'{bound:g}')))} {c:g}")
                    lines.append(f"{n}_bucket{fmt((*labels, ('le', '+Inf')))} {counts[len(BUCKETS)]:g}")
                    lines.append(f"{n}_count{fmt(labels)} {counts[len(BUCKETS)]:g}")
                    lines.append(f"{n}_sum{fmt(labels)} {counts[len(BUCKETS) + 1]:g}")
        return "\n".join(lines) + "\n"


# ---- HTTP ----------------------------------------------------------------------------------
class Request:
    def __init__(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        self.method = handler.command
        self.path = handler.path.split("?", 1)[0]
        self.headers = handler.headers
        self.body = body

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as exc:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {exc}") from None


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Text(str):
    """A handler result sent as text/plain (metrics) rather than JSON."""


class Service:
    """A threaded HTTP server whose SIGTERM handling is what zero-downtime rollouts rely on:
    readiness turns 503 at once, the listener closes, in-flight requests finish, then exit."""

    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port
        self.metrics = Metrics()
        self.routes: dict[tuple[str, str], Handler] = {}
        self.draining = threading.Event()
        self.inflight = 0
        self._inflight_lock = threading.Lock()
        self.route("GET", "/metrics", lambda _r: (200, Text(self.metrics.render())))

    def route(self, method: str, path: str, fn: Handler) -> None:
        self.routes[(method, path)] = fn

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s %s", self.address_string(), format % args)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = Request(self, body)
                fn = service.routes.get((req.method, req.path))
                with service._inflight_lock:
                    service.inflight += 1
                try:
                    if fn is None:
                        status, payload = 404, {"error": f"no route {req.method} {req.path}"}
                    else:
                        status, payload = fn(req)
                except HttpError as exc:
                    status, payload = exc.status, {"error": str(exc)}
                except Exception as exc:
                    log.exception("handler failed")
                    status, payload = 500, {"error": f"{type(exc).__name__}: {exc}"}
                finally:
                    with service._inflight_lock:
                        service.inflight -= 1
                if isinstance(payload, Text):
                    data, ctype = payload.encode(), "text/plain; version=0.0.4"
                else:
                    data, ctype = json.dumps(payload).encode(), "application/json"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                if service.draining.is_set():
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        return H

    def serve(self, on_drain: Callable[[], None] | None = None, drain_delay: float = 0.0) -> None:
        """Serve until SIGTERM, then: readiness 503 and ``on_drain`` (e.g. leave a registry) at once,
        keep answering for ``drain_delay`` while routers catch up, close, finish in-flight, exit."""
        server = _Server(("0.0.0.0", self.port), self._handler())  # noqa: S104 - a pod's own IP
        server.daemon_threads = False  # server_close() waits for in-flight requests
        server.block_on_close = True

        def drain() -> None:
            if on_drain is not None:
                try:
                    on_drain()
                except Exception as exc:
                    log.warning("on drain: %s", exc)
            time.sleep(drain_delay)
            server.shutdown()

        def stop(signum: int, _frame: object) -> None:
            if self.draining.is_set():
                return
            log.info("signal %s: draining (%d in flight)", signum, self.inflight)
            self.draining.set()
            threading.Thread(target=drain, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("%s listening on :%d", self.name, self.port)
        server.serve_forever(poll_interval=0.2)
        server.server_close()
        log.info("%s stopped cleanly", self.name)


class _Server(ThreadingHTTPServer):
    """socketserver listens with a backlog of 5: a burst of new connections (three gateways
    sending cache misses at once) overflowed it, the kernel dropped the SYNs, and callers with a
    1 s connect timeout gave up on a healthy replica (2 s of 503s at a load's start). Production
    servers listen with hundreds (uvicorn 2048)."""

    request_queue_size = 512


def http_json(
    method: str,
    url: str,
    body: Any = None,
    *,
    timeout: float = 2.0,
    connect_timeout: float | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One JSON request; an HTTP error status is returned, a connection failure raises OSError.

    ``connect_timeout`` bounds the TCP connect alone (default: ``timeout``). A peer that died
    without a word (its pod killed, its node gone) never answers a SYN: a short connect timeout
    lets a caller retry elsewhere in a second instead of waiting out a generous read timeout."""
    parts = urllib.parse.urlsplit(url)
    data = None if body is None else json.dumps(body).encode()
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=connect_timeout or timeout)
    try:
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(timeout)
        path = parts.path or "/"
        conn.request(method, f"{path}?{parts.query}" if parts.query else path, body=data,
                     headers={"Content-Type": "application/json", **(headers or {})})  # fmt: skip
        resp = conn.getresponse()
        raw = resp.read()
    except http.client.HTTPException as exc:  # a malformed or cut answer is a connection failure too
        raise ConnectionError(f"{url}: {type(exc).__name__}: {exc}") from exc
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw) if raw else None
    except ValueError:
        return resp.status, {"error": raw.decode(errors="replace")}


# ---- Redis (RESP2) -------------------------------------------------------------------------
class RedisBusy(ConnectionError):
    """The shared connection was in use for longer than the caller would wait."""


class Redis:
    """Enough of the Redis protocol for a cache and a checkpoint: AUTH, PING, GET, SET, DEL."""

    def __init__(self, host: str, port: int = 6379, password: str | None = None, timeout: float = 1.0) -> None:
        self.addr = (host, port)
        self.password = password
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buf = b""
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    def __enter__(self) -> Redis:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.addr, timeout=self.timeout)
        self._sock, self._buf = sock, b""
        if self.password:
            self._roundtrip("AUTH", self.password)
        return sock

    def _readline(self) -> bytes:
        assert self._sock is not None
        while b"\r\n" not in self._buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def _read_exact(self, n: int) -> bytes:
        assert self._sock is not None
        while len(self._buf) < n + 2:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self._buf += chunk
        data, self._buf = self._buf[:n], self._buf[n + 2 :]
        return data

    def _reply(self) -> Any:
        line = self._readline()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._read_exact(n)
        if kind == b"*":
            return [self._reply() for _ in range(int(rest))]
        raise ConnectionError(f"unexpected redis reply {line[:40]!r}")

    def _roundtrip(self, *args: str | bytes) -> Any:
        assert self._sock is not None
        parts = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        msg = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
        self._sock.sendall(msg)
        return self._reply()

    def command(self, *args: str | bytes, wait: float | None = None) -> Any:
        """One command on the shared connection. ``wait``: how long to queue behind another
        caller's command before giving up with ``RedisBusy`` (default: as long as it takes). A
        cache that answers a request late is worse than a miss: callers queued behind a dead
        server's connect timeout each waited it out in turn (node-failure saw 2 s stalls)."""
        if not self._lock.acquire(timeout=-1 if wait is None else wait):
            raise RedisBusy("the redis connection is busy with another command")
        try:
            # one reconnect, for a kept connection only (the server may have restarted since);
            # a fresh connect that failed would fail again, as slowly
            for attempt in (1, 2) if self._sock is not None else (2,):
                try:
                    if self._sock is None:
                        self._connect()
                    return self._roundtrip(*args)
                except (OSError, ConnectionError) as exc:
                    if self._sock is not None:
                        self._sock.close()
                    self._sock = None
                    # a server that restarted closes or resets the kept connection at once; one
                    # that does not answer in time is gone, and its reconnect would wait as long
                    if attempt == 2 or isinstance(exc, TimeoutError):
                        raise
            return None
        finally:
            self._lock.release()


class RedisError(Exception):
    pass


# ---- etcd (v3 JSON gateway) ----------------------------------------------------------------
def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


class Etcd:
    """etcd's gRPC gateway speaks JSON over HTTP, which is all a registry needs."""

    def __init__(self, endpoints: list[str], timeout: float = 2.0) -> None:
        self.endpoints = endpoints
        self.timeout = timeout

    def _call(self, path: str, body: dict[str, Any]) -> Any:
        last: Exception | None = None
        for ep in self.endpoints:
            try:
                status, data = http_json("POST", f"{ep}{path}", body, timeout=self.timeout)
            except OSError as exc:
                last = exc
                continue
            if status == 200:
                return data
            last = RuntimeError(f"etcd {path}: {status} {data}")
        raise ConnectionError(f"no etcd endpoint answered: {last}")

    def grant(self, ttl: int) -> str:
        return str(self._call("/v3/lease/grant", {"TTL": ttl})["ID"])

    def put(self, key: str, value: str, lease: str | None = None) -> None:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = lease
        self._call("/v3/kv/put", body)

    def delete(self, key: str) -> None:
        self._call("/v3/kv/deleterange", {"key": _b64(key)})

    def prefix(self, prefix: str) -> dict[str, str]:
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        data = self._call("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(end)})
        return {
            base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", "")).decode()
            for kv in data.get("kvs", [])
        }

    def healthy(self) -> bool:
        try:
            self._call("/v3/maintenance/status", {})
        except ConnectionError:
            return False
        return True


# ---- Kubernetes API from inside a pod ------------------------------------------------------
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def kube_get(path: str, timeout: float = 3.0) -> Any:
    """GET the API with the pod's own ServiceAccount token (only workloads that need it mount one)."""
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    ctx = ssl.create_default_context(cafile=str(SA_DIR / "ca.crt"))
    token = (SA_DIR / "token").read_text().strip()
    req = urllib.request.Request(f"https://{host}:{port}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:  # noqa: S310
        return json.loads(resp.read())


def every(seconds: float, fn: Callable[[], None], stop: threading.Event) -> threading.Thread:
    """Run ``fn`` periodically in a daemon thread until ``stop`` is set; errors are logged, not fatal."""

    def loop() -> None:
        while not stop.is_set():
            try:
                fn()
            except Exception as exc:  # a dependency may be down for a while: keep trying
                log.warning("%s: %s", getattr(fn, "__name__", "task"), exc)
            stop.wait(seconds)

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def now() -> float:
    return time.time()
