"""``seatrial check PATH…``: the static catalogue as a linter, without a pytest session.

Static checks are a linter's job and must answer like one: this path imports the rules and the
manifest reader only (no Kubernetes client, no report writer), reads each path on its own (an
invalid file is one error line and the others are still judged), prints the findings and exits
0 (nothing at or above ``--fail-on``), 1 (something is) or 2 (a path could not be read). The
pytest suite (``nox -s conformance -- --static``) stays the way CI runs it, with reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from seatrial import manifests
from seatrial.checks import Facts, Inventory, run
from seatrial.checks.model import SEVERITIES, Finding, Severity
from seatrial.errors import ExitCode, SeatrialError

Say = Callable[[str], None]


def _facts(pools: Path | None) -> Facts:
    if pools is None:
        return Facts()
    from seatrial.checks import facts

    return facts.from_pools(pools)


def judge_path(path: Path, facts: Facts, values: Sequence[Path] = ()) -> dict[str, Any]:
    """One path's verdict as data: its findings (worst first), its warnings, or why it could not
    be read."""
    notes: list[str] = []
    try:
        objects = manifests.load(path, notes=notes, values=values)
    except SeatrialError as exc:
        return {"path": str(path), "error": str(exc), "findings": [], "notes": notes}
    inv = Inventory(objects)
    results = run(inv, facts, mode="static", static_only=True)
    errors = [f"{r.check.id}: {r.reason}" for r in results if r.status == "error"]
    findings = [_finding(r.check.id, r.check.severity, f) for r in results for f in r.findings]
    findings.sort(key=lambda f: (SEVERITIES.index(f["severity"]), f["check"], f["target"]))
    summary = inv.unchecked_summary()
    if summary is not None:
        notes.append(f"{summary[0]} not checked: {summary[1]}")
    out: dict[str, Any] = {"path": str(path), "objects": len(objects), "findings": findings, "notes": notes}
    if errors:
        out["error"] = "a rule failed: " + "; ".join(errors)
    elif summary is not None and summary[2]:
        out["error"] = f"nothing in {path} is a kind seatrial checks: {summary[0]}: {summary[1]}"
    return out


def _finding(check: str, severity: Severity, f: Finding) -> dict[str, Any]:
    return {"check": check, "severity": severity, "target": str(f.target), "field": f.field, "message": f.message}


def main(
    paths: Sequence[str],
    *,
    fail_on: Severity,
    pools: str | None,
    as_json: bool,
    values: Sequence[str] = (),
    say: Say = print,
) -> int:
    facts = _facts(Path(pools) if pools else None)
    verdicts = [judge_path(Path(p), facts, [Path(v) for v in values]) for p in paths]
    threshold = SEVERITIES.index(fail_on)
    failing = sum(1 for v in verdicts for f in v["findings"] if SEVERITIES.index(f["severity"]) <= threshold)
    unreadable = [v for v in verdicts if "error" in v]
    if as_json:
        say(json.dumps({"fail_on": fail_on, "paths": verdicts}, indent=2))
    else:
        for v in verdicts:
            _say_text(v, say)
        total = sum(len(v["findings"]) for v in verdicts)
        verdict = "ERROR" if unreadable else ("FAIL" if failing else "PASS")
        say(f"{verdict}: {total} finding(s) in {len(verdicts)} path(s), {failing} at or above {fail_on}")
    if unreadable:
        return int(ExitCode.USAGE)
    return int(ExitCode.FAILED if failing else ExitCode.OK)


def _say_text(v: dict[str, Any], say: Say) -> None:
    if "error" in v and not v["findings"]:
        say(f"{v['path']}: error: {v['error']}")
        return
    say(f"{v['path']}: {len(v['findings'])} finding(s) in {v.get('objects', 0)} object(s)")
    for note in v["notes"]:
        say(f"  warning: {note}")
    for f in v["findings"]:
        where = f" ({f['field']})" if f["field"] else ""
        say(f"  {f['severity']:<8} {f['check']:<10} {f['target']}{where}: {f['message']}")
    if "error" in v:
        say(f"  error: {v['error']}")
