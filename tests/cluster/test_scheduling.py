"""Acceptance 2: placement is the real scheduler's: GPU taints, GPU capacity, anti-affinity."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from seatrial.cluster import pools

from .conftest import deployment, pod_spec, pods_of, ready_pods, wait


def _events(core: client.CoreV1Api, namespace: str, pod: str) -> list[Any]:
    return [
        e
        for e in core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={pod}").items
        if e.reason == "FailedScheduling"
    ]


def test_gpu_pod_lands_on_gpu_node(core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str) -> None:
    apps.create_namespaced_deployment(namespace, deployment("gpu", 3, pod_spec(gpus=1, tolerate_gpu=True)))
    for pod in ready_pods(core, namespace, "gpu", 3):
        node = core.read_node(pod.spec.node_name)
        assert node.metadata.labels.get("nvidia.com/gpu.present") == "true", pod.spec.node_name


def test_pods_without_gpu_toleration_never_land_on_gpu_nodes(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str
) -> None:
    apps.create_namespaced_deployment(namespace, deployment("plain", 12, pod_spec()))
    for pod in ready_pods(core, namespace, "plain", 12):
        node = core.read_node(pod.spec.node_name)
        assert "nvidia.com/gpu.present" not in node.metadata.labels, pod.spec.node_name
    # and asking for a GPU without tolerating the taint waits, with the taint named
    core.create_namespaced_pod(namespace, {"metadata": {"name": "gpu-no-toleration"}, "spec": pod_spec(gpus=1)})
    events = wait("FailedScheduling for gpu-no-toleration", lambda: _events(core, namespace, "gpu-no-toleration"))
    assert core.read_namespaced_pod("gpu-no-toleration", namespace).spec.node_name is None
    assert "nvidia.com/gpu" in events[0].message


def _free_gpus(core: client.CoreV1Api, pool: str) -> int:
    nodes = core.list_node(label_selector=f"{pools.POOL_LABEL}={pool}").items
    free = 0
    for node in nodes:
        used = 0
        for pod in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node.metadata.name}").items:
            if pod.status.phase in ("Succeeded", "Failed"):
                continue
            for c in pod.spec.containers:
                used += int(((c.resources and c.resources.requests) or {}).get(pools.GPU_RESOURCE, 0))
        free += int(node.status.allocatable[pools.GPU_RESOURCE]) - used
    return free


def test_one_gpu_pod_past_capacity_stays_pending(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str
) -> None:
    selector = {pools.POOL_LABEL: "gpu-a100"}
    free = _free_gpus(core, "gpu-a100")
    assert free > 0
    apps.create_namespaced_deployment(
        namespace, deployment("fill", free, pod_spec(gpus=1, tolerate_gpu=True, node_selector=selector))
    )
    ready_pods(core, namespace, "fill", free, timeout=90)
    core.create_namespaced_pod(
        namespace,
        {"metadata": {"name": "one-too-many"}, "spec": pod_spec(gpus=1, tolerate_gpu=True, node_selector=selector)},
    )
    events = wait("FailedScheduling for one-too-many", lambda: _events(core, namespace, "one-too-many"))
    assert "Insufficient nvidia.com/gpu" in events[0].message
    assert core.read_namespaced_pod("one-too-many", namespace).status.phase == "Pending"
    assert len(ready_pods(core, namespace, "fill", free)) == free  # and nothing already running was disturbed
    apps.delete_namespaced_deployment("fill", namespace)


def test_required_anti_affinity_spreads_replicas(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str
) -> None:
    cpu_nodes = len(core.list_node(label_selector=f"{pools.POOL_LABEL}=cpu").items)
    affinity = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "spread"}}, "topologyKey": "kubernetes.io/hostname"}
            ]
        }
    }
    spec = pod_spec(node_selector={pools.POOL_LABEL: "cpu"}, affinity=affinity)
    apps.create_namespaced_deployment(namespace, deployment("spread", cpu_nodes, spec))
    placed = ready_pods(core, namespace, "spread", cpu_nodes)
    assert len({p.spec.node_name for p in placed}) == cpu_nodes
    # one replica more than there are nodes cannot be placed
    apps.patch_namespaced_deployment_scale("spread", namespace, {"spec": {"replicas": cpu_nodes + 1}})

    def pending() -> list[Any]:
        return [
            p
            for p in pods_of(core, namespace, "spread")
            if p.spec.node_name is None and _events(core, namespace, p.metadata.name)
        ]

    stuck = wait("the extra replica to be unschedulable", pending)
    assert "anti-affinity" in _events(core, namespace, stuck[0].metadata.name)[0].message
