"""The conformance suite as users run it, in static mode (no cluster): exit codes and messages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from seatrial.cluster import build

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(build.cached_binaries() is None, reason="renders kustomize dirs with the built kubectl")


def conformance(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "suites/conformance", "-p", "no:cacheprovider", "-q", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=os.environ | {"PYTHONWARNINGS": "ignore"},
    )


def test_reference_manifests_pass_statically() -> None:
    proc = conformance("--static", "manifests/stack/overlays/staging")
    assert proc.returncode == 0, proc.stdout[-2000:]


def test_a_defect_fails_the_run_naming_check_object_and_fix(tmp_path: Path) -> None:
    proc = conformance("--static", "tests/stacks/bad-image")
    assert proc.returncode == 1
    assert "SPREAD-003" in proc.stdout and "Deployment/ghost" in proc.stdout and "fix:" in proc.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--static", "no/such/dir"], "does not exist"),
        (["--static", "tests/unit/test_conformance_cli.py"], "is not valid YAML"),
        (["--static", "manifests/stack/overlays/local", "--profile", "tests/profiles/typo.yaml"], "did you mean"),
    ],
)
def test_bad_input_is_one_message_and_exit_2(args: list[str], says: str) -> None:
    proc = conformance(*args)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert says in out
    assert "Traceback" not in out


def test_junit_has_one_case_per_check_beside_the_verdict(tmp_path: Path) -> None:
    from junitparser import JUnitXml

    from seatrial import checks

    proc = conformance("--static", "tests/stacks/bad-image", "--report-dir", str(tmp_path))
    assert proc.returncode == 1
    [run_dir] = [p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink()]
    assert (run_dir / "verdict.json").exists()
    xml = JUnitXml.fromfile(str(run_dir / "junit.xml"))
    cases = [case for suite in xml for case in suite]
    ids = sorted(c.name.removeprefix("test_check[").rstrip("]") for c in cases if c.name.startswith("test_check["))
    assert ids == sorted(c.id for c in checks.catalogue())
    failed = {c.name for c in cases if any(type(r).__name__ == "Failure" for r in c.result)}
    assert failed == {"test_check[ROLL-004]"}  # the medium findings are reported: --fail-on high
