"""The Chaos Toolkit control every seatrial experiment declares (``controls`` in the file).

Chaos Toolkit skips rollbacks after a failure or an interrupt unless it is told
``--rollback-strategy always``. This control does not depend on being told: its cleanup hook,
which chaoslib calls in a ``finally`` after every run, unwinds the run's ``Ledger``, so every
action's undo runs whatever the strategy and however the run ended (short of ``kill -9``).
"""

from __future__ import annotations

from typing import Any

from seatrial import runs
from seatrial.chaos import ledger
from seatrial.errors import SeatrialError

_lease: runs.Lease | None = None


def configure_control(
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    experiment: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    """``chaos run`` alone: the run's blast radius is the experiment's namespace, and node chaos
    only with ``SEATRIAL_ALLOW_NODE_CHAOS=1`` (the experiment's ``allow_node_chaos``). Under
    seatrial's runner a ledger with the profile's namespaces and node scope is already open and is
    kept."""
    del secrets, settings, experiment
    cfg = configuration or {}
    namespace = str(cfg.get("namespace") or "")
    if not ledger.current().namespaces and namespace:
        allowed = str(cfg.get("allow_node_chaos") or "").lower() in ("1", "true", "yes")
        ledger.begin([namespace], nodes=ledger.NodeScope() if allowed else None)
        if runs.held() is None:  # a run of its own: its lease keeps a concurrent cleanup off its objects
            global _lease  # noqa: PLW0603 - chaoslib calls the hooks as plain functions
            from seatrial.chaos.actions import _api

            try:
                _lease = runs.Lease(_api(cfg)).start()
            except SeatrialError:
                _lease = None  # the experiment's own probes will say what is wrong with the cluster


def cleanup_control(**_: Any) -> None:
    """Undo what the run did. A failed undo is logged and kept on the ledger (seatrial's runner
    reports it as a broken rollback); raising here would abort chaoslib's own cleanup."""
    global _lease  # noqa: PLW0603
    ledger.current().unwind()
    if _lease is not None:
        _lease.release()
        _lease = None
