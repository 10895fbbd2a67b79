"""One exception hierarchy for the whole harness, mapped to exit codes at the edge.

Every error a user can cause or meet (bad input, missing tool, cluster down) is a
``SeatrialError`` with a message that says what to fix. The CLI prints the message and
exits with ``exit_code``; nothing below the CLI prints tracebacks for these.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    """The documented exit codes (README, "Exit codes")."""

    OK = 0
    FAILED = 1
    USAGE = 2
    CLUSTER = 3


class SeatrialError(Exception):
    """Root of every error seatrial raises on purpose."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ConfigError(SeatrialError):
    """The user's input is wrong: a pool file, a profile, a flag, a port already taken."""

    exit_code = ExitCode.USAGE


class ToolMissingError(ConfigError):
    """A program seatrial needs (Go, a Debian package) is not installed."""


class BuildError(SeatrialError):
    """Building a pinned binary failed; the log file says why."""

    exit_code = ExitCode.CLUSTER


class ClusterError(SeatrialError):
    """The cluster cannot be reached, did not start, or is not ready."""

    exit_code = ExitCode.CLUSTER


class TemporaryClusterError(ClusterError):
    """A transient fault (connection refused while starting, 5xx): worth a retry."""


def reject_unknown(keys: Iterable[str], known: set[str], where: str) -> None:
    """Strict YAML everywhere (pools, profiles): an unknown field is a ConfigError with a
    did-you-mean, because a typo must never silently fall back to a default."""
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(sorted(known))}"
            raise ConfigError(f"{where}: unknown field {key!r}", hint=hint)
