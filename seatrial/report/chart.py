"""A run's check results by family, as an SVG drawn by hand.

Every run writes it, static runs included, and matplotlib costs a static run 1.2 s to import
(more than the run itself); a stacked bar chart of a dozen rows is a few lines of SVG.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from pathlib import Path

from seatrial.checks.registry import FAMILIES

ORDER = ("failed", "error", "reported", "waived", "passed", "skipped")
COLORS = {"failed": "#d62728", "error": "#8c564b", "reported": "#ff7f0e", "waived": "#bcbd22",
          "passed": "#2ca02c", "skipped": "#c7c7c7"}  # fmt: skip
ROW, LABEL, WIDTH = 26, 210, 560


def findings_by_family(statuses: Iterable[tuple[str, str]], *, title: str) -> str:
    """``statuses``: (family, status) per check; one stacked bar per family, a legend below."""
    counts = {f: dict.fromkeys(ORDER, 0) for f in FAMILIES}
    for family, status in statuses:
        counts.setdefault(family, dict.fromkeys(ORDER, 0))[status] += 1
    most = max((sum(c.values()) for c in counts.values()), default=0) or 1
    scale = WIDTH / most
    height = 40 + ROW * len(counts) + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL + WIDTH + 60}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="{LABEL}" y="20" font-size="14">{escape(title)}</text>',
    ]
    for i, (family, c) in enumerate(counts.items()):
        y = 34 + i * ROW
        out.append(
            f'<text x="{LABEL - 8}" y="{y + 15}" text-anchor="end">{escape(FAMILIES.get(family, family))}</text>'
        )
        x = float(LABEL)
        for status in ORDER:
            if c[status]:
                w = c[status] * scale
                out.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{ROW - 6}" fill="{COLORS[status]}">'
                    f"<title>{status}: {c[status]}</title></rect>"
                )
                x += w
        out.append(f'<text x="{x + 6:.1f}" y="{y + 15}">{sum(c.values())}</text>')
    y = height - 16
    for j, status in enumerate(ORDER):
        x = LABEL + j * 90
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{COLORS[status]}"/>')
        out.append(f'<text x="{x + 16}" y="{y}">{status}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write(statuses: Iterable[tuple[str, str]], path: Path, *, title: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(findings_by_family(statuses, title=title))
    return path
