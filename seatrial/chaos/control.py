"""The Chaos Toolkit control every seatrial experiment declares (``controls`` in the file).

Chaos Toolkit skips rollbacks after a failure or an interrupt unless it is told
``--rollback-strategy always``. This control does not depend on being told: its cleanup hook,
which chaoslib calls in a ``finally`` after every run, unwinds the run's ``Ledger``, so every
action's undo runs whatever the strategy and however the run ended (short of ``kill -9``).
"""

from __future__ import annotations

from typing import Any

from seatrial.chaos import ledger


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


def cleanup_control(**_: Any) -> None:
    """Undo what the run did. A failed undo is logged and kept on the ledger (seatrial's runner
    reports it as a broken rollback); raising here would abort chaoslib's own cleanup."""
    ledger.current().unwind()
