"""Real-node plans are pure data: addresses, names and configs checked without root."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from seatrial.cluster import network, pools, realnodes
from seatrial.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_network_plan_is_stable_and_disjoint() -> None:
    plan = network.plan(["a-0", "a-1", "b-0"])
    assert [n.ip for n in plan.nodes] == ["10.250.0.10", "10.250.0.11", "10.250.0.12"]
    assert [n.pod_cidr for n in plan.nodes] == ["10.251.0.0/24", "10.251.1.0/24", "10.251.2.0/24"]
    assert plan.host_ip == "10.250.0.1"
    assert len({n.netns for n in plan.nodes}) == 3
    assert all(len(n.host_veth) <= 15 for n in plan.nodes)  # Linux interface name limit
    cmds = network.setup_commands(plan)
    assert ["ip", "route", "add", "10.251.2.0/24", "via", "10.250.0.12", "dev", plan.bridge] in cmds


def test_real_pool_parses_and_is_not_simulated() -> None:
    node_pools = pools.load_pools(REPO / "manifests" / "cluster")
    real = [p for p in node_pools if p.real]
    assert {p.name for p in real} == {"real-cpu", "real-gpu", "real-spot"}
    names = {n["metadata"]["name"] for n in pools.render_nodes(node_pools, kubelet_version="v1")}
    assert not names & {n for p in real for n in p.node_names()}


def test_real_pool_rejects_capacity() -> None:
    doc = yaml.safe_load("kind: RealNodePool\nname: r\ncount: 1\nzones: [a]\ncapacity: {cpu: '4'}\n")
    with pytest.raises(ConfigError, match="measured by its kubelet"):
        pools.parse_pool(doc, "inline")


def _node(gpu: bool) -> realnodes.RealNode:
    doc = {"kind": "RealNodePool", "name": "g" if gpu else "c", "count": 1, "zones": ["zone-a"]}
    if gpu:
        doc["gpu"] = {"product": "NVIDIA-A10G", "count": 2}
    pool = pools.parse_pool(doc, "inline")
    net = network.plan([f"{pool.name}-0"]).nodes[0]
    return realnodes.RealNode(
        pool=pool, net=net, zone="zone-a", conf=Path("/x/conf"), runtime=Path("/run/s/0"), cgroup="/s-0"
    )


def test_gpu_real_node_carries_gpu_labels_and_taint() -> None:
    node = _node(gpu=True)
    labels = realnodes.node_labels(node)
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A10G"
    assert labels["topology.kubernetes.io/zone"] == "zone-a"
    assert not any(k.endswith("kubernetes.io/managed-by") for k in labels)  # NodeRestriction forbids it
    assert realnodes.node_taints(node)[0] == {"key": "nvidia.com/gpu", "effect": "NoSchedule"}
    assert realnodes.node_taints(_node(gpu=False)) == []


def test_node_configs_keep_nodes_apart() -> None:
    node = _node(gpu=False)
    toml = realnodes.containerd_config(node, "seatrial.local/pause:3.10")
    assert 'address = "/run/s/0/containerd.sock"' in toml
    assert "restrict_oom_score_adj = true" in toml
    assert "SystemdCgroup = false" in toml
    cni = realnodes.cni_config(node)
    assert cni["plugins"][0]["ipMasq"] is False
    assert cni["plugins"][0]["ipam"]["ranges"] == [[{"subnet": node.net.pod_cidr}]]
    from seatrial.cluster.pki import Pki

    kubelet = realnodes.kubelet_config(node, Pki(Path("/x/pki")), "serving")
    assert kubelet["cgroupRoot"] == "/s-0" and kubelet["failCgroupV1"] is False
    assert kubelet["cgroupDriver"] == "cgroupfs" and kubelet["clusterDNS"] == [realnodes.CLUSTER_DNS]
    proxy = realnodes.proxy_config(node, Path("/x/kc"), network.plan(["c-0"]))
    assert proxy["conntrack"]["maxPerCore"] == 0  # nf_conntrack_max is read-only in a netns


def test_coredns_addon_uses_the_image_we_build() -> None:
    from seatrial.cluster import images

    docs = list(yaml.safe_load_all((REPO / "manifests/cluster/addons/coredns.yaml").read_text()))
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == images.COREDNS
