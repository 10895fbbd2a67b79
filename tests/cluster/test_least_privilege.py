"""seatrial under the shipped least-privilege roles, as a nightly CI job runs it against a shared
staging cluster it did not start.

A ServiceAccount is bound to exactly the roles in ``manifests/rbac/seatrial.yaml`` (docs/rbac.md)
for the session's stack namespace; its token goes into a kubeconfig of its own with a context
named ``staging-ci``, so seatrial treats the cluster as a stranger's (no local cluster powers, no
node chaos without the flag). The live conformance suite and the chaos suite pass with it (node
chaos allowed by the flag; the experiments that act on the machine under the nodes skipped, saying
why) and the cluster ends as it began; an account missing a role gets one message naming the verb
and the resource, exit 2."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from seatrial import kube, stack
from seatrial.stack import Deployed

from .conftest import TEST_LABEL, as_before, snapshot

ROOT = Path(__file__).resolve().parents[2]
ROLES = ROOT / "manifests" / "rbac" / "seatrial.yaml"
CLUSTER_BINDINGS = ("seatrial-read", "seatrial-probe", "seatrial-node-chaos")  # node chaos: the run passes the flag
HOST_EXPERIMENTS = 4  # node-failure, zone-outage, gpu-fault, spot-preemption act on the machine under the nodes
NAMESPACE_BINDINGS = ("seatrial-conform", "seatrial-chaos")


def _kubectl(target: kube.Target, *args: str, stdin: str | None = None) -> None:
    subprocess.run(
        [stack.kubectl(), "--kubeconfig", str(target.kubeconfig), *args],
        input=stdin, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip


def _bindings(sa_ns: str, stack_ns: str, *, cluster: tuple[str, ...], namespaced: tuple[str, ...]) -> str:
    subject = [{"kind": "ServiceAccount", "name": "seatrial", "namespace": sa_ns}]
    docs: list[dict[str, object]] = []
    for role in cluster:
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                     "metadata": {"name": f"{role}-{sa_ns}", "labels": {TEST_LABEL: "true"}},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                     "subjects": subject})  # fmt: skip
    docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": {"name": f"seatrial-runs-{sa_ns}", "namespace": "default"},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "seatrial-runs"},
                 "subjects": subject})  # fmt: skip
    for role in namespaced:
        docs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                     "metadata": {"name": f"{role}-{sa_ns}", "namespace": stack_ns},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                     "subjects": subject})  # fmt: skip
    return yaml.safe_dump_all(docs)


def _account(
    api: client.ApiClient, target: kube.Target, stack_ns: str, out: Path, *, namespaced: tuple[str, ...]
) -> Iterator[Path]:
    """A ServiceAccount bound to the roles, and a kubeconfig of its own for it; all removed after."""
    core = client.CoreV1Api(api)
    sa_ns = f"seatrial-ci-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": sa_ns, "labels": {TEST_LABEL: "true"}}})
    bindings = _bindings(sa_ns, stack_ns, cluster=CLUSTER_BINDINGS, namespaced=namespaced)
    try:
        core.create_namespaced_service_account(sa_ns, {"metadata": {"name": "seatrial"}})
        _kubectl(target, "apply", "-f", str(ROLES))
        _kubectl(target, "apply", "-f", "-", stdin=bindings)
        token = core.create_namespaced_service_account_token(
            "seatrial", sa_ns, {"spec": {"expirationSeconds": 7200}}
        ).status.token
        admin = yaml.safe_load(target.kubeconfig.read_text())
        cluster = admin["clusters"][0]["cluster"]
        out.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "staging-ci",
            "clusters": [{"name": "staging", "cluster": cluster}],
            "users": [{"name": "seatrial-ci", "user": {"token": token}}],
            "contexts": [{"name": "staging-ci", "context": {"cluster": "staging", "user": "seatrial-ci"}}],
        }))  # fmt: skip
        yield out
    finally:
        _kubectl(target, "delete", "--ignore-not-found", "-f", "-", stdin=bindings)
        core.delete_namespace(sa_ns, grace_period_seconds=0)
        kube.wait_namespaces_gone(core, [sa_ns], selector=TEST_LABEL, timeout=120)


@pytest.fixture(scope="module")
def staging(
    api: client.ApiClient, kube_target: kube.Target, reference_stack: Deployed, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, Path]]:
    """The ServiceAccount's kubeconfig and a profile naming the session's stack namespace."""
    tmp = tmp_path_factory.mktemp("staging")
    profile = yaml.safe_load((ROOT / "profiles" / "reference.yaml").read_text())
    profile |= {"name": "staging-ci", "namespaces": [reference_stack.namespace]}
    (tmp / "profile.yaml").write_text(yaml.safe_dump(profile))
    yield from (
        (kc, tmp / "profile.yaml")
        for kc in _account(
            api, kube_target, reference_stack.namespace, tmp / "kubeconfig", namespaced=NAMESPACE_BINDINGS
        )
    )


def _suite(suite: str, kubeconfig: Path, profile: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", suite, "-p", "no:cacheprovider", "-q", "--kubeconfig", str(kubeconfig),
         "--profile", str(profile), "--report-dir", str(tmp / "reports"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip


def test_conformance_and_chaos_pass_under_the_shipped_roles(
    api: client.ApiClient, staging: tuple[Path, Path], tmp_path: Path
) -> None:
    kubeconfig, profile = staging
    before = snapshot(api)
    conf = _suite("suites/conformance", kubeconfig, profile, tmp_path / "conformance")
    out = conf.stdout + conf.stderr
    assert conf.returncode == 0, out[-4000:]
    assert "forbidden" not in out and "permission missing" not in out, out[-4000:]
    # the whole chaos suite, node chaos allowed as on a staging cluster: node-drain acts through
    # the API alone and passes; the experiments that act on the host are skipped, saying why
    chaos = _suite("suites/chaos", kubeconfig, profile, tmp_path / "chaos", "--allow-node-chaos", "-rs")
    out = chaos.stdout + chaos.stderr
    assert chaos.returncode == 0, out[-4000:]
    assert f"7 passed, {HOST_EXPERIMENTS} skipped" in out, out[-4000:]
    assert "only seatrial's local cluster has" in out and "forbidden" not in out, out[-4000:]
    as_before(api, before)


def test_a_missing_permission_is_named(
    api: client.ApiClient, kube_target: kube.Target, reference_stack: Deployed, tmp_path: Path
) -> None:
    """Bound to everything but ``seatrial-conform``: the first read in the stack's namespace is
    refused, and the run says which verb on which resource, with exit 2 and no traceback."""
    profile = yaml.safe_load((ROOT / "profiles" / "reference.yaml").read_text())
    profile |= {"name": "staging-ci", "namespaces": [reference_stack.namespace]}
    (tmp_path / "profile.yaml").write_text(yaml.safe_dump(profile))
    before = snapshot(api)
    for kubeconfig in _account(api, kube_target, reference_stack.namespace, tmp_path / "kc", namespaced=()):
        proc = _suite("suites/conformance", kubeconfig, tmp_path / "profile.yaml", tmp_path)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 2, out[-3000:]
        assert "permission missing" in out and "cannot list resource" in out, out[-3000:]
        assert "system:serviceaccount:" in out and "Traceback" not in out, out[-3000:]
    as_before(api, before)
