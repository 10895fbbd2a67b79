"""Live checks that act: they prove on the cluster what the static rules only read.

Each one acts inside the stack's own namespaces (or a throw-away namespace of its own), labels
what it creates, and leaves the stack as it found it — every pod back and ready — before it
returns, also when it fails. They run only in live mode, with a ``Live`` context.
"""

from __future__ import annotations

import copy
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from seatrial import kube, load, runs, workloads
from seatrial.checks.inventory import GPU, Facts, Inventory, Workload, ref_of, selector_matches
from seatrial.checks.model import Finding, Skip
from seatrial.checks.pdb import _pdbs, allowed
from seatrial.checks.registry import action, check

PROBE_LABEL = "seatrial.dev/probe"


@dataclass
class Live:
    api: client.ApiClient
    namespaces: list[str]
    inventory: Inventory
    facts: Facts
    load_url: str | None = None  # a URL that answers through the serving Service, for rollouts under load
    load_headers: dict[str, str] = field(default_factory=dict)
    rollout: str | None = None  # "Deployment/name" to roll out under load

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)


def _pods(live: Live, w: Workload) -> list[dict[str, Any]]:
    sel = ",".join(f"{k}={v}" for k, v in (w.spec.get("selector") or {}).get("matchLabels", {}).items())
    with kube.translate(f"listing pods of {w.ref}"):
        items = live.core.list_namespaced_pod(w.namespace, label_selector=sel).items
    return [p for p in (kube.as_dict(i) for i in items) if not p["metadata"].get("deletionTimestamp")]


def _wait_workload_ready(live: Live, w: Workload, timeout: float = 120) -> None:
    def ready() -> bool:
        pods = _pods(live, w)
        return len([p for p in pods if workloads.pod_ready(p)]) >= (w.replicas or 1)

    kube.wait_for(f"{w.ref} to be ready again", ready, timeout=timeout, interval=0.5)


# ---- pure rules over live pods -----------------------------------------------------------
def _live_pods(inv: Inventory) -> list[dict[str, Any]]:
    return [dict(o) for o in inv.of("Pod") if (o.get("status") or {}).get("phase") == "Running"]


@check(
    "GPU-009",
    "Running GPU pods are on GPU nodes, and CPU pods are not",
    family="gpu",
    severity="high",
    why="What the scheduler did is the proof of the rules: a GPU pod on a node without GPUs is not "
    "using one; a CPU pod on a GPU node takes room a GPU pod needs.",
    fix="See GPU-002/003/005 for the rule that let it happen; then reschedule the pod.",
    modes=("live",),
)
def gpu_placement(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    gpu_nodes = {n.name for n in facts.nodes if n.gpus > 0}
    for pod in _live_pods(inv):
        owner = (pod["metadata"].get("ownerReferences") or [{}])[0].get("kind")
        wants = _pod_gpus(pod)
        node = pod["spec"].get("nodeName", "")
        ref = ref_of(pod)
        if wants and node not in gpu_nodes:
            yield Finding(
                "GPU-009", ref, "spec.nodeName", f"requests {wants} GPU(s) but runs on {node}, which has none"
            )
        elif not wants and node in gpu_nodes and owner != "DaemonSet":
            yield Finding("GPU-009", ref, "spec.nodeName", f"requests no GPU but runs on GPU node {node}")


@check(
    "SPREAD-004",
    "Actual placement survives the loss of any one node or zone",
    family="spread",
    severity="high",
    why="Spread rules that are only preferred can still stack replicas; what counts is where the "
    "ready pods are now when a node or a zone goes.",
    fix="Make the spread required (or add nodes/zones), then restart the workload to re-place it.",
    modes=("live",),
)
def placement_survives(inv: Inventory, facts: Facts) -> Iterator[Finding]:
    zone_of = {n.name: n.zone for n in facts.nodes}
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for p in _live_pods(inv):  # a workload's pods are in its namespace: no scan of every pod per workload
        by_namespace.setdefault(p["metadata"].get("namespace", ""), []).append(p)
    for w in inv.workloads:
        if not w.replicas or w.replicas < 2:
            continue
        mine = [p for p in by_namespace.get(w.namespace, []) if _owned_by(p, w)]
        if not mine:
            continue
        budget = _pdbs(inv, w)
        keep = max((w.replicas - allowed(p, w.replicas) for p in budget), default=1)
        for key, label in (("node", "node"), ("zone", "zone")):
            groups: dict[str, int] = {}
            for p in mine:
                node = p["spec"].get("nodeName", "")
                where = node if key == "node" else zone_of.get(node, "")
                groups[where] = groups.get(where, 0) + 1
            for where, n in sorted(groups.items()):
                if where and len(mine) - n < keep:
                    yield Finding(
                        "SPREAD-004",
                        w.ref,
                        "placement",
                        f"losing {label} {where} leaves {len(mine) - n} of {len(mine)} pods; its budget keeps {keep}",
                    )


def _owned_by(pod: dict[str, Any], w: Workload) -> bool:
    sel = w.spec.get("selector")
    return bool(sel) and selector_matches(sel, pod["metadata"].get("labels") or {})


# ---- checks that act -------------------------------------------------------------------
@action(
    "PDB-005",
    "Evictions are allowed exactly up to the budget, and refused after",
    family="pdb",
    severity="high",
    why="A budget is only as good as the API's enforcement of it: this evicts through the Eviction "
    "API (as kubectl drain and the autoscaler do) and expects the first refusal exactly where the "
    "budget says.",
    fix="Check the PDB's selector and status (kubectl describe pdb); a budget that never refuses "
    "matches other pods or none.",
)
def evictions_respect_budgets(live: Live) -> Iterator[Finding]:
    targets = [
        (w, p)
        for w in live.inventory.workloads
        if w.kind in ("Deployment", "StatefulSet") and (w.replicas or 0) > 1
        for p in _pdbs(live.inventory, w)[:1]
    ]
    if not targets:
        raise Skip("no multi-replica workload with a PodDisruptionBudget to evict from")

    def prove(w: Workload, pdb: dict[str, Any]) -> list[Finding]:
        _wait_workload_ready(live, w)
        budget = allowed(pdb, w.replicas or 0)
        pods = sorted(_pods(live, w), key=lambda p: p["metadata"]["name"])
        outcomes = []
        for pod in pods[: budget + 1]:
            body = client.V1Eviction.model_validate(
                {"metadata": {"name": pod["metadata"]["name"], "namespace": w.namespace}}
            )
            try:
                live.core.create_namespaced_pod_eviction(pod["metadata"]["name"], w.namespace, body)
                outcomes.append(True)
            except ApiException as exc:
                if exc.status != 429:
                    raise
                outcomes.append(False)
        found = []
        want = [True] * budget + [False]
        if outcomes != want[: len(outcomes)]:
            got = ", ".join("evicted" if o else "refused" for o in outcomes)
            found.append(
                Finding(
                    "PDB-005",
                    ref_of(pdb),
                    "status.disruptionsAllowed",
                    f"budget allows {budget} of {w.kind}/{w.name}'s {w.replicas}; evictions went: {got}",
                )
            )
        _wait_workload_ready(live, w)
        return found

    # every budget at once (each proof waits for its workload to heal); the first error is raised
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        proofs = list(pool.map(lambda t: prove(*t), targets))
    return iter([f for found in proofs for f in found])


@action(
    "GPU-010",
    "A GPU scale-out past capacity waits Pending with a clear reason and disturbs nothing",
    family="gpu",
    severity="high",
    why="When the GPUs a workload may use run out, its next pod must wait visibly (Insufficient "
    "nvidia.com/gpu) - not preempt other GPU work nobody meant to lose.",
    fix="Give serving and batch GPU work priority classes that say who may preempt whom (or none), and "
    "size capacity by GPU-006.",
)
def gpu_past_capacity(live: Live) -> Iterator[Finding]:
    gpu_workloads = [w for w in live.inventory.workloads if w.gpus and w.kind in ("Deployment", "StatefulSet")]
    if not gpu_workloads:
        raise Skip("no GPU Deployment or StatefulSet to scale past capacity")
    for w in gpu_workloads:  # each at its own priority: who it would preempt differs
        yield from _one_past_capacity(live, w)


def _one_past_capacity(live: Live, w: Workload) -> Iterator[Finding]:
    usable = list(live.facts.usable(w))
    if not usable:
        return  # fits no node at all: GPU-002's finding
    before = _pods_on(live, [n.name for n in usable])
    used = {n.name: 0 for n in usable}
    for pod in before.values():
        used[pod["spec"]["nodeName"]] += _pod_gpus(pod)
    slots = sum(max(0, n.gpus - used[n.name]) // w.gpus for n in usable)
    if slots > 8:
        return  # too many free slots to fill with probes: capacity is not the risk here
    ns = f"seatrial-probe-{uuid.uuid4().hex[:6]}"
    labels = {"app.kubernetes.io/managed-by": "seatrial", PROBE_LABEL: "true", **runs.labels()}
    spec: dict[str, Any] = {k: v for k, v in w.pod.items() if k in ("tolerations", "nodeSelector", "priorityClassName")}
    if (w.pod.get("affinity") or {}).get("nodeAffinity"):
        spec["affinity"] = {"nodeAffinity": w.pod["affinity"]["nodeAffinity"]}
    spec["terminationGracePeriodSeconds"] = 0
    spec["automountServiceAccountToken"] = False
    spec["securityContext"] = copy.deepcopy(kube.RESTRICTED_POD)
    spec["containers"] = [
        {
            "name": "probe",
            "image": "seatrial.local/pause:3.10",
            "resources": {"requests": {GPU: str(w.gpus)}, "limits": {GPU: str(w.gpus)}},
            "securityContext": copy.deepcopy(kube.RESTRICTED_CONTAINER),
        }
    ]
    with kube.translate(f"creating probe namespace {ns}"):
        live.core.create_namespace(client.V1Namespace.model_validate({"metadata": {"name": ns, "labels": labels}}))
    try:
        names = [f"gpu-probe-{i}" for i in range(slots + 1)]
        for name in names:
            body = client.V1Pod.model_validate({"metadata": {"name": name, "labels": labels}, "spec": spec})
            with kube.translate("creating a GPU probe pod"):
                live.core.create_namespaced_pod(ns, body)

        def judged() -> dict[str, str] | None:
            out = {}
            for name in names:
                pod = kube.as_dict(live.core.read_namespaced_pod(name, ns))
                if pod["spec"].get("nodeName"):
                    out[name] = "scheduled"
                for c in pod.get("status", {}).get("conditions", []):
                    if c["type"] == "PodScheduled" and c["status"] == "False" and c.get("message"):
                        out[name] = str(c["message"])
            return out if len(out) == len(names) else None

        outcome = kube.wait_for("the scheduler to place or refuse every probe pod", judged, timeout=60, interval=0.5)
        time.sleep(3)  # a preemption victim would be on its way out by now
        after = _pods_on(live, [n.name for n in usable])
        waiting = [m for m in outcome.values() if m != "scheduled"]
        ref = w.ref
        gone = sorted(k.rsplit("/", 1)[0] for k in before if k not in after or _disrupted(after[k]))
        if gone:
            yield Finding("GPU-010", ref, "priorityClassName", f"one pod past capacity preempted: {', '.join(gone)}")
        elif not waiting:
            yield Finding("GPU-010", ref, "", f"{len(names)} pods past the {slots} free slots were all placed")
        elif not any(GPU in m for m in waiting):
            yield Finding(
                "GPU-010", ref, "", f"the pod past capacity waits, but the reason does not name {GPU}: {waiting[0]}"
            )
    finally:
        with kube.translate(f"deleting probe namespace {ns}"):
            live.core.delete_namespace(ns, grace_period_seconds=0)
        kube.wait_namespaces_gone(live.core, [ns], selector=PROBE_LABEL, timeout=90)  # leave nothing


def _disrupted(pod: dict[str, Any]) -> bool:
    """Being deleted, or marked by the scheduler as a preemption victim."""
    if pod["metadata"].get("deletionTimestamp"):
        return True
    return any(
        c["type"] == "DisruptionTarget" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", [])
    )


def _pod_gpus(pod: dict[str, Any]) -> int:
    return sum(int((c.get("resources") or {}).get("limits", {}).get(GPU, 0)) for c in pod["spec"]["containers"])


def _pods_on(live: Live, nodes: list[str]) -> dict[str, dict[str, Any]]:
    """Pods on these nodes, cluster-wide, keyed by namespace/name/uid (a replacement is a new key)."""
    out = {}
    for node in nodes:
        with kube.translate(f"listing pods on {node}"):
            items = live.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
        for p in items:
            d = kube.as_dict(p)
            if d.get("status", {}).get("phase") in ("Succeeded", "Failed") or (d["metadata"].get("labels") or {}).get(
                PROBE_LABEL
            ):
                continue
            out[f"{d['metadata']['namespace']}/{d['metadata']['name']}/{d['metadata']['uid']}"] = d
    return out


@action(
    "SEC-007",
    "Workload ServiceAccounts cannot list Secrets (as the API server decides)",
    family="secrets",
    severity="high",
    why="Bindings outside the manifests (a ClusterRoleBinding someone added, a default that grants too "
    "much) are invisible to static checks; the API server's own answer is the proof.",
    fix="Find the binding (kubectl get rolebindings,clusterrolebindings -A -o wide | grep <sa>) and grant "
    "get on named Secrets only.",
)
def secrets_by_access_review(live: Live) -> Iterator[Finding]:
    authz = client.AuthorizationV1Api(live.api)
    seen: set[tuple[str, str]] = set()
    for w in live.inventory.workloads:
        sa = str(w.pod.get("serviceAccountName") or "default")
        if (w.namespace, sa) in seen:
            continue
        seen.add((w.namespace, sa))
        user = f"system:serviceaccount:{w.namespace}:{sa}"
        for scope, ns in (("in its namespace", w.namespace), ("in every namespace", "")):
            review = client.V1SubjectAccessReview.model_validate(
                {
                    "spec": {
                        "user": user,
                        "groups": ["system:serviceaccounts", f"system:serviceaccounts:{w.namespace}"],
                        "resourceAttributes": {"verb": "list", "resource": "secrets", "namespace": ns},
                    }
                }
            )
            with kube.translate(f"asking whether {user} may list secrets"):
                answer = kube.as_dict(authz.create_subject_access_review(review))
            if answer.get("status", {}).get("allowed"):
                yield Finding(
                    "SEC-007",
                    w.ref,
                    f"serviceAccountName {sa}",
                    f"{sa} may list all Secrets {scope} (the API server says so)",
                )
                break


@action(
    "ROLL-008",
    "A rolling update under load loses no request and keeps ready endpoints",
    family="rollout",
    severity="critical",
    why="The whole point of readiness, preStop and surge settings: replacing every pod of the serving "
    "tier while traffic flows must not fail a single request.",
    fix="Readiness that reflects serving, a preStop pause longer than endpoint propagation, a grace "
    "period for in-flight requests, maxUnavailable 0 (see ROLL-001..006).",
)
def rollout_under_load(live: Live) -> Iterator[Finding]:
    if not live.rollout or not live.load_url:
        raise Skip("the profile names no serving Deployment and load target to roll out under load")
    kind, name = live.rollout.split("/", 1)
    matches = [w for w in live.inventory.workloads if w.kind == kind and w.name == name]
    if not matches:
        raise Skip(f"{live.rollout} is not in the checked namespaces")
    w = matches[0]
    last: Exception | None = None
    for _ in range(10):  # a Service that is still settling gets a few seconds
        try:
            urllib.request.urlopen(_request(live), timeout=5).close()  # noqa: S310 - the profile's own target
            break
        except (OSError, urllib.error.URLError) as exc:
            last = exc
            time.sleep(1)
    else:
        raise Skip(f"the load target {live.load_url} is not reachable from here ({last})")
    _wait_workload_ready(live, w)
    replicas = w.replicas or 1
    unavailable = (
        0 if (w.spec.get("strategy") or {}).get("rollingUpdate", {}).get("maxUnavailable") in (0, "0", "0%") else 1
    )
    floor = replicas - unavailable
    stop = threading.Event()
    results: list[tuple[float, str | None]] = []
    min_ready = [replicas]

    def send() -> None:
        while not stop.is_set():
            t = time.monotonic()
            try:
                with urllib.request.urlopen(_request(live), timeout=5) as resp:  # noqa: S310
                    resp.read()
                results.append((t, None))
            except (OSError, urllib.error.URLError) as exc:
                results.append((t, str(exc)))
            time.sleep(0.02)

    def watch_endpoints() -> None:
        while not stop.is_set():
            ready = len([p for p in _pods(live, w) if workloads.pod_ready(p)])
            min_ready[0] = min(min_ready[0], ready)
            time.sleep(0.2)

    workers = [threading.Thread(target=send, daemon=True) for _ in range(4)]
    workers.append(threading.Thread(target=watch_endpoints, daemon=True))
    for t in workers:
        t.start()
    try:
        time.sleep(1)
        workloads.restart(live.api, w.kind, w.name, w.namespace)
        workloads.wait_rolled_out(live.api, w.kind, w.name, w.namespace, timeout=180)
        time.sleep(2)
    finally:
        stop.set()
        for t in workers:
            t.join(timeout=10)
    if len(results) < 20:
        raise Skip(f"only {len(results)} requests were sent: too few to judge")
    failed = [e for _, e in results if e]
    if failed:
        yield Finding(
            "ROLL-008",
            w.ref,
            "rollout",
            f"{len(failed)} of {len(results)} requests failed during the rollout: {failed[0]}",
        )
    if min_ready[0] < floor:
        yield Finding("ROLL-008", w.ref, "rollout", f"ready pods fell to {min_ready[0]}; the strategy allows {floor}")


def _request(live: Live) -> urllib.request.Request:
    assert live.load_url is not None
    return load.request(live.load_url, live.load_headers)
