"""Acceptance 3: the controllers are real: rollouts, PDB-guarded evictions, cordon and drain."""

from __future__ import annotations

import os
import subprocess

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from seatrial import kube
from seatrial.cluster import build, pools

from .conftest import deployment, pod_spec, pods_of, ready_pods, wait


def test_rolling_update_completes(core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str) -> None:
    body = deployment("roll", 4, pod_spec(node_selector={pools.POOL_LABEL: "cpu"}))
    body["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    apps.create_namespaced_deployment(namespace, body)
    before = {p.metadata.name for p in ready_pods(core, namespace, "roll", 4)}
    apps.patch_namespaced_deployment(
        "roll",
        namespace,
        {
            "spec": {
                "template": {"spec": {"containers": [{"name": "main", "image": "registry.invalid/seatrial/sleep:2"}]}}
            }
        },
    )

    def rolled() -> bool:
        d = apps.read_namespaced_deployment("roll", namespace)
        s = d.status
        return bool(
            s.observed_generation == d.metadata.generation
            and s.updated_replicas == 4
            and s.available_replicas == 4
            and (s.replicas or 0) == 4
        )

    wait("the rollout to complete", rolled, timeout=90)
    after = ready_pods(core, namespace, "roll", 4)
    assert not before & {p.metadata.name for p in after}
    assert {p.spec.containers[0].image for p in after} == {"registry.invalid/seatrial/sleep:2"}


def _evict(core: client.CoreV1Api, namespace: str, name: str) -> int:
    body = client.V1Eviction(metadata=client.V1ObjectMeta(name=name, namespace=namespace))
    try:
        core.create_namespaced_pod_eviction(name, namespace, body)
    except ApiException as exc:
        return int(exc.status)
    return 201


def test_eviction_beyond_pdb_is_refused(core: client.CoreV1Api, namespace: str, api: client.ApiClient) -> None:
    # bare pods are not replaced, so the budget is exactly the number of allowed evictions
    for i in range(3):
        core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": f"guarded-{i}", "labels": {"app": "guarded"}},
                "spec": pod_spec(node_selector={pools.POOL_LABEL: "cpu"}),
            },
        )
    client.PolicyV1Api(api).create_namespaced_pod_disruption_budget(
        namespace,
        {"metadata": {"name": "guarded"}, "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "guarded"}}}},
    )
    ready_pods(core, namespace, "guarded", 3)
    policy = client.PolicyV1Api(api)
    wait(
        "the PDB to allow one disruption",
        lambda: policy.read_namespaced_pod_disruption_budget("guarded", namespace).status.disruptions_allowed == 1,
    )
    assert _evict(core, namespace, "guarded-0") == 201
    wait(
        "the PDB to allow none",
        lambda: policy.read_namespaced_pod_disruption_budget("guarded", namespace).status.disruptions_allowed == 0,
    )
    assert _evict(core, namespace, "guarded-1") == 429
    assert _evict(core, namespace, "guarded-2") == 429
    assert {p.metadata.name for p in pods_of(core, namespace, "guarded")} == {"guarded-1", "guarded-2"}


@pytest.fixture
def drained_node(core: client.CoreV1Api) -> list[str]:
    nodes: list[str] = []
    yield nodes
    for name in nodes:  # always uncordon, even when the test failed half-way
        core.patch_node(name, {"spec": {"unschedulable": None}})


def test_cordon_and_drain_reschedules(
    core: client.CoreV1Api,
    apps: client.AppsV1Api,
    namespace: str,
    kube_target: kube.Target,
    drained_node: list[str],
) -> None:
    apps.create_namespaced_deployment(
        namespace, deployment("drainme", 6, pod_spec(node_selector={pools.POOL_LABEL: "cpu"}))
    )
    pods = ready_pods(core, namespace, "drainme", 6)
    victim = pods[0].spec.node_name
    drained_node.append(victim)
    bins = build.cached_binaries()
    assert bins is not None
    subprocess.run(
        [str(bins["kubectl"]), "drain", victim, "--pod-selector=app=drainme", "--timeout=60s", "--ignore-daemonsets"],
        check=True,
        capture_output=True,
        timeout=90,
        env=os.environ | {"KUBECONFIG": str(kube_target.kubeconfig)},
    )
    assert core.read_node(victim).spec.unschedulable is True

    def moved() -> bool:
        now = ready_pods(core, namespace, "drainme", 6)
        return all(p.spec.node_name != victim for p in now)

    wait("the drained node's pods to be rescheduled elsewhere", moved, timeout=90)
