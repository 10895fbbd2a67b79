"""Pure parts of recovery after kill -9: when a run is dead, and what its debris asks for."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from seatrial import cleanup, runs

NOW = dt.datetime(2026, 12, 6, 12, 0, 0, tzinfo=dt.UTC)


def lease(renewed_ago: float, holder: str = "other-host/42/100", duration: int = 30) -> dict[str, object]:
    renewed = (NOW - dt.timedelta(seconds=renewed_ago)).strftime(runs.MICRO)
    return {"spec": {"holderIdentity": holder, "leaseDurationSeconds": duration, "renewTime": renewed}}


@pytest.mark.parametrize(
    ("renewed_ago", "holder", "started", "alive"),
    [
        (5, "other-host/42/100", None, True),  # renewed lately, elsewhere: trust the lease
        (31, "other-host/42/100", None, False),  # not renewed for its duration: dead
        (5, "here/42/100", "100", True),  # this machine, the same process
        (5, "here/42/100", None, False),  # this machine, the process is gone (kill -9)
        (5, "here/42/100", "999", False),  # this machine, the pid now belongs to another process
        (5, "garbage", None, True),  # a holder we cannot read: only the clock decides
        (300, "here/42/100", "100", True),  # here, renewal stalled but the process runs: alive
        (5, "here/42/None", None, True),  # here, but no /proc to tell: the clock decides
        (300, "here/42/None", None, False),
    ],
)
def test_a_run_is_alive_while_it_renews_and_its_process_lives(
    renewed_ago: float, holder: str, started: str | None, alive: bool
) -> None:
    assert runs.lease_alive(lease(renewed_ago, holder), NOW, host="here", started=lambda _pid: started) is alive


def test_a_lease_never_renewed_is_dead() -> None:
    assert not runs.lease_alive({"spec": {}}, NOW)


def test_ids_of_a_session_belong_to_it() -> None:
    child = runs.child()
    assert runs.owner(child) == runs.session() == runs.owner(runs.session())
    assert child != runs.child()


def obj(kind: str, name: str, run: str, ns: str | None = None, **annotations: str) -> dict[str, object]:
    meta: dict[str, object] = {"name": name, "labels": {runs.RUN_LABEL: run}, "annotations": annotations}
    if ns:
        meta["namespace"] = ns
    return {"kind": kind, "metadata": meta}


def test_plan_restores_and_deletes_only_what_dead_runs_left() -> None:
    marks = json.dumps({"unschedulable": None, "taint/karpenter.sh/disrupted/NoSchedule": None, "power": "on"})
    found = cleanup.plan(
        [
            obj("Namespace", "seatrial-stack-dead", "dead0001"),
            obj("Pod", "load-master", "dead0001-3", ns="seatrial-stack-dead"),  # goes with its namespace
            obj("Namespace", "seatrial-stack-live", "live0001"),
            obj("Node", "real-spot-0", "dead0001-2", **{"seatrial.dev/original": marks}),
            obj(
                "StatefulSet",
                "etcd",
                "dead0001-4",
                ns="seatrial-stack-live",
                **{"seatrial.dev/original": '{"replicas": 3}'},
            ),
            obj("Job", "benchmark-dead0001-5", "dead0001-5", ns="seatrial-stack-live"),
            obj("Event", "real-spot-0.spot-x", "dead0001-2", ns="default"),
            obj("Lease", "seatrial-run-dead0001", "dead0001", ns="default"),
            obj("Lease", "seatrial-run-live0001", "live0001", ns="default"),
        ],
        alive={"live0001"},
        host=False,
    )
    said = [d.describe() for d in found]
    assert said == [
        "restore Node real-spot-0 (run dead0001-2): taint/karpenter.sh/disrupted/NoSchedule, unschedulable",
        "cannot restore Node real-spot-0 (run dead0001-2): power (needs the machine under the node: "
        "run cleanup where the cluster runs)",
        "scale back StatefulSet seatrial-stack-live/etcd (run dead0001-4): 3 replicas",
        "delete Event default/real-spot-0.spot-x (run dead0001-2)",
        "delete Job seatrial-stack-live/benchmark-dead0001-5 (run dead0001-5)",
        "delete Namespace seatrial-stack-dead (run dead0001)",
        "delete Lease default/seatrial-run-dead0001 (run dead0001)",
    ]


def test_plan_with_the_host_restores_power_and_gpus_too() -> None:
    marks = json.dumps({"power": "on", "gpu/gpu-1": "Healthy"})
    [node] = cleanup.plan(
        [obj("Node", "real-gpu-0", "dead0001-1", **{"seatrial.dev/original": marks})], set(), host=True
    )
    assert node.detail == "gpu/gpu-1, power" and node.keys == ("gpu/gpu-1", "power")


def test_a_node_changed_by_a_live_and_a_dead_run_gets_back_only_the_dead_runs_marks() -> None:
    marks = json.dumps({"unschedulable": False, "taint/x/NoSchedule": None})
    owners = json.dumps({"unschedulable": "live0001-1", "taint/x/NoSchedule": "dead0001-3"})
    node = obj("Node", "n", "live0001-1", **{"seatrial.dev/original": marks, "seatrial.dev/owners": owners})
    [d] = cleanup.plan([node], {"live0001"}, host=True)
    assert (d.action, d.keys, d.run) == ("restore", ("taint/x/NoSchedule",), "dead0001-3")
    assert cleanup.plan([node], {"live0001", "dead0001"}, host=True) == []


def test_a_run_label_left_without_marks_is_removed() -> None:
    [d] = cleanup.plan([obj("Node", "n", "dead0001-1")], set(), host=False)
    assert (d.action, d.keys, d.detail) == ("restore", (), "the run label")


def test_nothing_of_a_live_run_is_touched() -> None:
    assert (
        cleanup.plan([obj("Namespace", "ns", "live0001"), obj("Node", "n", "live0001-7")], {"live0001"}, host=True)
        == []
    )


def _preempted(real: bool) -> dict[str, object]:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "kwok-spot-3"}, "spec": {"taints": []}}
    record = json.dumps({"real": real, "node": node, "name": "kwok-spot-3"})
    key = runs.deleted_node_key("kwok-spot-3")
    return obj("Lease", "seatrial-run-dead0001", "dead0001", ns="default", **{key: record})


def test_a_node_a_dead_run_deleted_is_brought_back_from_its_lease() -> None:
    """A preempted spot node's Node object is gone, and its marks with it: only the run's lease
    remembers it. Simulated: created again; real: switched on where the machine is, and until
    then the lease (with the record) stays."""
    node, lease = cleanup.plan([_preempted(real=False)], set(), host=False)
    assert node.describe() == "bring back Node kwok-spot-3 (run dead0001): create the preempted node again"
    assert json.loads(node.record)["node"]["metadata"]["name"] == "kwok-spot-3"
    assert lease.describe() == "delete Lease default/seatrial-run-dead0001 (run dead0001)"
    [left] = cleanup.plan([_preempted(real=True)], set(), host=False)
    assert left.action == "left" and "switched off by a preemption" in left.detail
    node, lease = cleanup.plan([_preempted(real=True)], set(), host=True)
    assert node.describe() == "bring back Node kwok-spot-3 (run dead0001): switch on the preempted node"
    assert cleanup.plan([_preempted(real=False)], {"dead0001"}, host=True) == []  # a live run's lease: untouched
    long_name = "gpu-node-17.rack-04.datacenter-west.example.internal"  # an annotation name holds 63 characters
    assert len(runs.deleted_node_key(long_name).split("/", 1)[1]) <= 63
