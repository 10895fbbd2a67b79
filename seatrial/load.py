"""What the load saw: the raw request log (one ``Sample`` per request) and the numbers an SLO is
judged by — error rate, latency percentiles and how long the service took to recover.

Kept as a per-request log rather than pre-aggregated statistics so that any window (the whole
run, the fault window, the seconds after it) can be judged afterwards with the same code, and a
timeline plot can be drawn from the same data the verdict came from.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from seatrial.errors import ConfigError

_RUN = os.urandom(4).hex()
_SERIAL = itertools.count()


def chat(prompt: str) -> dict[str, object]:
    """An OpenAI-style chat completion of a few tokens for the reference model."""
    return {"model": "seatrial-tiny", "messages": [{"role": "user", "content": prompt}], "max_tokens": 8}


def fresh_prompt() -> str:
    """A prompt no request has sent before (this process's random id and a serial number).

    A probe that repeats one prompt is answered from the gateway's response cache after its first
    request, and so is blind to everything behind the cache: it reported 0 % errors while 40 of 70
    locust requests to inference failed in the same seconds of a zone outage."""
    return f"Say hello to probe {_RUN}-{next(_SERIAL)} in one word."


def request(url: str, headers: Mapping[str, str]) -> urllib.request.Request:
    """The request a probe or ROLL-008 sends: a real chat completion with a fresh prompt (so it
    misses the cache and reaches inference) when the target is an OpenAI-style chat endpoint,
    else a GET."""
    if url.rstrip("/").endswith("/chat/completions"):
        body = json.dumps(chat(fresh_prompt())).encode()
        return urllib.request.Request(  # noqa: S310 - the profile's own target
            url, data=body, headers={**headers, "Content-Type": "application/json"}, method="POST"
        )
    return urllib.request.Request(url, headers=dict(headers))  # noqa: S310


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the load started, when the request was sent
    latency: float  # seconds until it answered or failed
    ok: bool
    status: int = 0  # HTTP status, 0 when there was no answer
    error: str = ""  # why it failed, in one line (the exception or the status)
    port: int = 0  # the client's local port: which connection, to match with the server's logs


@dataclass(frozen=True)
class Event:
    t: float
    label: str


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@dataclass(frozen=True)
class Stats:
    """One window of the request log. Latency percentiles are over every request, failed ones
    included: a request that timed out after 2.5 s was 2.5 s of waiting for its user."""

    requests: int
    failed: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests else 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "errorRate": round(self.error_rate, 6),
            "rps": round(self.rps, 2),
            "p50Ms": round(self.p50_ms, 1),
            "p95Ms": round(self.p95_ms, 1),
            "p99Ms": round(self.p99_ms, 1),
        }


def stats(samples: Iterable[Sample], start: float = 0.0, end: float = math.inf) -> Stats:
    chosen = [s for s in samples if start <= s.t < end]
    ms = [s.latency * 1000 for s in chosen]
    first = min((s.t for s in chosen), default=0.0)
    last = max((s.t for s in chosen), default=0.0)
    span = (end if math.isfinite(end) else last) - (start if start > 0 else first)
    return Stats(
        len(chosen),
        sum(not s.ok for s in chosen),
        max(span, 0.0),
        percentile(ms, 0.50),
        percentile(ms, 0.95),
        percentile(ms, 0.99),
    )


def per_second(samples: Iterable[Sample]) -> list[dict[str, float]]:
    """Requests/s, error rate and latency percentiles (ms, answered requests) for every whole second:
    what the timeline plot draws and the recovery time is read from."""
    buckets: dict[int, list[Sample]] = {}
    for s in samples:
        buckets.setdefault(int(s.t), []).append(s)
    rows = []
    for sec in range(min(buckets, default=0), max(buckets, default=-1) + 1):
        b = buckets.get(sec, [])
        ok = [s.latency * 1000 for s in b if s.ok]
        rows.append(
            {
                "t": float(sec),
                "rps": float(len(b)),
                "errors": (sum(not s.ok for s in b) / len(b)) if b else 0.0,
                "p50": percentile(ok, 0.50),
                "p95": percentile(ok, 0.95),
                "p99": percentile(ok, 0.99),
            }
        )
    return rows


def recovery_seconds(samples: Sequence[Sample], fault_start: float, error_rate: float) -> float | None:
    """Seconds from the fault's start until every later whole second stays within the error
    budget; 0 when the fault never pushed a second over it; None when the log ends still over it
    (the service had not recovered when the load stopped)."""
    rows = per_second(s for s in samples if s.t >= fault_start)
    bad = [r["t"] for r in rows if r["errors"] > error_rate]
    if not bad:
        return 0.0
    if bad[-1] == rows[-1]["t"]:
        return None
    return max(0.0, bad[-1] + 1 - fault_start)


LOG_FIELDS = ["t", "latency_s", "ok", "status", "error", "port"]  # the request log's columns


def sample_of(row: Mapping[str, str | None], *, since: float = 0.0) -> Sample:
    """One row of the request log as a ``Sample``, its time taken ``since`` a start (epoch
    seconds for locust's live log, 0 for a written one). A row that is not one raises KeyError,
    ValueError or TypeError; the caller decides whether that is an error or a half-written line."""
    return Sample(
        float(row["t"] or "") - since,
        float(row["latency_s"] or ""),
        row["ok"] in ("1", "True", "true"),
        int(row.get("status") or 0),
        row.get("error") or "",
        int(row.get("port") or 0),
    )


def write_log(samples: Iterable[Sample], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(LOG_FIELDS)
        for s in samples:
            w.writerow([f"{s.t:.4f}", f"{s.latency:.4f}", int(s.ok), s.status, s.error, s.port])
    return path


def read_log(path: Path) -> list[Sample]:
    """The CSV ``write_log`` writes (and the locustfile's request hook appends to)."""
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        return [sample_of(r) for r in rows]
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a seatrial request log (t,latency_s,ok): {exc}") from None
