"""Static speed: how it grows with the input, and against a peer on the same files.

``static_rows`` runs the whole suite over synthetic stacks of growing size.

``peer_rows``: kube-score and kube-linter are built from their Go modules into the cache on first
use (Polaris is not served by the Go module proxy here, so it is left out and the table says so).
All read the same YAML, with their defaults: the reference stack and the seed manifests
(``tests/seeds``), file by file and in one call, then synthetic stacks of 1,000 and 10,000
objects; seatrial runs as ``seatrial check`` (the linter) and as the conformance suite (pytest,
reports written), each as a user starts it, interpreter included.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from seatrial import synth
from seatrial.errors import SeatrialError

Row = tuple[str, str, str]
SIZES = (1_000, 10_000)
# Python as users run it: modules compiled once and cached. With PYTHONDONTWRITEBYTECODE set (as
# in some CI shells) every run compiles every module again: 0.3 s more per run, in every row.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _seconds(argv: list[str], runs: int, cwd: Path) -> float:
    """Median wall time of ``runs`` calls, each finished as ``_run`` accepts it."""
    return statistics.median(_run(argv, cwd)[0] for _ in range(runs))


def _suite(path: Path, reports: Path) -> list[str]:
    """The static conformance suite over ``path`` as users start it, reports written."""
    return [sys.executable, "-m", "pytest", "suites/conformance", "-p", "no:cacheprovider", "-q",
            "--static", str(path), "--report-dir", str(reports)]  # fmt: skip


def _ratio(mine: float, theirs: float, peer: str = "kube-score") -> str:
    if mine <= theirs:
        return f"{theirs / mine:.1f} times faster than {peer}"
    return f"{mine / theirs:.1f} times slower than {peer}"


def _findings(tool: str, out: str) -> int:
    """How many findings a tool reported, read from its machine-readable output."""
    if tool == "kube-score":  # -o ci: one line per check and object, graded
        return sum(line.startswith(("[CRITICAL]", "[WARNING]")) for line in out.splitlines())
    doc = json.loads(out or "{}")
    if tool == "kube-linter":
        return len(doc.get("Reports") or [])
    return sum(len(p.get("findings") or []) for p in doc.get("paths") or [])


def _tools(kube_score: str, kube_linter: str) -> dict[str, list[str]]:
    """Each tool as a user runs it on files, defaults only, machine-readable output."""
    return {
        "seatrial": [sys.executable, "-m", "seatrial", "check", "--json"],
        "kube-score": [kube_score, "score", "-o", "ci"],
        "kube-linter": [kube_linter, "lint", "--format", "json"],
    }


def _run(argv: list[str], cwd: Path) -> tuple[float, str]:
    """Wall time and output of one call. seatrial's exit 2 on a file of kinds it does not check
    (an ExternalSecret alone) is a finished run too: it said so in its JSON."""
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False, env=ENV)
    seconds = time.monotonic() - t0
    if proc.returncode not in (0, 1) and not (proc.returncode == 2 and proc.stdout.lstrip().startswith("{")):
        raise SeatrialError(
            f"{' '.join(argv[:3])} … ended with {proc.returncode}: {(proc.stderr or proc.stdout)[-400:]}"
        )
    return seconds, proc.stdout


def corpus_rows(tools: dict[str, list[str]], files: list[Path], cwd: Path) -> list[Row]:
    """Per tool over the same files: findings, median wall time per file (one call each) and one
    call over all of them."""
    rows: list[Row] = []
    per_call: dict[str, float] = {}
    per_file: dict[str, float] = {}
    for tool, argv in tools.items():
        singles = [_run([*argv, str(f)], cwd)[0] for f in files]
        per_file[tool] = statistics.median(singles)
        per_call[tool], out = _run([*argv, *map(str, files)], cwd)
        rows.append(
            (
                f"peers, {len(files)} files: {tool}",
                f"{_findings(tool, out)} findings",
                f"per file {per_file[tool]:.3f} s (median, {min(singles):.3f} to {max(singles):.3f}); "
                f"one call {per_call[tool]:.2f} s",
            )
        )
    for peer in ("kube-score", "kube-linter"):
        rows.append(
            (
                f"peers: seatrial against {peer}",
                f"{per_file['seatrial'] / per_file[peer]:.1f} times per file",
                f"one call: {_ratio(per_call['seatrial'], per_call[peer], peer)} (goal: at most 2 times kube-score)",
            )
        )
    return rows


def public_rows(tools: dict[str, list[str]], root: Path) -> list[Row]:
    """Recall and strict precision of each tool on the hand-labelled public set
    (``tests/public``, labelled before any tool ran), and of the peers together."""
    from seatrial import peerscore

    public = root / "tests" / "public"
    truth = peerscore.load_truth(public / "truth.yaml")
    files = peerscore.public_files(public)
    found: dict[str, set[peerscore.Pair]] = {}
    for tool, argv in tools.items():
        if tool == "kube-score":
            argv = [argv[0], "score", "-o", "json"]  # its -o ci lines do not say which file
        out = _run([*argv, *map(str, files)], root)[1]
        if tool == "seatrial":
            found[tool] = peerscore.from_seatrial(out, {str(f): f.name for f in files})
        elif tool == "kube-score":
            found[tool] = peerscore.from_kube_score(out)
        else:
            found[tool] = peerscore.from_kube_linter(out)
    found["kube-score + kube-linter"] = found["kube-score"] | found["kube-linter"]
    found["all three"] = found["kube-score + kube-linter"] | found["seatrial"]
    rows: list[Row] = []
    for tool, pairs in found.items():
        s = peerscore.score(pairs, truth)
        blind = ", ".join(f"{k} {v}" for k, v in list(peerscore.misses(pairs, truth).items())[:4])
        wolf = ", ".join(f"{k} {v}" for k, v in list(peerscore.wolves(pairs, truth).items())[:4])
        rows.append(
            (
                f"public set, {len(files)} files, {len(truth)} labelled problems: {tool}",
                f"recall {s.recall:.0%}, precision {s.precision:.0%}",
                f"{s.found} found; {s.pairs - s.right} of {s.pairs} reported are no labelled problem; "
                f"most missed: {blind or 'none'}; most reported unlabelled: {wolf or 'none'}",
            )
        )
    return rows


def peer_rows(runs: int = 5) -> list[Row]:
    from seatrial import stack
    from seatrial.cluster import build
    from seatrial.cluster.local import repo_root

    tools = _tools(str(build.build_kube_score()), str(build.build_kube_linter()))
    root = repo_root()
    rows: list[Row] = [("peers: Polaris", "not measured", "no version of its Go module is served here")]
    seeds = sorted((root / "tests" / "seeds").rglob("*.yaml"))
    seeds = [f for f in seeds if f.name != "expected-findings.yaml"]
    with tempfile.TemporaryDirectory(prefix="seatrial-bench-peers-") as tmp:
        ref = Path(tmp) / "reference.yaml"
        objects = stack.render(root / "manifests" / "stack" / "overlays" / "staging", "ml-serving")
        ref.write_text(yaml.safe_dump_all(objects))
        rows += corpus_rows(tools, [ref, *seeds], root)
        rows += public_rows(tools, root)
        files: list[tuple[str, Path, int]] = [(f"reference stack ({len(objects)} objects)", ref, runs)]
        for n in SIZES:
            path = Path(tmp) / f"synthetic-{n}.yaml"
            path.write_text(yaml.safe_dump_all(synth.stack(n)))
            files.append((f"synthetic stack ({n:,} objects)", path, 1 if n >= 10_000 else 3))
        for label, path, n in files:
            theirs = _seconds([*tools["kube-score"], str(path)], n, root)
            mine = _seconds([*tools["seatrial"], str(path)], n, root)
            note = f"kube-score {theirs:.2f} s; {_ratio(mine, theirs)}"
            rows.append((f"static {label}: seatrial check (median of {n})", f"{mine:.2f} s", note))
            if path == ref:
                whole = _seconds(_suite(path, Path(tmp) / "reports"), n, root)
                rows.append(
                    (
                        f"static {label}: conformance suite with reports (median of {n})",
                        f"{whole:.2f} s",
                        f"goal ≤ 1 s; {_ratio(whole, theirs)}",
                    )
                )
    return rows


STATIC_SIZES = (1_000, 10_000, 100_000)


def static_rows(sizes: tuple[int, ...] = STATIC_SIZES) -> list[Row]:
    """Static conformance as users run it (the whole suite, reports written) over synthetic
    stacks of growing size: wall time and the run's peak RSS, read from the child's own rusage.
    Every rule must stay near-linear; a scan per workload once made 131,577 Deployments run for
    more than 15 minutes."""
    from seatrial.cluster.local import repo_root

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="seatrial-bench-static-") as tmp:
        for n in sizes:
            objects = synth.stack(n)
            path = Path(tmp) / f"stack-{n}.yaml"
            with path.open("w") as f:
                yaml.dump_all(objects, f, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)
            argv = _suite(path, Path(tmp) / "reports")
            t0 = time.monotonic()
            err_file = Path(tmp) / "stderr"
            with err_file.open("wb") as err_out:  # a file, not a pipe: nobody reads a pipe while wait4 waits
                proc = subprocess.Popen(argv, cwd=repo_root(), stdout=subprocess.DEVNULL, stderr=err_out, env=ENV)
                _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.monotonic() - t0
            code = os.waitstatus_to_exitcode(status)
            if code not in (0, 1):
                err = err_file.read_text(errors="replace")[-500:]
                raise SeatrialError(f"static conformance over {len(objects)} objects ended with {code}: {err}")
            mib = path.stat().st_size / 2**20
            goal = "goal ≤ 60 s, ≤ 1 GiB" if n >= 100_000 else ""
            rows.append(
                (
                    f"conformance static: {len(objects):,} objects ({mib:.0f} MiB of YAML)",
                    f"{seconds:.1f} s, {usage.ru_maxrss / 1024:.0f} MiB",
                    goal,
                )
            )
    return rows
