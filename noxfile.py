"""Entry sessions. `nox -s conformance` is the main job; `nox -s tests` runs the project's tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests"]

PYTHON = "3.11"
# pytest exits 5 when a selection collects nothing: for a suite that is still empty that is not a failure.
NO_TESTS = 5


# nox may run with a uv of its own that is not on PATH (pipx install "nox[uv]"); its venvs have
# neither uv nor pip, and the chaos sessions install locust's wheels into an image with one of them
_NOX_UV = Path(sys.executable).with_name("uv")
if shutil.which("uv") is None and _NOX_UV.is_file():
    os.environ["PATH"] = f"{_NOX_UV.parent}{os.pathsep}{os.environ.get('PATH', '')}"


# pytest's own "usage error" (a bad flag): the documented code for that is 2.
PYTEST_USAGE = 4


def _gate(session: nox.Session, *args: str) -> None:
    """Run a command and leave nox with its exit code. nox exits 1 whenever a session fails,
    which would turn the documented 2 (usage or configuration) and 3 (cluster unreachable) into
    "failed" for the pipeline that gates on them."""
    session.log(" ".join(args))
    venv = {
        "PATH": f"{session.bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(Path(session.bin).parent),
    }
    proc = subprocess.Popen(args, env=os.environ | venv)
    interrupted = False
    while True:
        try:
            code = proc.wait()
            break
        except KeyboardInterrupt:  # the child got the same SIGINT: let it roll back, never kill it
            interrupted = True
            session.log("interrupted: waiting for the run to roll back and clean up")
    if interrupted:
        raise SystemExit(130)
    code = 2 if code == PYTEST_USAGE and args[0] == "pytest" else code
    if code not in (0, NO_TESTS):
        session.log(f"exit {code}")
        raise SystemExit(code)  # not an Exception: nox lets it end the process with this code


def _install(session: nox.Session, *extras: str) -> None:
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The project's own tests: unit tests and the local-cluster acceptance tests."""
    _install(session, "test")
    # Build first (a no-op when warm): on a cold machine the tests that render with the built
    # kubectl would otherwise be skipped at collection, and the cluster fixture would build later.
    session.run("python", "-m", "seatrial", "cluster", "build", env={"PYTHONUNBUFFERED": "1"})
    # and helm, which static mode renders charts with (the tree tests need it): built once, shown
    session.run("python", "-c", "from seatrial import manifests; manifests.helm()", env={"PYTHONUNBUFFERED": "1"})
    # and helm v3, which kustomize's helmCharts need (it refuses v4)
    session.run(
        "python", "-c", "from seatrial import manifests; manifests.kustomize_helm()", env={"PYTHONUNBUFFERED": "1"}
    )
    args = session.posargs or ["tests", "-m", "not slow"]
    junit = Path(session.create_tmp()) / "tests-junit.xml"
    session.run("pytest", *args, f"--junitxml={junit}", env={"PYTHONUNBUFFERED": "1"}, success_codes=[0, NO_TESTS])
    ran = sum(int(s.get("tests", 0)) - int(s.get("skipped", 0)) for s in ET.parse(junit).getroot().iter("testsuite"))  # noqa: S314 - our own pytest wrote it
    if ran == 0:
        session.error("pytest ran no test (exit 5 or all skipped): the selection is empty, which is a failure here")


@nox.session(python=PYTHON)
def cluster(session: nox.Session) -> None:
    """Manage the local cluster: nox -s cluster -- up|down|status|build."""
    _install(session)
    action = session.posargs or ["status"]
    _gate(session, "python", "-m", "seatrial", "cluster", *action)


@nox.session(python=PYTHON)
def conformance(session: nox.Session) -> None:
    """Run the conformance suite; starts the local cluster when no --kubeconfig/--kube-context is named."""
    _install(session, "test")
    _gate(session, "pytest", "suites/conformance", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=PYTHON)
def check(session: nox.Session) -> None:
    """Static checks as a linter, no pytest session: nox -s check -- PATH... [--fail-on medium] [--json]."""
    _install(session)
    if not session.posargs:
        session.error("name the manifests: nox -s check -- PATH [PATH ...]")
    _gate(session, "python", "-m", "seatrial", "check", *session.posargs)


@nox.session(python=PYTHON)
def chaos(session: nox.Session) -> None:
    """Run the chaos suite (Chaos Toolkit experiments under load)."""
    _install(session, "test")
    _gate(session, "pytest", "suites/chaos", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Print the benchmark table and keep it in reports/bench.json (nox -s bench -- static|peers|scale|repeat N)."""
    _install(session, "test")  # it runs the conformance suite (pytest and its plugins) as users do
    session.run("python", "-m", "seatrial.bench", *session.posargs, env={"PYTHONUNBUFFERED": "1"})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (lint + format check) and mypy --strict on the harness."""
    _install(session, "lint", "test")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


if os.environ.get("CI"):
    nox.options.error_on_missing_interpreters = True


@nox.session(python=PYTHON)
def cleanup(session: nox.Session) -> None:
    """Restore or delete what runs killed with kill -9 left: nox -s cleanup [-- --dry-run] [--kubeconfig K]."""
    _install(session)
    _gate(session, "python", "-m", "seatrial", "cleanup", *session.posargs)


@nox.session(python=PYTHON)
def stack(session: nox.Session) -> None:
    """The reference stack: nox -s stack -- deploy|delete|status [NAMESPACE] [--overlay staging]."""
    _install(session)
    _gate(session, "python", "-m", "seatrial", "stack", *(session.posargs or ["status"]))


@nox.session(python=PYTHON)
def report(session: nox.Session) -> None:
    """Build the HTML report of the latest run (or -- reports/<run-id>), offline, with npm allure 3."""
    _install(session)
    _gate(session, "python", "-m", "seatrial", "report", *session.posargs)
