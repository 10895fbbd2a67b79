"""The findings-by-family chart: drawn without matplotlib, which cost every static run 1.2 s."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

from seatrial.report import chart


def test_the_chart_is_svg_with_a_bar_per_family_and_its_counts() -> None:
    svg = chart.findings_by_family(
        [("gpu", "failed"), ("gpu", "passed"), ("gpu", "passed"), ("secrets", "skipped")], title="static <run>"
    )
    root = ET.fromstring(svg)  # noqa: S314 (our own output) - well-formed, the title escaped
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "static <run>" in texts and "GPU scheduling" in texts and "Secret hygiene" in texts
    tips = [t.text for t in root.iter("{http://www.w3.org/2000/svg}title")]
    assert "failed: 1" in tips and "passed: 2" in tips and "skipped: 1" in tips


def test_writing_a_report_does_not_import_matplotlib() -> None:
    """Only a run with load samples draws a timeline; a static run must not pay for the import."""
    code = "import sys, seatrial.report.write, seatrial.conformance; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
