"""Issue 3, acceptance 4 (and issue 2's "down leaves nothing") on the full cluster, real nodes
included: after ``down`` no process, network namespace, veth, bridge, iptables rule, mount or
cgroup of the cluster is left, and the kernel settings the kubelet changed are back. Runs last
(see conftest); the cluster is brought back up after, so later suites still have one."""

from __future__ import annotations

import json
from pathlib import Path

from seatrial.cluster import network, realnodes
from seatrial.cluster.local import LocalCluster, port_in_use


def test_down_leaves_nothing_then_up_again(kube_target: object) -> None:
    cluster = LocalCluster()
    saved = cluster.run / "network.json"
    names = json.loads(saved.read_text()) if saved.exists() else []
    before_up = cluster.run / "kernel-tunables.json"
    tunables = json.loads(before_up.read_text()) if before_up.exists() else {}
    runtime = realnodes.runtime_root(cluster.run)
    cluster.down()
    assert cluster.leftovers() == []
    assert [p for p in cluster.ports.named().values() if port_in_use(p)] == []
    assert not cluster.run.exists() and not cluster.kubeconfig.exists()
    if names:
        assert network.leftovers(network.plan(names)) == []
        assert realnodes.our_cgroups(cluster.run) == []
        assert realnodes.mounts_under([str(cluster.run), str(runtime)]) == []
        assert not runtime.exists()
        assert {k: (Path("/proc/sys") / k).read_text().strip() for k in tunables} == tunables
    cluster.up()
    assert cluster.status().phase == "ready"
