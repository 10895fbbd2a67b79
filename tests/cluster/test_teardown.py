"""Issue 3, acceptance 4 (and issue 2's "down leaves nothing") on the full cluster, real nodes
included: after ``down`` no process, network namespace, veth, bridge, iptables rule, mount or
cgroup of the cluster is left, and the kernel settings the kubelet changed are back. Runs last
(see conftest); the cluster is brought back up after, so later suites still have one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from seatrial.cluster import network, pools, realnodes
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
    node_fails_to_start(cluster)
    cluster.up()
    assert cluster.status().phase == "ready"


def node_fails_to_start(cluster: LocalCluster) -> None:
    """Issue 3, acceptance 6: a real node whose containerd cannot start (something else holds its
    socket path) stops the bring-up with one message naming the node and its log; nothing is left."""
    names = [n for p in pools.load_pools(cluster.pools_dir) if p.real for n in p.node_names()]
    if len(names) < 2:
        return
    socket = realnodes.runtime_root(cluster.run) / "1" / "containerd.sock"
    socket.mkdir(parents=True)  # a directory where containerd must bind its socket
    proc = subprocess.run(
        [sys.executable, "-m", "seatrial", "cluster", "up"], capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 3, proc.stderr
    assert f"{names[1]}/containerd exited with code" in proc.stderr
    assert f"nodes/{names[1]}/logs/containerd.log" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (cluster.state / "last-failure" / "nodes" / names[1] / "logs" / "containerd.log").exists()
    assert cluster.leftovers() == []
    assert network.leftovers(network.plan(names)) == []
    assert not socket.exists()
