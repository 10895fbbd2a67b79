"""What a run leaves behind, and the gate's policy.

``write`` turns one ``Run`` — judged checks and/or chaos experiments — into ``reports/<run-id>/``:
``verdict.json``, ``summary.md`` (also printed last on the terminal), ``junit.xml`` (one case
per check and per experiment step), ``allure-results/`` (the same cases with labels, the cluster's
facts and attachments: object excerpts, events, journals, load statistics, timeline plots), PNG
plots, and ``reports/latest`` pointing at the run. The policy: which severities fail the run
(``--fail-on``) and which findings are waived (``waivers.yaml``).

Every format is written here from the one model, not by whichever runner produced the results,
so a conformance run and a chaos run read the same and a new format is one function. Secret
values never reach a report: findings carry names and reasons, never values, and every text
written here passes through ``redact`` as a second line of defence.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seatrial import load
from seatrial.checks.model import SEVERITIES, Finding, Result, Severity
from seatrial.checks.registry import FAMILIES
from seatrial.errors import ConfigError, yaml_problem
from seatrial.profile import Slos

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
        return f"{_slug(self.name)}.{self.suffix}"


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


# ---- redaction ---------------------------------------------------------------------------
_TOKENISH = re.compile(
    r"(sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{36,}|hf_[A-Za-z0-9]{30,}|(AKIA|ASIA)[0-9A-Z]{16}"
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}|Bearer\s+[A-Za-z0-9._~+/=-]{8,})"
)


def _spellings(secret: str) -> set[str]:
    """A secret as it may be written: plain, base64 (a Secret's data, a basic-auth header) and
    URL-encoded (a password inside a URL)."""
    b64 = base64.b64encode(secret.encode()).decode()
    return {secret, b64, b64.rstrip("="), urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Known secret values, in each spelling, and anything token-shaped become <redacted>."""
    known = {form for s in secrets if s and len(s) >= 4 for form in _spellings(s)}
    for s in sorted(known, key=len, reverse=True):
        text = text.replace(s, "<redacted>")
    return _TOKENISH.sub("<redacted>", text)


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


def _finding(f: Finding) -> dict[str, str]:
    return {"target": str(f.target), "field": f.field, "message": f.message}


def _findings_doc(j: Judged) -> dict[str, list[dict[str, str]]]:
    return {
        "findings": [_finding(f) for f in j.open],
        "waived": [
            {**_finding(f), "reason": w.reason, "owner": w.owner, "expires": w.expires.isoformat()} for f, w in j.waived
        ],
        "expiredWaivers": [{**_finding(f), "owner": w.owner, "expired": w.expires.isoformat()} for f, w in j.expired],
    }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80] or "x"


def _exp_dir(e: Experiment) -> str:
    return f"experiments/{_slug(e.name)}"


def _evidence_dir(j: Judged) -> str:
    return f"evidence/{_slug(j.result.check.id)}"


def _load_doc(e: Experiment) -> dict[str, Any]:
    """What the load saw: the whole run, the window from the fault on, and the recovery time."""
    rec = e.recovery
    return {
        "overall": e.overall.as_dict(),
        "fromFault": e.from_fault.as_dict(),
        "recoverySeconds": None if rec is None else round(rec, 1),
    }


def _experiment_doc(e: Experiment) -> dict[str, Any]:
    load_doc = _load_doc(e)
    return {
        "name": e.name,
        "title": e.title,
        "status": e.status,
        "violations": e.violations(),
        "slos": {"errorRate": e.slos.error_rate, "p99Ms": e.slos.p99_ms, "recoverySeconds": e.slos.recovery_seconds},
        "load": {k: load_doc[k] for k in ("overall", "fromFault")},
        "recoverySeconds": load_doc["recoverySeconds"],
        "fault": list(e.fault) if e.fault else None,
        "events": [{"t": ev.t, "label": ev.label} for ev in e.events],
        "steps": [
            {
                "phase": s.phase,
                "name": s.name,
                "status": s.status,
                "started": s.started.isoformat(),
                "ended": s.ended.isoformat(),
                "output": s.output,
            }
            for s in e.steps
        ],
        "timeline": f"{_exp_dir(e)}/timeline.png" if e.samples else None,
    }


def verdict_doc(run: Run) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "run": {
            "id": run.run_id,
            "kind": run.kind,
            "mode": run.mode,
            "started": run.started.isoformat(),
            "finished": run.finished.isoformat(),
            "failOn": run.fail_on,
            "target": dict(run.target),
            "facts": dict(run.facts),
        },
        "verdict": run.verdict,
        "counts": run.counts(),
        "checks": [
            {
                "id": j.result.check.id,
                "title": j.result.check.title,
                "family": j.result.check.family,
                "severity": j.result.check.severity,
                "status": j.status,
                "reason": j.result.reason,
                "fix": j.result.check.fix,
                **_findings_doc(j),
                "evidence": [f"{_evidence_dir(j)}/{a.filename}" for a in j.attachments],
            }
            for j in run.judged
        ],
        "experiments": [_experiment_doc(e) for e in run.experiments],
    }


def check_lines(j: Judged, *, fix: bool = False) -> list[str]:
    """A judged check's open findings, expired and active waivers, one line each; with ``fix``,
    the check's fix last when something is open."""
    return (
        [f"{f.target}{f' ({f.field})' if f.field else ''}: {f.message}" for f in j.open]
        + [f"waiver for {f.target} by {w.owner} EXPIRED on {w.expires}: {w.reason}" for f, w in j.expired]
        + [f"{f.target}: waived by {w.owner} until {w.expires}: {w.reason}" for f, w in j.waived]
        + ([f"fix: {j.result.check.fix}"] if fix and j.open else [])
    )


def summary_md(run: Run) -> str:
    icon = "PASS" if run.verdict == "pass" else "FAIL"
    lines = [
        f"# seatrial {run.kind}: {icon}",
        "",
        f"Run `{run.run_id}`, {run.mode} mode, target {run.target.get('name', '?')};"
        f" fails on severity ≥ {run.fail_on}.",
    ]
    if run.judged:
        lines += [
            "",
            "| severity | passed | failed | reported | waived | skipped | error |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for sev, count in run.counts().items():
            cells = " | ".join(
                str(count.get(k, 0)) for k in ("passed", "failed", "reported", "waived", "skipped", "error")
            )
            lines.append(f"| {sev} | {cells} |")
    for title, statuses in (
        ("Failed", ("failed", "error")),
        ("Reported (below the gate)", ("reported",)),
        ("Waived", ("waived",)),
    ):
        chosen = [j for j in run.judged if j.status in statuses]
        if not chosen:
            continue
        lines += ["", f"## {title}", ""]
        for j in chosen:
            c = j.result.check
            lines.append(f"- **{c.id}** [{c.severity}] {c.title}")
            if j.status == "error":
                lines.append(f"  - could not run: {j.result.reason}")
            lines += [f"  - {line}" for line in check_lines(j)]
            if j.status in ("failed", "reported"):
                lines.append(f"  - fix: {c.fix}")
    if run.experiments:
        lines += [
            "",
            "## Experiments",
            "",
            "| experiment | status | requests | failed | error rate (SLO) | p99 ms (SLO) | recovery s (SLO) |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for e in run.experiments:
            w, s, rec = e.from_fault, e.slos, e.recovery
            lines.append(
                f"| {e.name} | {e.status} | {e.overall.requests} | {e.overall.failed} "
                f"| {w.error_rate:.2%} ({s.error_rate:.2%}) | {w.p99_ms:.0f} ({s.p99_ms:.0f}) "
                f"| {'not recovered' if rec is None else f'{rec:.0f}'} ({s.recovery_seconds:.0f}) |"
            )
        for e in run.experiments:
            bad = e.violations() + [
                f"{st.phase} {st.name}: {st.status} {st.output}".rstrip()
                for st in e.steps
                if st.status in ("error", "failed")
            ]
            if bad:
                lines += ["", f"**{e.name}** ({e.status}):", *[f"- {b}" for b in dict.fromkeys(bad)]]
            if e.samples:
                lines.append(f"\n![{e.name} timeline]({_exp_dir(e)}/timeline.png)")
    return "\n".join(lines) + "\n"


# ---- JUnit -------------------------------------------------------------------------------
def _seconds(a: dt.datetime, b: dt.datetime) -> str:
    return f"{max((b - a).total_seconds(), 0.0):.3f}"


def junit_xml(run: Run) -> str:
    """One test case per check and per experiment step (plus one per experiment for its SLOs), in
    the common JUnit shape every CI reads."""
    root = ET.Element("testsuites", name=f"seatrial {run.kind} {run.run_id}")

    def suite(name: str) -> ET.Element:
        return ET.SubElement(root, "testsuite", name=name, timestamp=run.started.isoformat(timespec="seconds"))

    def case(parent: ET.Element, classname: str, name: str, *, status: str, message: str, body: str, time: str) -> None:
        tc = ET.SubElement(parent, "testcase", classname=classname, name=name, time=time)
        if status in ("failed", "error", "skipped"):
            tag = {"failed": "failure", "error": "error", "skipped": "skipped"}[status]
            el = ET.SubElement(tc, tag, message=message[:500])
            el.text = body or None
        elif body:
            ET.SubElement(tc, "system-out").text = body

    if run.judged:
        s = suite(f"{run.kind}.{run.mode}")
        for j in run.judged:
            c = j.result.check
            body = "\n".join(check_lines(j, fix=True))
            status = j.status if j.status in ("failed", "error", "skipped") else "passed"
            message = j.result.reason if j.status in ("error", "skipped") else f"{c.id} [{c.severity}] {c.title}"
            if j.status in ("reported", "waived"):
                body = f"{j.status}:\n{body}"
            case(
                s,
                f"seatrial.{run.kind}.{c.family}",
                f"{c.id} {c.title}",
                status=status,
                message=message,
                body=body,
                time="0",
            )
    for e in run.experiments:
        s = suite(f"chaos.{e.name}")
        for st in e.steps:
            case(
                s,
                f"seatrial.chaos.{e.name}.{st.phase}",
                st.name,
                status=st.status,
                message=st.output or st.status,
                body=st.output,
                time=_seconds(st.started, st.ended),
            )
        case(
            s,
            f"seatrial.chaos.{e.name}.slo",
            "SLOs under load",
            status=e.slo_status,
            message="; ".join(e.violations()),
            body=json.dumps(_load_doc(e), indent=1),
            time="0",
        )
    for s in root:
        cases = list(s)
        s.set("tests", str(len(cases)))
        for attr, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
            s.set(attr, str(sum(tc.find(tag) is not None for tc in cases)))
    for attr in ("tests", "failures", "errors", "skipped"):
        root.set(attr, str(sum(int(s.get(attr, "0")) for s in root)))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


# ---- allure results ----------------------------------------------------------------------
ALLURE_SEVERITY = {"critical": "blocker", "high": "critical", "medium": "normal", "low": "minor"}
ALLURE_STATUS = {
    "passed": "passed",
    "failed": "failed",
    "error": "broken",
    "skipped": "skipped",
    "reported": "passed",
    "waived": "skipped",
}


class _Allure:
    """Writes allure's result format (``<uuid>-result.json`` plus attachment files): the format
    both allure 2 and the npm allure 3 read, so the HTML report needs nothing but these files."""

    def __init__(self, out: Path, secrets: list[str]) -> None:
        self.out, self.secrets = out, secrets
        out.mkdir(parents=True, exist_ok=True)

    def attach(self, a: Attachment) -> dict[str, str]:
        source = f"{uuid.uuid4()}-attachment.{a.suffix}"
        body = a.body if isinstance(a.body, bytes) else redact(a.body, self.secrets).encode()
        (self.out / source).write_bytes(body)
        return {"name": a.name, "source": source, "type": a.mime}

    def result(
        self,
        *,
        name: str,
        full: str,
        status: str,
        labels: list[tuple[str, str]],
        message: str = "",
        description: str = "",
        start: dt.datetime,
        stop: dt.datetime,
        attachments: Sequence[Attachment] = (),
    ) -> None:
        def ms(t: dt.datetime) -> int:
            return int(t.timestamp() * 1000)

        case_id = hashlib.sha256(full.encode()).hexdigest()[:32]  # the same case across runs
        doc = {
            "uuid": str(uuid.uuid4()),
            "historyId": case_id,
            "testCaseId": case_id,
            "fullName": full,
            "name": name,
            "status": status,
            "statusDetails": {"message": redact(message, self.secrets)} if message else {},
            "stage": "finished",
            "description": redact(description, self.secrets),
            "start": ms(start),
            "stop": ms(stop),
            "labels": [{"name": k, "value": v} for k, v in labels],
            "attachments": [self.attach(a) for a in attachments],
            "parameters": [],
            "steps": [],
        }
        (self.out / f"{doc['uuid']}-result.json").write_text(json.dumps(doc, indent=1))

    def environment(self, facts: Mapping[str, Any]) -> None:
        text = "".join(f"{k}={str(v).replace(chr(10), ' ')}\n" for k, v in facts.items())
        (self.out / "environment.properties").write_text(redact(text, self.secrets))


def write_allure(run: Run, out: Path, *, secrets: Iterable[str] = ()) -> Path:
    al = _Allure(out, list(secrets))
    for j in run.judged:
        c = j.result.check
        labels = [
            ("parentSuite", run.kind),
            ("suite", FAMILIES.get(c.family, c.family)),
            ("family", c.family),
            ("check", c.id),
            ("severity", ALLURE_SEVERITY[c.severity]),
            ("seatrial_severity", c.severity),
            ("tag", j.status),
        ]
        labels += [("workload", t) for t in sorted({str(f.target) for f in j.open})]
        files = list(j.attachments)
        if j.open or j.waived or j.expired:
            body = {"status": j.status, **_findings_doc(j)}
            files.insert(0, Attachment(f"{c.id} findings", json.dumps(body, indent=2), "application/json"))
        text = "\n".join(check_lines(j, fix=True))
        message = j.result.reason if j.status in ("skipped", "error") else f"{j.status}: {text}" if text else ""
        al.result(
            name=f"{c.id} {c.title}",
            full=f"seatrial.{run.kind}.{c.family}.{c.id}",
            status=ALLURE_STATUS[j.status],
            labels=labels,
            message=message,
            description=f"**Why:** {c.why}\n\n**Fix:** {c.fix}",
            start=run.started,
            stop=run.finished,
            attachments=files,
        )
    for e in run.experiments:
        base = [("parentSuite", "chaos"), ("suite", e.title), ("experiment", e.name)]
        for i, st in enumerate(e.steps):
            al.result(
                name=f"{st.phase}: {st.name}",
                full=f"seatrial.chaos.{e.name}.{i:02d}.{st.phase}",
                status=ALLURE_STATUS.get(st.status, "unknown"),
                labels=[*base, ("subSuite", st.phase)],
                message=st.output,
                start=st.started,
                stop=st.ended,
            )
        files = [Attachment("load statistics", json.dumps(_load_doc(e), indent=2), "application/json")]
        if e.samples:
            files.append(Attachment("timeline", (out.parent / _exp_dir(e) / "timeline.png").read_bytes(), "image/png"))
        files += e.attachments
        start = min((st.started for st in e.steps), default=run.started)
        stop = max((st.ended for st in e.steps), default=run.finished)
        al.result(
            name=f"SLOs under load: {e.title}",
            full=f"seatrial.chaos.{e.name}.slo",
            status=ALLURE_STATUS[e.slo_status],
            labels=[*base, ("subSuite", "slo")],
            message="\n".join(e.violations()),
            description=experiment_summary(e),
            start=start,
            stop=stop,
            attachments=files,
        )
    al.environment(
        {"kind": run.kind, "mode": run.mode, "verdict": run.verdict, "failOn": run.fail_on, **run.target, **run.facts}
    )
    return out


def experiment_summary(e: Experiment) -> str:
    w, s, rec = e.from_fault, e.slos, e.recovery
    return (
        f"{e.overall.requests} requests, {e.overall.failed} failed. From the fault on: error rate "
        f"{w.error_rate:.2%} (SLO {s.error_rate:.2%}), p99 {w.p99_ms:.0f} ms (SLO {s.p99_ms:.0f} ms), "
        f"recovery {'none' if rec is None else f'{rec:.0f} s'} (SLO {s.recovery_seconds:.0f} s)."
    )


# ---- writing -----------------------------------------------------------------------------
def _write_attachment(a: Attachment, directory: Path, secrets: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / a.filename
    if isinstance(a.body, bytes):
        path.write_bytes(a.body)
    else:
        path.write_text(redact(a.body, secrets))
    return path


def write(run: Run, root: Path, *, secrets: Iterable[str] = ()) -> Path:
    """Everything a run leaves behind, from the one model. Returns ``reports/<run-id>/``."""
    secrets = list(secrets)
    out = root / run.run_id
    out.mkdir(parents=True, exist_ok=True)
    from seatrial import plots

    for j in run.judged:
        for a in j.attachments:
            _write_attachment(a, out / _evidence_dir(j), secrets)
    for e in run.experiments:
        d = out / _exp_dir(e)
        d.mkdir(parents=True, exist_ok=True)
        if e.samples:
            load.write_log(e.samples, d / "requests.csv")
            plots.timeline(
                e.samples,
                d / "timeline.png",
                title=e.title,
                fault=e.fault,
                events=e.events,
                slo_error_rate=e.slos.error_rate,
            )
        for a in e.attachments:
            _write_attachment(a, d, secrets)
    (out / "verdict.json").write_text(redact(json.dumps(verdict_doc(run), indent=2), secrets) + "\n")
    (out / "junit.xml").write_text(redact(junit_xml(run), secrets) + "\n")
    summary = summary_md(run)
    if run.judged:
        plots.findings_by_family(
            ((j.result.check.family, j.status) for j in run.judged),
            out / "findings-by-family.png",
            title=f"{run.kind} {run.run_id}",
        )
        summary += "\n![findings by family](findings-by-family.png)\n"
    (out / "summary.md").write_text(redact(summary, secrets))
    write_allure(run, out / "allure-results", secrets=secrets)
    latest = root / "latest"
    tmp = root / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run.run_id)
    tmp.replace(latest)
    return out


# ---- HTML (offline, from the allure results) ---------------------------------------------
ALLURE_NPM = "allure@3"


def allure_cli(cache: Path) -> Path:
    """The npm ``allure`` (Allure 3: Node only, no Java), installed once into the cache."""
    import shutil
    import subprocess

    from seatrial.errors import ToolMissingError

    prefix = cache / "node"
    binary = prefix / "node_modules" / ".bin" / "allure"
    if binary.exists():
        return binary
    if shutil.which("npm") is None:
        raise ToolMissingError("building the HTML report needs npm (Node.js)", hint="apt-get install npm")
    prefix.mkdir(parents=True, exist_ok=True)
    print(f"seatrial: installing {ALLURE_NPM} from npm into {prefix} (once)", flush=True)
    proc = subprocess.run(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(prefix), ALLURE_NPM],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not binary.exists():
        raise ToolMissingError(f"npm install {ALLURE_NPM} failed: {proc.stderr.strip()[-500:]}")
    return binary


def build_html(run_dir: Path, cache: Path) -> Path:
    """One self-contained index.html from the run's allure results."""
    import subprocess

    results = run_dir / "allure-results"
    if not results.is_dir():
        raise ConfigError(f"{run_dir} has no allure-results: run nox -s conformance first")
    out = run_dir / "html"
    proc = subprocess.run(
        [str(allure_cli(cache)), "awesome", str(results), "-o", str(out), "--single-file"],
        capture_output=True,
        text=True,
        check=False,
        cwd=run_dir,
    )
    if proc.returncode != 0 or not (out / "index.html").exists():
        raise ConfigError(f"allure could not build the report: {(proc.stderr or proc.stdout).strip()[-500:]}")
    return out / "index.html"
