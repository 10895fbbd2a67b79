"""``verdict.json`` and ``summary.md``: the machine-readable verdict and the one-screen summary,
with the wording of a check's findings and an experiment's numbers shared by every format.
"""

from __future__ import annotations

from typing import Any

from seatrial.checks.model import Finding
from seatrial.report.model import SCHEMA, Experiment, Judged, Run, slug


def _finding(f: Finding) -> dict[str, str]:
    return {"target": str(f.target), "field": f.field, "message": f.message}


def findings_doc(j: Judged) -> dict[str, list[dict[str, str]]]:
    return {
        "findings": [_finding(f) for f in j.open],
        "waived": [
            {**_finding(f), "reason": w.reason, "owner": w.owner, "expires": w.expires.isoformat()} for f, w in j.waived
        ],
        "expiredWaivers": [{**_finding(f), "owner": w.owner, "expired": w.expires.isoformat()} for f, w in j.expired],
    }


def exp_dir(e: Experiment) -> str:
    return f"experiments/{slug(e.name)}"


def evidence_dir(j: Judged) -> str:
    return f"evidence/{slug(j.result.check.id)}"


def load_doc(e: Experiment) -> dict[str, Any]:
    """What the load saw: the whole run, the window from the fault on, and the recovery time."""
    rec = e.recovery
    return {
        "overall": e.overall.as_dict(),
        "fromFault": e.from_fault.as_dict(),
        "recoverySeconds": None if rec is None else round(rec, 1),
    }


def _experiment_doc(e: Experiment) -> dict[str, Any]:
    seen = load_doc(e)
    return {
        "name": e.name,
        "title": e.title,
        "status": e.status,
        "violations": e.violations(),
        "slos": {"errorRate": e.slos.error_rate, "p99Ms": e.slos.p99_ms, "recoverySeconds": e.slos.recovery_seconds},
        "load": {k: seen[k] for k in ("overall", "fromFault")},
        "recoverySeconds": seen["recoverySeconds"],
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
        "timeline": f"{exp_dir(e)}/timeline.png" if e.samples else None,
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
                **findings_doc(j),
                "evidence": [f"{evidence_dir(j)}/{a.filename}" for a in j.attachments],
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
                lines.append(f"\n![{e.name} timeline]({exp_dir(e)}/timeline.png)")
    return "\n".join(lines) + "\n"


def experiment_summary(e: Experiment) -> str:
    w, s, rec = e.from_fault, e.slos, e.recovery
    return (
        f"{e.overall.requests} requests, {e.overall.failed} failed. From the fault on: error rate "
        f"{w.error_rate:.2%} (SLO {s.error_rate:.2%}), p99 {w.p99_ms:.0f} ms (SLO {s.p99_ms:.0f} ms), "
        f"recovery {'none' if rec is None else f'{rec:.0f} s'} (SLO {s.recovery_seconds:.0f} s)."
    )
