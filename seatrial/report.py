"""What a run leaves behind: ``reports/<run-id>/verdict.json`` and ``summary.md`` (and the same
summary on the terminal), ``reports/latest`` pointing at the newest run; plus the gate's policy:
which severities fail the run (``--fail-on``) and which findings are waived (``waivers.yaml``).

One model for every kind of result, so chaos experiments will report through the same code.
Secret values never reach a report: findings carry names and reasons, never values, and every
text written here passes through ``redact`` as a second line of defence.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from seatrial.checks.model import SEVERITIES, Finding, Result, Severity
from seatrial.errors import ConfigError

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
        raise ConfigError(f"waivers file {path} is not valid YAML: {exc}") from None
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


@dataclass
class Judged:
    """A result after the gate's policy: what counts, what is waived, what expired."""

    result: Result
    status: str  # passed | failed | reported (below --fail-on) | waived | skipped | error
    open: tuple[Finding, ...] = ()
    waived: tuple[tuple[Finding, Waiver], ...] = ()
    expired: tuple[tuple[Finding, Waiver], ...] = ()

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


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Known secret values and anything token-shaped become <redacted>."""
    for s in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(s, "<redacted>")
    return _TOKENISH.sub("<redacted>", text)


# ---- writing -----------------------------------------------------------------------------
@dataclass
class Run:
    kind: str  # conformance | chaos
    mode: str  # static | live
    target: Mapping[str, Any]
    judged: list[Judged]
    fail_on: Severity
    started: dt.datetime
    finished: dt.datetime
    run_id: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:4]
    )

    @property
    def verdict(self) -> str:
        return "fail" if any(j.fails_run for j in self.judged) else "pass"

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {s: {} for s in SEVERITIES}
        for j in self.judged:
            bucket = out[j.result.check.severity]
            bucket[j.status] = bucket.get(j.status, 0) + 1
        return out


def new_run_id() -> str:
    """Sortable by time, unique across parallel runs."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:4]


def _finding(f: Finding) -> dict[str, str]:
    return {"target": str(f.target), "field": f.field, "message": f.message}


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
                "findings": [_finding(f) for f in j.open],
                "waived": [
                    {**_finding(f), "reason": w.reason, "owner": w.owner, "expires": w.expires.isoformat()}
                    for f, w in j.waived
                ],
                "expiredWaivers": [
                    {**_finding(f), "owner": w.owner, "expired": w.expires.isoformat()} for f, w in j.expired
                ],
            }
            for j in run.judged
        ],
    }


def summary_md(run: Run) -> str:
    icon = "PASS" if run.verdict == "pass" else "FAIL"
    lines = [
        f"# seatrial {run.kind}: {icon}",
        "",
        f"Run `{run.run_id}`, {run.mode} mode, target {run.target.get('name', '?')};"
        f" fails on severity ≥ {run.fail_on}.",
        "",
        "| severity | passed | failed | reported | waived | skipped | error |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for sev, count in run.counts().items():
        cells = " | ".join(str(count.get(k, 0)) for k in ("passed", "failed", "reported", "waived", "skipped", "error"))
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
            lines += [f"  - {f.target}{f' ({f.field})' if f.field else ''}: {f.message}" for f in j.open]
            lines += [
                f"  - waiver for {f.target} by {w.owner} EXPIRED on {w.expires}: {w.reason}" for f, w in j.expired
            ]
            lines += [f"  - {f.target}: waived by {w.owner} until {w.expires}: {w.reason}" for f, w in j.waived]
            if j.status in ("failed", "reported"):
                lines.append(f"  - fix: {c.fix}")
    return "\n".join(lines) + "\n"


def write(run: Run, root: Path, *, secrets: Iterable[str] = ()) -> Path:
    secrets = list(secrets)
    out = root / run.run_id
    out.mkdir(parents=True, exist_ok=True)
    (out / "verdict.json").write_text(redact(json.dumps(verdict_doc(run), indent=2), secrets) + "\n")
    from seatrial import plots

    plots.findings_by_family(
        ((j.result.check.family, j.status) for j in run.judged),
        out / "findings-by-family.png",
        title=f"{run.kind} {run.run_id}",
    )
    (out / "summary.md").write_text(
        redact(summary_md(run), secrets) + "\n![findings by family](findings-by-family.png)\n"
    )
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
