"""Bad input aimed at a live cluster (issue 15, acceptance 3, the cluster side; the file side is
tests/unit/test_exit_codes.py): credentials the server rejects, an account with no roles, a context
that is not there or that names production, a namespace that holds no stack or is a system one,
a manifest the server rejects, a stack that never gets ready. Each case is one readable message and
its documented exit code, no traceback — and the cluster exactly as before: whatever a run may
create or change (seatrial namespaces, nodes' cordons, taints and marks, run leases, replicas)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from seatrial import kube
from seatrial.stack import Deployed

from .conftest import TEST_LABEL, as_before, snapshot

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Given:
    """What a case builds its command from."""

    tmp: Path
    admin: dict[str, Any]  # the local cluster's kubeconfig, parsed
    stack_ns: str
    roleless_token: str

    def kubeconfig(self, *, context: str = "local", token: str | None = None) -> str:
        """The local cluster under another context name, or as another user."""
        doc = yaml.safe_load(yaml.safe_dump(self.admin))
        doc["contexts"][0]["name"] = doc["current-context"] = context
        if token is not None:
            doc["users"][0]["user"] = {"token": token}
        path = self.tmp / f"kubeconfig-{uuid.uuid4().hex[:6]}"
        path.write_text(yaml.safe_dump(doc))
        return str(path)

    def profile(self, **fields: Any) -> str:
        doc = yaml.safe_load((ROOT / "profiles" / "reference.yaml").read_text()) | {"name": "bad-input"} | fields
        path = self.tmp / f"profile-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(yaml.safe_dump(doc))
        return str(path)


def _suite(name: str) -> Callable[[Given, list[str]], list[str]]:
    def argv(g: Given, args: list[str]) -> list[str]:
        reports = str(g.tmp / "reports")
        return [sys.executable, "-m", "pytest", f"suites/{name}", "-p", "no:cacheprovider", "-q", "--report-dir",
                reports, *args]  # fmt: skip

    return argv


def _cli(g: Given, args: list[str]) -> list[str]:
    del g
    return [sys.executable, "-m", "seatrial", *args]


CONFORMANCE, CHAOS = _suite("conformance"), _suite("chaos")
REVOKED = "a-token-the-server-never-issued"  # what an expired or revoked credential is to the server


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[Given, list[str]], list[str]]
    args: Callable[[Given], list[str]]
    code: int
    says: str


CASES = [
    Case("expired token", CONFORMANCE, lambda g: ["--kubeconfig", g.kubeconfig(token=REVOKED)], 2, "401 Unauthorized"),
    Case("expired token, chaos", CHAOS, lambda g: ["--kubeconfig", g.kubeconfig(token=REVOKED)], 2, "renew them"),
    Case(
        "an account with no roles",
        CONFORMANCE,
        lambda g: ["--kubeconfig", g.kubeconfig(token=g.roleless_token), "--stack-namespace", g.stack_ns],
        2,
        "permission missing (403 Forbidden)",
    ),
    Case(
        "an account with no roles, cleanup",
        _cli,
        lambda g: ["cleanup", "--kubeconfig", g.kubeconfig(token=g.roleless_token)],
        2,
        "permission missing",
    ),
    Case(
        "unknown context", CONFORMANCE, lambda g: ["--kubeconfig", g.kubeconfig(), "--kube-context", "nope"], 2, "nope"
    ),
    Case("unknown context, stack", _cli, lambda g: ["stack", "status", "--context", "nope"], 2, "nope"),
    # production: refused before the server is asked anything, though here it would answer
    Case(
        "production context",
        CONFORMANCE,
        lambda g: ["--kubeconfig", g.kubeconfig(context="gke_acme_prod")],
        2,
        "production pattern",
    ),
    Case(
        "production context, chaos", CHAOS, lambda g: ["--kubeconfig", g.kubeconfig(context="prod-eu")], 2, "production"
    ),
    Case(
        "production context, stack deploy",
        _cli,
        lambda g: ["stack", "deploy", "--kubeconfig", g.kubeconfig(context="eks-prod")],
        2,
        "production pattern",
    ),
    Case(
        "production context, cleanup",
        _cli,
        lambda g: ["cleanup", "--kubeconfig", g.kubeconfig(context="prod")],
        2,
        "production pattern",
    ),
    # namespaces
    Case(
        "--stack-namespace holds no stack",
        CONFORMANCE,
        lambda g: ["--stack-namespace", "default"],
        2,
        "holds no seatrial reference stack",
    ),
    Case(
        "chaos aimed at kube-system",
        CHAOS,
        lambda g: ["--profile", g.profile(namespaces=["kube-system"])],
        2,
        "kube-system is a system namespace, never a chaos target",
    ),
    Case(
        "chaos aimed at a namespace that is not there",
        CHAOS,
        lambda g: ["--profile", g.profile(namespaces=["seatrial-nowhere"])],
        2,
        "seatrial-nowhere",
    ),
    Case(
        "stack delete of a namespace that is not a stack",
        _cli,
        lambda g: ["stack", "delete", "default"],
        2,
        "not a seatrial stack namespace",
    ),
    Case(
        "negative --load-workers",
        CHAOS,
        lambda g: ["--stack-namespace", g.stack_ns, "--load-workers", "-1"],
        2,
        "--load-workers must be 0 or more",
    ),
    # node chaos on a cluster seatrial did not start (a context of another name) needs the flag
    Case(
        "node chaos without --allow-node-chaos",
        CHAOS,
        lambda g: [
            "--kubeconfig",
            g.kubeconfig(context="staging"),
            "--stack-namespace",
            g.stack_ns,
            "-k",
            "node-drain",
        ],
        1,
        "node-level chaos is off for this run",
    ),
    # manifests
    Case(
        "overlay the server rejects",
        _cli,
        lambda g: ["stack", "deploy", "--overlay", "tests/stacks/invalid"],
        2,
        "99999",
    ),
    Case(
        "a stack that never gets ready",
        _cli,
        lambda g: ["stack", "deploy", "--overlay", "tests/stacks/too-many-gpus", "--timeout", "15", "--cleanup"],
        3,
        "StatefulSet/giant-model",
    ),
]


@pytest.fixture(scope="module")
def roleless_token(core: client.CoreV1Api, namespace: str) -> Iterator[str]:
    """A ServiceAccount bound to nothing: every request it makes but discovery is forbidden."""
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nobody", "labels": {TEST_LABEL: "true"}}})
    token = core.create_namespaced_service_account_token("nobody", namespace, {"spec": {"expirationSeconds": 3600}})
    yield str(token.status.token)


@pytest.fixture(scope="module")
def given(
    kube_target: kube.Target, reference_stack: Deployed, roleless_token: str, tmp_path_factory: pytest.TempPathFactory
) -> Given:
    admin = yaml.safe_load(kube_target.kubeconfig.read_text())
    return Given(tmp_path_factory.mktemp("bad-input"), admin, reference_stack.namespace, roleless_token)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_message_and_changes_nothing(
    api: client.ApiClient, kube_target: kube.Target, given: Given, case: Case
) -> None:
    before = snapshot(api)
    env = os.environ | {"PYTHONWARNINGS": "ignore", "KUBECONFIG": str(kube_target.kubeconfig)}
    argv = case.run(given, case.args(given))
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == case.code, out[-3000:]
    assert case.says in out, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    as_before(api, before)
