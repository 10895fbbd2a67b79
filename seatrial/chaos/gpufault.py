"""A GPU that fails under a serving pod, the way one fails on a real node.

On a real GPU node an XID such as 79 ("GPU has fallen off the bus") or a double-bit ECC error does
three things: NVIDIA's device plugin reports the device ``Unhealthy`` to the kubelet, which drops
the node's allocatable ``nvidia.com/gpu`` by one (capacity stays) and never assigns that device
again; a health agent sets a node condition (EKS: ``AcceleratedHardwareReady=False``); and the
process using the GPU dies, again at every restart, while its pod stays bound to the broken GPU.
Nothing in Kubernetes moves that pod: a remediation (a health agent's, an operator's) replaces it.

Here the same path is taken on the local cluster's real GPU nodes, whose GPUs come from seatrial's
own device plugin (``seatrial/cluster/gpuplugin``): ``fail_gpu`` marks the device the pod was given
unhealthy and sets the condition, ``replace_broken`` is the remediation, and ``gpu_recovered``
judges what happened: allocatable down and capacity kept, the process dead, the replica back on a
healthy GPU (or Pending with the scheduler's reason), and no pod on the bad GPU.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from seatrial import kube
from seatrial.chaos import drain, ledger, nodeops
from seatrial.chaos.actions import Configuration, _api, _namespace
from seatrial.cluster.pools import GPU_RESOURCE
from seatrial.errors import ClusterError, ConfigError

CONDITION = "AcceleratedHardwareReady"
XIDS = {79: "GPU has fallen off the bus", 48: "double-bit ECC error"}
log = logging.getLogger("seatrial.chaos")


@dataclass
class GpuFault:
    """What the fault did, in seconds from it."""

    node: str
    device: str
    pod: str  # "ns/name"
    uid: str
    xid: int
    capacity_before: str = ""
    allocatable_before: str = ""
    capacity: str = ""
    allocatable_after: str = ""
    allocatable_dropped: float | None = None
    process_died: float | None = None
    not_ready: float | None = None
    replaced: float | None = None  # the broken pod deleted by the remediation
    back: float | None = None  # a new pod of the same name Ready
    back_on: tuple[str, list[str]] | None = None  # its node and GPUs
    pending_reason: str = ""
    on_bad_gpu: list[str] = field(default_factory=list)  # pods the kubelet gave the bad GPU after the fault
    t0: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 2)


def _gpus(node: dict[str, Any]) -> tuple[str, str]:
    status = node.get("status") or {}
    return (status.get("capacity") or {}).get(GPU_RESOURCE, ""), (status.get("allocatable") or {}).get(GPU_RESOURCE, "")


def _restarts(pod: dict[str, Any]) -> int:
    return sum(int(c.get("restartCount") or 0) for c in (pod.get("status") or {}).get("containerStatuses") or [])


def fail_gpu(holding: str, xid: int = 79, configuration: Configuration = None) -> dict[str, Any]:
    """The GPU of the first ready pod ``holding`` picks fails with ``xid``: its device plugin
    reports it unhealthy, the node gets ``AcceleratedHardwareReady=False``. Both undone by the ledger."""
    from seatrial.chaos.nodes import node_holding

    ns, api = _namespace(configuration), _api(configuration)
    book = ledger.current()
    book.allow(ns, "fail a GPU under the stack")
    host = nodeops.local_cluster(configuration)
    if host is None:
        raise ConfigError(
            "a GPU fault is injected through the GPU node's device plugin: that needs seatrial's local "
            "cluster (its real GPU nodes run seatrial's plugin); on another cluster no API can fail a GPU"
        )
    node = node_holding(api, ns, holding)
    core = client.CoreV1Api(api)
    with kube.translate(f"listing pods {holding}"):
        pods = [kube.as_dict(p) for p in core.list_namespaced_pod(ns, label_selector=holding).items]
    pod = next(p for p in sorted(pods, key=lambda p: str(p["metadata"]["name"])) if p["spec"].get("nodeName") == node)
    uid = str(pod["metadata"]["uid"])
    devices = host.gpu_allocations(node).get(uid) or []
    if not devices:
        raise ConfigError(f"pod {pod['metadata']['name']} on {node} was given no GPU by the kubelet: nothing to fail")
    capacity, allocatable = _gpus(nodeops.read(api, node))
    what = f"XID {xid}, {XIDS.get(xid, 'GPU error')}"
    fault = GpuFault(node, devices[0], f"{ns}/{pod['metadata']['name']}", uid, xid, capacity, allocatable, capacity)
    stop = threading.Event()
    book.records["gpu-fault"] = (fault, stop)
    book.will("the gpu-fault clock stopped", stop.set)
    nodeops.fail_gpu(api, node, fault.device, f"Unhealthy {what}", host)
    nodeops.set_condition(api, node, CONDITION, "False", reason=f"XID{xid}", message=f"GPU {fault.device}: {what}")
    fault.t0 = time.monotonic()
    threading.Thread(target=_follow, args=(api, host, fault, stop, _restarts(pod)), daemon=True,
                     name="gpu-fault-clock").start()  # fmt: skip
    return {"node": node, "device": fault.device, "pod": fault.pod, "xid": xid}


def _follow(api: client.ApiClient, host: Any, fault: GpuFault, stop: threading.Event, restarts: int) -> None:
    core = client.CoreV1Api(api)
    ns, name = fault.pod.split("/")
    while not stop.is_set():
        now = fault.now()
        try:
            capacity, allocatable = _gpus(nodeops.read(api, fault.node))
            if fault.allocatable_dropped is None and allocatable and allocatable != fault.allocatable_before:
                fault.allocatable_dropped, fault.allocatable_after = now, allocatable
                fault.capacity = capacity
            try:
                pod: dict[str, Any] | None = kube.as_dict(core.read_namespaced_pod(name, ns))
            except client.exceptions.ApiException as exc:
                if exc.status != 404:
                    raise
                pod = None
            if pod is not None and pod["metadata"]["uid"] == fault.uid:
                if fault.process_died is None and _restarts(pod) > restarts:
                    fault.process_died = now
                if fault.not_ready is None and not drain.healthy(pod):
                    fault.not_ready = now
            elif pod is not None and fault.replaced is not None:
                _note_replacement(host, fault, pod, now)
            allocations = host.gpu_allocations(fault.node)
            fault.on_bad_gpu = sorted(u for u, ids in allocations.items() if fault.device in ids and u != fault.uid)
        except Exception as exc:  # a missed poll is retried; the clock keeps running
            log.debug("gpu-fault clock: %s", exc)
        time.sleep(0.5)


def _note_replacement(host: Any, fault: GpuFault, pod: dict[str, Any], now: float) -> None:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if spec.get("nodeName") is None:
        for c in status.get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False":
                fault.pending_reason = str(c.get("message") or c.get("reason") or "")
        return
    if fault.back is None and drain.healthy(pod):
        fault.back = now
        node = str(spec["nodeName"])
        fault.back_on = (node, host.gpu_allocations(node).get(str(pod["metadata"]["uid"]), []))


def replace_broken(wait: float = 30.0, configuration: Configuration = None) -> str:
    """The remediation a health agent runs: once the kubelet has taken the failed GPU out of
    allocatable (so the scheduler cannot place anything on it again) and the pod is seen broken
    (its process died, or it is no longer ready), or ``wait`` seconds passed, delete the pod bound to it;
    its StatefulSet or ReplicaSet makes a new one, which gets a healthy GPU or waits Pending."""
    fault, _ = ledger.current().records.get("gpu-fault", (None, None))
    if fault is None:
        raise ClusterError("no GPU failed: nothing to replace")
    api = _api(configuration)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and (
        fault.allocatable_dropped is None or (fault.process_died is None and fault.not_ready is None)
    ):
        time.sleep(0.5)
    ns, name = fault.pod.split("/")
    with kube.translate(f"deleting {fault.pod}, bound to the failed GPU {fault.device}"):
        client.CoreV1Api(api).delete_namespaced_pod(name, ns, grace_period_seconds=0)
    fault.replaced = fault.now()
    dropped = "never" if fault.allocatable_dropped is None else f"after {fault.allocatable_dropped:.1f} s"
    return f"deleted {fault.pod} at {fault.replaced:.1f} s (allocatable dropped {dropped})"


def gpu_recovered(within: float = 180.0, configuration: Configuration = None) -> str:
    """After the fault: wait up to ``within`` seconds for the replica to be Ready again, then
    judge the whole fault. ``ok: …`` with the timeline, or the cause."""
    del configuration
    fault, stop = ledger.current().records.get("gpu-fault", (None, None))
    if fault is None:
        return "ok: no GPU failed yet (the steady state before the fault)"
    deadline = time.monotonic() + within
    while fault.back is None and time.monotonic() < deadline:
        time.sleep(0.5)
    stop.set()
    return gpu_verdict(fault, within)


def gpu_verdict(f: GpuFault, within: float) -> str:
    """Pure: the fault's timeline in one line, ``ok: …`` when the cluster did what a GPU cluster must."""
    problems = []
    if f.allocatable_dropped is None:
        problems.append(f"allocatable {GPU_RESOURCE} of {f.node} never dropped from {f.allocatable_before}")
    elif f.capacity != f.capacity_before:
        problems.append(f"capacity {GPU_RESOURCE} of {f.node} went from {f.capacity_before} to {f.capacity}")
    if f.process_died is None and f.not_ready is None:
        problems.append(f"the process on {f.device} kept running after XID {f.xid}")
    if f.on_bad_gpu:
        problems.append(f"pod(s) {', '.join(f.on_bad_gpu)} were given the failed GPU {f.device}")
    waits = f.back is None and GPU_RESOURCE in f.pending_reason  # no healthy GPU left: Pending, and says why
    if f.back is None and not waits:
        reason = f"; Pending: {f.pending_reason}" if f.pending_reason else ""
        problems.append(f"{f.pod} not Ready again within {within:.0f} s of the fault{reason}")
    elif f.back_on is not None and f.device in f.back_on[1]:
        problems.append(f"{f.pod} came back on the failed GPU {f.device}")
    if problems:
        return "; ".join(problems)
    assert f.allocatable_dropped is not None
    died = f"{f.process_died:.1f} s" if f.process_died is not None else f"{f.not_ready or 0:.1f} s (not ready)"
    if f.back is None or f.back_on is None:
        where = f"{f.pod} waits Pending: {f.pending_reason}"
    else:
        where = f"{f.pod} back and Ready after {f.back:.0f} s on {f.back_on[0]} ({', '.join(f.back_on[1]) or 'no GPU'})"
    return (
        f"ok: GPU {f.device} of {f.node} failed (XID {f.xid}): allocatable {GPU_RESOURCE} {f.allocatable_before} "
        f"-> {f.allocatable_after} after {f.allocatable_dropped:.1f} s, capacity {f.capacity} kept; its process "
        f"died after {died}; {where}; nothing scheduled onto the failed GPU"
    )
