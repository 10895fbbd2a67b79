"""Spot preemption as the clouds do it, and the batch work it interrupts.

No chaos tool imitates a preemption with its notice window (Krkn's node termination just
terminates, krkn#703; Litmus cancels a Spot Fleet request with no notice). Here the provider is
a profile setting and each one gives what it gives in real life:

- ``aws`` (Karpenter): a 2-minute notice; the node is tainted ``karpenter.sh/disrupted:NoSchedule``
  (event ``SpotInterrupted``), drained through the Eviction API honouring budgets, and terminated
  as soon as it is empty or the notice runs out;
- ``gke``: 30 s from notice to stop; the node is tainted ``cloud.google.com/impending-node-termination``
  and graceful node shutdown gives pods 15 s each (no budgets asked);
- ``azure``: a Scheduled Event ``Preempt`` with 30 s; a handler cordons and drains.

Pods still on the node when the notice runs out are killed (the pods the window cut short). Then
the node is gone: a real node of the local cluster is switched off and its Node deleted, a
simulated node deleted. A replacement joins where the provider adds one: the same pool, the same
node name (for a real node: switched on again, it registers as a new Node).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

from seatrial import kube, runs
from seatrial.chaos import drain, ledger, nodeops
from seatrial.chaos.actions import Configuration, _api, _namespace
from seatrial.errors import ClusterError, ConfigError, ConflictError, NotFoundError

JOB_LABEL = "seatrial.dev/job"


@dataclass(frozen=True)
class Provider:
    name: str
    notice: float  # seconds from notice to termination
    taint: str | None  # key of the NoSchedule taint the notice puts on the node
    reason: str  # the Event's reason on the node
    evict: bool  # drained through the Eviction API (budgets asked) or shut down (grace only)
    grace: int | None = None  # the grace a shutdown gives each pod


PROVIDERS = {
    "aws": Provider("aws", 120, "karpenter.sh/disrupted", "SpotInterrupted", evict=True),
    "gke": Provider(
        "gke", 30, "cloud.google.com/impending-node-termination", "PreemptionNotice", evict=False, grace=15
    ),
    "azure": Provider("azure", 30, None, "Preempt", evict=True),
}


@dataclass
class Preemption:
    node: str
    provider: str
    notice: float
    terminated: dict[str, float] = field(default_factory=dict)  # pod -> seconds from notice to gone
    cut_short: list[str] = field(default_factory=list)
    drained_in: float | None = None
    gone_at: float | None = None
    replaced_at: float | None = None
    pending: dict[str, str] = field(default_factory=dict)  # pods waiting for spot capacity, and why
    logs: dict[str, str] = field(default_factory=dict)  # the interrupted batch pods' logs

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "logs"}


def _pod_names_on(api: client.ApiClient, node: str, namespaces: frozenset[str]) -> set[str]:
    """The run's pods still running on the node, DaemonSet pods aside (they end with the node)."""
    return {
        f"{p['metadata']['namespace']}/{p['metadata']['name']}"
        for p in drain.pods_on(api, node)
        if p["metadata"]["namespace"] in namespaces
        and (p.get("status") or {}).get("phase") in ("Pending", "Running")
        and not drain.daemon(p)
    }


def _pending(api: client.ApiClient, namespaces: frozenset[str]) -> dict[str, str]:
    """The run's batch pods waiting for a node, with the scheduler's reason (e.g. no spot GPU left)."""
    out = {}
    for ns in namespaces:
        with kube.translate(f"listing pending pods in {ns}"):
            pods = (
                client.CoreV1Api(api)
                .list_namespaced_pod(ns, label_selector=JOB_LABEL, field_selector="status.phase=Pending")
                .items
            )
        for p in (kube.as_dict(x) for x in pods):
            cond: dict[str, Any] = next(
                (c for c in (p.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"), {}
            )
            if cond.get("status") == "False":
                out[p["metadata"]["name"]] = str(cond.get("message") or cond.get("reason") or "")
    return out


def _clock(api: client.ApiClient, node: str, book: ledger.Ledger, record: Preemption, stop: threading.Event) -> None:
    """Note when each pod of the run's namespaces stops running on the node, from the notice on."""
    t0 = time.monotonic()
    seen: set[str] = set()
    while not stop.is_set():
        try:
            now = _pod_names_on(api, node, book.namespaces)
        except ClusterError:
            now = set()
        for pod in seen - now:
            record.terminated.setdefault(pod, round(time.monotonic() - t0, 2))
        seen |= now
        time.sleep(0.2)


def _capture_logs(api: client.ApiClient, node: str, book: ledger.Ledger, record: Preemption) -> None:
    core = client.CoreV1Api(api)
    for pod in drain.pods_on(api, node):
        meta = pod["metadata"]
        if meta["namespace"] in book.namespaces and JOB_LABEL in (meta.get("labels") or {}):
            try:
                _keep_longest(record, meta["name"], core.read_namespaced_pod_log(meta["name"], meta["namespace"]) or "")
            except Exception:
                record.logs.setdefault(meta["name"], "")


def _follow_logs(api: client.ApiClient, node: str, book: ledger.Ledger, record: Preemption) -> list[threading.Thread]:
    """Follow the log of every batch pod on ``node`` until its container ends. A read after the
    drain comes too late for a pod the eviction already removed, and the steps it logged between
    the last read and its SIGTERM would look as if they never ran; a followed stream ends only
    when the container does, so it holds the interrupted attempt's last line."""
    threads = []
    for pod in drain.pods_on(api, node):
        meta = pod["metadata"]
        if meta["namespace"] in book.namespaces and JOB_LABEL in (meta.get("labels") or {}):
            t = threading.Thread(target=_follow, args=(api, meta["namespace"], meta["name"], record), daemon=True)
            t.start()
            threads.append(t)
    return threads


def _follow(api: client.ApiClient, ns: str, name: str, record: Preemption) -> None:
    core = client.CoreV1Api(api)
    text = b""
    try:
        stream: Any = core.read_namespaced_pod_log(name, ns, follow=True, _preload_content=False)
        for chunk in stream.stream(4096):
            text += chunk
            _keep_longest(record, name, text.decode(errors="replace"))
    except Exception:  # the node went away mid-stream: what was read is kept, the reads above are the fallback
        return


def _keep_longest(record: Preemption, name: str, text: str) -> None:
    if len(text) >= len(record.logs.get(name, "")):
        record.logs[name] = text


def preempt_spot(
    holding: str, *, provider: str | None = None, notice: float | None = None, configuration: Configuration = None
) -> dict[str, Any]:
    """Preempt the spot node running a pod ``holding`` picks, as ``provider`` (default: the
    profile's) does: notice, cordon, drain within the window, kill what is left, node gone, a
    replacement joins. Every change is undone by the ledger (taint, cordon, event, power)."""
    from seatrial.chaos.nodes import node_holding

    ns, api = _namespace(configuration), _api(configuration)
    book = ledger.current()
    book.allow(ns, "preempt a spot node of the stack")
    name = provider or str((configuration or {}).get("provider") or "aws")
    if name not in PROVIDERS:
        raise ConfigError(f"unknown spot provider {name!r}: one of {', '.join(PROVIDERS)}")
    prov = PROVIDERS[name]
    node = node_holding(api, ns, holding)
    obj = nodeops.read(api, node)
    labels = obj["metadata"].get("labels") or {}
    book.allow_node(node, labels, f"preempt node {node}")
    if labels.get("karpenter.sh/capacity-type") != "spot":
        raise ConfigError(
            f"node {node} is not a spot node (karpenter.sh/capacity-type={labels.get('karpenter.sh/capacity-type')})"
        )
    real = labels.get("seatrial.dev/real-node") == "true"
    local = nodeops.local_cluster(configuration)
    if real and local is None:
        raise ConfigError(f"node {node} is a real node of a cluster seatrial did not start: it cannot be switched off")
    window = float(notice if notice is not None else prov.notice)
    record = Preemption(node, name, window)
    book.records["spot"] = record
    stop = threading.Event()
    clock = threading.Thread(target=_clock, args=(api, node, book, record, stop), daemon=True)
    t0 = time.monotonic()
    clock.start()
    try:
        # the interrupted work's log: followed to its end, and read now and after the drain as a
        # fallback (the longest text of a pod is kept)
        _capture_logs(api, node, book, record)
        followers = _follow_logs(api, node, book, record)
        if prov.taint:
            nodeops.taint(api, node, prov.taint, "NoSchedule")
        _event(api, ns, node, prov, window)
        nodeops.cordon(api, node)
        if prov.evict:
            result = drain.drain(api, node, deadline=max(0.0, window - 1))
            record.drained_in = round(result.seconds, 2) if result.done else None
        else:
            record.drained_in = _shut_down(api, node, book, grace=prov.grace or 15, deadline=window)
        _capture_logs(api, node, book, record)
        for pod in sorted(_pod_names_on(api, node, book.namespaces)):
            record.cut_short.append(pod)
            pns, pname = pod.split("/")
            with kube.translate(f"killing pod {pod} at the end of the notice"):
                client.CoreV1Api(api).delete_namespaced_pod(pname, pns, grace_period_seconds=0)
        for follower in followers:  # their containers ended with the drain or the kill
            follower.join(timeout=5)
        _terminate(api, node, obj, real=real, local=local)
        record.gone_at = round(time.monotonic() - t0, 2)
        with contextlib.suppress(ClusterError):  # the next attempt of the work, while no spot node is there
            kube.wait_for("the next attempt to be scheduled or found pending", lambda: _pending(api, book.namespaces),
                          timeout=10, interval=0.5)  # fmt: skip
        record.pending = _pending(api, book.namespaces)
        _replace(api, node, obj, real=real, local=local)
        record.replaced_at = round(time.monotonic() - t0, 2)
    finally:
        stop.set()
        clock.join(timeout=5)
    return record.summary()


def _event(api: client.ApiClient, ns: str, node: str, prov: Provider, window: float) -> None:
    """The notice as an Event on the node, where ``kubectl describe node`` shows it: the API keeps a
    cluster-scoped object's events in ``default``. It is a record, not a chaos target, so the
    system-namespace rule does not apply; it is labelled with the run and removed by the undo."""
    del ns
    ns = "default"
    book = ledger.current()
    name = f"{node}.spot-{book.run_id}"
    core = client.CoreV1Api(api)
    book.will(f"event {name} removed", lambda: _delete_quietly(lambda: core.delete_namespaced_event(name, ns)))
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = {
        "metadata": {"name": name, "namespace": ns, "labels": {ledger.RUN_LABEL: book.run_id}},
        "involvedObject": {"kind": "Node", "name": node, "apiVersion": "v1"},
        "reason": prov.reason,
        "message": f"{prov.name} spot preemption (imitated by seatrial): node terminates in {window:.0f} s",
        "type": "Warning",
        "source": {"component": "seatrial"},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    with kube.translate(f"recording the preemption notice for {node}"):
        core.create_namespaced_event(ns, client.CoreV1Event.model_validate(body))


def _delete_quietly(fn: Any) -> None:
    """An undo that deletes: already gone counts as done."""
    with contextlib.suppress(NotFoundError), kube.translate("deleting what the preemption created"):
        fn()


def _shut_down(api: client.ApiClient, node: str, book: ledger.Ledger, *, grace: int, deadline: float) -> float | None:
    """Graceful node shutdown: every pod gets ``grace`` seconds (no budget is asked)."""
    started, core = time.monotonic(), client.CoreV1Api(api)
    for pod in sorted(_pod_names_on(api, node, book.namespaces)):
        pns, pname = pod.split("/")
        _delete_quietly(lambda: core.delete_namespaced_pod(pname, pns, grace_period_seconds=grace))  # noqa: B023
    while time.monotonic() - started < deadline:
        if not _pod_names_on(api, node, book.namespaces):
            return round(time.monotonic() - started, 2)
        time.sleep(0.25)
    return None


def _terminate(api: client.ApiClient, node: str, obj: dict[str, Any], *, real: bool, local: Any) -> None:
    """The instance is gone: a real node switched off, and its Node object deleted."""
    book = ledger.current()
    core = client.CoreV1Api(api)
    # undos run last-first, and on past a failing one: the record is dropped only once the Node
    # is there again, so a node that did not come back stays on the lease for cleanup
    book.will(f"record of node {node} dropped from the run lease", lambda: _forget_when_back(api, node))
    runs.remember_deleted_node(api, node, {"real": real, "node": clean_node(obj)})
    if real:
        nodeops.power_off(api, node, local.kill_node, local.revive_node)
    else:
        book.will(f"node {node} back", lambda: _recreate(api, obj))
    with kube.translate(f"deleting node {node}"):
        core.delete_node(node)


def _forget_when_back(api: client.ApiClient, node: str) -> None:
    with kube.translate(f"reading node {node}"):
        client.CoreV1Api(api).read_node(node)  # NotFound: not back, the record stays
    runs.forget_deleted_node(api, node)


def _recreate(api: client.ApiClient, node: dict[str, Any]) -> None:
    recreate(api, clean_node(node))


def recreate(api: client.ApiClient, clean: dict[str, Any]) -> None:
    """Create a Node again from ``clean_node``'s record (a 409, it is back already, is fine)."""
    try:
        body = client.V1Node.model_validate(clean)
    except ValueError as exc:
        raise ConfigError(f"the record of node {clean.get('metadata', {}).get('name')} is unreadable: {exc}") from None
    try:
        with kube.translate(f"creating node {clean['metadata']['name']} again"):
            client.CoreV1Api(api).create_node(body)
    except ConflictError:
        pass  # back already


def clean_node(node: dict[str, Any]) -> dict[str, Any]:
    """A Node as its pool would register it: without seatrial's marks, the notice taints or the
    cordon."""
    meta = {k: v for k, v in (node.get("metadata") or {}).items() if k in ("name", "labels", "annotations")}
    clean: dict[str, Any] = {"metadata": meta, "spec": node.get("spec") or {}}
    ann = dict(clean["metadata"].get("annotations") or {})
    ann.pop(ledger.ORIGINAL_ANNOTATION, None)
    labels = {k: v for k, v in (clean["metadata"].get("labels") or {}).items() if k != ledger.RUN_LABEL}
    spec = dict(clean.get("spec") or {})
    spec.pop("unschedulable", None)
    spec["taints"] = [t for t in spec.get("taints") or [] if t.get("key") not in _NOTICE_TAINTS]
    return {"apiVersion": "v1", "kind": "Node", "metadata": {**clean["metadata"], "annotations": ann,
            "labels": labels}, "spec": spec}  # fmt: skip


_NOTICE_TAINTS = {p.taint for p in PROVIDERS.values() if p.taint} | {
    "node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready", "node.kubernetes.io/unschedulable",
}  # fmt: skip


def _replace(api: client.ApiClient, node: str, obj: dict[str, Any], *, real: bool, local: Any) -> None:
    """The provider's replacement joins: the real node switched on (it registers anew), or the
    simulated node created again as a fresh Node of its pool."""
    if real:
        local.revive_node(node)
        nodeops.restore(api, node, keys=["power"])
    else:
        _recreate(api, obj)
        kube.wait_for(f"replacement node {node} Ready",
                      lambda: kube.node_ready(client.CoreV1Api(api).read_node(node)), timeout=60)  # fmt: skip


# ---- the batch work it interrupts ----------------------------------------------------------
def start_job(
    name: str = "benchmark",
    *,
    steps: int = 40,
    step_seconds: float = 0.5,
    started_steps: int = 3,
    timeout: float = 120.0,
    configuration: Configuration = None,
) -> str:
    """A fresh run of the stack's Job ``name`` (its pod template, a new run ID, ``steps`` steps),
    labelled with the run and deleted afterwards; returns once its log shows ``started_steps``
    steps done, so a preemption interrupts work in progress."""
    ns, api = _namespace(configuration), _api(configuration)
    book = ledger.current()
    book.allow(ns, f"start a run of Job {name}")
    batch = client.BatchV1Api(api)
    with kube.translate(f"reading Job {name} in {ns}"):
        job = kube.as_dict(batch.read_namespaced_job(name, ns))
    clone = f"{name}-{book.run_id}"
    template = job["spec"]["template"]
    tlabels = {k: v for k, v in (template.get("metadata") or {}).get("labels", {}).items()
               if "controller-uid" not in k and "job-name" not in k}  # fmt: skip
    tlabels |= {ledger.RUN_LABEL: book.run_id, JOB_LABEL: name}
    env = {"RUN_ID": clone, "STEPS": str(steps), "STEP_SECONDS": str(step_seconds)}
    containers = []
    for c in template["spec"]["containers"]:
        kept = [e for e in c.get("env") or [] if e.get("name") not in env]
        containers.append({**c, "env": [*kept, *({"name": k, "value": v} for k, v in env.items())]})
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": clone, "labels": {ledger.RUN_LABEL: book.run_id, JOB_LABEL: name}},
        "spec": {
            **{k: v for k, v in job["spec"].items() if k in ("backoffLimit", "podFailurePolicy")},
            "template": {"metadata": {"labels": tlabels},
                         "spec": {**template["spec"], "containers": containers}},
        },
    }  # fmt: skip
    book.will(
        f"Job {clone} deleted",
        lambda: _delete_quietly(lambda: batch.delete_namespaced_job(clone, ns, propagation_policy="Background")),
    )
    with kube.translate(f"creating Job {clone}"):
        batch.create_namespaced_job(ns, client.V1Job.model_validate(body))
    kube.wait_for(f"Job {clone} to have done {started_steps} steps",
                  lambda: max(_steps_done(api, ns, clone), default=0) >= started_steps, timeout=timeout)  # fmt: skip
    return clone


_STEP = re.compile(r"step (\d+) of (\d+) done")
_RESUME = re.compile(r"resuming \S+ at step (\d+)")


def _job_logs(api: client.ApiClient, ns: str, job: str) -> dict[str, str]:
    core = client.CoreV1Api(api)
    out = {}
    with kube.translate(f"listing pods of Job {job}"):
        pods = core.list_namespaced_pod(ns, label_selector=f"job-name={job}").items
    for p in pods:
        name = kube.name_of(p)
        try:
            out[name] = core.read_namespaced_pod_log(name, ns) or ""
        except Exception:
            out[name] = ""
    return out


def _steps_done(api: client.ApiClient, ns: str, job: str) -> list[int]:
    return [int(m.group(1)) for text in _job_logs(api, ns, job).values() for m in _STEP.finditer(text)]


def job_resumed(name: str = "benchmark", timeout: float = 180.0, configuration: Configuration = None) -> str:
    """After the preemption: the Job run ``start_job`` began completes, a later attempt resumed
    past step 0, and no step ran twice (from the logs of every attempt, the interrupted one's
    kept before its node went away). ``ok: …`` or the cause."""
    ns, api = _namespace(configuration), _api(configuration)
    book = ledger.current()
    record: Preemption | None = book.records.get("spot")
    if record is None:
        return "ok: no preemption yet (the steady state before the fault)"
    job = f"{name}-{book.run_id}"
    batch = client.BatchV1Api(api)

    def finished() -> bool:
        status = kube.as_dict(batch.read_namespaced_job(job, ns)).get("status") or {}
        return bool(status.get("succeeded")) or any(
            c.get("type") == "Failed" and c.get("status") == "True" for c in status.get("conditions") or []
        )

    try:
        kube.wait_for(f"Job {job} to finish", finished, timeout=timeout, interval=1)
    except ClusterError as exc:
        return f"Job {job} did not finish: {exc}"
    logs = _job_logs(api, ns, job) | record.logs
    return resume_verdict(logs)


def resume_verdict(logs: dict[str, str]) -> str:
    """Pure: from each attempt's log, did the run resume and run every step once?"""
    steps: list[int] = []
    total = 0
    resumed_at = []
    for text in logs.values():
        found = [int(m.group(1)) for m in _STEP.finditer(text)]
        total = max([total, *(int(m.group(2)) for m in _STEP.finditer(text))])
        steps += found
        resumed_at += [int(m.group(1)) for m in _RESUME.finditer(text)]
    twice = sorted({s for s in steps if steps.count(s) > 1})
    missing = sorted(set(range(1, total + 1)) - set(steps))
    attempts = sum(1 for t in logs.values() if _STEP.search(t))
    if twice:
        return (
            f"the Job restarted from step {min(twice) - 1} after the preemption: {len(twice)} step(s) ran twice "
            f"({twice[0]}-{twice[-1]}) over {attempts} attempts; it keeps no checkpoint to resume from"
        )
    if missing:
        return f"steps {missing[0]}-{missing[-1]} of {total} never ran"
    if not resumed_at:
        return f"the Job was not interrupted ({attempts} attempt): nothing proves it resumes"
    return f"ok: resumed at step {max(resumed_at)} of {total} after the preemption; {total} steps, none twice"
