"""The gate's exit codes, every documented case in one table: 0 pass, 1 checks failed, 2 usage or
configuration error, 3 cluster unreachable — with one readable message and no traceback. Most
cases run the conformance suite as pytest does; the last ones go through ``nox`` itself, which
would otherwise turn every failure into 1."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .test_conformance_cli import conformance

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.needs_binaries
BAD_IMAGE = ["--static", "tests/stacks/bad-image"]  # fails ROLL-004 (high) for Deployment/ghost


def _file(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _waiver(expires: str) -> str:
    return f"waivers:\n- {{check: ROLL-004, target: Deployment/ghost, reason: r, owner: team-x, expires: {expires}}}\n"


def _unreachable(tmp_path: Path, context: str = "c") -> str:
    return _file(
        tmp_path,
        "kubeconfig",
        f"apiVersion: v1\nkind: Config\ncurrent-context: {context}\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        f"contexts: [{{name: {context}, context: {{cluster: c, user: u}}}}]\n",
    )


def _allow_all(tmp_path: Path) -> str:
    text = (
        (ROOT / "profiles" / "reference.yaml").read_text().replace('refuseContexts: ["*prod*"]', "refuseContexts: []")
    )
    return _file(tmp_path, "allow-all.yaml", text)


CASES = [
    # (id, args (tmp_path -> argv), exit code, text the output must contain)
    ("reference passes", lambda t: ["--static", "manifests/stack/overlays/staging"], 0, "PASS"),
    ("a high finding fails", lambda t: BAD_IMAGE, 1, "ROLL-004"),
    ("below --fail-on is reported", lambda t: [*BAD_IMAGE, "--fail-on", "critical"], 0, "Reported"),
    ("a waiver waives", lambda t: [*BAD_IMAGE, "--waivers", _file(t, "w.yaml", _waiver("2099-01-01"))], 0, "waived"),
    (
        "an expired waiver fails",
        lambda t: [*BAD_IMAGE, "--waivers", _file(t, "w.yaml", _waiver("2020-01-01"))],
        1,
        "EXPIRED on 2020-01-01",
    ),
    ("missing manifests", lambda t: ["--static", "no/such/dir"], 2, "does not exist"),
    ("invalid manifest", lambda t: ["--static", "tests/unit/test_conformance_cli.py"], 2, "is not valid YAML"),
    ("malformed profile", lambda t: [*BAD_IMAGE, "--profile", "tests/profiles/typo.yaml"], 2, "did you mean"),
    ("malformed waivers", lambda t: [*BAD_IMAGE, "--waivers", _file(t, "w.yaml", "- x\n")], 2, "waivers:"),
    ("bad kubeconfig", lambda t: ["--kubeconfig", _file(t, "kc", "{not: [yaml")], 2, "kubeconfig"),
    ("missing kubeconfig", lambda t: ["--kubeconfig", str(t / "nope")], 2, "kubeconfig"),
    ("unreachable cluster", lambda t: ["--kubeconfig", _unreachable(t)], 3, "127.0.0.1:1"),
    # paths and files, found before anything starts
    ("empty --static", lambda t: ["--static", ""], 2, "--static was given an empty path"),
    ("missing waivers", lambda t: [*BAD_IMAGE, "--waivers", str(t / "nope.yaml")], 2, "does not exist"),
    ("waivers is a directory", lambda t: [*BAD_IMAGE, "--waivers", str(t)], 2, "is a directory"),
    ("report dir is a file", lambda t: [*BAD_IMAGE, "--report-dir", "README.md"], 2, "is not a directory"),
    ("negative --load-workers", lambda t: [*BAD_IMAGE, "--load-workers", "-1"], 2, "--load-workers must be 0 or more"),
    ("missing pools dir", lambda t: [*BAD_IMAGE, "--pools", str(t / "nope")], 2, "node pool directory not found"),
    ("profile is a directory", lambda t: [*BAD_IMAGE, "--profile", str(t)], 2, "cannot read profile"),
    (
        "unknown spot provider",
        lambda t: [*BAD_IMAGE, "--profile", _file(t, "p.yaml", "kind: Profile\nname: x\nchaos: {provider: ibm}\n")],
        2,
        "chaos.provider must be one of aws, gke, azure",
    ),
    (
        "malformed authSecret is not echoed",
        lambda t: [
            *BAD_IMAGE,
            "--profile",
            _file(t, "p.yaml", "kind: Profile\nname: x\nload: {authSecret: CANARY-x}\n"),
        ],
        2,
        "load.authSecret must be <secret-name>/<key>, got a str of 8 characters",
    ),
    ("empty kubeconfig", lambda t: ["--kubeconfig", _file(t, "kc", "")], 2, "is empty"),
    ("kubeconfig is a directory", lambda t: ["--kubeconfig", str(t)], 2, "cannot be read"),
    (
        "kubeconfig without current-context",
        lambda t: ["--kubeconfig", _file(t, "kc", "apiVersion: v1\nkind: Config\nclusters: []\n")],
        2,
        "current-context",
    ),
    ("unknown context", lambda t: ["--kubeconfig", _unreachable(t), "--kube-context", "nope"], 2, "nope"),
    # a production context is refused before anything is read from it (the server is never asked:
    # it is unreachable here, which would be exit 3)
    ("production context", lambda t: ["--kubeconfig", _unreachable(t, "gke_acme_PROD-eu")], 2, "production pattern"),
    (
        "production context named",
        lambda t: ["--kubeconfig", _unreachable(t, "prod"), "--kube-context", "prod"],
        2,
        "'prod' matches the production pattern '*prod*'",
    ),
    (
        "production allowed by the profile",
        lambda t: ["--kubeconfig", _unreachable(t, "prod"), "--profile", _allow_all(t)],
        3,
        "127.0.0.1:1",
    ),
]


@pytest.mark.parametrize(("args", "code", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_exit_code(tmp_path: Path, args: object, code: int, says: str) -> None:
    proc = conformance("--report-dir", str(tmp_path / "reports"), *args(tmp_path))  # type: ignore[operator]
    out = proc.stdout + proc.stderr
    assert proc.returncode == code, out[-2500:]
    assert says in out, out[-2500:]
    assert "Traceback" not in out
    assert "CANARY" not in out  # bad input is described, never quoted


NOX = shutil.which("nox")


@pytest.mark.skipif(NOX is None, reason="nox is not on PATH (the README's commands need it)")
@pytest.mark.parametrize(
    ("args", "code"),
    [(["--fail-on", "bogus"], 2), (["--static", "no/such/dir"], 2), (["--kubeconfig", "UNREACHABLE"], 3)],
    ids=["bad flag", "missing manifests", "unreachable cluster"],
)
def test_nox_keeps_the_exit_code(tmp_path: Path, args: list[str], code: int) -> None:
    argv = [_unreachable(tmp_path) if a == "UNREACHABLE" else a for a in args]
    proc = subprocess.run(
        [str(NOX), "-s", "conformance", "--", *argv, "--report-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=os.environ | {"PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == code, (proc.stdout + proc.stderr)[-2500:]
