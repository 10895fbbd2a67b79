"""Live checks proven both ways on the local cluster: the deployed reference stack passes each,
and a small known-bad workload fails it, naming the object."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from seatrial import checks, conformance, profile, stack
from seatrial.checks.live import Live
from seatrial.cluster import pools

from .conftest import KWOK_TOLERATION, TEST_LABEL, deployment, ready_pods, wait
from .test_real_nodes import REAL, SERVER, web_spec

LIVE_ONLY = ("GPU-009", "GPU-010", "SPREAD-004", "PDB-005", "ROLL-008", "SEC-007")


@pytest.fixture
def namespace(core: client.CoreV1Api) -> Iterator[str]:
    """One namespace per test here: each known-bad workload must be judged alone."""
    name = f"seatrial-test-live-{uuid.uuid4().hex[:6]}"
    core.create_namespace(
        {"metadata": {"name": name, "labels": {pools.MANAGED_BY_LABEL: pools.MANAGED_BY, TEST_LABEL: "true"}}}
    )
    yield name
    core.delete_namespace(name, grace_period_seconds=0)


def run(api: client.ApiClient, ns: str, only: str, **extra: Any) -> checks.Result:
    p = profile.load(None)
    inv, fx = conformance.live_inventory(api, [ns], p)
    live = Live(api, [ns], inv, fx, **extra)
    [result] = checks.run(inv, fx, mode="live", only=[only], live=live)
    return result


def kwok_spec(**extra: Any) -> dict[str, Any]:
    selector = {pools.KWOK_LABEL: "fake", **extra.pop("nodeSelector", {})}
    return {
        "nodeSelector": selector,
        "tolerations": [KWOK_TOLERATION],
        "containers": [{"name": "c", "image": "kwok.local/none:1", "resources": {"requests": {"cpu": "10m"}}}],
        **extra,
    }


def pdb(name: str, selector: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"selector": selector, **spec},
    }


def test_reference_stack_passes_the_live_checks(reference_stack: stack.Deployed, api: client.ApiClient) -> None:
    p = profile.load(None)
    ns = [reference_stack.namespace]
    inv, fx = conformance.live_inventory(api, ns, p)
    live = conformance.live_context(api, ns, inv, fx, p)
    results = checks.run(inv, fx, mode="live", only=LIVE_ONLY, live=live)
    assert {r.check.id: r.status for r in results} == dict.fromkeys(LIVE_ONLY, "passed"), [
        (r.check.id, r.reason, [str(f) for f in r.findings]) for r in results if r.status != "passed"
    ]


def test_pdb_005_fails_when_one_budget_counts_two_workloads(
    api: client.ApiClient, apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    for name, replicas in (("a", 3), ("b", 1)):
        d = deployment(name, replicas, kwok_spec())
        d["spec"]["template"]["metadata"]["labels"]["tier"] = "front"
        apps.create_namespaced_deployment(namespace, d)
    client.PolicyV1Api(api).create_namespaced_pod_disruption_budget(
        namespace, pdb("front", {"matchLabels": {"tier": "front"}}, minAvailable=2)
    )
    ready_pods(core, namespace, "a", 3)
    ready_pods(core, namespace, "b", 1)
    wait("the budget to count 4 healthy pods", lambda: (
        client.PolicyV1Api(api).read_namespaced_pod_disruption_budget("front", namespace).status.current_healthy == 4
    ))  # fmt: skip
    r = run(api, namespace, "PDB-005")
    assert r.status == "failed", r
    assert [f"{f.target.kind}/{f.target.name}" for f in r.findings] == ["PodDisruptionBudget/front"]
    assert "evicted, evicted" in r.findings[0].message


def test_spread_004_fails_when_every_replica_shares_a_node(
    api: client.ApiClient, apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(
        namespace, deployment("stacked", 3, kwok_spec(nodeSelector={"kubernetes.io/hostname": "cpu-0"}))
    )
    client.PolicyV1Api(api).create_namespaced_pod_disruption_budget(
        namespace, pdb("stacked", {"matchLabels": {"app": "stacked"}}, maxUnavailable=1)
    )
    ready_pods(core, namespace, "stacked", 3)
    r = run(api, namespace, "SPREAD-004")
    assert r.status == "failed", r
    assert {f"{f.target.kind}/{f.target.name}" for f in r.findings} == {"Deployment/stacked"}
    assert any("losing node cpu-0 leaves 0 of 3" in f.message for f in r.findings)


def test_gpu_009_fails_for_a_cpu_pod_on_a_gpu_node(
    api: client.ApiClient, apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    spec = kwok_spec(nodeSelector={"seatrial.dev/pool": "gpu-a100"})
    spec["tolerations"] = [
        *spec["tolerations"],
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ]
    apps.create_namespaced_deployment(namespace, deployment("squatter", 1, spec))
    ready_pods(core, namespace, "squatter", 1)
    r = run(api, namespace, "GPU-009")
    assert r.status == "failed", r
    assert all(f.target.kind == "Pod" and f.target.name.startswith("squatter-") for f in r.findings)
    assert "requests no GPU but runs on GPU node gpu-a100-" in r.findings[0].message


def test_gpu_010_fails_when_scaling_out_preempts_other_gpu_work(
    api: client.ApiClient, apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    """Serving at high priority, batch at the default filling the rest of the pool: one serving
    pod more takes a batch job's GPUs."""
    scheduling = client.SchedulingV1Api(api)
    high = f"seatrial-test-high-{namespace[-6:]}"
    scheduling.create_priority_class(
        {"metadata": {"name": high, "labels": {pools.MANAGED_BY_LABEL: pools.MANAGED_BY}}, "value": 100000}
    )
    try:
        gpu = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

        def gpu_spec(**extra: Any) -> dict[str, Any]:
            spec = kwok_spec(nodeSelector={"seatrial.dev/pool": "gpu-a100"}, **extra)
            spec["tolerations"] = [*spec["tolerations"], gpu]
            spec["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "8"}, "requests": {"cpu": "10m"}}
            return spec

        apps.create_namespaced_deployment(namespace, deployment("serving", 1, gpu_spec(priorityClassName=high)))
        ready_pods(core, namespace, "serving", 1)
        apps.create_namespaced_deployment(namespace, deployment("batch", 3, gpu_spec()))
        ready_pods(core, namespace, "batch", 3)
        r = run(api, namespace, "GPU-010")
        assert r.status == "failed", r
        assert [f"{f.target.kind}/{f.target.name}" for f in r.findings] == ["Deployment/serving"]
        assert "preempted" in r.findings[0].message and "/batch-" in r.findings[0].message
    finally:
        scheduling.delete_priority_class(high)


def test_sec_007_fails_for_a_service_account_bound_to_edit(
    api: client.ApiClient, apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "nosy"}})
    client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "nosy-edit"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "ServiceAccount", "name": "nosy", "namespace": namespace}],
        },
    )
    apps.create_namespaced_deployment(namespace, deployment("nosy", 1, kwok_spec(serviceAccountName="nosy")))
    r = run(api, namespace, "SEC-007")
    assert r.status == "failed", r
    assert [f"{f.target.kind}/{f.target.name}" for f in r.findings] == ["Deployment/nosy"]
    assert "may list all Secrets in its namespace" in r.findings[0].message


def test_roll_008_fails_for_a_rollout_that_drops_requests(
    api: client.ApiClient, apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str
) -> None:
    # a server that listens 3 s after it starts, no readiness probe and no preStop: the classic
    spec = web_spec()
    spec["nodeSelector"] = REAL | {"seatrial.dev/pool": "real-cpu"}
    spec["containers"][0].pop("readinessProbe")
    spec["containers"][0]["command"] = ["python3", "-c", "import time; time.sleep(3)\n" + SERVER]
    d = deployment("careless", 2, spec)
    d["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}
    apps.create_namespaced_deployment(namespace, d)
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "careless"},
            "spec": {"selector": {"app": "careless"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
    )
    ready_pods(core, namespace, "careless", 2, timeout=120)
    ip = core.read_namespaced_service("careless", namespace).spec.cluster_ip
    # no readiness probe: "ready" pods listen 3 s later; wait until both answer, every time
    wait("both pods to answer", lambda: all(_answers(f"http://{ip}/") for _ in range(10)), timeout=60)
    r = run(api, namespace, "ROLL-008", load_url=f"http://{ip}/", rollout="Deployment/careless")
    assert r.status == "failed", r
    assert r.findings[0].target.name == "careless"
    assert "requests failed during the rollout" in r.findings[0].message


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status == 200
    except OSError:
        return False


def test_live_checks_have_proofs() -> None:
    live_only = {c.id for c in checks.catalogue() if c.modes == ("live",)}
    assert live_only == set(LIVE_ONLY)


def test_a_profile_naming_a_missing_namespace_is_a_config_error(api: client.ApiClient) -> None:
    from seatrial.errors import ConfigError

    p = profile.parse({"name": "typo", "namespaces": ["no-such-namespace-here"]}, "typo.yaml")
    with pytest.raises(ConfigError, match="no-such-namespace-here"):
        conformance.live_inventory(api, list(p.namespaces), p)
