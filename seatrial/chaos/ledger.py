"""Ownership and undo: what every chaos action must go through before it touches a cluster.

Every chaos tool has left debris behind (a cordoned node, a taint, pods stuck) when a run failed
or was interrupted, because undo was an afterthought: Chaos Toolkit's own default skips
rollbacks after a failure or Ctrl-C. Here an action may only change the cluster through a
``Ledger``:

- the blast radius is checked first (``allow``): the run's namespaces only, never a system
  namespace, before anything is read or written;
- the undo is registered *before* the action runs, so an action that dies half-way still has its
  undo;
- undos run last-in first-out, each once, on success, failure, exception and interrupt (the
  experiment files declare ``seatrial.chaos.control``, whose cleanup hook runs ``unwind``
  whatever rollback strategy ``chaos run`` was given); a failing undo does not stop the others.

Objects a run changes carry ``seatrial.dev/run`` and the original state in an annotation, so a
later run can find and restore them after a ``kill -9`` (the node-level actions use this).

Nodes have a blast radius of their own (``NodeScope``): node chaos is off unless the run allows
it (seatrial's own local cluster, or ``--allow-node-chaos``), a node must carry the scope's
labels, and a control-plane node is never a target.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from seatrial import runs
from seatrial.errors import ConfigError

RUN_LABEL = runs.RUN_LABEL
ORIGINAL_ANNOTATION = "seatrial.dev/original"
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "default"})
CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
log = logging.getLogger("seatrial.chaos")


class OutsideBlastRadius(ConfigError):
    """An action aimed at something the run may not touch: refused before it acts."""


def refuse_system(namespace: str, what: str) -> None:
    """A system namespace is never a chaos target, whatever the profile says; the run refuses it
    at its start too, before a single read, so a profile naming one fails at once."""
    if namespace in SYSTEM_NAMESPACES or namespace.startswith("kube-"):
        raise OutsideBlastRadius(
            f"refused to {what}: {namespace} is a system namespace, never a chaos target",
            hint="name the namespaces of the stack under test in the profile's namespaces",
        )


@dataclass(frozen=True)
class NodeScope:
    """Which nodes a run may act on: those carrying every label of ``selector`` (empty: any
    worker node). ``None`` in a ledger means node chaos is off for the run."""

    selector: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Undo:
    what: str
    fn: Callable[[], object]
    done: bool = False


@dataclass
class Ledger:
    """One run's permissions and pending undos."""

    namespaces: frozenset[str] = frozenset()
    run_id: str = field(default_factory=runs.child)  # <session>-<n>: the session's lease answers for it
    undos: list[Undo] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # what a probe saw before the fault, for after
    nodes: NodeScope | None = None  # None: node-level chaos is refused
    records: dict[str, Any] = field(default_factory=dict)  # what an action measured, for the probes after
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def allow(self, namespace: str, what: str) -> None:
        """Refuse, before acting, anything outside the run's namespaces or in a system namespace."""
        refuse_system(namespace, what)
        if namespace not in self.namespaces:
            allowed = ", ".join(sorted(self.namespaces)) or "none"
            raise OutsideBlastRadius(
                f"refused to {what}: namespace {namespace} is outside this run's blast radius (allowed: {allowed})",
                hint="list the namespace in the profile's namespaces (or the experiment's configuration)",
            )

    def allow_node(self, name: str, labels: Mapping[str, str], what: str) -> None:
        """Refuse, before acting, a node outside the run's node scope (or any node when node chaos
        is off, or a control-plane node)."""
        if self.nodes is None:
            raise OutsideBlastRadius(
                f"refused to {what}: node-level chaos is off for this run (node {name})",
                hint="on a cluster seatrial did not start, pass --allow-node-chaos (and set chaos.nodeSelector)",
            )
        if any(k in labels for k in CONTROL_PLANE_LABELS):
            raise OutsideBlastRadius(f"refused to {what}: {name} is a control-plane node, never a chaos target")
        missing = {k: v for k, v in self.nodes.selector.items() if labels.get(k) != v}
        if missing:
            want = ",".join(f"{k}={v}" for k, v in missing.items())
            raise OutsideBlastRadius(
                f"refused to {what}: node {name} is outside this run's blast radius (it lacks {want})",
                hint="widen the profile's chaos.nodeSelector, or aim the experiment at a node inside it",
            )

    def will(self, what: str, undo: Callable[[], object]) -> Undo:
        """Register the undo of an action about to run; call it *before* acting."""
        entry = Undo(what, undo)
        with self._lock:
            self.undos.append(entry)
        return entry

    def unwind(self) -> list[str]:
        """Run every pending undo, newest first, each once; returns what failed (also kept)."""
        while True:
            with self._lock:
                pending = [u for u in self.undos if not u.done]
                if not pending:
                    return list(self.failures)
                entry = pending[-1]
                entry.done = True
            try:
                entry.fn()
            except Exception as exc:  # one broken undo must not leave the others undone
                msg = f"undo of {entry.what} failed: {type(exc).__name__}: {exc}"
                log.error(msg)
                self.failures.append(msg)


_current = Ledger()


def current() -> Ledger:
    """The ledger of the run in this process (an experiment's providers and control share it)."""
    return _current


def begin(namespaces: Iterable[str], run_id: str | None = None, *, nodes: NodeScope | None = None) -> Ledger:
    """Start a run's ledger. Whatever an earlier run in this process left pending is undone first."""
    global _current  # noqa: PLW0603 - the process's one run, shared with Chaos Toolkit's providers
    _current.unwind()
    _current = Ledger(frozenset(namespaces), run_id or runs.child(), nodes=nodes)
    return _current
