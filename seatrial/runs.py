"""Runs and their leases: how a later run tells a live run's objects from the debris of a dead one.

Everything a run creates or changes carries ``seatrial.dev/run`` (``ledger.RUN_LABEL``). The value
is the run's *session* id (this process: eight hex digits), or ``<session>-<n>`` for the n-th
chaos ledger of the session, so one lease answers for all of them. While a run talks to a cluster
it holds a ``coordination.k8s.io/v1`` Lease ``seatrial-run-<session>`` in ``default`` and renews
it every ``RENEW`` seconds. A run killed with ``kill -9`` (or a machine that lost power) stops
renewing; once its lease is older than ``DURATION`` the run is dead, and ``cleanup`` may restore
or delete what it left. On the machine that held it, a lease whose process is gone is dead at
once: the holder names the host, the pid and the process's start time, so a reused pid does not
keep a dead run alive.

Objects without the label (a stack deployed by hand with ``seatrial stack deploy``) belong to
nobody's run and are never cleaned.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from seatrial import kube
from seatrial.errors import ClusterError, NotFoundError

RUN_LABEL = "seatrial.dev/run"
LEASE_PREFIX = "seatrial-run-"
LEASE_NAMESPACE = "default"  # a record of who is running, not a chaos target; removed at the run's end
DURATION = 30  # seconds without a renewal after which a run is dead
RENEW = 10
MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"
log = logging.getLogger("seatrial.runs")

_SESSION = uuid.uuid4().hex[:8]
_children = itertools.count(1)


def session() -> str:
    """This process's run id: the value of ``seatrial.dev/run`` on what it creates."""
    return _SESSION


def child() -> str:
    """A fresh id for one ledger of this session (one chaos experiment): ``<session>-<n>``."""
    return f"{_SESSION}-{next(_children)}"


def owner(run_label: str) -> str:
    """The session a ``seatrial.dev/run`` value belongs to."""
    return run_label.split("-", 1)[0]


def _start_ticks(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_space() -> str:
    """The host and its pid namespace: two containers may share a hostname, not their pids."""
    try:
        space = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        space = "?"
    return f"{socket.gethostname()}:{space}"


def holder() -> str:
    """``host:pidns/pid/start``: enough to tell, in this pid space, whether the holder still runs."""
    return f"{_pid_space()}/{os.getpid()}/{_start_ticks(os.getpid())}"


def _parse_time(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, str) and value:
        with contextlib.suppress(ValueError):
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def lease_alive(
    lease: Mapping[str, Any],
    now: dt.datetime,
    *,
    host: str | None = None,
    started: Callable[[int], str | None] = _start_ticks,
) -> bool:
    """Pure but for ``started``: is the run holding ``lease`` alive at ``now``?

    In ``host``'s pid space (this machine, this container) the process decides: alive while the
    process it names runs (a renewal that stalls does not kill it), dead at once when it is gone
    or the pid is another process's. Elsewhere the clock decides: dead when not renewed for the
    lease's duration."""
    spec = lease.get("spec") or {}
    parts = str(spec.get("holderIdentity") or "").split("/")
    if host is not None and len(parts) == 3 and parts[0] == host and parts[1].isdigit() and parts[2] != "None":
        return started(int(parts[1])) == parts[2]
    renewed = _parse_time(spec.get("renewTime") or spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds") or DURATION
    return renewed is not None and (now - renewed).total_seconds() <= float(duration)


def live_sessions(api: client.ApiClient, now: dt.datetime | None = None) -> set[str]:
    """The sessions whose lease is alive now."""
    with kube.translate("listing seatrial's run leases"):
        items = client.CoordinationV1Api(api).list_namespaced_lease(LEASE_NAMESPACE, label_selector=RUN_LABEL).items
    now = now or dt.datetime.now(dt.UTC)
    here = _pid_space()
    out = set()
    for item in items:
        lease = kube.as_dict(item)
        if lease_alive(lease, now, host=here):
            out.add(str((lease["metadata"].get("labels") or {}).get(RUN_LABEL, "")))
    return out


@dataclass
class Lease:
    """A held run lease, renewed by a daemon thread until ``release``."""

    api: client.ApiClient
    name: str = field(default_factory=lambda: LEASE_PREFIX + _SESSION)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def body(self) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC).strftime(MICRO)
        return {
            "metadata": {
                "name": self.name,
                "namespace": LEASE_NAMESPACE,
                "labels": {RUN_LABEL: _SESSION, "app.kubernetes.io/managed-by": "seatrial"},
                "annotations": {"seatrial.dev/purpose": "a seatrial run is alive while this is renewed"},
            },
            "spec": {
                "holderIdentity": holder(),
                "leaseDurationSeconds": DURATION,
                "acquireTime": now,
                "renewTime": now,
            },
        }

    def renew(self) -> None:
        """Renew, or create again (a cluster restarted under the run loses it)."""
        coord = client.CoordinationV1Api(self.api)
        body = self.body()
        now = body["spec"]["renewTime"]
        try:
            with kube.translate(f"renewing the run lease {self.name}"):
                coord.patch_namespaced_lease(self.name, LEASE_NAMESPACE, {"spec": {"renewTime": now}})
        except NotFoundError:
            with kube.translate(f"creating the run lease {self.name}"):
                coord.create_namespaced_lease(LEASE_NAMESPACE, client.V1Lease.model_validate(body))

    def _loop(self) -> None:
        while not self._stop.wait(RENEW):
            try:
                self.renew()
            except Exception as exc:  # anything: the cluster may be restarting; the next round tries again
                log.debug("lease renewal failed: %s", exc)

    def start(self) -> Lease:
        self.renew()
        self._thread = threading.Thread(target=self._loop, name="seatrial-lease", daemon=True)
        self._thread.start()
        global _held  # noqa: PLW0603 - one lease per process
        _held = self
        return self

    def release(self) -> None:
        """Stop renewing and delete the lease: the run has ended and left nothing behind."""
        global _held  # noqa: PLW0603
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        _held = None
        with contextlib.suppress(NotFoundError, ClusterError), kube.translate(f"deleting the run lease {self.name}"):
            client.CoordinationV1Api(self.api).delete_namespaced_lease(self.name, LEASE_NAMESPACE)


_held: Lease | None = None
DELETED_NODE = "deleted-node.seatrial.dev/"  # + node name: the record of a Node this run deleted


def remember_deleted_node(api: client.ApiClient, name: str, record: Mapping[str, Any]) -> None:
    """Write on this run's lease what a Node this run is about to delete was (a preempted spot
    node): the marks on a Node go with it, so after ``kill -9`` only the lease can tell cleanup
    to switch a real node on again or create a simulated one anew. No lease, no record."""
    if _held is None:
        return
    record = {**record, "name": name}
    body = {"metadata": {"annotations": {deleted_node_key(name): json.dumps(record, sort_keys=True, default=str)}}}
    with kube.translate(f"recording node {name} on the run lease {_held.name}"):
        client.CoordinationV1Api(api).patch_namespaced_lease(_held.name, LEASE_NAMESPACE, body)


def forget_deleted_node(api: client.ApiClient, name: str) -> None:
    """Drop the record once the node is back."""
    if _held is None:
        return
    body = {"metadata": {"annotations": {deleted_node_key(name): None}}}
    with contextlib.suppress(NotFoundError), kube.translate(f"updating the run lease {_held.name}"):
        client.CoordinationV1Api(api).patch_namespaced_lease(_held.name, LEASE_NAMESPACE, body)


def deleted_node_key(name: str) -> str:
    """The annotation holding a deleted node's record: keyed by a digest, because an annotation
    name is at most 63 characters and a node's (an on-prem FQDN) may be longer."""
    return DELETED_NODE + hashlib.sha256(name.encode()).hexdigest()[:20]


def deleted_nodes(lease: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Node name -> record, from a lease's annotations (unreadable records are skipped)."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in (((lease.get("metadata") or {}).get("annotations")) or {}).items():
        if str(key).startswith(DELETED_NODE):
            with contextlib.suppress(ValueError, TypeError, KeyError):
                record = dict(json.loads(value))
                out[str(record["name"])] = record
    return out


def held() -> str | None:
    """This session's id while it holds a lease (what it creates is then labelled as its own)."""
    return _SESSION if _held is not None else None


def labels() -> dict[str, str]:
    """The run label for an object this process creates, when it runs as a leased run."""
    return {RUN_LABEL: _SESSION} if _held is not None else {}
