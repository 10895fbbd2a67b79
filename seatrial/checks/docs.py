"""``docs/checks.md``, generated from the registry so the documentation cannot drift from the
checks (``python -m seatrial.checks.docs`` writes it; a test fails when it is stale)."""

from __future__ import annotations

import sys
from pathlib import Path

from seatrial.checks.registry import FAMILIES, catalogue

HEADER = """# The check catalogue

Generated from `seatrial/checks/` by `python -m seatrial.checks.docs`; do not edit by hand.

Every check has a stable ID (waivers and reports name it), a severity, the reason it matters and
how to fix a finding. **static** checks read rendered manifests (`nox -s conformance -- --static
PATH`); **live** checks read the objects and nodes of a cluster. Capacity and taint checks in
static mode judge against the cluster that node pool files describe when given `--pools DIR`
(the local cluster's are `manifests/cluster/`); without it they check what manifests alone show.
Known-bad examples for every check: `tests/checks/<family>/<ID>-<scenario>.yaml`.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    checks = catalogue()
    out = [HEADER, "| ID | family | severity | modes | check |", "| --- | --- | --- | --- | --- |"]
    out += [
        f"| [{c.id}](#{c.id.lower()}) | {FAMILIES[c.family]} | {c.severity} | {', '.join(c.modes)} | {_cell(c.title)} |"
        for c in checks
    ]
    for family, title in FAMILIES.items():
        out.append(f"\n## {title}\n")
        for c in (c for c in checks if c.family == family):
            out += [
                f"### {c.id}\n",
                f"**{c.title}** — severity {c.severity}; modes: {', '.join(c.modes)}.\n",
                f"Why: {c.why}\n",
                f"Fix: {c.fix}\n",
            ]
    return "\n".join(out).rstrip() + "\n"


def path() -> Path:
    return Path(__file__).resolve().parents[2] / "docs" / "checks.md"


if __name__ == "__main__":
    path().write_text(render())
    print(f"wrote {path()}", file=sys.stderr)
