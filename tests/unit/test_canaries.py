"""No secret reaches a report or the terminal, wherever it hides in the manifests, in any spelling.

``tests/stacks/canaries/leaky.yaml`` plants one canary in each place a secret hides: flags in
args (``--api-key=V``, ``--api-key V``), object and pod-template annotations (one base64), a probe
command (``redis-cli -a V``), a URL's password (URL-encoded), a JVM -D option, a DSN, a git URL
with a token as its user, one-line JSON and ``.netrc`` in ConfigMaps, a committed Secret. Each must
be flagged by its check, and none may appear plain, base64 or URL-encoded in any file the run
writes nor on the terminal. Error messages about bad input must not quote values either."""

from __future__ import annotations

import base64
import urllib.parse
from pathlib import Path

import pytest

from .test_conformance_cli import conformance

pytestmark = pytest.mark.needs_binaries

CANARIES = [
    # (secret, check that flags it, object, field)
    ("Cnry01-ArgEq-Hn5Jd8Pw", "SEC-008", "Deployment/leaky", "containers[app].args"),
    ("Cnry02-ArgSep-Vy6Tq3Lx", "SEC-008", "Deployment/leaky", "containers[sidecar].args"),
    (
        "Cnry03-ObjAnnot-Kq8Wm2Xz",
        "SEC-009",
        "Deployment/leaky",
        "metadata.annotations[vault.hashicorp.com/agent-inject-token]",
    ),
    (
        "Cnry04-PodAnnot-Lp4Rt7Vb",
        "SEC-009",
        "Deployment/leaky",
        "spec.template.metadata.annotations[example.com/api-token]",
    ),
    ("Cnry05-Probe-Zd4Hs8Kc", "SEC-008", "Deployment/leaky", "containers[cache].livenessProbe.exec.command"),
    ("Cnry06/Url@Enc-Gt3Mk9", "SEC-001", "Deployment/leaky", "containers[app].env[REDIS_URL]"),
    ("Cnry07-JvmOpt-Wc2Nb6", "SEC-001", "Deployment/leaky", "containers[app].env[JAVA_OPTS]"),
    ("Cnry08DsnKey5Fj1Ry", "SEC-010", "Deployment/leaky", "containers[app].env[SENTRY_DSN]"),
    ("Cnry09-Json-Rb7Kp2Wd", "SEC-002", "ConfigMap/app-json", "data[settings.json]"),
    ("Cnry10-Netrc-Hm3Vx8Qt", "SEC-002", "ConfigMap/app-netrc", "data[.netrc]"),
    ("Cnry11-Secret-Mw5Br8Tj", "SEC-003", "Secret/committed", "data"),
    ("Cnry12TokenUser9Xq4Mv7Bn2Lw", "SEC-008", "Deployment/leaky", "containers[fetch].command"),
    ("sk-canary-7Hq2Zt9Lm4Vx8Rk1Pw6Ny3Bc", "SEC-001", "Deployment/leaky", "containers[app].env[OPENAI_API_KEY]"),
]


def spellings(secret: str) -> set[str]:
    b64 = base64.b64encode(secret.encode()).decode()
    return {secret, b64, b64.rstrip("="), urllib.parse.quote(secret, safe="")}


def leaked(text: str) -> list[str]:
    return [s for s, *_ in CANARIES if any(form in text for form in spellings(s))]


def test_every_hidden_secret_is_flagged_and_reaches_no_file_nor_the_terminal(tmp_path: Path) -> None:
    proc = conformance("--static", "tests/stacks/canaries", "--report-dir", str(tmp_path), "--fail-on", "low")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    [run_dir] = [p for p in tmp_path.iterdir() if p.is_dir() and not p.is_symlink()]
    summary = (run_dir / "summary.md").read_text()
    for _, check, target, field in CANARIES:
        assert f"{target} ({field})" in summary and check in summary, f"{check} did not flag {target} ({field})"
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 20
    found = {str(p.relative_to(tmp_path)): leaked(p.read_text(errors="replace")) for p in written}
    assert not {p: c for p, c in found.items() if c}, "canaries leaked into report files"
    assert not leaked(out), "canaries leaked onto the terminal"
    assert "<redacted>" in (run_dir / "evidence").rglob("*Deployment*").__next__().read_text()


def test_a_yaml_error_in_a_secret_does_not_echo_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "secret.yaml"
    bad.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n  password: Cnry13-Yaml: Err0r\n")
    proc = conformance("--static", str(bad), "--report-dir", str(tmp_path / "r"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]
    assert "is not valid YAML: line 5" in out
    assert "Cnry13" not in out and "Err0r" not in out


def test_a_malformed_auth_secret_is_not_echoed(tmp_path: Path) -> None:
    prof = tmp_path / "profile.yaml"
    prof.write_text("kind: Profile\nname: p\nnamespaces: [x]\nload: {authSecret: Cnry14-Bearer-Tk9Lm3Qz}\n")
    proc = conformance("--static", "tests/stacks/canary", "--profile", str(prof), "--report-dir", str(tmp_path))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-2000:]
    assert "load.authSecret must be <secret-name>/<key>" in out
    assert "Cnry14" not in out
