"""The run as a model: judged checks, chaos experiments and their steps, waivers and the gate's
policy. Every format in this package is written from it.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seatrial import load
from seatrial.checks.model import SEVERITIES, Finding, Result, Severity
from seatrial.errors import ConfigError, yaml_problem
from seatrial.profile import Slos


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80] or "x"


SCHEMA = "seatrial.dev/verdict/v1"
WAIVER_FIELDS = {"check", "target", "reason", "owner", "expires"}


@dataclass(frozen=True)
class Waiver:
    check: str
    target: str  # namespace/Kind/name, or Kind/name (any namespace), or * (every object)
    reason: str
    owner: str
    expires: dt.date

    def covers(self, f: Finding) -> bool:
        if f.check != self.check:
            return False
        if self.target == "*":
            return True
        full, short = str(f.target), f"{f.target.kind}/{f.target.name}"
        return self.target in (full, short)


def load_waivers(path: Path | None) -> list[Waiver]:
    if path is None or not path.exists():
        return []
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"waivers file {path} is not valid YAML: {yaml_problem(exc)}") from None
    items = doc.get("waivers") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ConfigError(f"{path}: expected a top-level 'waivers:' list")
    out = []
    for i, w in enumerate(items):
        where = f"{path}: waivers[{i}]"
        if not isinstance(w, dict):
            raise ConfigError(f"{where} must be a mapping")
        unknown = set(w) - WAIVER_FIELDS
        if unknown:
            raise ConfigError(
                f"{where}: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(WAIVER_FIELDS))}"
            )
        missing = [k for k in sorted(WAIVER_FIELDS) if not w.get(k)]
        if missing:
            raise ConfigError(f"{where}: {', '.join(missing)} required (a waiver says why, who, and until when)")
        expires = w["expires"]
        if not isinstance(expires, dt.date):
            try:
                expires = dt.date.fromisoformat(str(expires))
            except ValueError:
                raise ConfigError(f"{where}: expires must be a date (YYYY-MM-DD), got {expires!r}") from None
        out.append(Waiver(str(w["check"]), str(w["target"]), str(w["reason"]), str(w["owner"]), expires))
    return out


@dataclass(frozen=True)
class Attachment:
    """Evidence beside a result: an object excerpt, events, a journal, a plot. Text is redacted
    when written; bytes (images) are written as they are."""

    name: str
    body: str | bytes
    mime: str = "text/plain"

    @property
    def suffix(self) -> str:
        return {"application/json": "json", "image/png": "png", "text/csv": "csv", "application/yaml": "yaml"}.get(
            self.mime, "txt"
        )

    @property
    def filename(self) -> str:
        return f"{slug(self.name)}.{self.suffix}"


@dataclass
class Judged:
    """A result after the gate's policy: what counts, what is waived, what expired."""

    result: Result
    status: str  # passed | failed | reported (below --fail-on) | waived | skipped | error
    open: tuple[Finding, ...] = ()
    waived: tuple[tuple[Finding, Waiver], ...] = ()
    expired: tuple[tuple[Finding, Waiver], ...] = ()
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def fails_run(self) -> bool:
        return self.status in ("failed", "error")


def judge(results: Iterable[Result], *, fail_on: Severity, waivers: list[Waiver], today: dt.date) -> list[Judged]:
    threshold = SEVERITIES.index(fail_on)
    out = []
    for r in results:
        if r.status in ("skipped", "error", "passed"):
            out.append(Judged(r, r.status))
            continue
        open_, waived, expired = [], [], []
        for f in r.findings:
            w = next((w for w in waivers if w.covers(f)), None)
            if w is None:
                open_.append(f)
            elif w.expires < today:
                expired.append((f, w))
            else:
                waived.append((f, w))
        if expired:
            status = "failed"
        elif not open_:
            status = "waived"
        elif SEVERITIES.index(r.check.severity) > threshold:
            status = "reported"
        else:
            status = "failed"
        out.append(Judged(r, status, tuple(open_), tuple(waived), tuple(expired)))
    return out


# ---- chaos experiments -------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One Chaos Toolkit activity as it ran: a steady-state probe, an action, or a rollback."""

    phase: str  # steady-state-before | method | steady-state-after | rollback
    name: str
    status: str  # passed | failed | error | skipped
    started: dt.datetime
    ended: dt.datetime
    output: str = ""


@dataclass
class Experiment:
    """One chaos experiment as a run reports it: its steps, the load's request log with the fault
    window and the actions on the same clock (seconds since the load started), and the SLOs it is
    judged by. The numbers are computed from the log here, so the verdict, the summary and the
    plot cannot disagree."""

    name: str  # stable ID, e.g. the experiment file's stem
    title: str
    slos: Slos
    steps: list[Step] = field(default_factory=list)
    samples: list[load.Sample] = field(default_factory=list)
    fault: tuple[float, float] | None = None
    events: list[load.Event] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)  # journal, locust statistics, …

    @property
    def overall(self) -> load.Stats:
        return load.stats(self.samples)

    @property
    def from_fault(self) -> load.Stats:
        """The window the SLO is judged on: from the fault's start to the end of the load."""
        return load.stats(self.samples, self.fault[0] if self.fault else 0.0)

    @property
    def recovery(self) -> float | None:
        return load.recovery_seconds(self.samples, self.fault[0] if self.fault else 0.0, self.slos.error_rate)

    def violations(self) -> list[str]:
        if not self.samples:
            return ["no requests were recorded: the load did not run, so the SLOs cannot be judged"]
        out = []
        w, s = self.from_fault, self.slos
        if w.error_rate > s.error_rate:
            out.append(
                f"error rate {w.error_rate:.2%} from the fault on ({w.failed} of {w.requests}), SLO {s.error_rate:.2%}"
            )
        if w.p99_ms > s.p99_ms:
            out.append(f"p99 latency {w.p99_ms:.0f} ms from the fault on, SLO {s.p99_ms:.0f} ms")
        rec = self.recovery
        if rec is None:
            out.append("still over the error budget when the load stopped: no recovery")
        elif rec > s.recovery_seconds:
            out.append(f"recovered after {rec:.0f} s, SLO {s.recovery_seconds:.0f} s")
        out += [
            f"steady state not met after the fault: {st.name}: {st.output}".rstrip(": ")
            for st in self.steps
            if st.phase == "steady-state-after" and st.status == "failed"
        ]
        return out

    @property
    def slo_status(self) -> str:
        """The SLO case's own status: ``error`` when nothing was measured, so nothing judged."""
        if not self.violations():
            return "passed"
        return "failed" if self.samples else "error"

    @property
    def status(self) -> str:
        """``error`` when the experiment itself did not hold (the system was unhealthy before the
        fault, an action or a rollback broke): its numbers would say nothing about resilience."""
        if any(st.status == "error" for st in self.steps) or any(
            st.status == "failed" and st.phase in ("steady-state-before", "rollback") for st in self.steps
        ):
            return "error"
        return "failed" if self.violations() else "passed"


# ---- the run -----------------------------------------------------------------------------
def new_run_id() -> str:
    """Sortable by time, unique across parallel runs."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:4]


@dataclass
class Run:
    kind: str  # conformance | chaos
    mode: str  # static | live
    target: Mapping[str, Any]
    judged: list[Judged]
    fail_on: Severity
    started: dt.datetime
    finished: dt.datetime
    run_id: str = field(default_factory=new_run_id)
    experiments: list[Experiment] = field(default_factory=list)
    facts: Mapping[str, Any] = field(default_factory=dict)  # the cluster's: server, context, nodes, GPUs

    @property
    def verdict(self) -> str:
        bad = any(j.fails_run for j in self.judged) or any(e.status != "passed" for e in self.experiments)
        return "fail" if bad else "pass"

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {s: {} for s in SEVERITIES}
        for j in self.judged:
            bucket = out[j.result.check.severity]
            bucket[j.status] = bucket.get(j.status, 0) + 1
        return out
