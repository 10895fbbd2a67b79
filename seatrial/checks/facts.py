"""Cluster facts for the rules: the live cluster's nodes, or — in static mode, with no cluster —
the cluster the node pool files given with ``--pools`` describe, so capacity and taint checks
have numbers to work with (without them, the rules judge what the manifests alone show). Which
one was used is part of every result."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seatrial.checks.inventory import GPU, Facts, Node
from seatrial.checks.inventory import quantity as q

if TYPE_CHECKING:
    from kubernetes import client


def node_of(obj: Mapping[str, Any]) -> Node:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return Node(
        name=str(obj["metadata"]["name"]),
        labels=dict(obj["metadata"].get("labels") or {}),
        taints=tuple(spec.get("taints") or ()),
        gpus=int(q((status.get("allocatable") or status.get("capacity") or {}).get(GPU))),
        unschedulable=bool(spec.get("unschedulable")),
    )


def from_pools(pools_dir: Path, *, model_load_seconds: float = 60.0, simulated: bool = False) -> Facts:
    """The nodes the pool files describe. By default as a real cluster has them: without the
    label and taint that KWOK's simulated nodes carry on our local cluster, which no real pool
    has (a rule judging them would ask users to tolerate ``kwok.x-k8s.io/node``). ``simulated``:
    as the local cluster runs them, where that taint keeps real pods off simulated nodes (the
    test bed judging its own overlay). Only with ``--pools``: the files name the cluster judged."""
    from seatrial.cluster import pools, versions  # the pool file format; not needed without --pools

    nodes = []
    for p in pools.load_pools(pools_dir):
        for i in range(p.count):
            obj = pools.render_node(p, i, kubelet_version=versions.KUBERNETES)
            if p.real or not simulated:
                obj["metadata"]["labels"].pop(pools.KWOK_LABEL, None)
                obj["spec"]["taints"] = [t for t in obj["spec"]["taints"] if t["key"] != pools.KWOK_TAINT_KEY]
            nodes.append(node_of(obj))
    return Facts(tuple(nodes), source=f"node pools in {pools_dir}", model_load_seconds=model_load_seconds)


def from_cluster(api: client.ApiClient, *, model_load_seconds: float = 60.0) -> Facts:
    from kubernetes import client

    from seatrial import kube

    with kube.translate("listing nodes"):
        items = kube.list_items(client.CoreV1Api(api).list_node, resource_version="0")
    return Facts(tuple(node_of(n) for n in items), source="live cluster", model_load_seconds=model_load_seconds)


def from_objects(objs: Iterable[Mapping[str, Any]], source: str) -> Facts:
    return Facts(tuple(node_of(o) for o in objs), source=source)
