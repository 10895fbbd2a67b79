"""The OpenAI-compatible front: API-key auth, routing to inference replicas through the hub's
registry with timeouts and retries, a Redis response cache, and a drain on SIGTERM so that
rollouts and evictions lose no request.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import os
import threading
import time
from typing import Any

from stack.common import (
    HttpError,
    Redis,
    RedisBusy,
    Request,
    Service,
    env_float,
    http_json,
    log,
    read_secret,
    setup_logging,
)

SLOW_SECONDS = 1.0  # a request this slow is logged with where its time went (clients give up at 2 s)


class Backends:
    """The hub's answer, kept for a short while and kept on hub errors: a hub restart must not
    stop traffic that already knows where to go."""

    def __init__(self, hub: str, ttl: float) -> None:
        self.hub = hub
        self.ttl = ttl
        self._cache: dict[str, tuple[float, list[str]]] = {}
        self._rr = itertools.count()
        self._lock = threading.Lock()
        self._refreshing: set[str] = set()  # models whose table a background call is renewing
        self.answered = False  # the hub has answered once: there is a routing table to serve from

    def urls(self, model: str) -> list[str]:
        """The replicas to try, in round-robin order. A table past its TTL is still served while
        one background call asks the hub for a fresh one: a request never waits on the hub once
        it has answered. Each call looks the hub's name up, and a lookup has no timeout: a slow
        hub or a slow answer of cluster DNS held every request that found the table stale, all
        at once, past the 2 s a client waits (three uncached requests timed out together in
        rolling-restart's steady state, in one run of four). Only with no table does one wait."""
        with self._lock:
            fetched, urls = self._cache.get(model, (0.0, []))
            stale = time.monotonic() - fetched > self.ttl
            behind = stale and bool(urls) and model not in self._refreshing
            if behind:
                self._refreshing.add(model)
        if behind:
            threading.Thread(target=self._refresh, args=(model, urls), daemon=True).start()
        elif stale and not urls:
            urls = self._refresh(model, urls)
        if not urls:
            return []
        start = next(self._rr) % len(urls)
        return urls[start:] + urls[:start]

    def _refresh(self, model: str, urls: list[str]) -> list[str]:
        """Ask the hub for the model's replicas; on any failure keep ``urls`` for another TTL."""
        try:
            status, body = http_json("GET", f"{self.hub}/v1/backends", headers={"X-Model": model}, timeout=1.0)
            if status == 200:
                fresh = [b["url"] for b in body["backends"]]
                if fresh or not urls:
                    urls = fresh
                else:
                    # A hub back from an outage has an empty registry until the replicas
                    # register again (every few seconds; their leases ran out while it was
                    # gone): keep the table that worked, a replica that is really gone is
                    # forgotten when it fails (3 s of 503s at a zone's return, zone-outage).
                    log.warning("the hub knows no backend for %s yet; keeping the last %d", model, len(urls))
                with self._lock:
                    self._cache[model] = (time.monotonic(), urls)
                    self.answered = True
        except OSError as exc:
            # keep the last answer for another TTL: a dead hub must not cost every request a
            # timeout (found by the zone-outage experiment)
            log.warning("hub unreachable, using the last known backends: %s", exc)
            with self._lock:
                self._cache[model] = (time.monotonic(), urls)
        finally:
            with self._lock:
                self._refreshing.discard(model)
        return urls

    def forget(self, model: str, url: str) -> None:
        """A replica that did not answer leaves the table until the hub is asked again; the
        others stay (dropping the whole table sent every request to the hub). The last one stays
        too, and the hub is asked at once: an empty table answers every request with 503, while
        a replica that failed one connect may well answer the next (a load balancer's panic
        threshold does the same)."""
        with self._lock:
            fetched, urls = self._cache.get(model, (0.0, []))
            rest = [u for u in urls if u != url]
            self._cache[model] = (fetched, rest) if rest else (0.0, urls)


def cache_key(body: dict[str, Any]) -> str:
    canonical = json.dumps({k: body.get(k) for k in ("model", "messages", "max_tokens", "temperature")}, sort_keys=True)
    return "gw:cache:" + hashlib.sha256(canonical.encode()).hexdigest()


def main() -> None:
    setup_logging("gateway")
    api_key = read_secret("API_KEY")
    model_default = os.environ.get("MODEL_NAME", "seatrial-tiny")
    hub = os.environ.get("HUB_URL", "http://hub:8080")
    backends = Backends(hub, env_float("BACKENDS_TTL_SECONDS", 2))
    redis_host = os.environ.get("REDIS_HOST", "redis")
    redis = Redis(redis_host, int(os.environ.get("REDIS_PORT", "6379")), read_secret("REDIS_PASSWORD"))
    cache_ttl = int(os.environ.get("CACHE_TTL_SECONDS", "300"))
    # A cache whose node died answers nothing: every call would wait out its timeout, one at a
    # time, and the front door with it (found by the node-failure experiment). After a failure
    # the cache is skipped for a while, then tried again.
    cache_pause = env_float("CACHE_PAUSE_SECONDS", 5)
    cache_down_until = [0.0]
    # and while one request waits on the cache, the others do not queue behind it: a miss
    cache_wait = env_float("CACHE_WAIT_SECONDS", 0.1)

    def cached_call(*args: str) -> Any:
        if time.monotonic() < cache_down_until[0]:
            raise ConnectionError("cache paused after a failure")
        try:
            return redis.command(*args, wait=cache_wait)
        except RedisBusy:
            raise
        except Exception:
            cache_down_until[0] = time.monotonic() + cache_pause
            raise

    upstream_timeout = env_float("UPSTREAM_TIMEOUT_SECONDS", 30)
    # a replica that died without a word never answers a SYN: give up on it fast, try the next
    upstream_connect_timeout = env_float("UPSTREAM_CONNECT_TIMEOUT_SECONDS", 1)
    attempts = int(os.environ.get("UPSTREAM_ATTEMPTS", "3"))
    svc = Service("gateway", int(os.environ.get("PORT", "8080")))
    m = svc.metrics

    def authorized(r: Request) -> None:
        header = r.headers.get("Authorization") or ""
        given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HttpError(401, "missing or wrong API key (Authorization: Bearer <key>)")

    def healthz(_r: Request) -> tuple[int, Any]:
        return 200, {"status": "ok"}

    def readyz(_r: Request) -> tuple[int, Any]:
        if svc.draining.is_set():
            return 503, {"status": "draining"}
        # Not Redis: the cache is optional (a miss goes to inference), and a readiness probe on a
        # shared dependency turns its outage into every replica leaving the Service at once
        # (found by the cache-restart experiment). The hub only until it has answered once: after
        # that the gateway serves from its last routing table, and a dead hub node must not take
        # every gateway out of the Service with it (found by the node-failure experiment).
        if backends.answered:
            return 200, {"status": "ok"}
        problems = []
        try:
            status, _ = http_json("GET", f"{hub}/healthz", timeout=1.0)
            if status != 200:
                problems.append(f"hub: HTTP {status}")
        except OSError as exc:
            problems.append(f"hub: {exc}")
        return (503, {"status": "; ".join(problems)}) if problems else (200, {"status": "ok"})

    def models(r: Request) -> tuple[int, Any]:
        authorized(r)
        return 200, {"object": "list", "data": [{"id": model_default, "object": "model", "owned_by": "seatrial"}]}

    def chat(r: Request) -> tuple[int, Any]:
        started = time.monotonic()
        code = 500
        spent: dict[str, float] = {}  # where a slow request's time went, for its log line
        try:
            authorized(r)
            body = r.json()
            if body.get("stream"):
                raise HttpError(400, "streaming is not supported by this gateway")
            model = body.setdefault("model", model_default)
            key = cache_key(body)
            try:
                cached = cached_call("GET", key)
            except Exception as exc:
                log.warning("cache read failed: %s", exc)
                cached = None
            spent["cache"] = time.monotonic() - started
            if cached is not None:
                m.inc("gateway_cache_hits_total")
                code = 200
                return 200, json.loads(cached)
            m.inc("gateway_cache_misses_total")
            last = "no inference replica is registered for this model"
            routes = backends.urls(model)[:attempts]
            spent["routing"] = time.monotonic() - started - spent["cache"]
            for url in routes:
                try:
                    status, answer = http_json(
                        "POST",
                        f"{url}/v1/chat/completions",
                        body,
                        timeout=upstream_timeout,
                        connect_timeout=upstream_connect_timeout,
                    )
                except OSError as exc:
                    last = f"{url}: {exc}"
                    backends.forget(model, url)
                    m.inc("gateway_upstream_retries_total")
                    continue
                if status == 503:  # loading or draining: another replica may answer
                    last = f"{url}: 503 {answer}"
                    m.inc("gateway_upstream_retries_total")
                    continue
                if status == 200:
                    try:
                        cached_call("SET", key, json.dumps(answer), "EX", str(cache_ttl))
                    except Exception as exc:
                        log.warning("cache write failed: %s", exc)
                code = status
                return status, answer
            code = 503
            raise HttpError(503, f"no inference replica answered: {last}")
        except HttpError as exc:
            code = exc.status
            raise
        finally:
            elapsed = time.monotonic() - started
            if elapsed > SLOW_SECONDS:
                parts = ", ".join(f"{k} {v:.2f} s" for k, v in spent.items())
                log.warning("slow request: %.2f s, answered %d (%s, then upstream)", elapsed, code, parts)
            m.inc("gateway_requests_total", code=str(code))
            if code >= 500:
                m.inc("gateway_errors_total")
            m.observe("gateway_request_seconds", elapsed)

    svc.route("GET", "/healthz", healthz)
    svc.route("GET", "/readyz", readyz)
    svc.route("GET", "/v1/models", models)
    svc.route("POST", "/v1/chat/completions", chat)
    svc.serve(drain_delay=env_float("DRAIN_SECONDS", 0))


if __name__ == "__main__":
    main()
