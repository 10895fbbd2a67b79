"""The precondition of every conformance check: the target cluster answers and has Ready nodes.

The check catalogue (GPU scheduling, spread, PDBs, rollout safety, secret hygiene, ...) plugs in
here as it lands; until then this suite proves the cluster seatrial would check is usable.
"""

from __future__ import annotations

from kubernetes import client

from seatrial import kube


def test_cluster_answers_with_ready_nodes(api: client.ApiClient) -> None:
    version = kube.server_version(api)
    with kube.translate("listing nodes"):
        nodes = client.CoreV1Api(api).list_node().items
    ready = [n.metadata.name for n in nodes if kube.node_ready(n)]
    print(f"server {version}: {len(ready)}/{len(nodes)} nodes Ready")
    assert ready, "the cluster has no Ready node"
