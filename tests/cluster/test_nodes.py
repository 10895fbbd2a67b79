"""Acceptance 1: every pool is there and Ready, GPU nodes advertise GPUs, the server is the pinned release."""

from __future__ import annotations

import json
import os
import subprocess

from kubernetes import client

from seatrial import kube
from seatrial.cluster import build, pools, versions
from seatrial.cluster.local import LocalCluster


def test_every_pool_node_ready(core: client.CoreV1Api) -> None:
    expected = {
        n["metadata"]["name"]
        for n in pools.render_nodes(pools.load_pools(LocalCluster().pools_dir), kubelet_version=versions.KUBERNETES)
    }
    nodes = {n.metadata.name: n for n in core.list_node().items}
    assert expected <= set(nodes)
    not_ready = [name for name in expected if not kube.node_ready(nodes[name])]
    assert not_ready == []


def test_gpu_nodes_advertise_gpus(core: client.CoreV1Api) -> None:
    gpu_nodes = core.list_node(label_selector="nvidia.com/gpu.present=true").items
    assert len(gpu_nodes) >= 3
    for node in gpu_nodes:
        count = node.metadata.labels["nvidia.com/gpu.count"]
        assert node.status.allocatable[pools.GPU_RESOURCE] == count
        assert any(t.key == pools.GPU_RESOURCE and t.effect == "NoSchedule" for t in node.spec.taints)
    cpu_nodes = core.list_node(label_selector=f"{pools.POOL_LABEL}=cpu").items
    assert {n.metadata.labels["topology.kubernetes.io/zone"] for n in cpu_nodes} == {"zone-a", "zone-b", "zone-c"}
    assert all(pools.GPU_RESOURCE not in (n.status.allocatable or {}) for n in cpu_nodes)


def test_server_reports_pinned_version(api: client.ApiClient, kube_target: kube.Target) -> None:
    assert kube.server_version(api) == versions.KUBERNETES
    kubectl = build.cached_binaries()
    assert kubectl is not None
    out = subprocess.run(
        [str(kubectl["kubectl"]), "version", "-o", "json"],
        capture_output=True,
        text=True,
        env=os.environ | {"KUBECONFIG": str(kube_target.kubeconfig)},
        check=True,
        timeout=30,
    )
    info = json.loads(out.stdout)
    assert info["serverVersion"]["gitVersion"] == versions.KUBERNETES
    assert info["clientVersion"]["gitVersion"] == versions.KUBERNETES
