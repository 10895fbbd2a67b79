"""The node-level actions and probes seatrial's experiments name (module ``seatrial.chaos.nodes``).

Each action picks its node by what runs there (``holding``: a label selector of the stack's pods),
asks the ledger's node scope first, changes the node only through ``nodeops`` (recorded on the
node, undone by the ledger) and leaves what it measured in ``ledger.current().records`` for the
probe after the fault, which turns it into one line a report can show: ``ok: …`` when the
experiment's claim held, else the cause and the numbers (its tolerance is the regex ``^ok``).
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from seatrial import kube
from seatrial.chaos import drain, ledger
from seatrial.chaos.actions import Configuration, _api, _namespace
from seatrial.errors import ClusterError


def node_holding(api: client.ApiClient, namespace: str, selector: str) -> str:
    """The node of the first (by name) running pod that ``selector`` picks in ``namespace``."""
    with kube.translate(f"listing pods {selector} in {namespace}"):
        items = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector).items
    pods = sorted((kube.as_dict(p) for p in items), key=lambda p: str(p["metadata"]["name"]))
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and drain.healthy(pod):
            return str(node)
    raise ClusterError(f"no ready pod matches {selector} in {namespace}: nothing to aim the node fault at")


# ---- node-drain ----------------------------------------------------------------------------
def drain_node(
    holding: str, *, deadline: float = 60.0, grace_period: int | None = None, configuration: Configuration = None
) -> dict[str, Any]:
    """Drain the node running a pod ``holding`` picks: cordon it (undone afterwards), evict its
    pods within the run's namespaces through the Eviction API, retrying refusals with backoff for
    up to ``deadline`` seconds, while a watch keeps each PodDisruptionBudget's lowest healthy
    count. Returns the drain's record (every eviction call, when, and its outcome)."""
    ns, api = _namespace(configuration), _api(configuration)
    book = ledger.current()
    book.allow(ns, "drain a node of the stack")
    node = node_holding(api, ns, holding)
    watch = drain.BudgetWatch(api, book.namespaces)
    try:
        result = drain.drain(api, node, deadline=deadline, grace_period=grace_period)
    finally:
        book.records["drain"] = (None, watch)
    book.records["drain"] = (result, watch)
    return result.summary()


def drain_held(configuration: Configuration = None) -> str:
    """After the drain: did it finish, and did every budget hold? ``ok: …`` or the cause."""
    del configuration
    result, watch = ledger.current().records.get("drain", (None, None))
    if watch is None:
        return "ok: no drain yet (the steady state before the fault)"
    blocking = sorted({b.name for pod in (result.remaining if result else []) for b in watch.budgets_of(pod)})
    return verdict(result, watch.stop(), blocking)


def restore_nodes(configuration: Configuration = None) -> str:
    """Undo now what this run did so far (uncordon, untaint, switch on): the end of a maintenance,
    before the method waits for the stack to be whole. The ledger's undos run once, so the ones
    at the end of the run find nothing left to do."""
    del configuration
    book = ledger.current()
    pending = [u.what for u in book.undos if not u.done]
    failed = book.unwind()
    if failed:
        raise ClusterError("; ".join(failed))
    return "; ".join(pending)


def verdict(result: drain.Drain | None, budgets: list[drain.Budget], blocking: list[str] | None = None) -> str:
    """One line: the drain's outcome and every budget's lowest healthy count against its floor."""
    problems: list[str] = []
    if result is None:
        problems.append("the drain broke off (see the method's error)")
    elif not result.done:
        refused = result.refused()
        why = f": {refused[-1].detail}" if refused else ""
        which = f" ({', '.join(blocking)})" if blocking else ""
        problems.append(
            f"node {result.node} not drained after {result.seconds:.0f} s: {', '.join(result.remaining)} still "
            f"there, {len(refused)} eviction(s) refused with 429 by PodDisruptionBudget{which}{why}"
        )
    for b in budgets:
        if not b.held():
            problems.append(
                f"PodDisruptionBudget {b.name}: healthy pods fell to {b.lowest} at {b.lowest_at:.1f} s, "
                f"it allows no fewer than {b.desired}"
            )
    if problems:
        return "; ".join(problems)
    assert result is not None
    floors = ", ".join(f"{b.name} lowest {b.lowest} (floor {b.desired})" for b in budgets)
    return (
        f"ok: {result.node} drained in {result.seconds:.1f} s, "
        f"{len(result.evictions) - len(result.refused())} eviction(s) allowed, {len(result.refused())} refused "
        f"and retried; every budget held: {floors}"
    )
