"""``allure-results/``: the same cases for allure, with labels, the cluster's facts and attachments."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from allure_commons import model2
from allure_commons.logger import AllureFileLogger

from seatrial.checks.registry import FAMILIES
from seatrial.report.model import Attachment, Run, Step
from seatrial.report.redact import redact
from seatrial.report.verdict import check_lines, exp_dir, experiment_summary, findings_doc, load_doc

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
    """allure's result format through allure-python-commons, the library allure-pytest stands on:
    its models (``model2``) and its file writer, so the files are what allure 2 and the npm
    allure 3 expect, and the HTML report needs nothing else."""

    def __init__(self, out: Path, secrets: list[str]) -> None:
        self.secrets = secrets
        self.files = AllureFileLogger(str(out))

    def attach(self, a: Attachment) -> model2.Attachment:
        source = f"{uuid.uuid4()}-attachment.{a.suffix}"
        body = a.body if isinstance(a.body, bytes) else redact(a.body, self.secrets).encode()
        self.files.report_attached_data(body=body, file_name=source)
        return model2.Attachment(name=a.name, source=source, type=a.mime)

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
        steps: Sequence[model2.TestStepResult] = (),
    ) -> None:
        case_id = hashlib.sha256(full.encode()).hexdigest()[:32]  # the same case across runs
        self.files.report_result(
            model2.TestResult(
                uuid=str(uuid.uuid4()),
                historyId=case_id,
                testCaseId=case_id,
                fullName=full,
                name=name,
                status=status,
                statusDetails=self.details(message),
                stage="finished",
                description=redact(description, self.secrets),
                start=_ms(start),
                stop=_ms(stop),
                labels=[model2.Label(name=k, value=v) for k, v in labels],
                attachments=[self.attach(a) for a in attachments],
                steps=list(steps),
            )
        )

    def details(self, message: str) -> model2.StatusDetails | None:
        return model2.StatusDetails(message=redact(message, self.secrets)) if message else None

    def step(self, st: Step) -> model2.TestStepResult:
        return model2.TestStepResult(
            name=f"{st.phase}: {st.name}",
            status=ALLURE_STATUS.get(st.status, "unknown"),
            statusDetails=self.details(st.output),
            stage="finished",
            start=_ms(st.started),
            stop=_ms(st.ended),
        )

    def environment(self, facts: Mapping[str, Any]) -> None:
        text = "".join(f"{k}={str(v).replace(chr(10), ' ')}\n" for k, v in facts.items())
        self.files.report_attached_data(body=redact(text, self.secrets), file_name="environment.properties")


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


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
            body = {"status": j.status, **findings_doc(j)}
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
        files = [Attachment("load statistics", json.dumps(load_doc(e), indent=2), "application/json")]
        if e.samples:
            files.append(Attachment("timeline", (out.parent / exp_dir(e) / "timeline.png").read_bytes(), "image/png"))
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
            steps=[  # the experiment as allure shows a test's steps, under its SLO verdict
                al.step(st) for st in e.steps
            ],
        )
    al.environment(
        {"kind": run.kind, "mode": run.mode, "verdict": run.verdict, "failOn": run.fail_on, **run.target, **run.facts}
    )
    return out
