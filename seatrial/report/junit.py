"""``junit.xml``: one case per check, per experiment step, and per experiment for its SLOs."""

from __future__ import annotations

import datetime as dt
import json
import xml.etree.ElementTree as ET

from seatrial.report.model import Run
from seatrial.report.verdict import check_lines, load_doc


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
            body=json.dumps(load_doc(e), indent=1),
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
