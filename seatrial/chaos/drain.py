"""Draining a node the way ``kubectl drain`` does, with the accounting it does not keep.

chaostoolkit-kubernetes' ``drain_nodes`` gives up at the first PodDisruptionBudget refusal (HTTP
429). Here every pod is evicted through the Eviction API; a refusal is recorded (when, which
pod, what the API said) and retried with backoff until the budget frees up or the deadline
passes; and a watch on the pods proves, event by event, that no budget's ready pods fell below
what it allows. Pods outside the run's namespaces are left alone (and listed); DaemonSet pods
stay, as with ``kubectl drain --ignore-daemonsets``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from seatrial import kube
from seatrial.chaos import ledger, nodeops


@dataclass(frozen=True)
class Eviction:
    """One call of the Eviction API: ``allowed``, ``refused`` (429: a budget said no), ``gone``."""

    t: float  # seconds since the drain began
    namespace: str
    pod: str
    outcome: str
    detail: str = ""


@dataclass
class Budget:
    """One PodDisruptionBudget as the watch saw it: the fewest healthy pods at any event."""

    namespace: str
    name: str
    selector: dict[str, str]
    desired: int  # the fewest healthy pods it allows (status.desiredHealthy at the start)
    lowest: int | None = None
    lowest_at: float = 0.0

    def held(self) -> bool:
        return self.lowest is None or self.lowest >= self.desired


def healthy(pod: Mapping[str, Any]) -> bool:
    """Counted as the disruption controller counts: Ready and not being deleted."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


class BudgetWatch:
    """Watches the pods of some namespaces and keeps, per budget, its lowest healthy count."""

    def __init__(self, api: client.ApiClient, namespaces: Iterable[str]) -> None:
        self.api, self.started = api, time.monotonic()
        self.budgets: list[Budget] = []
        self._pods: dict[tuple[str, str], tuple[dict[str, str], bool]] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        policy, core = client.PolicyV1Api(api), client.CoreV1Api(api)
        for ns in sorted(set(namespaces)):
            with kube.translate(f"listing PodDisruptionBudgets in {ns}"):
                pdbs = [kube.as_dict(p) for p in policy.list_namespaced_pod_disruption_budget(ns).items]
            for p in pdbs:
                labels = ((p.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
                desired = int((p.get("status") or {}).get("desiredHealthy") or 0)
                self.budgets.append(Budget(ns, p["metadata"]["name"], dict(labels), desired))
            with kube.translate(f"listing pods in {ns}"):
                listed = core.list_namespaced_pod(ns)
            for pod in listed.items:
                self._see(kube.as_dict(pod))
            version = listed.metadata.resource_version if listed.metadata else None
            t = threading.Thread(target=self._follow, args=(ns, version), daemon=True, name=f"budget-watch-{ns}")
            self._threads.append(t)
        self._count()
        for t in self._threads:
            t.start()

    def _see(self, pod: Mapping[str, Any], *, deleted: bool = False) -> None:
        meta = pod.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if deleted:
            self._pods.pop(key, None)
        else:
            self._pods[key] = (dict(meta.get("labels") or {}), healthy(pod))

    def _count(self) -> None:
        now = time.monotonic() - self.started
        for b in self.budgets:
            n = sum(
                ok for (ns, _), (labels, ok) in self._pods.items() if ns == b.namespace and matches(b.selector, labels)
            )
            if b.lowest is None or n < b.lowest:
                b.lowest, b.lowest_at = n, now

    def _follow(self, namespace: str, version: str | None) -> None:
        core = client.CoreV1Api(self.api)
        while not self._stop.is_set():
            w = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                events = w.stream(core.list_namespaced_pod, namespace, resource_version=version, timeout_seconds=5)  # type: ignore[no-untyped-call]
                for ev in events:
                    pod = kube.as_dict(ev["object"])
                    version = (pod.get("metadata") or {}).get("resourceVersion") or version
                    self._see(pod, deleted=ev["type"] == "DELETED")
                    self._count()
                    if self._stop.is_set():
                        break
            except ApiException as exc:
                if exc.status == 410:  # too old: start from now (a gap of events cannot raise the minimum)
                    version = None
                    continue
                time.sleep(0.5)
            except Exception:  # a dropped stream is reopened, never fatal to the run
                time.sleep(0.5)
            finally:
                w.stop()  # type: ignore[no-untyped-call]

    def budgets_of(self, pod: str) -> list[Budget]:
        """The budgets that cover a pod ("namespace/name"), by their selectors."""
        ns, name = pod.split("/", 1)
        labels = self._pods.get((ns, name), ({}, False))[0]
        return [b for b in self.budgets if b.namespace == ns and matches(b.selector, labels)]

    def stop(self) -> list[Budget]:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        return self.budgets


@dataclass
class Drain:
    """What a drain did: every eviction call, the pods it left alone, and whether it finished."""

    node: str
    evictions: list[Eviction] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def done(self) -> bool:
        return not self.remaining

    def refused(self) -> list[Eviction]:
        return [e for e in self.evictions if e.outcome == "refused"]

    def summary(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "seconds": round(self.seconds, 1),
            "allowed": sum(e.outcome == "allowed" for e in self.evictions),
            "refused": len(self.refused()),
            "remaining": self.remaining,
            "left alone": self.left_alone,
            "evictions": [e.__dict__ for e in self.evictions],
        }


def pods_on(api: client.ApiClient, node: str) -> list[dict[str, Any]]:
    with kube.translate(f"listing pods on node {node}"):
        items = client.CoreV1Api(api).list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
    return [kube.as_dict(p) for p in items]


def daemon(pod: Mapping[str, Any]) -> bool:
    owners = (pod.get("metadata") or {}).get("ownerReferences") or []
    mirror = "kubernetes.io/config.mirror" in ((pod.get("metadata") or {}).get("annotations") or {})
    return mirror or any(o.get("kind") == "DaemonSet" for o in owners)


def _finished(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def evict(api: client.ApiClient, namespace: str, name: str, *, grace_period: int | None = None) -> tuple[str, str]:
    """One call of the Eviction API: ``allowed``; ``refused`` with the API's reason when a budget
    says no (429); ``gone`` when the pod no longer exists (404)."""
    body = client.V1Eviction(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace),
        delete_options=client.V1DeleteOptions(grace_period_seconds=grace_period),
    )
    try:
        client.CoreV1Api(api).create_namespaced_pod_eviction(name, namespace, body)
    except ApiException as exc:
        if exc.status == 429:
            return "refused", kube.api_message(exc)
        if exc.status == 404:
            return "gone", ""
        with kube.translate(f"evicting pod {namespace}/{name}"):
            raise
    return "allowed", ""


def drain(
    api: client.ApiClient,
    node: str,
    *,
    deadline: float,
    grace_period: int | None = None,
    backoff: tuple[float, float] = (0.5, 4.0),
) -> Drain:
    """Cordon ``node`` (undone by the ledger) and evict its pods within the run's namespaces
    until none is left or ``deadline`` seconds pass; refusals are retried with backoff."""
    book = ledger.current()
    nodeops.cordon(api, node)
    started = time.monotonic()
    result = Drain(node)
    wait: dict[tuple[str, str], float] = {}  # pod -> when to try again
    delay: dict[tuple[str, str], float] = {}
    while True:
        now = time.monotonic() - started
        ours = []
        for pod in pods_on(api, node):
            meta = pod["metadata"]
            key = (meta["namespace"], meta["name"])
            if daemon(pod) or _finished(pod):
                continue
            if meta["namespace"] not in book.namespaces:
                if f"{key[0]}/{key[1]}" not in result.left_alone:
                    result.left_alone.append(f"{key[0]}/{key[1]}")
                continue
            ours.append((key, pod))
        result.remaining = [f"{ns}/{n}" for (ns, n), _ in ours]
        if not ours or now > deadline:
            break
        for key, pod in ours:
            if pod["metadata"].get("deletionTimestamp") or wait.get(key, 0.0) > now:
                continue
            outcome, why = evict(api, key[0], key[1], grace_period=grace_period)
            ev = Eviction(round(now, 2), key[0], key[1], outcome, why)
            if outcome == "refused":
                delay[key] = min(backoff[1], delay.get(key, backoff[0] / 2) * 2)
                wait[key] = now + delay[key]
            result.evictions.append(ev)
        time.sleep(0.25)
    result.seconds = time.monotonic() - started
    return result
