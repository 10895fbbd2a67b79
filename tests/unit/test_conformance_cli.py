"""The conformance suite as users run it, in static mode (no cluster): what it writes. Exit codes
for every case are in test_exit_codes.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.needs_binaries


def conformance(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "suites/conformance", "-p", "no:cacheprovider", "-q", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=os.environ | {"PYTHONWARNINGS": "ignore"} | (env or {}),
    )


def test_junit_has_one_case_per_check_beside_the_verdict(tmp_path: Path) -> None:
    from junitparser import JUnitXml

    from seatrial import checks

    proc = conformance("--static", "tests/stacks/bad-image", "--report-dir", str(tmp_path))
    assert proc.returncode == 1
    [run_dir] = [p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink()]
    assert (run_dir / "verdict.json").exists()
    xml = JUnitXml.fromfile(str(run_dir / "junit.xml"))
    cases = [case for suite in xml for case in suite]
    assert sorted(c.name.split()[0] for c in cases) == sorted(c.id for c in checks.catalogue())
    assert all(c.classname.startswith("seatrial.conformance.") for c in cases)
    failed = [c for c in cases if any(type(r).__name__ == "Failure" for r in c.result)]
    assert [c.name.split()[0] for c in failed] == ["ROLL-004"]  # the medium findings are reported: --fail-on high
    [failure] = failed[0].result
    assert "Deployment/ghost" in (failure.text or "") and "fix:" in (failure.text or "")
    skipped = sum(any(type(r).__name__ == "Skipped" for r in c.result) for c in cases)
    assert xml.tests == len(cases) and xml.failures == 1 and xml.skipped == skipped
