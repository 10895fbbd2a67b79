"""What a check is and what it returns: the shapes every family, report and test shares.

A check has a stable ID that never changes with its title (users' waivers name IDs), a severity
that is data, and a pure rule: inventory and cluster facts in, findings out. A rule that raises
is an ``error`` result, never a silent pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from seatrial.checks.inventory import Facts, Inventory

Severity = Literal["critical", "high", "medium", "low"]
Mode = Literal["static", "live"]
Status = Literal["passed", "failed", "skipped", "error"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")


@dataclass(frozen=True, order=True)
class Ref:
    """The object a finding is about, as a person would type it for kubectl."""

    namespace: str
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.kind}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Finding:
    check: str
    target: Ref
    field: str  # the container or field path at fault, e.g. "containers[gateway].readinessProbe"
    message: str  # what is wrong, in one sentence

    def __str__(self) -> str:
        where = f" ({self.field})" if self.field else ""
        return f"{self.check} {self.target}{where}: {self.message}"


Rule = Callable[["Inventory", "Facts"], Iterable[Finding]]
Act = Callable[[Any], Iterable[Finding]]  # takes seatrial.checks.live.Live


class Skip(Exception):
    """Raised by a check that cannot judge this target (e.g. no workload of the kind it proves)."""


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    family: str
    severity: Severity
    why: str
    fix: str
    modes: tuple[Mode, ...]
    rule: Rule = field(compare=False, repr=False)
    act: Act | None = field(default=None, compare=False, repr=False)  # live checks that act on the cluster


@dataclass(frozen=True)
class Result:
    check: Check
    status: Status
    findings: tuple[Finding, ...] = ()
    reason: str = ""  # why skipped, or the error a rule raised
