"""Acceptance 4: a node whose heartbeat stops is marked Unknown and tainted by the node lifecycle controller."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from seatrial.cluster import pools

from .conftest import daemon_pods_ready, wait


def _ready(core: client.CoreV1Api, name: str) -> str:
    for cond in core.read_node(name).status.conditions or []:
        if cond.type == "Ready":
            return str(cond.status)
    return "missing"


@pytest.fixture
def failed_node(core: client.CoreV1Api) -> Iterator[str]:
    name = core.list_node(label_selector=f"{pools.POOL_LABEL}=cpu").items[-1].metadata.name
    # KWOK manages nodes by label: taking the label away stops the node's heartbeat and lease
    core.patch_node(name, {"metadata": {"labels": {pools.KWOK_LABEL: "stopped"}}})
    yield name
    core.patch_node(name, {"metadata": {"labels": {pools.KWOK_LABEL: "fake"}}})
    wait(f"{name} to recover", lambda: _ready(core, name) == "True", timeout=60)
    # the lifecycle controller marked the node's pods unready; give it back with them ready again
    wait(f"the DaemonSet pods on {name} to be ready again", lambda: daemon_pods_ready(core, name), timeout=60)


def test_stopped_heartbeat_marks_node_unknown_and_tainted(core: client.CoreV1Api, failed_node: str) -> None:
    wait(f"{failed_node} to turn Unknown", lambda: _ready(core, failed_node) == "Unknown", timeout=90)

    def tainted() -> bool:
        return any(
            t.key == "node.kubernetes.io/unreachable" and t.effect == "NoExecute"
            for t in core.read_node(failed_node).spec.taints or []
        )

    wait(f"{failed_node} to carry the unreachable NoExecute taint", tainted, timeout=30)
