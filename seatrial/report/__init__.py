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

from seatrial.report.allure import write_allure
from seatrial.report.html import allure_cli, build_html
from seatrial.report.junit import junit_xml
from seatrial.report.model import (
    SCHEMA,
    Attachment,
    Experiment,
    Judged,
    Run,
    Step,
    Waiver,
    judge,
    load_waivers,
    new_run_id,
)
from seatrial.report.redact import redact
from seatrial.report.verdict import check_lines, experiment_summary, summary_md, verdict_doc
from seatrial.report.write import write

__all__ = [
    "SCHEMA",
    "Attachment",
    "Experiment",
    "Judged",
    "Run",
    "Step",
    "Waiver",
    "allure_cli",
    "build_html",
    "check_lines",
    "experiment_summary",
    "judge",
    "junit_xml",
    "load_waivers",
    "new_run_id",
    "redact",
    "summary_md",
    "verdict_doc",
    "write",
    "write_allure",
]
