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
    (
        "nothing checked",
        lambda t: [
            "--static",
            _file(t, "p.yaml", "apiVersion: monitoring.coreos.com/v1\nkind: Prometheus\nmetadata: {name: k8s}\n"),
        ],
        2,
        "is a kind seatrial checks: 1 object(s) of 1 kind(s): Prometheus (1)",
    ),
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


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {name: inference}
spec:
  replicas: 2
  selector: {matchLabels: {app: i}}
  template:
    metadata: {labels: {app: i}}
    spec:
      containers:
      - name: c
        image: x:1
        env: [{name: A, value: v}]
        resources: {limits: {nvidia.com/gpu: 1, cpu: 500m}}
"""
BOMB = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n  a: &a [CANARY, CANARY]\n"
BOMB += "".join(f"  {x}: &{x} [{', '.join([f'*{p}'] * 9)}]\n" for p, x in zip("abcdefg", "bcdefgh", strict=True))
CONTAINERS = "      containers:\n"
PDB = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: p}\nspec: {minAvailable: CANARY}\n"


def _edit(old: str, new: str) -> str:
    assert old in DEPLOYMENT
    return DEPLOYMENT.replace(old, new)


# (id, the manifest, what the one message says); every value the API would refuse is a CANARY
# where it can be, and the message must describe it without quoting it
MALFORMED = [
    ("replicas a word", _edit("replicas: 2", "replicas: CANARY"), "spec.replicas: an integer, not a string"),
    ("replicas infinite", _edit("replicas: 2", "replicas: .inf"), "spec.replicas: an integer, not a number"),
    ("gpu a word", _edit("gpu: 1", "gpu: CANARY"), "limits.nvidia.com/gpu: not a quantity"),
    ("cpu true", _edit("cpu: 500m", "cpu: true"), "limits.cpu: a quantity (like 500m, 2Gi or 1), not a boolean"),
    ("metadata a word", _edit("metadata: {name: inference}", "metadata: CANARY"), "Deployment: metadata: a mapping"),
    ("spec a list", _edit("spec:\n  replicas: 2", "spec: [1]\nx:\n  replicas: 2"), "inference: spec: a mapping, not"),
    ("containers null", _edit(CONTAINERS, "      containers: null\n      x:\n"), "containers: required, not null"),
    ("containers a mapping", _edit("      - name: c\n", "        name: c\n"), "spec.containers: a list, not a mapping"),
    ("labels a list", _edit("{labels: {app: i}}", "{labels: [CANARY]}"), "metadata.labels: a mapping, not a list"),
    ("env a mapping", _edit("[{name: A, value: v}]", "{FOO: CANARY}"), "containers[0].env: a list, not a mapping"),
    ("tolerations a word", _edit(CONTAINERS, "      tolerations: CANARY\n" + CONTAINERS), "tolerations: a list, not"),
    ("minAvailable a word", PDB, "spec.minAvailable: a number or a percentage"),
    ("List with junk items", "apiVersion: v1\nkind: List\nitems: [1, CANARY]\n", "item 2: expected a Kubernetes"),
    ("alias bomb", BOMB, "its YAML aliases expand it more than 10-fold"),
    ("nested 20,000 deep", "a: " + "[" * 20000 + "]" * 20000 + "\n", "nesting depth"),
    ("binary file", "\udcff\udcfe\x00CANARY", "is not text (UTF-8)"),
]


@pytest.mark.parametrize(("text", "says"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_a_malformed_manifest_is_one_message_naming_the_field(tmp_path: Path, text: str, says: str) -> None:
    """Exit 2 with one message that names the file, the object and the field, instead of a
    traceback per check or a rule that reads a bad value as nothing; no report is written."""
    path = tmp_path / "bad.yaml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    proc = conformance("--static", str(path), "--report-dir", str(tmp_path / "reports"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2500:]
    assert out.count(says) == 1, out[-2500:]
    assert str(path) in out
    assert "Traceback" not in out and "CANARY" not in out
    assert not list((tmp_path / "reports").glob("*/verdict.json"))


def test_a_device_is_refused_before_it_is_read(tmp_path: Path) -> None:
    proc = conformance("--static", "/dev/zero", "--report-dir", str(tmp_path), timeout=60)
    assert proc.returncode == 2
    assert "/dev/zero is not a regular file" in proc.stdout + proc.stderr


def test_an_unknown_field_is_a_warning_and_the_rest_is_checked(tmp_path: Path) -> None:
    """kubectl's ``--validate=warn``: a field the API removed (a Service's topologyKeys) should
    not stop a run; the object's known fields are still judged."""
    path = tmp_path / "stale.yaml"
    path.write_text(DEPLOYMENT.replace("  replicas: 2", "  replicas: 2\n  topologyKeys: [x]"))
    proc = conformance("--static", str(path), "--report-dir", str(tmp_path / "reports"))
    out = proc.stdout + proc.stderr
    assert "Deployment/inference: spec.topologyKeys: unknown field" in out, out[-2500:]
    assert proc.returncode in (0, 1) and list((tmp_path / "reports").glob("*/verdict.json"))


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
