"""Cluster facts for the rules: the live cluster's nodes, or — in static mode, with no cluster —
the cluster the node pool files describe (by default the local cluster's pools), so capacity and
taint checks still have numbers to work with. Which one was used is part of every result."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kubernetes import client

from seatrial import kube
from seatrial.checks.inventory import GPU, Facts, Node
from seatrial.checks.inventory import quantity as q
from seatrial.cluster import pools, versions


def node_of(obj: Mapping[str, Any]) -> Node:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return Node(
        name=str(obj["metadata"]["name"]),
        labels=dict(obj["metadata"].get("labels") or {}),
        taints=tuple(spec.get("taints") or ()),
        gpus=int(q((status.get("allocatable") or status.get("capacity") or {}).get(GPU))),
        unschedulable=bool(spec.get("unschedulable")),
    )


def from_pools(pools_dir: Path, *, model_load_seconds: float = 60.0) -> Facts:
    """The nodes the pool files would create; real pools without the simulation's label and taint."""
    nodes = []
    for p in pools.load_pools(pools_dir):
        for i in range(p.count):
            obj = pools.render_node(p, i, kubelet_version=versions.KUBERNETES)
            if p.real:
                obj["metadata"]["labels"].pop(pools.KWOK_LABEL, None)
                obj["spec"]["taints"] = [t for t in obj["spec"]["taints"] if t["key"] != pools.KWOK_TAINT_KEY]
            nodes.append(node_of(obj))
    return Facts(tuple(nodes), source=f"node pools in {pools_dir}", model_load_seconds=model_load_seconds)


def from_cluster(api: client.ApiClient, *, model_load_seconds: float = 60.0) -> Facts:
    with kube.translate("listing nodes"):
        items = client.CoreV1Api(api).list_node().items
    return Facts(
        tuple(node_of(kube.as_dict(n)) for n in items), source="live cluster", model_load_seconds=model_load_seconds
    )


def from_objects(objs: Iterable[Mapping[str, Any]], source: str) -> Facts:
    return Facts(tuple(node_of(o) for o in objs), source=source)
