"""Cluster tests: each module gets its own labelled namespace on the session's cluster."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from seatrial import kube, runs
from seatrial.cluster import pools
from seatrial.errors import ClusterError

KWOK_TOLERATION = {"key": pools.KWOK_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": pools.GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
TEST_LABEL = "seatrial.dev/test"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster/" in str(item.fspath):
            item.add_marker(pytest.mark.cluster)
    # the teardown test stops and restarts the shared cluster: run it after everything else
    items.sort(key=lambda item: item.fspath.basename == "test_teardown.py")


@pytest.fixture(scope="module")
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest.fixture(scope="module")
def apps(api: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api)


@pytest.fixture(scope="module")
def namespace(core: client.CoreV1Api, request: pytest.FixtureRequest) -> Iterator[str]:
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    name = f"seatrial-test-{module}-{uuid.uuid4().hex[:5]}"
    core.create_namespace(
        {"metadata": {"name": name, "labels": {pools.MANAGED_BY_LABEL: pools.MANAGED_BY, TEST_LABEL: "true"}}}
    )
    yield name
    core.delete_namespace(name, grace_period_seconds=0)


def pod_spec(
    *,
    gpus: int = 0,
    tolerate_gpu: bool = False,
    node_selector: dict[str, str] | None = None,
    affinity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A pod for KWOK nodes: the image is never pulled there, so any name will do."""
    resources: dict[str, Any] = {"requests": {"cpu": "10m", "memory": "16Mi"}}
    if gpus:
        resources["limits"] = {pools.GPU_RESOURCE: str(gpus)}
        resources["requests"][pools.GPU_RESOURCE] = str(gpus)
    tolerations = [KWOK_TOLERATION] + ([GPU_TOLERATION] if tolerate_gpu else [])
    spec: dict[str, Any] = {
        "containers": [{"name": "main", "image": "registry.invalid/seatrial/sleep:1", "resources": resources}],
        "tolerations": tolerations,
        "terminationGracePeriodSeconds": 0,
    }
    # KWOK nodes only: real nodes would try to pull this image, which exists nowhere
    spec["nodeSelector"] = {pools.KWOK_LABEL: "fake"} | (node_selector or {})
    if affinity:
        spec["affinity"] = affinity
    return spec


def deployment(name: str, replicas: int, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def pods_of(core: client.CoreV1Api, namespace: str, app: str) -> list[Any]:
    return [
        p
        for p in core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
        if p.metadata.deletion_timestamp is None
    ]


def wait(what: str, predicate: Callable[[], Any], timeout: float = 60, interval: float = 0.25) -> Any:
    return kube.wait_for(what, predicate, timeout=timeout, interval=interval)


def daemon_pods_ready(core: client.CoreV1Api, node: str) -> bool:
    """Every DaemonSet pod bound to ``node`` is Ready: a node given back after a kill is whole
    only then."""
    pods = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}").items
    daemons = [p for p in pods if any(o.kind == "DaemonSet" for o in p.metadata.owner_references or [])]
    return all(
        p.status.phase == "Running"
        and any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
        for p in daemons
        if not p.metadata.deletion_timestamp
    )


def ready_pods(core: client.CoreV1Api, namespace: str, app: str, count: int, timeout: float = 60) -> list[Any]:
    def check() -> list[Any] | None:
        pods = pods_of(core, namespace, app)
        ready = [
            p
            for p in pods
            if p.status.phase == "Running"
            and any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
        ]
        return ready if len(ready) == count and len(pods) == count else None

    return wait(f"{count} ready pods of {app}", check, timeout)  # type: ignore[no-any-return]


def nodes_by_name(core: client.CoreV1Api) -> dict[str, Any]:
    return {n.metadata.name: n for n in core.list_node().items}


def sleep_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


def namespaces(api: client.ApiClient) -> list[str]:
    return sorted(kube.name_of(n) for n in client.CoreV1Api(api).list_namespace().items)


def snapshot(api: client.ApiClient) -> tuple[object, ...]:
    """What a run may leave behind: seatrial namespaces (stacks, probes), node changes, run leases
    and replica counts of seatrial's stacks (other tests' namespaces come and go meanwhile)."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    ours = [n for n in namespaces(api) if n.startswith(("seatrial-stack-", "seatrial-probe-"))]
    nodes = sorted(
        (
            kube.name_of(n),
            bool(n.spec.unschedulable),
            sorted(t.key for t in n.spec.taints or []),
            sorted(k for k in n.metadata.annotations or {} if k.startswith("seatrial.dev/")),
        )
        for n in core.list_node().items
    )
    leases = sorted(kube.name_of(x) for x in client.CoordinationV1Api(api).list_namespaced_lease("default").items)
    scaled = sorted(
        (o.metadata.namespace, kube.name_of(o), o.spec.replicas)
        for lister in (apps.list_deployment_for_all_namespaces, apps.list_stateful_set_for_all_namespaces)
        for o in lister().items
        if o.metadata.namespace.startswith("seatrial-stack-")
    )
    return ours, nodes, [x for x in leases if x.startswith(runs.LEASE_PREFIX)], scaled


def as_before(api: client.ApiClient, before: tuple[object, ...]) -> None:
    """Deleted namespaces take a few seconds to go: allow them 60."""
    try:
        kube.wait_for("the cluster to be as before", lambda: snapshot(api) == before, timeout=60, interval=1)
    except ClusterError:
        assert snapshot(api) == before
