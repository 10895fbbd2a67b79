"""The node-level experiments, proven both ways on the local cluster under real load.

node-drain passes on the reference stack and fails against a PodDisruptionBudget that blocks
every eviction; spot-preemption passes and fails against a benchmark Job without checkpoints;
node-failure passes and fails against the default toleration of an unreachable node (300 s)
under a 60 s recovery SLO; zone-outage passes and fails when every inference replica is in the
zone that goes dark (one replica: the only arrangement our one GPU node per zone allows with the
stack's one-replica-per-node rule; two replicas pinned to one zone leave the second Pending);
gpu-fault passes and fails with a single inference replica, which leaves nothing serving while
the replacement on a healthy GPU loads its model.
After every run, pass or fail, the nodes are as they were: Ready,
schedulable, no taint, label, condition or annotation of seatrial's, GPUs as advertised, and the
stack whole."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from seatrial import kube, profile, workloads
from seatrial.chaos import ledger, nodeops, runner
from seatrial.cluster import pools
from seatrial.cluster.local import LocalCluster
from seatrial.stack import Deployed

from .conftest import TEST_LABEL
from .test_chaos import EXPERIMENTS, ONE_INFERENCE, Weakness, _replicas, _suite, weakened


@pytest.fixture(scope="module")
def where(api: client.ApiClient, kube_target: kube.Target, reference_stack: Deployed) -> runner.Where:
    return runner.Where(api, kube_target, reference_stack.namespace, profile.load(None), LocalCluster())


def _nodes(where: runner.Where) -> dict[str, Any]:
    """Each node as the tests compare it: ready, schedulable, its taints, GPUs, seatrial's marks,
    and who holds its heartbeat lease for how long (a failed simulated node's lease is held)."""
    leases = client.CoordinationV1Api(where.api).list_namespaced_lease(nodeops.NODE_LEASES).items
    holders = {kube.name_of(x): (x.spec.holder_identity, x.spec.lease_duration_seconds) for x in leases}
    out = {}
    for n in client.CoreV1Api(where.api).list_node().items:
        d = kube.as_dict(n)
        meta, spec, status = d["metadata"], d.get("spec") or {}, d.get("status") or {}
        out[meta["name"]] = (
            kube.node_ready(n),
            bool(spec.get("unschedulable")),
            sorted((t["key"], t["effect"]) for t in spec.get("taints") or []),
            (status.get("allocatable") or {}).get("nvidia.com/gpu"),
            ledger.RUN_LABEL in (meta.get("labels") or {}),
            ledger.ORIGINAL_ANNOTATION in (meta.get("annotations") or {}),
            sorted(c["type"] for c in status.get("conditions") or []),
            holders.get(meta["name"]),
        )
    return out


def _as_before(where: runner.Where, before: dict[str, Any]) -> None:
    """Nodes come back on their own clock (a revived kubelet re-registers): allow them a minute."""
    deadline = time.monotonic() + 90
    while _nodes(where) != before and time.monotonic() < deadline:
        time.sleep(1)
    after = _nodes(where)
    changed = {n: (before.get(n), after.get(n)) for n in set(before) | set(after) if before.get(n) != after.get(n)}
    assert not changed, f"nodes not as before: {changed}"


@contextmanager
def blocking_budget(where: runner.Where) -> Iterator[None]:
    """The inference PDB allows no disruption at all (maxUnavailable 0): a drain never finishes."""
    policy, ns = client.PolicyV1Api(where.api), where.namespace
    before = kube.as_dict(policy.read_namespaced_pod_disruption_budget("inference", ns))["spec"]
    policy.patch_namespaced_pod_disruption_budget("inference", ns, {"spec": {"maxUnavailable": 0}})
    try:
        kube.wait_for("the budget to allow nothing", lambda: kube.as_dict(
            policy.read_namespaced_pod_disruption_budget("inference", ns))["status"].get("disruptionsAllowed") == 0,
            timeout=30)  # fmt: skip
        yield
    finally:
        policy.patch_namespaced_pod_disruption_budget("inference", ns, {"spec": before})


@contextmanager
def no_checkpoints(where: runner.Where) -> Iterator[None]:
    """The benchmark Job replaced by one that keeps no checkpoint (CHECKPOINTS=off)."""
    batch, ns = client.BatchV1Api(where.api), where.namespace
    original = kube.as_dict(batch.read_namespaced_job("benchmark", ns))

    def replace(job: dict[str, Any], env: dict[str, str]) -> None:
        batch.delete_namespaced_job("benchmark", ns, propagation_policy="Foreground")
        kube.wait_for("the old benchmark Job gone", lambda: not [
            j for j in batch.list_namespaced_job(ns).items if kube.name_of(j) == "benchmark"], timeout=60)  # fmt: skip
        template = job["spec"]["template"]
        labels = {
            k: v for k, v in template["metadata"]["labels"].items() if "controller-uid" not in k and "job-name" not in k
        }
        c = template["spec"]["containers"][0]
        c["env"] = [e for e in c["env"] if e["name"] not in env] + [{"name": k, "value": v} for k, v in env.items()]
        body = {"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "benchmark", "labels": job["metadata"].get("labels") or {}},
                "spec": {k: v for k, v in job["spec"].items() if k in ("backoffLimit", "podFailurePolicy")}
                | {"template": {"metadata": {"labels": labels}, "spec": template["spec"]}}}  # fmt: skip
        batch.create_namespaced_job(ns, client.V1Job.model_validate(body))

    replace(copy.deepcopy(original), {"CHECKPOINTS": "off"})
    try:
        yield
    finally:
        replace(copy.deepcopy(original), {})


DEFAULT_TOLERATIONS: Weakness = (
    "Deployment", "gateway", {"spec": {"template": {"spec": {"tolerations": None}}}}, None,
)  # fmt: skip


CASES = [
    ("node-drain", "blocking-budget", "not drained after 30 s"),
    ("spot-preemption", "no-checkpoints", "restarted from step 0"),
    ("node-failure", "default-tolerations", "tolerationSeconds"),
    # Not "error rate": the window from the fault on runs to the end of the rollbacks, and the
    # fast answers after the zone is back can outnumber the slow failures before it (CI saw
    # 69 s of failures diluted under the 25 % budget). A lone replica's zone gone dark always
    # leaves the front door serving nothing once the outage is noticed.
    ("zone-outage", "one-zone-inference", "steady state not met after the fault: front-door-serves"),
    ("gpu-fault", "one-inference", "error rate"),
]


@pytest.mark.timeout(1200)
@pytest.mark.parametrize(("name", "weakness", "says"), CASES, ids=[c[0] for c in CASES])
def test_node_experiment_passes_on_the_reference_and_fails_when_weakened(
    where: runner.Where, tmp_path: Path, name: str, weakness: str, says: str
) -> None:
    replicas, nodes = _replicas(where), _nodes(where)
    good = runner.run(EXPERIMENTS / f"{name}.json", where, tmp_path / "good")
    assert good.status == "passed", f"{name} on the reference stack: {good.violations()} {good.steps}"
    assert good.overall.requests > 100 and good.fault is not None
    _as_before(where, nodes)
    assert _replicas(where) == replicas

    weak = {
        "blocking-budget": lambda: blocking_budget(where),
        "no-checkpoints": lambda: no_checkpoints(where),
        "default-tolerations": lambda: weakened(where, DEFAULT_TOLERATIONS),
        "one-zone-inference": lambda: weakened(where, ONE_INFERENCE),
        "one-inference": lambda: weakened(where, ONE_INFERENCE),
    }[weakness]
    with weak():
        bad = runner.run(EXPERIMENTS / f"{name}.json", where, tmp_path / "bad")
    assert bad.status == "failed", f"{name} on the weakened stack: {bad.status} {bad.violations()} {bad.steps}"
    cause = "; ".join(bad.violations())
    assert says in cause, cause
    _as_before(where, nodes)
    assert _replicas(where) == replicas


def test_node_chaos_outside_the_node_blast_radius_is_refused_before_acting(where: runner.Where, tmp_path: Path) -> None:
    """On a cluster seatrial did not start (no local cluster in ``where``) and without
    --allow-node-chaos, a node experiment changes nothing and says why."""
    nodes = _nodes(where)
    remote = runner.Where(where.api, where.target, where.namespace, where.profile)
    result = runner.run(EXPERIMENTS / "node-drain.json", remote, tmp_path / "refused")
    assert result.status == "error"
    said = " ".join(s.output for s in result.steps if s.status == "error")
    assert "node-level chaos is off for this run" in said, said
    assert _nodes(where) == nodes


def test_ctrl_c_while_a_gpu_is_failed_gives_the_gpu_back(where: runner.Where, tmp_path: Path) -> None:
    """SIGINT once gpu-fault has failed a GPU (marked on its node): the run's undos make the GPU
    healthy, remove the condition, and the nodes end as they began; inference is whole again."""
    nodes = _nodes(where)
    proc = _suite(where, tmp_path, "-k", "gpu-fault")
    core = client.CoreV1Api(where.api)

    def failed_gpu() -> bool:
        for n in core.list_node().items:
            raw = (kube.as_dict(n)["metadata"].get("annotations") or {}).get(ledger.ORIGINAL_ANNOTATION)
            if raw and any(k.startswith("gpu/") for k in json.loads(raw)):
                return True
        return False

    deadline = time.monotonic() + 180
    while not failed_gpu() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    if not failed_gpu():
        proc.kill()
        pytest.fail(f"gpu-fault never failed a GPU: {(proc.communicate()[0] or '')[-2000:]}")
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0, out[-3000:]
    _as_before(where, nodes)
    workloads.wait_rolled_out(where.api, "StatefulSet", "inference", where.namespace, timeout=180)


def _role(name: str, group: str, resource: str, verbs: list[str]) -> dict[str, Any]:
    rules = [{"apiGroups": [group], "resources": [resource], "verbs": verbs}]
    return {"metadata": {"name": name, "labels": {TEST_LABEL: "true"}}, "rules": rules}


def _binding(kind: str, name: str, account_ns: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {TEST_LABEL: "true"}},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": account_ns}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
    }


@contextmanager
def lease_reader(api: client.ApiClient, target: kube.Target, out: Path) -> Iterator[client.ApiClient]:
    """An account that may read and patch nodes and read, not write, their heartbeat leases."""
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    name = f"seatrial-lease-reader-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": name, "labels": {TEST_LABEL: "true"}}})
    try:
        core.create_namespaced_service_account(name, {"metadata": {"name": "reader"}})
        rbac.create_cluster_role(_role(name, "", "nodes", ["get", "patch"]))
        rbac.create_cluster_role_binding(_binding("ClusterRole", name, name))
        rbac.create_namespaced_role(nodeops.NODE_LEASES, _role(name, "coordination.k8s.io", "leases", ["get"]))
        rbac.create_namespaced_role_binding(nodeops.NODE_LEASES, _binding("Role", name, name))
        token = core.create_namespaced_service_account_token("reader", name, {"spec": {"expirationSeconds": 600}})
        cluster = yaml.safe_load(target.kubeconfig.read_text())["clusters"][0]["cluster"]
        user = {"token": token.status.token}
        out.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "reader",
            "clusters": [{"name": "c", "cluster": cluster}], "users": [{"name": "r", "user": user}],
            "contexts": [{"name": "reader", "context": {"cluster": "c", "user": "r"}}],
        }))  # fmt: skip
        yield kube.api_client(kube.Target(out, None))
    finally:
        for delete in (
            lambda: rbac.delete_cluster_role_binding(name),
            lambda: rbac.delete_cluster_role(name),
            lambda: rbac.delete_namespaced_role_binding(name, nodeops.NODE_LEASES),
            lambda: rbac.delete_namespaced_role(name, nodeops.NODE_LEASES),
        ):
            with contextlib.suppress(client.ApiException):
                delete()
        core.delete_namespace(name, grace_period_seconds=0)
        kube.wait_namespaces_gone(core, [name], selector=TEST_LABEL, timeout=120)


def test_a_heartbeat_lease_it_may_read_but_not_write_is_left_alone(
    where: runner.Where, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Holding a lease is tried as a dry run before the node is marked: an account that may read
    the lease but not write it falls back to the label alone, with a warning, and leaves no mark
    behind that no undo could give back."""
    nodes = _nodes(where)
    name = client.CoreV1Api(where.api).list_node(label_selector=f"{pools.POOL_LABEL}=cpu").items[-1].metadata.name
    with lease_reader(where.api, where.target, tmp_path / "kubeconfig") as reader:
        book = ledger.begin([], nodes=ledger.NodeScope())
        try:
            with caplog.at_level(logging.WARNING, logger="seatrial.chaos"):
                nodeops.hold_lease(reader, name)
            assert f"node {name}'s heartbeat lease not held" in caplog.text
            assert 'cannot patch resource "leases"' in caplog.text, caplog.text
            assert not book.undos, [u.what for u in book.undos]
            assert _nodes(where) == nodes
        finally:
            assert not book.unwind()
    _as_before(where, nodes)
