"""Node pools of the local cluster: parsed from ``manifests/cluster/*.yaml``, rendered to Nodes.

Pure functions only. A pool file is small, strict YAML (unknown fields are errors, because a
typo such as ``gpus:`` would otherwise silently give a pool without GPUs) and the Node objects
it renders carry the labels and taints a real GPU cluster has, so checks written against the
local cluster hold on a real one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from seatrial.errors import ConfigError, reject_unknown, yaml_problem

CapacityType = Literal["on-demand", "spot"]
TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "seatrial"
POOL_LABEL = "seatrial.dev/pool"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
KWOK_LABEL = "kwok.x-k8s.io/node"
"""KWOK manages nodes by this label (a label selector, so removing it stops the heartbeat)."""
KWOK_TAINT_KEY = "kwok.x-k8s.io/node"
GPU_RESOURCE = "nvidia.com/gpu"

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

POOL_FIELDS = {
    "kind",
    "name",
    "count",
    "zones",
    "region",
    "instanceType",
    "capacity",
    "gpu",
    "capacityType",
    "labels",
    "taints",
}
GPU_FIELDS = {"product", "count", "memoryMiB"}
TAINT_FIELDS = {"key", "value", "effect"}
REQUIRED_CAPACITY = ("cpu", "memory", "pods")


@dataclass(frozen=True)
class Taint:
    key: str
    effect: TaintEffect
    value: str = ""

    def as_dict(self) -> dict[str, str]:
        out = {"key": self.key, "effect": self.effect}
        if self.value:
            out["value"] = self.value
        return out


@dataclass(frozen=True)
class Gpu:
    product: str
    count: int
    memory_mib: int | None = None


@dataclass(frozen=True)
class NodePool:
    name: str
    count: int
    zones: tuple[str, ...]
    capacity: Mapping[str, str]
    source: str
    region: str = "local-1"
    instance_type: str | None = None
    gpu: Gpu | None = None
    capacity_type: CapacityType = "on-demand"
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    real: bool = False
    """A RealNodePool: kubelet + containerd nodes that run pods, not KWOK-simulated ones."""

    def node_names(self) -> list[str]:
        return [f"{self.name}-{i}" for i in range(self.count)]


def _str_map(value: object, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a mapping of strings")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or isinstance(v, (dict, list)) or v is None:
            raise ConfigError(f"{where}: {k!r} must map to a plain value")
        out[k] = str(v).lower() if isinstance(v, bool) else str(v)
    return out


def _positive_int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: must be a whole number ≥ 1, got {value!r}")
    return value


def parse_pool(doc: object, source: str) -> NodePool:
    """Validate one pool document; every error names the file and the field."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{source}: a node pool must be a mapping, got {type(doc).__name__}")
    name = doc.get("name")
    where = f"{source}: pool {name!r}" if name else source
    reject_unknown(doc, POOL_FIELDS, where)
    kind = doc.get("kind", "NodePool")
    if kind not in ("NodePool", "RealNodePool"):
        raise ConfigError(f"{where}: kind must be NodePool or RealNodePool, got {kind!r}")
    real = kind == "RealNodePool"
    if not isinstance(name, str) or not _DNS_LABEL.match(name) or len(name) > 50:
        raise ConfigError(f"{source}: pool name must be a DNS label (a-z, 0-9, '-'), got {name!r}")
    count = _positive_int(doc.get("count"), f"{where}: count")
    zones = doc.get("zones")
    if not isinstance(zones, list) or not zones or not all(isinstance(z, str) and z for z in zones):
        raise ConfigError(f"{where}: zones must be a non-empty list of zone names")
    capacity = _str_map(doc.get("capacity"), f"{where}: capacity")
    if real and capacity:
        raise ConfigError(f"{where}: a RealNodePool's capacity is measured by its kubelet; remove capacity")
    for key in () if real else REQUIRED_CAPACITY:
        if key not in capacity:
            raise ConfigError(f"{where}: capacity.{key} is required")
    for key, qty in capacity.items():
        if not _QUANTITY.match(qty):
            raise ConfigError(f"{where}: capacity.{key} is not a Kubernetes quantity: {qty!r}")
    if GPU_RESOURCE in capacity:
        raise ConfigError(f"{where}: declare GPUs under gpu:, not capacity.{GPU_RESOURCE}")
    gpu = None
    if doc.get("gpu") is not None:
        raw = doc["gpu"]
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: gpu must be a mapping with product and count")
        reject_unknown(raw, GPU_FIELDS, f"{where}: gpu")
        product = raw.get("product")
        if not isinstance(product, str) or not product:
            raise ConfigError(f"{where}: gpu.product is required (e.g. NVIDIA-A100-SXM4-80GB)")
        memory = raw.get("memoryMiB")
        gpu = Gpu(
            product=product,
            count=_positive_int(raw.get("count"), f"{where}: gpu.count"),
            memory_mib=None if memory is None else _positive_int(memory, f"{where}: gpu.memoryMiB"),
        )
    capacity_type = doc.get("capacityType", "on-demand")
    if capacity_type not in ("on-demand", "spot"):
        raise ConfigError(f"{where}: capacityType must be on-demand or spot, got {capacity_type!r}")
    taints = []
    for i, raw in enumerate(doc.get("taints") or []):
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: taints[{i}] must be a mapping with key and effect")
        reject_unknown(raw, TAINT_FIELDS, f"{where}: taints[{i}]")
        effect = raw.get("effect")
        if effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ConfigError(f"{where}: taints[{i}].effect must be NoSchedule, PreferNoSchedule or NoExecute")
        taint_key = raw.get("key")
        if not isinstance(taint_key, str) or not taint_key:
            raise ConfigError(f"{where}: taints[{i}].key is required")
        taints.append(Taint(key=taint_key, effect=effect, value=str(raw.get("value") or "")))
    region = doc.get("region", "local-1")
    instance_type = doc.get("instanceType")
    return NodePool(
        name=name,
        count=count,
        zones=tuple(zones),
        capacity=capacity,
        source=source,
        region=str(region),
        instance_type=None if instance_type is None else str(instance_type),
        gpu=gpu,
        capacity_type=capacity_type,
        labels=_str_map(doc.get("labels"), f"{where}: labels"),
        taints=tuple(taints),
        real=real,
    )


def load_pool_file(path: Path) -> list[NodePool]:
    """The pools of one file (a file may hold several, as YAML documents)."""
    try:
        docs = list(yaml.safe_load_all(path.read_text()))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(exc)}") from None
    return [parse_pool(doc, str(path)) for doc in docs if doc is not None]


def load_pools(directory: Path) -> list[NodePool]:
    """Read every ``*.yaml`` in ``directory``; a file may hold several pools (YAML documents)."""
    if not directory.is_dir():
        raise ConfigError(f"node pool directory not found: {directory}")
    pools = [pool for path in sorted(directory.glob("*.y*ml")) for pool in load_pool_file(path)]
    if not pools:
        raise ConfigError(f"no node pools in {directory}", hint="add a NodePool YAML file there")
    seen: dict[str, str] = {}
    for pool in pools:
        if pool.name in seen:
            raise ConfigError(f"pool {pool.name!r} is defined twice: {seen[pool.name]} and {pool.source}")
        seen[pool.name] = pool.source
    return pools


def render_node(pool: NodePool, index: int, *, kubelet_version: str) -> dict[str, Any]:
    """The Node object for one simulated node, with its status, as KWOK expects to find it."""
    name = f"{pool.name}-{index}"
    zone = pool.zones[index % len(pool.zones)]
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/zone": zone,
        "topology.kubernetes.io/region": pool.region,
        CAPACITY_TYPE_LABEL: pool.capacity_type,
        POOL_LABEL: pool.name,
        MANAGED_BY_LABEL: MANAGED_BY,
        KWOK_LABEL: "fake",
    }
    if pool.instance_type:
        labels["node.kubernetes.io/instance-type"] = pool.instance_type
    capacity = dict(pool.capacity)
    capacity.setdefault("ephemeral-storage", "500Gi")
    taints = [Taint(key=KWOK_TAINT_KEY, value="fake", effect="NoSchedule")]
    if pool.gpu is not None:
        labels |= {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": pool.gpu.product,
            "nvidia.com/gpu.count": str(pool.gpu.count),
        }
        if pool.gpu.memory_mib:
            labels["nvidia.com/gpu.memory"] = str(pool.gpu.memory_mib)
        capacity[GPU_RESOURCE] = str(pool.gpu.count)
        taints.append(Taint(key=GPU_RESOURCE, effect="NoSchedule"))
    labels |= pool.labels
    taints.extend(pool.taints)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {KWOK_LABEL: "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"taints": [t.as_dict() for t in _dedupe(taints)]},
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "osImage": "seatrial simulated node (KWOK)",
                "kernelVersion": "simulated",
                "kubeletVersion": kubelet_version,
                "kubeProxyVersion": kubelet_version,
                "containerRuntimeVersion": "kwok://simulated",
                "machineID": name,
                "systemUUID": name,
                "bootID": name,
            },
        },
    }


def _dedupe(taints: Iterable[Taint]) -> list[Taint]:
    seen: set[tuple[str, str]] = set()
    out = []
    for taint in taints:
        if (taint.key, taint.effect) not in seen:
            seen.add((taint.key, taint.effect))
            out.append(taint)
    return out


def render_nodes(pools: Iterable[NodePool], *, kubelet_version: str) -> list[dict[str, Any]]:
    """The simulated (KWOK) nodes; real nodes register themselves through their kubelet."""
    return [render_node(p, i, kubelet_version=kubelet_version) for p in pools if not p.real for i in range(p.count)]
