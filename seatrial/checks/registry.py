"""The one list of checks. Families register with ``@check``; everything else (the run, the
docs table, the suites' parametrization) is derived from ``catalogue()``."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from seatrial.checks.inventory import Facts, Inventory
from seatrial.checks.model import Act, Check, Finding, Mode, Result, Rule, Severity, Skip

FAMILIES = {
    "gpu": "GPU scheduling",
    "spread": "Anti-affinity and spread",
    "pdb": "PodDisruptionBudgets",
    "rollout": "Rollout safety",
    "secrets": "Secret hygiene",
    "resources": "Resources and QoS",
    "stateful": "Stateful stores",
    "exposure": "Network exposure",
    "api": "API validity",
    "podsecurity": "Pod security",
}
_CHECKS: dict[str, Check] = {}


def check(
    id: str,
    title: str,
    *,
    family: str,
    severity: Severity,
    why: str,
    fix: str,
    modes: tuple[Mode, ...] = ("static", "live"),
) -> Callable[[Rule], Rule]:
    def register(rule: Rule) -> Rule:
        _add(Check(id, title, family, severity, why, fix, modes, rule))
        return rule

    return register


def action(
    id: str,
    title: str,
    *,
    family: str,
    severity: Severity,
    why: str,
    fix: str,
) -> Callable[[Act], Act]:
    """A live check that acts on the cluster (evicts, schedules a probe pod, rolls out under load)."""

    def register(act: Act) -> Act:
        _add(Check(id, title, family, severity, why, fix, ("live",), _no_rule, act))
        return act

    return register


def _add(c: Check) -> None:
    """One catalogue, one set of rules for entering it: a known family and an ID used once."""
    if c.family not in FAMILIES:
        raise ValueError(f"{c.id}: unknown family {c.family}")
    if c.id in _CHECKS:
        raise ValueError(f"check {c.id} registered twice")
    _CHECKS[c.id] = c


def _no_rule(inv: Inventory, facts: Facts) -> Iterable[Finding]:
    del inv, facts
    return ()


def catalogue(*, live: bool = True) -> list[Check]:
    """Every check; with ``live=False`` only those with a static mode, without importing the
    live module (it pulls in the Kubernetes client: a third of a second a linter run need not pay)."""
    for module in (*FAMILIES, *(("live",) if live else ())):
        importlib.import_module(f"seatrial.checks.{module}")
    return sorted((c for c in _CHECKS.values() if live or "static" in c.modes), key=lambda c: c.id)


def run(
    inventory: Inventory,
    facts: Facts,
    *,
    mode: Mode,
    only: Iterable[str] | None = None,
    live: Any = None,
    on_start: Callable[[Check], None] | None = None,
    static_only: bool = False,
) -> list[Result]:
    wanted = set(only) if only is not None else None
    results = []
    for c in catalogue(live=not static_only):
        if wanted is not None and c.id not in wanted:
            continue
        if mode not in c.modes:
            results.append(Result(c, "skipped", reason=f"{c.id} has no {mode} mode"))
            continue
        if c.act is not None and live is None:
            results.append(Result(c, "skipped", reason=f"{c.id} acts on a live cluster; none was given"))
            continue
        if on_start is not None:
            on_start(c)
        try:
            found: list[Finding] = list(c.act(live) if c.act is not None else c.rule(inventory, facts))
        except Skip as skip:
            results.append(Result(c, "skipped", reason=str(skip)))
            continue
        except Exception as exc:  # an error in a rule is a visible result, never a pass
            results.append(Result(c, "error", reason=f"{type(exc).__name__}: {exc}"))
            continue
        results.append(Result(c, "failed" if found else "passed", tuple(sorted(found, key=lambda f: f.target))))
    return results
