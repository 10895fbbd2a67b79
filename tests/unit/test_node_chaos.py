"""The pure parts of node-level chaos: the node blast radius, the marks a change leaves on a node,
the verdicts of drain, spot preemption, node failure and GPU faults. The experiments themselves run on the
local cluster (tests/cluster/test_node_chaos.py)."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.exceptions import ApiException

from seatrial import kube, profile
from seatrial.chaos import drain, failure, gpufault, ledger, nodeops, nodes, spot
from seatrial.errors import AccessError, ClusterError, ConfigError, ConflictError, NotFoundError, TemporaryClusterError


def test_node_chaos_is_off_unless_allowed_and_never_touches_the_control_plane() -> None:
    off = ledger.Ledger(frozenset({"stack"}))
    with pytest.raises(ledger.OutsideBlastRadius, match="node-level chaos is off") as exc:
        off.allow_node("n1", {}, "cordon node n1")
    assert "--allow-node-chaos" in (exc.value.hint or "")
    on = ledger.Ledger(frozenset({"stack"}), nodes=ledger.NodeScope({"pool": "gpu"}))
    on.allow_node("n1", {"pool": "gpu"}, "cordon node n1")
    with pytest.raises(ledger.OutsideBlastRadius, match="lacks pool=gpu"):
        on.allow_node("n2", {"pool": "cpu"}, "cordon node n2")
    with pytest.raises(ledger.OutsideBlastRadius, match="control-plane"):
        on.allow_node("cp", {"pool": "gpu", "node-role.kubernetes.io/control-plane": ""}, "drain node cp")


def test_marks_read_only_what_seatrial_wrote() -> None:
    saved = {"unschedulable": False, "taint/karpenter.sh/disrupted/NoSchedule": None}
    node = {"metadata": {"annotations": {ledger.ORIGINAL_ANNOTATION: json.dumps(saved)}}}
    assert nodeops.marks(node) == saved
    assert nodeops.marks({"metadata": {}}) == {}
    assert nodeops.marks({"metadata": {"annotations": {ledger.ORIGINAL_ANNOTATION: "not json"}}}) == {}


def test_profile_chaos_section_is_checked() -> None:
    p = profile.parse({"name": "x", "chaos": {"provider": "gke", "nodeSelector": {"pool": "gpu"}}}, "p.yaml")
    assert p.chaos.provider == "gke" and p.chaos.node_selector == {"pool": "gpu"}
    assert profile.parse({"name": "x"}, "p.yaml").chaos.provider == "aws"
    with pytest.raises(ConfigError, match=r"chaos\.provider must be one of aws, gke, azure"):
        profile.parse({"name": "x", "chaos": {"provider": "oracle"}}, "p.yaml")
    with pytest.raises(ConfigError, match="unknown"):
        profile.parse({"name": "x", "chaos": {"nodeSelectors": {}}}, "p.yaml")


def test_pdb_accounting_counts_as_the_disruption_controller_does() -> None:
    ready = {"metadata": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    going = {"metadata": {"deletionTimestamp": "2026-12-02T00:00:00Z"}, "status": ready["status"]}
    assert drain.healthy(ready) and not drain.healthy(going)
    assert drain.matches({"app": "x"}, {"app": "x", "z": "1"}) and not drain.matches({"app": "x"}, {})


def test_drain_verdict_names_the_refusals_and_the_budget_that_broke() -> None:
    stuck = drain.Drain("gpu-0", remaining=["stack/inference-0"], seconds=30.2)
    stuck.evictions = [drain.Eviction(t, "stack", "inference-0", "refused", "Cannot evict pod") for t in (0, 1, 3)]
    said = nodes.verdict(stuck, [drain.Budget("stack", "inference", {}, 2, lowest=2)], ["inference"])
    assert said.startswith("node gpu-0 not drained after 30 s: stack/inference-0 still there, 3 eviction(s) refused")
    assert "with 429 by PodDisruptionBudget (inference): Cannot evict pod" in said
    broke = drain.Drain("cpu-0", seconds=2.0)
    said = nodes.verdict(broke, [drain.Budget("stack", "gateway", {}, 2, lowest=1, lowest_at=1.5)])
    assert said == "PodDisruptionBudget gateway: healthy pods fell to 1 at 1.5 s, it allows no fewer than 2"
    fine = drain.Drain("cpu-0", [drain.Eviction(0, "stack", "gw", "allowed")], seconds=2.0)
    assert nodes.verdict(fine, [drain.Budget("stack", "gateway", {}, 2, lowest=2)]).startswith("ok: cpu-0 drained")


def _log(*steps: int, resumed: int | None = None, total: int = 6) -> str:
    head = f"resuming benchmark-x at step {resumed} of {total}\n" if resumed else ""
    return head + "".join(f"... benchmark INFO step {s} of {total} done\n" for s in steps)


def test_a_resumed_run_is_told_from_one_that_started_over() -> None:
    assert spot.resume_verdict({"a": _log(1, 2, 3), "b": _log(4, 5, 6, resumed=3)}).startswith("ok: resumed at step 3")
    over = spot.resume_verdict({"a": _log(1, 2, 3), "b": _log(1, 2, 3, 4, 5, 6)})
    assert over.startswith("the Job restarted from step 0 after the preemption: 3 step(s) ran twice (1-3)")
    assert "never ran" in spot.resume_verdict({"a": _log(1, 2), "b": _log(5, 6, resumed=4)})
    assert "not interrupted" in spot.resume_verdict({"a": _log(1, 2, 3, 4, 5, 6)})


def test_providers_give_their_notice_windows() -> None:
    assert (spot.PROVIDERS["aws"].notice, spot.PROVIDERS["gke"].notice, spot.PROVIDERS["azure"].notice) == (120, 30, 30)
    assert spot.PROVIDERS["aws"].taint == "karpenter.sh/disrupted" and spot.PROVIDERS["azure"].reason == "Preempt"
    assert not spot.PROVIDERS["gke"].evict and spot.PROVIDERS["gke"].grace == 15


def test_a_pod_without_its_own_toleration_stays_bound_for_300_s() -> None:
    assert failure.toleration_seconds({"spec": {}}) == 300
    own = {"key": failure.UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 15}
    assert failure.toleration_seconds({"spec": {"tolerations": [own]}}) == 15
    tl = failure.Timeline(["cpu-0"], True, not_ready={"cpu-0": 21}, tainted={"cpu-0": 22})
    tl.pods, tl.tolerations = {"stack/gw-1": "Deployment/gateway"}, {"stack/gw-1": 300}
    said = failure.failure_verdict(tl, 60)
    assert said.startswith("not whole within 60 s: stack/gw-1 stayed bound to the failed node")
    assert "the default toleration of node.kubernetes.io/unreachable is 300 s" in said
    tl.evicted, tl.whole = {"stack/gw-1": 37}, 44
    assert failure.failure_verdict(tl, 60).startswith("ok: NotReady after 21 s, tainted unreachable after 22 s")


def _fault(**kw: object) -> gpufault.GpuFault:
    f = gpufault.GpuFault("real-gpu-0", "GPU-real-gpu-0-1", "stack/inference-0", "u1", 79, "2", "2", "2")
    f.allocatable_after, f.allocatable_dropped, f.process_died = "1", 0.6, 0.5
    f.replaced, f.back, f.back_on = 0.7, 68.0, ("real-gpu-0", ["GPU-real-gpu-0-0"])
    for k, v in kw.items():
        setattr(f, k, v)
    return f


def test_gpu_fault_verdict_wants_allocatable_down_capacity_kept_and_a_healthy_gpu() -> None:
    ok = gpufault.gpu_verdict(_fault(), 180)
    assert ok.startswith("ok:") and "allocatable nvidia.com/gpu 2 -> 1 after 0.6 s, capacity 2 kept" in ok
    assert "on real-gpu-0 (GPU-real-gpu-0-0)" in ok
    reason = "0/9 nodes: Insufficient nvidia.com/gpu"
    pending = gpufault.gpu_verdict(_fault(back=None, back_on=None, pending_reason=reason), 180)
    assert pending.startswith("ok:") and "waits Pending: 0/9 nodes: Insufficient nvidia.com/gpu" in pending
    assert "never dropped from 2" in gpufault.gpu_verdict(_fault(allocatable_dropped=None), 180)
    assert "went from 2 to 1" in gpufault.gpu_verdict(_fault(capacity="1"), 180)
    assert "kept running after XID 79" in gpufault.gpu_verdict(_fault(process_died=None), 180)
    assert "were given the failed GPU" in gpufault.gpu_verdict(_fault(on_bad_gpu=["u2"]), 180)
    assert "not Ready again within 180 s" in gpufault.gpu_verdict(_fault(back=None, back_on=None), 180)
    assert "came back on the failed GPU" in gpufault.gpu_verdict(
        _fault(back_on=("real-gpu-0", ["GPU-real-gpu-0-1"])), 180
    )


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (404, NotFoundError),
        (409, ConflictError),
        (403, AccessError),
        (401, AccessError),
        (400, ClusterError),
        (503, TemporaryClusterError),
    ],
)
def test_api_answers_become_errors_an_undo_can_tell_apart(status: int, error: type[ClusterError]) -> None:
    """An undo treats "already gone" as done and retries a conflict; it must not read the message to know."""
    with pytest.raises(error, match=str(status)) as exc, kube.translate("deleting event e"):
        raise ApiException(status=status, reason="Because")
    assert type(exc.value) is error
    if error is AccessError:  # the kubeconfig or its roles are wrong, not the cluster: a configuration error
        assert exc.value.exit_code == 2 and exc.value.hint


def test_a_late_notice_names_the_node_still_ready_or_the_pod_still_in_service() -> None:
    # a zone-outage run once failed with "did not notice within 60 s" and nothing else to go on
    assert failure.unnoticed(["kwok-cpu-2"], []) == "1 still Ready (kwok-cpu-2)"
    said = failure.unnoticed([], ["stack/gateway-abc", "stack/etcd-1"])
    assert said == "every node NotReady, but stack/gateway-abc, stack/etcd-1 still ready in their Services"
