"""Recovery after ``kill -9`` or power loss: find what dead runs left and restore or delete it.

A run that is interrupted unwinds its own undos (``chaos.ledger``). A run that is killed cannot,
so what it created and changed is found again by its marks alone: the label ``seatrial.dev/run``
on every object it created or changed, the originals in ``seatrial.dev/original`` on every node
and workload it changed. An object belongs to a dead run when no live lease answers for its run
(``runs``). ``nox -s cleanup`` runs this; so does the start of every run, for runs no longer
alive. Objects of a live run are never touched.

What is done, in order: nodes get back what their marks recorded (cordon, taints, conditions,
allocatable, labels, heartbeat leases; power and GPUs need the machine under the node, the local cluster's
``Host``), workloads get their replica counts back, stray objects (Jobs, Pods, Services,
ConfigMaps, Events) are deleted, the runs' namespaces are deleted and waited for, and the dead
runs' leases go last.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from seatrial import kube, runs
from seatrial.chaos import nodeops
from seatrial.errors import AccessError, ConfigError, NotFoundError, SeatrialError

ORDER = {"Node": 0, "Deployment": 1, "StatefulSet": 1, "Job": 2, "Pod": 2, "Service": 2, "ConfigMap": 2}
ORDER |= {"Event": 2, "Namespace": 3, "Lease": 4}
Say = Callable[[str], None]


@dataclass(frozen=True)
class Debris:
    """One thing a dead run left, and what cleanup does about it."""

    kind: str
    name: str
    namespace: str | None
    run: str
    action: str  # "delete", "restore", "scale", "left" (nothing this process can do)
    detail: str = ""  # the node marks restored, the replica count given back, what is left and why
    keys: tuple[str, ...] = ()  # a node's marks to restore (those of dead runs)
    record: str = ""  # a deleted node's record from its run's lease (JSON), for "recreate"

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def describe(self) -> str:
        what = {"delete": "delete", "restore": "restore", "scale": "scale back", "left": "cannot restore",
                "recreate": "bring back"}[self.action]  # fmt: skip
        return f"{what} {self.ref} (run {self.run}){': ' + self.detail if self.detail else ''}"


def _needs_host(key: str) -> bool:
    return key == "power" or key.startswith("gpu/")


def plan(objects: Iterable[Mapping[str, Any]], alive: Iterable[str], *, host: bool) -> list[Debris]:
    """Pure: from objects carrying the run label, what to do for runs that are not ``alive``.
    A node may carry marks of several runs: only the dead runs' marks are restored."""
    keep = set(alive)
    found: list[Debris] = []
    items = [o for o in objects if o.get("kind") == "Node" or runs.owner(_run(o)) not in keep]
    doomed = {o["metadata"]["name"] for o in items if o.get("kind") == "Namespace"}
    for obj in items:
        meta, kind, run = obj["metadata"], str(obj.get("kind")), _run(obj)
        ns = meta.get("namespace")
        if ns in doomed:
            continue  # goes with its namespace
        if kind == "Node":
            found += _node_plan(obj, keep, host=host)
        elif kind == "Lease":  # the nodes the run deleted, recorded there because their marks went with them
            kept = False
            for node, record in runs.deleted_nodes(obj).items():
                real = bool(record.get("real"))
                if real and not host:  # the lease stays, the record with it, until cleanup runs on the machine
                    why = "needs the machine under the node: run cleanup where the cluster runs"
                    found.append(Debris("Node", node, None, run, "left", f"switched off by a preemption ({why})"))
                    kept = True
                else:
                    what = "switch on the preempted node" if real else "create the preempted node again"
                    found.append(Debris("Node", node, None, run, "recreate", what, record=json.dumps(record)))
            if not kept:
                found.append(Debris(kind, meta["name"], ns, run, "delete"))
        elif kind in ("Deployment", "StatefulSet"):
            saved = nodeops.marks(obj)
            if "replicas" in saved:
                found.append(Debris(kind, meta["name"], ns, run, "scale", f"{saved['replicas']} replicas"))
        else:
            found.append(Debris(kind, meta["name"], ns, run, "delete"))
    return sorted(found, key=lambda d: (ORDER.get(d.kind, 2), d.ref))


def _node_plan(node: Mapping[str, Any], alive: set[str], *, host: bool) -> list[Debris]:
    name = node["metadata"]["name"]
    owners = nodeops.owners_of(node)
    dead = {k: r for k, r in owners.items() if runs.owner(r) not in alive}
    if not owners and runs.owner(_run(node)) not in alive:
        return [Debris("Node", name, None, _run(node), "restore", "the run label")]  # no mark left: keys=() drops it
    if not dead:
        return []
    run = ", ".join(sorted(set(dead.values())))
    can = sorted(k for k in dead if host or not _needs_host(k))
    left = sorted(k for k in dead if k not in can)
    out = []
    if can:
        out.append(Debris("Node", name, None, run, "restore", ", ".join(can), tuple(can)))
    if left:  # listed every time until someone with the machine runs cleanup: a node off is not clean
        why = "needs the machine under the node: run cleanup where the cluster runs"
        out.append(Debris("Node", name, None, run, "left", f"{', '.join(left)} ({why})"))
    return out


def _run(obj: Mapping[str, Any]) -> str:
    return str(((obj.get("metadata") or {}).get("labels") or {}).get(runs.RUN_LABEL, ""))


def labelled(api: client.ApiClient, unseen: list[str]) -> list[dict[str, Any]]:
    """Every object of the kinds a run creates or changes that carries the run label; the kinds
    this account may not list are named in ``unseen``."""
    core, apps, batch = client.CoreV1Api(api), client.AppsV1Api(api), client.BatchV1Api(api)
    coord = client.CoordinationV1Api(api)
    sel = runs.RUN_LABEL
    listers: list[tuple[str, str, Callable[..., Any]]] = [
        ("v1", "Namespace", core.list_namespace),
        ("v1", "Node", core.list_node),
        ("apps/v1", "Deployment", apps.list_deployment_for_all_namespaces),
        ("apps/v1", "StatefulSet", apps.list_stateful_set_for_all_namespaces),
        ("batch/v1", "Job", batch.list_job_for_all_namespaces),
        ("v1", "Pod", core.list_pod_for_all_namespaces),
        ("v1", "Service", core.list_service_for_all_namespaces),
        ("v1", "ConfigMap", core.list_config_map_for_all_namespaces),
        ("v1", "Event", core.list_event_for_all_namespaces),
    ]
    out: list[dict[str, Any]] = []
    for api_version, kind, lister in listers:
        try:
            with kube.translate(f"listing {kind} objects labelled {sel}"):
                items = lister(label_selector=sel).items
        except AccessError as exc:  # a kind this account may not list cannot hold our debris here
            unseen.append(str(exc).split("\n")[0])
            continue
        out += [kube.as_dict(i) | {"apiVersion": api_version, "kind": kind} for i in items]
    with kube.translate(f"listing the run leases in {runs.LEASE_NAMESPACE}"):
        leases = coord.list_namespaced_lease(runs.LEASE_NAMESPACE, label_selector=sel).items
    out += [kube.as_dict(i) | {"kind": "Lease"} for i in leases]
    return out


def _delete(api: client.ApiClient, d: Debris) -> None:
    core = client.CoreV1Api(api)
    ns = d.namespace or ""
    deleters: dict[str, Callable[[], object]] = {
        "Namespace": lambda: core.delete_namespace(d.name),
        "Job": lambda: client.BatchV1Api(api).delete_namespaced_job(d.name, ns, propagation_policy="Background"),
        "Pod": lambda: core.delete_namespaced_pod(d.name, ns, grace_period_seconds=0),
        "Service": lambda: core.delete_namespaced_service(d.name, ns),
        "ConfigMap": lambda: core.delete_namespaced_config_map(d.name, ns),
        "Event": lambda: core.delete_namespaced_event(d.name, ns),
        "Lease": lambda: client.CoordinationV1Api(api).delete_namespaced_lease(d.name, ns),
    }
    try:
        with kube.translate(f"deleting {d.ref}"):
            deleters[d.kind]()
    except NotFoundError:
        pass


def _bring_back(api: client.ApiClient, d: Debris, host: nodeops.Host | None) -> None:
    """A node a dead run deleted (a preempted spot node): a real one switched on (it registers
    anew), a simulated one created again from the record, as the provider's replacement would."""
    from seatrial.chaos import spot

    try:
        record = json.loads(d.record)
        node = dict(record["node"]) if not record.get("real") else {}
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"the lease's record of node {d.name} is unreadable: {exc}") from None
    if record.get("real"):
        if host is not None:
            host.revive_node(d.name)
    else:
        spot.recreate(api, node)


def apply(api: client.ApiClient, found: list[Debris], *, host: nodeops.Host | None, say: Say) -> list[str]:
    """Do what ``plan`` said; one failure does not stop the rest. Returns what was not undone."""
    from seatrial.chaos.actions import unmark_replicas

    failed: list[str] = []
    unfinished: set[str] = set()  # runs whose deleted nodes did not come back: their leases keep the record
    for d in found:
        try:
            if d.kind == "Lease" and d.run in unfinished:
                continue
            if d.action == "left":
                failed.append(d.describe())
                say(d.describe())
                continue
            if d.action == "recreate":
                _bring_back(api, d, host)
            elif d.kind == "Node":
                nodeops.restore(api, d.name, keys=list(d.keys), host=host)  # the run label goes with the last mark
            elif d.action == "scale":
                with contextlib.suppress(NotFoundError):
                    unmark_replicas(api, d.kind, d.name, d.namespace or "")
            else:
                _delete(api, d)
            say(d.describe())
        except (SeatrialError, OSError) as exc:  # one that cannot be undone (forbidden, host) must not stop the rest
            if d.action == "recreate":
                unfinished.add(d.run)
            failed.append(f"{d.describe()}: {exc}")
            say(f"could not {d.describe()}: {exc}")
    namespaces = [d.name for d in found if d.kind == "Namespace"]
    try:  # returns at once when there are none
        what = f"{len(namespaces)} namespace(s) of dead runs to be gone"
        kube.wait_namespaces_gone(client.CoreV1Api(api), namespaces, selector=runs.RUN_LABEL, timeout=180, what=what)
    except SeatrialError as exc:
        failed.append(str(exc))
    return failed


def sweep(
    api: client.ApiClient, *, host: nodeops.Host | None, dry_run: bool = False, say: Say = print
) -> tuple[list[Debris], list[str]]:
    """Find what runs that are no longer alive left, and (unless ``dry_run``) restore or delete
    it. Returns what was found and what could not be undone."""
    unseen: list[str] = []
    objects = labelled(api, unseen)  # first: a lease exists before its run's objects, so a run that
    alive = runs.live_sessions(api)  # starts between the two reads is seen alive, never half-swept
    if runs.held():
        alive.add(runs.session())
    found = plan(objects, alive, host=host is not None)
    problems = [f"not searched: {u}" for u in unseen]
    if dry_run or not found:
        return found, problems
    return found, problems + apply(api, found, host=host, say=say)
