"""Writing a run: every file of ``reports/<run-id>/`` from the one model, redacted."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from seatrial import load
from seatrial.report import chart
from seatrial.report.allure import write_allure
from seatrial.report.junit import junit_xml
from seatrial.report.model import Attachment, Run
from seatrial.report.redact import redact
from seatrial.report.verdict import evidence_dir, exp_dir, summary_md, verdict_doc


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
    for j in run.judged:
        for a in j.attachments:
            _write_attachment(a, out / evidence_dir(j), secrets)
    for e in run.experiments:
        d = out / exp_dir(e)
        d.mkdir(parents=True, exist_ok=True)
        if e.samples:
            from seatrial import plots  # matplotlib: only a run with load pays its import

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
        chart.write(
            ((j.result.check.family, j.status) for j in run.judged),
            out / "findings-by-family.svg",
            title=f"{run.kind} {run.run_id}",
        )
        summary += "\n![findings by family](findings-by-family.svg)\n"
    (out / "summary.md").write_text(redact(summary, secrets))
    write_allure(run, out / "allure-results", secrets=secrets)
    latest = root / "latest"
    tmp = root / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run.run_id)
    tmp.replace(latest)
    return out
