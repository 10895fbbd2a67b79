"""Node pool files: the shipped pools render as a GPU cluster; bad files fail with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from seatrial.cluster import pools
from seatrial.errors import ConfigError, ExitCode

REPO = Path(__file__).resolve().parents[2]
CASES = Path(__file__).parent / "pools"


def test_shipped_pools_render_gpu_cluster() -> None:
    node_pools = pools.load_pools(REPO / "manifests" / "cluster")
    nodes = pools.render_nodes(node_pools, kubelet_version="v1.34.4")
    by_pool: dict[str, list[dict]] = {}
    for n in nodes:
        by_pool.setdefault(n["metadata"]["labels"][pools.POOL_LABEL], []).append(n)
    assert set(by_pool) == {"cpu", "gpu-a100", "spot-h100", "spot-l4"}
    cpu_zones = {n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in by_pool["cpu"]}
    assert len(cpu_zones) == 3
    a100 = by_pool["gpu-a100"][0]
    labels = a100["metadata"]["labels"]
    assert labels["nvidia.com/gpu.present"] == "true"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    assert labels["nvidia.com/gpu.count"] == "8"
    assert a100["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert {"key": "nvidia.com/gpu", "effect": "NoSchedule"} in a100["spec"]["taints"]
    assert labels[pools.CAPACITY_TYPE_LABEL] == "on-demand"
    for spot in by_pool["spot-h100"] + by_pool["spot-l4"]:
        assert spot["metadata"]["labels"][pools.CAPACITY_TYPE_LABEL] == "spot"
        assert {"key": "karpenter.sh/capacity-type", "value": "spot", "effect": "NoSchedule"} in spot["spec"]["taints"]
    assert by_pool["spot-l4"][0]["status"]["capacity"]["nvidia.com/gpu"] == "4"
    for n in by_pool["cpu"]:
        assert "nvidia.com/gpu" not in n["status"]["capacity"]
        assert "nvidia.com/gpu.present" not in n["metadata"]["labels"]
    for n in nodes:  # every simulated node is KWOK's, and carries the taint that keeps real workloads off it
        assert n["metadata"]["labels"][pools.KWOK_LABEL] == "fake"
        assert {"key": pools.KWOK_TAINT_KEY, "value": "fake", "effect": "NoSchedule"} in n["spec"]["taints"]
        assert n["metadata"]["labels"][pools.MANAGED_BY_LABEL] == "seatrial"


BAD = sorted(CASES.glob("bad-*.yaml"))


@pytest.mark.parametrize("case", BAD, ids=[c.stem for c in BAD])
def test_bad_pool_file_names_file_and_field(case: Path, tmp_path: Path) -> None:
    """Each bad-*.yaml holds the pool and, in a leading comment, the text the error must contain."""
    expected = case.read_text().splitlines()[0].removeprefix("# expect: ").strip()
    (tmp_path / case.name).write_text(case.read_text())
    with pytest.raises(ConfigError) as info:
        pools.load_pools(tmp_path)
    assert expected in str(info.value)
    assert case.name in str(info.value) or "defined twice" in str(info.value)
    assert info.value.exit_code == ExitCode.USAGE


def test_pool_cases_exist() -> None:
    assert len(BAD) >= 6


def test_zones_round_robin_and_custom_labels() -> None:
    pool = pools.parse_pool(
        yaml.safe_load(
            "name: p\ncount: 4\nzones: [a, b]\ncapacity: {cpu: '4', memory: 8Gi, pods: '10'}\n"
            "labels: {team: ml, gpu-ready: true}\n"
        ),
        "inline",
    )
    nodes = [pools.render_node(pool, i, kubelet_version="v1") for i in range(4)]
    assert [n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes] == ["a", "b", "a", "b"]
    assert nodes[0]["metadata"]["labels"]["team"] == "ml"
    assert nodes[0]["metadata"]["labels"]["gpu-ready"] == "true"
    assert [n["metadata"]["name"] for n in nodes] == ["p-0", "p-1", "p-2", "p-3"]
