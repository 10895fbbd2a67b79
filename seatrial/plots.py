"""A plot a person reads at a glance: what a fault did to traffic.

``timeline`` takes the raw request log of a load run (start time, latency, ok) plus the fault
window and the chaos actions, and draws requests/s, error rate and p50/p95/p99 latency per second
with the fault shaded and each action marked, as a PNG from the non-interactive Agg backend (no
display needed). A run's findings by family are drawn without matplotlib (``report.chart``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from seatrial.load import Event, Sample, per_second

__all__ = ["Event", "Sample", "per_second", "timeline"]


def timeline(
    samples: Sequence[Sample],
    out: Path,
    *,
    title: str,
    fault: tuple[float, float] | None = None,
    events: Sequence[Event] = (),
    slo_error_rate: float | None = None,
) -> Path:
    rows = per_second(samples)
    t = [r["t"] for r in rows]
    fig, (ax_rps, ax_err, ax_lat) = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
    ax_rps.plot(t, [r["rps"] for r in rows], color="#1f77b4", lw=1.5)
    ax_rps.set_ylabel("requests/s")
    ax_rps.set_ylim(bottom=0)  # dips read at their true size
    ax_err.plot(t, [100 * r["errors"] for r in rows], color="#d62728", lw=1.5)
    ax_err.set_ylabel("errors %")
    ax_err.set_ylim(bottom=0, top=max(1.0, *(100 * r["errors"] for r in rows)) * 1.1)
    if slo_error_rate is not None:
        ax_err.axhline(100 * slo_error_rate, color="#d62728", ls=":", lw=1, label=f"SLO {100 * slo_error_rate:g}%")
        ax_err.legend(loc="upper right", fontsize=8)
    for q, color in (("p50", "#2ca02c"), ("p95", "#ff7f0e"), ("p99", "#9467bd")):
        ax_lat.plot(t, [r[q] for r in rows], color=color, lw=1.3, label=q)
    ax_lat.set_ylabel("latency ms")
    ax_lat.set_xlabel("seconds since load start")
    ax_lat.legend(loc="upper right", fontsize=8)
    for ax in (ax_rps, ax_err, ax_lat):
        ax.grid(alpha=0.3)
        if fault is not None:
            ax.axvspan(fault[0], fault[1], color="#d62728", alpha=0.08)
        for e in events:
            ax.axvline(e.t, color="black", ls="--", lw=0.8)
    if fault is not None:
        ax_rps.text(fault[0], ax_rps.get_ylim()[1], " fault window", va="top", fontsize=8, color="#d62728")
    for e in events:
        ax_rps.annotate(e.label, (e.t, ax_rps.get_ylim()[1]), rotation=90, va="top", ha="right", fontsize=8)
    failed = sum(not s.ok for s in samples)
    fig.suptitle(f"{title} — {len(samples)} requests, {failed} failed")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
