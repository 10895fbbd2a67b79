"""A workload's state on a live cluster, and the few things done to it: restart, wait, list pods.

One implementation serves the acting checks (ROLL-008 rolls out under load) and the chaos
experiments (rolling-restart, the waits that close every pod kill), so "rolled out" and "ready
again" mean the same thing everywhere.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from seatrial import kube

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"  # what `kubectl rollout restart` sets
KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def read(api: client.ApiClient, kind: str, name: str, namespace: str) -> dict[str, Any]:
    apps = client.AppsV1Api(api)
    reader = {
        "Deployment": apps.read_namespaced_deployment,
        "StatefulSet": apps.read_namespaced_stateful_set,
        "DaemonSet": apps.read_namespaced_daemon_set,
    }.get(kind)
    if reader is None:
        raise ValueError(f"{kind} is not a workload kind seatrial restarts ({', '.join(KINDS)})")
    with kube.translate(f"reading {kind}/{name} in {namespace}"):
        return kube.as_dict(reader(name, namespace))


def rolled_out(obj: dict[str, Any]) -> bool:
    """Every pod of the current revision is ready and no old one is left: what
    ``kubectl rollout status`` waits for."""
    spec, st, meta = obj.get("spec") or {}, obj.get("status") or {}, obj.get("metadata") or {}
    if st.get("observedGeneration", 0) < meta.get("generation", 0):
        return False
    if obj.get("kind") == "DaemonSet":
        want = st.get("desiredNumberScheduled", 0)
        return bool(st.get("updatedNumberScheduled", 0) == want and st.get("numberReady", 0) == want)
    want = spec.get("replicas", 1)
    if obj.get("kind") == "StatefulSet" and st.get("currentRevision") != st.get("updateRevision"):
        return False
    return bool(
        st.get("updatedReplicas", 0) == want and st.get("readyReplicas", 0) == want and st.get("replicas", 0) == want
    )


def wait_rolled_out(
    api: client.ApiClient, kind: str, name: str, namespace: str, *, timeout: float, settled: bool = False
) -> float:
    """Wait until the workload is rolled out and ready — and, with ``settled``, until none of its
    old pods is still terminating (a terminating pod still serves when it is the last endpoint,
    so a fault injected before they are gone tests less than it claims). Returns the seconds."""
    started = time.monotonic()

    def done() -> bool:
        if not rolled_out(read(api, kind, name, namespace) | {"kind": kind}):
            return False
        return not settled or not [p for p in pods(api, kind, name, namespace, terminating=True)
                                   if p["metadata"].get("deletionTimestamp")]  # fmt: skip

    kube.wait_for(f"{kind}/{name} in {namespace} to be ready", done, timeout=timeout, interval=0.5)
    return time.monotonic() - started


def wait_whole(api: client.ApiClient, namespace: str, *, timeout: float) -> None:
    """Every Deployment and StatefulSet in ``namespace`` rolled out and settled. A run that just
    evicted or restarted pods (the acting checks, the previous experiment) leaves replicas still
    loading; an experiment started then would judge that, not its own fault."""
    apps = client.AppsV1Api(api)
    with kube.translate(f"listing the workloads in {namespace}"):
        found = [("Deployment", kube.name_of(d)) for d in apps.list_namespaced_deployment(namespace).items]
        found += [("StatefulSet", kube.name_of(s)) for s in apps.list_namespaced_stateful_set(namespace).items]
    deadline = time.monotonic() + timeout
    for kind, name in found:
        wait_rolled_out(api, kind, name, namespace, timeout=max(1.0, deadline - time.monotonic()), settled=True)


def restart(api: client.ApiClient, kind: str, name: str, namespace: str) -> None:
    """Start a rolling restart, as ``kubectl rollout restart`` does (a new pod-template annotation)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + f".{time.time_ns() % 10**9:09d}"
    body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    apps = client.AppsV1Api(api)
    patch = {
        "Deployment": apps.patch_namespaced_deployment,
        "StatefulSet": apps.patch_namespaced_stateful_set,
        "DaemonSet": apps.patch_namespaced_daemon_set,
    }[kind]
    with kube.translate(f"restarting {kind}/{name} in {namespace}"):
        patch(name, namespace, body)


def pods(
    api: client.ApiClient, kind: str, name: str, namespace: str, *, terminating: bool = False
) -> list[dict[str, Any]]:
    """The workload's pods, by its selector; those being deleted only when ``terminating``."""
    labels = ((read(api, kind, name, namespace).get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in labels.items())
    with kube.translate(f"listing pods of {kind}/{name}"):
        items = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items
    found = [kube.as_dict(i) for i in items]
    return found if terminating else [p for p in found if not p["metadata"].get("deletionTimestamp")]


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
