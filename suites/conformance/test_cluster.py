"""The precondition of every conformance check: the target cluster answers and has Ready nodes.

In static mode there is no cluster and this is skipped.
"""

from __future__ import annotations

import pytest
from kubernetes import client

from seatrial import kube


def test_cluster_answers_with_ready_nodes(request: pytest.FixtureRequest) -> None:
    if request.config.getoption("--static"):
        pytest.skip("static mode: no cluster")
    api: client.ApiClient = request.getfixturevalue("api")
    version = kube.server_version(api)
    with kube.translate("listing nodes"):
        nodes = client.CoreV1Api(api).list_node().items
    ready = [n.metadata.name for n in nodes if kube.node_ready(n)]
    print(f"server {version}: {len(ready)}/{len(nodes)} nodes Ready")
    assert ready, "the cluster has no Ready node"
