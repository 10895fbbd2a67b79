"""The HTML report, built offline from a run's allure results and opened in a real browser
(Debian's headless Chromium): the check IDs and the verdict are on the rendered page."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seatrial import report

from .test_conformance_cli import conformance

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium"),
    pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm for allure 3"),
    pytest.mark.needs_binaries,
]


def _build(run_dir: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "seatrial", "report", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=os.environ | {"PYTHONWARNINGS": "ignore"},
    )
    assert built.returncode == 0, built.stdout + built.stderr


def _rendered(index: Path, expect: str) -> str:
    """The page's text as Chromium renders it (scripts run), tags stripped."""
    text = ""
    for budget in (8000, 30000, 60000, 120000):  # a busy machine or a big report needs more virtual time
        dom = subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--virtual-time-budget={budget}",
                "--dump-dom",
                index.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        ).stdout
        text = re.sub(r"<[^>]+>", " ", dom)
        if expect in text:
            break
    return text


def test_html_report_shows_check_ids_and_verdict_in_a_browser(tmp_path: Path) -> None:
    run = conformance("--static", "tests/stacks/bad-image", "--report-dir", str(tmp_path))
    assert run.returncode == 1, run.stdout[-1500:]
    _build(tmp_path / "latest")
    text = _rendered(tmp_path / "latest" / "html" / "index.html", "ROLL-004")
    # the failed check is listed (the page opens on failures); the run's facts carry the verdict
    assert "ROLL-004 Serving containers have a readiness probe" in text, "the failed check is not on the page"
    assert re.search(r"verdict\s+fail", text), "the verdict is not on the rendered page"


def test_html_report_shows_an_experiment_over_its_slo(tmp_path: Path) -> None:
    from seatrial.profile import Slos

    from .test_report_experiments import _recorded, _run

    out = report.write(_run(_recorded(Slos(p99_ms=100.0))), tmp_path)
    _build(out)
    text = _rendered(out / "html" / "index.html", "SLOs under load")
    assert "SLOs under load: Inference pod killed under load" in text, "the failed experiment is not on the page"
    assert re.search(r"verdict\s+fail", text)
