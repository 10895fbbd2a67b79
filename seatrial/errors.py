"""One exception hierarchy for the whole harness, mapped to exit codes at the edge.

Every error a user can cause or meet (bad input, missing tool, cluster down) is a
``SeatrialError`` with a message that says what to fix. The CLI prints the message and
exits with ``exit_code``; nothing below the CLI prints tracebacks for these.
"""

from __future__ import annotations

import difflib
import re
import time
import traceback
from collections.abc import Iterable
from enum import IntEnum
from pathlib import Path


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


class NotFoundError(ClusterError):
    """The API server answered 404: the object is gone (which an undo counts as done)."""


class ConflictError(ClusterError):
    """The API server answered 409: someone changed the object since we read it; read and retry."""


class AccessError(ClusterError):
    """The API server answered 401 (credentials rejected) or 403 (a permission is missing): the
    cluster is fine, the kubeconfig or its roles are not, so it is a configuration error."""

    exit_code = ExitCode.USAGE


class TemporaryClusterError(ClusterError):
    """A transient fault (connection refused while starting, 5xx): worth a retry."""


class InternalError(SeatrialError):
    """An exception seatrial did not foresee: a bug, or a part misbehaving in a way not yet known.

    It still ends a run as one line naming what failed, with the exit code of the stage it broke
    (a bring-up that crashed is still a cluster that did not start), and the traceback in a file."""

    def __init__(self, message: str, *, code: ExitCode, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = code


def unexpected(exc: BaseException, *, doing: str, code: ExitCode, logs: Path) -> InternalError:
    """Keep ``exc``'s traceback in a file under ``logs`` and return the one error a user sees.

    ``doing`` says what was under way ("starting the local cluster"); the message names it, the
    exception in one line and the file, so that a report of the bug can carry the traceback."""
    slug = re.sub(r"[^a-z0-9]+", "-", doing.lower()).strip("-")[:40]
    kept = logs / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{slug}.txt"
    try:
        logs.mkdir(parents=True, exist_ok=True)
        kept.write_text(f"while {doing}:\n" + "".join(traceback.format_exception(exc)))
        where = f"the traceback is in {kept}"
    except OSError as err:
        where = f"the traceback could not be kept in {logs} ({err.strerror})"
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return InternalError(
        f"{doing} failed unexpectedly: {type(exc).__name__}: {first}",
        code=code,
        hint=f"{where}; this is a bug in seatrial, please report it with that file",
    )


def yaml_problem(exc: Exception) -> str:
    """Where a YAML error is and what it is, never the offending line: PyYAML's own message quotes
    the line, and in a manifest that line can be a Secret's ``password: …``."""
    mark = getattr(exc, "problem_mark", None)
    at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context = getattr(exc, "context", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    return f"{at}{context + ', ' if context else ''}{problem}"


def reject_unknown(keys: Iterable[str], known: set[str], where: str) -> None:
    """Strict YAML everywhere (pools, profiles): an unknown field is a ConfigError with a
    did-you-mean, because a typo must never silently fall back to a default."""
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(sorted(known))}"
            raise ConfigError(f"{where}: unknown field {key!r}", hint=hint)
