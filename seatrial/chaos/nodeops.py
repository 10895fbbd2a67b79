"""Changes to nodes, each recorded on the node before it is made and undone through the ledger.

A node is shared by everyone on a cluster: a cordon, a taint or a condition left behind by a
chaos run blocks other teams' pods (Litmus leaves nodes cordoned after a drain timeout). So every
change here goes the same way:

1. the run's ledger allows the node (node scope, never a control-plane node);
2. the undo is registered;
3. the original value is written on the node, under one key per change, in the annotation
   ``seatrial.dev/original`` (a JSON object), and the node is labelled ``seatrial.dev/run``;
4. the change is made.

``restore`` puts back what the annotation says and removes the marks, key by key, so it is
idempotent and also works for a run that died with ``kill -9`` (the marks are all it needs).
Keys: ``unschedulable``, ``taint/<key>/<effect>``, ``condition/<type>``, ``allocatable/<resource>``,
``label/<key>``, ``lease`` (the node's heartbeat Lease, held so nothing renews it), ``power``
(a real node of the local cluster that was switched off) and ``gpu/<device>`` (a GPU of a real
node that its device plugin reports unhealthy).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from kubernetes import client

from seatrial import kube
from seatrial.chaos import ledger
from seatrial.errors import AccessError, ConflictError, NotFoundError

PowerOn = Callable[[str], None]
OWNERS_ANNOTATION = "seatrial.dev/owners"  # mark -> the run that recorded it


class Host(Protocol):
    """What only the machine under a node can undo (seatrial's local cluster is one)."""

    def revive_node(self, name: str) -> None: ...

    def set_gpu_health(self, name: str, device: str, state: str) -> None: ...


def read(api: client.ApiClient, name: str) -> dict[str, Any]:
    with kube.translate(f"reading node {name}"):
        return kube.as_dict(client.CoreV1Api(api).read_node(name))


def marks(node: Mapping[str, Any]) -> dict[str, Any]:
    """The originals a run recorded on this node (empty when seatrial changed nothing)."""
    raw = ((node.get("metadata") or {}).get("annotations") or {}).get(ledger.ORIGINAL_ANNOTATION)
    try:
        saved = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return saved if isinstance(saved, dict) else {}


def owners_of(node: Mapping[str, Any]) -> dict[str, str]:
    """Which run recorded each mark (two runs may change one node; the run label names only the
    last): cleanup restores only the marks of runs that are dead. A mark without an owner
    belongs to the run the label names."""
    meta = node.get("metadata") or {}
    try:
        owners = json.loads((meta.get("annotations") or {}).get(OWNERS_ANNOTATION) or "{}")
    except ValueError:
        owners = {}
    label = str((meta.get("labels") or {}).get(ledger.RUN_LABEL, ""))
    owners = owners if isinstance(owners, dict) else {}
    return {k: str(owners.get(k) or label) for k in marks(node)}


def _retry_conflicts(what: str, fn: Callable[[], object], *, tries: int = 8) -> None:
    """Read-modify-write on a node races the kubelet and the node controllers: retry on 409."""
    for attempt in range(tries):
        try:
            with kube.translate(what):
                fn()
            return
        except ConflictError:
            if attempt == tries - 1:
                raise
            time.sleep(0.1 * (attempt + 1))


def _remember(api: client.ApiClient, name: str, key: str, original: Any, run_id: str) -> None:
    """Record ``original`` under ``key`` unless an earlier change already recorded it (the first
    original is the true one), and label the node with the run."""

    def write() -> None:
        node = read(api, name)
        saved = marks(node)
        if key in saved:
            return
        saved[key] = original
        owners = owners_of(node) | {key: run_id}
        body = {
            "metadata": {
                "labels": {ledger.RUN_LABEL: run_id},
                "annotations": {
                    ledger.ORIGINAL_ANNOTATION: json.dumps(saved, sort_keys=True),
                    OWNERS_ANNOTATION: json.dumps(owners, sort_keys=True),
                },
                "resourceVersion": node["metadata"]["resourceVersion"],
            }
        }
        client.CoreV1Api(api).patch_node(name, body)

    _retry_conflicts(f"recording the original state of node {name}", write)


def _guard(api: client.ApiClient, name: str, what: str) -> dict[str, Any]:
    node = read(api, name)
    ledger.current().allow_node(name, (node.get("metadata") or {}).get("labels") or {}, what)
    return node


def local_cluster(configuration: Mapping[str, Any] | None) -> Any:
    """seatrial's local cluster: the one seatrial's runner names (``local_state``), else the
    default one when the experiment's kubeconfig is its kubeconfig (``chaos run`` alone); None
    for any other cluster, whose nodes seatrial cannot switch off."""
    from pathlib import Path

    from seatrial.cluster.local import LocalCluster

    cfg = configuration or {}
    if cfg.get("local_state"):
        return LocalCluster(Path(str(cfg["local_state"])))
    local = LocalCluster()
    given = str(cfg.get("kubeconfig") or "")
    return local if given and local.serves(kube.Target(Path(given), cfg.get("kube_context") or None)) else None


# ---- changes -------------------------------------------------------------------------------
def cordon(api: client.ApiClient, name: str) -> None:
    node = _guard(api, name, f"cordon node {name}")
    book = ledger.current()
    book.will(f"node {name} schedulable as before", lambda: restore(api, name, keys=["unschedulable"]))
    _remember(api, name, "unschedulable", bool((node.get("spec") or {}).get("unschedulable")), book.run_id)
    with kube.translate(f"cordoning node {name}"):
        client.CoreV1Api(api).patch_node(name, {"spec": {"unschedulable": True}})


def taint(api: client.ApiClient, name: str, key: str, effect: str, value: str = "") -> None:
    node = _guard(api, name, f"taint node {name} with {key}:{effect}")
    book = ledger.current()
    mark = f"taint/{key}/{effect}"
    book.will(f"taint {key}:{effect} off node {name}", lambda: restore(api, name, keys=[mark]))
    before = next((t for t in (node.get("spec") or {}).get("taints") or [] if _same(t, key, effect)), None)
    _remember(api, name, mark, before, book.run_id)
    _set_taint(api, name, key, effect, {"key": key, "effect": effect, **({"value": value} if value else {})})


def _same(t: Mapping[str, Any], key: str, effect: str) -> bool:
    return t.get("key") == key and t.get("effect") == effect


def _set_taint(api: client.ApiClient, name: str, key: str, effect: str, taint: Mapping[str, Any] | None) -> None:
    """Put (or, with ``None``, remove) one taint, keeping every other taint as it is now."""

    def write() -> None:
        node = read(api, name)
        others = [t for t in (node.get("spec") or {}).get("taints") or [] if not _same(t, key, effect)]
        body = {
            "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
            "spec": {"taints": [*others, *([dict(taint)] if taint else [])]},
        }
        client.CoreV1Api(api).patch_node(name, body)

    _retry_conflicts(f"{'tainting' if taint else 'untainting'} node {name}", write)


def set_condition(api: client.ApiClient, name: str, type_: str, status: str, *, reason: str, message: str) -> None:
    """Set a node condition as a health agent would (e.g. ``AcceleratedHardwareReady=False``)."""
    node = _guard(api, name, f"set condition {type_} on node {name}")
    book = ledger.current()
    mark = f"condition/{type_}"
    book.will(f"condition {type_} of node {name} as before", lambda: restore(api, name, keys=[mark]))
    before = next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == type_), None)
    _remember(api, name, mark, before, book.run_id)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    cond = {"type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now}  # fmt: skip
    _put_condition(api, name, type_, cond)


def _put_condition(api: client.ApiClient, name: str, type_: str, cond: Mapping[str, Any] | None) -> None:
    def write() -> None:
        node = read(api, name)
        conds = (node.get("status") or {}).get("conditions") or []
        at = next((i for i, c in enumerate(conds) if c.get("type") == type_), None)
        ops: list[dict[str, Any]]
        if cond is None and at is None:
            return
        if cond is None:
            ops = [{"op": "test", "path": f"/status/conditions/{at}/type", "value": type_},
                   {"op": "remove", "path": f"/status/conditions/{at}"}]  # fmt: skip
        elif at is None:
            ops = [{"op": "add", "path": "/status/conditions/-", "value": dict(cond)}]
        else:
            ops = [{"op": "test", "path": f"/status/conditions/{at}/type", "value": type_},
                   {"op": "replace", "path": f"/status/conditions/{at}", "value": dict(cond)}]  # fmt: skip
        client.CoreV1Api(api).patch_node_status(name, ops)

    _retry_conflicts(f"setting condition {type_} on node {name}", write)


def set_allocatable(api: client.ApiClient, name: str, resource: str, value: str) -> None:
    """Lower (or raise) what the scheduler may place on a node, as a device plugin does when a
    device turns unhealthy; capacity stays."""
    node = _guard(api, name, f"change allocatable {resource} of node {name}")
    book = ledger.current()
    mark = f"allocatable/{resource}"
    book.will(f"allocatable {resource} of node {name} as before", lambda: restore(api, name, keys=[mark]))
    _remember(api, name, mark, ((node.get("status") or {}).get("allocatable") or {}).get(resource), book.run_id)
    _put_allocatable(api, name, resource, value)


def _put_allocatable(api: client.ApiClient, name: str, resource: str, value: str | None) -> None:
    path = f"/status/allocatable/{resource.replace('~', '~0').replace('/', '~1')}"
    op = {"op": "remove", "path": path} if value is None else {"op": "add", "path": path, "value": value}
    _retry_conflicts(f"changing allocatable {resource} of node {name}",
                     lambda: client.CoreV1Api(api).patch_node_status(name, [op]))  # fmt: skip


def set_label(api: client.ApiClient, name: str, key: str, value: str | None) -> None:
    """Set (or, with ``None``, remove) one label, e.g. the one KWOK manages simulated nodes by."""
    node = _guard(api, name, f"change label {key} of node {name}")
    book = ledger.current()
    mark = f"label/{key}"
    book.will(f"label {key} of node {name} as before", lambda: restore(api, name, keys=[mark]))
    _remember(api, name, mark, ((node.get("metadata") or {}).get("labels") or {}).get(key), book.run_id)
    with kube.translate(f"labelling node {name}"):
        client.CoreV1Api(api).patch_node(name, {"metadata": {"labels": {key: value}}})


NODE_LEASES = "kube-node-lease"  # a node's heartbeat: part of the node, guarded as the node is
HELD_SECONDS = 3600  # a holder's term no heartbeat outlasts an experiment by waiting out


def hold_lease(api: client.ApiClient, name: str) -> None:
    """Take a node's heartbeat Lease from whatever renews it, leaving its last renewal as it was:
    the control plane then sees a node that stopped heartbeating. KWOK stops on its own when the
    node leaves its label selector, but not when it misses that watch event (a watch re-opened
    from resourceVersion 0 does not replay it): zone-outage saw a simulated node stay Ready for
    60 s in two of thirteen runs. A lease held by another, unexpired, is one KWOK neither renews nor
    heartbeats the node's status under. The undo gives the lease back as it was."""
    _guard(api, name, f"hold the heartbeat lease of node {name}")
    book = ledger.current()
    coord = client.CoordinationV1Api(api)
    try:
        with kube.translate(f"reading the heartbeat lease of node {name}"):
            spec = kube.as_dict(coord.read_namespaced_lease(name, NODE_LEASES)).get("spec") or {}
        held = {"holderIdentity": f"seatrial/{book.run_id}", "leaseDurationSeconds": HELD_SECONDS}
        # a lease that may be read but not written would be marked and then neither held nor given
        # back: the API server authorizes a dry run as it would the write, and changes nothing
        _put_lease(api, name, held, dry_run=True)
    except NotFoundError:
        return  # nothing heartbeats this node through a lease
    except AccessError as exc:  # the shipped roles grant no leases: the label alone, as before
        logging.getLogger("seatrial.chaos").warning("node %s's heartbeat lease not held: %s", name, exc)
        return
    book.will(f"node {name}'s heartbeat lease given back", lambda: restore(api, name, keys=["lease"]))
    original = {"holderIdentity": spec.get("holderIdentity"), "leaseDurationSeconds": spec.get("leaseDurationSeconds")}
    _remember(api, name, "lease", original, book.run_id)
    _put_lease(api, name, held)


def _put_lease(api: client.ApiClient, name: str, spec: Mapping[str, Any], *, dry_run: bool = False) -> None:
    """Set the lease's holder and term as of its current version (its holder may renew meanwhile)."""
    coord = client.CoordinationV1Api(api)

    def write() -> None:
        lease = kube.as_dict(coord.read_namespaced_lease(name, NODE_LEASES))
        body = {"metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]}, "spec": dict(spec)}
        coord.patch_namespaced_lease(name, NODE_LEASES, body, dry_run="All" if dry_run else None)

    with contextlib.suppress(NotFoundError):
        _retry_conflicts(f"setting the holder of node {name}'s heartbeat lease", write)


def power_off(api: client.ApiClient, name: str, off: PowerOn, on: PowerOn) -> None:
    """Switch a real node off (``off``); the undo switches it on again (``on``)."""
    _guard(api, name, f"switch node {name} off")
    book = ledger.current()

    def switch_on() -> None:  # also when the Node was deleted meanwhile (a preempted node): no marks left
        on(name)
        restore(api, name, keys=["power"])

    book.will(f"node {name} switched on again", switch_on)
    _remember(api, name, "power", "on", book.run_id)
    off(name)


def fail_gpu(api: client.ApiClient, name: str, device: str, state: str, host: Host) -> None:
    """Report one GPU of a real node unhealthy (``state`` names the XID) through the node's
    device plugin: the kubelet drops allocatable and assigns the device to nothing new."""
    _guard(api, name, f"fail GPU {device} of node {name}")
    book = ledger.current()
    mark = f"gpu/{device}"
    book.will(f"GPU {device} of node {name} healthy again", lambda: restore(api, name, keys=[mark], host=host))
    _remember(api, name, mark, "Healthy", book.run_id)
    host.set_gpu_health(name, device, state)


# ---- undo ----------------------------------------------------------------------------------
def restore(api: client.ApiClient, name: str, *, keys: list[str] | None = None, host: Host | None = None) -> list[str]:
    """Put back what the node's marks recorded (only ``keys``, or all), then drop those marks;
    once none are left, the run label goes too. Returns the keys restored. A node that no
    longer exists has nothing to restore. ``power`` and ``gpu/…`` need the ``host``."""
    try:
        node = read(api, name)
    except NotFoundError:
        return []
    saved = marks(node)
    todo = [k for k in saved if keys is None or k in keys]
    for key in todo:
        original = saved[key]
        if key == "unschedulable":
            with kube.translate(f"uncordoning node {name}"):
                client.CoreV1Api(api).patch_node(name, {"spec": {"unschedulable": bool(original) or None}})
        elif key.startswith("taint/"):
            tkey, effect = key.removeprefix("taint/").rsplit("/", 1)
            _set_taint(api, name, tkey, effect, original)
        elif key.startswith("condition/"):
            _put_condition(api, name, key.split("/", 1)[1], original)
        elif key.startswith("allocatable/"):
            _put_allocatable(api, name, key.split("/", 1)[1], original)
        elif key.startswith("label/"):
            with kube.translate(f"labelling node {name}"):
                client.CoreV1Api(api).patch_node(name, {"metadata": {"labels": {key.split("/", 1)[1]: original}}})
        elif key == "lease" and isinstance(original, dict):
            _put_lease(api, name, original)
        elif key == "power" and host is not None:
            host.revive_node(name)
        elif key.startswith("gpu/") and host is not None:
            host.set_gpu_health(name, key.split("/", 1)[1], str(original))
    _forget(api, name, todo)
    return todo


def _forget(api: client.ApiClient, name: str, keys: list[str]) -> None:
    def write() -> None:
        node = read(api, name)
        saved = {k: v for k, v in marks(node).items() if k not in keys}
        owners = {k: v for k, v in owners_of(node).items() if k in saved}
        meta: dict[str, Any] = {"resourceVersion": node["metadata"]["resourceVersion"]}
        if saved:
            meta["annotations"] = {
                ledger.ORIGINAL_ANNOTATION: json.dumps(saved, sort_keys=True),
                OWNERS_ANNOTATION: json.dumps(owners, sort_keys=True),
            }
            if owners:  # the label names a run that still has a mark here
                meta["labels"] = {ledger.RUN_LABEL: sorted(owners.values())[-1]}
        else:
            meta["annotations"] = {ledger.ORIGINAL_ANNOTATION: None, OWNERS_ANNOTATION: None}
            meta["labels"] = {ledger.RUN_LABEL: None}
        client.CoreV1Api(api).patch_node(name, {"metadata": meta})

    with contextlib.suppress(NotFoundError):
        _retry_conflicts(f"removing seatrial's marks from node {name}", write)
