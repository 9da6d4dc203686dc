"""Plots for the notebooks (matplotlib): small, generic helpers, each one figure and independent of the rest.

Each function takes plain numbers (lists, dicts of lists), draws one figure, and returns it, so a cell can
assert on the same numbers it plotted. Cells show the figure by leaving it to the inline backend; its
stored text form (``<Figure size ... with N Axes>``) depends only on the layout, so it is stable for nbval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def plot_schedules(
    schedules: Mapping[str, Sequence[float]],
    *,
    title: str = "Delay before each reconnect attempt",
    unit: str = "s",
) -> Figure:
    """One line per schedule: attempt number on x, delay on y (e.g. fixed vs exponential vs jitter)."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for label, delays in schedules.items():
        ax.plot(range(len(delays)), list(delays), marker="o", markersize=3, label=label)
    ax.set_xlabel("attempt")
    ax.set_ylabel(f"delay ({unit})")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_histograms(
    series: Mapping[str, Sequence[int]],
    *,
    bin_width: float,
    xlabel: str,
    ylabel: str = "count",
    title: str = "",
) -> Figure:
    """Stacked panels sharing the x axis, one bar chart per series of per-bin counts (bin ``i`` starts at
    ``i × bin_width``): how a crowd arrives over time under each policy, say."""
    fig, axes = plt.subplots(len(series), 1, sharex=True, squeeze=False, figsize=(7, 1.6 * len(series) + 0.8))
    top = max((max(counts, default=0) for counts in series.values()), default=0)
    for ax, (label, counts) in zip(axes[:, 0], series.items(), strict=True):
        ax.bar([i * bin_width for i in range(len(counts))], list(counts), width=bin_width, align="edge")
        ax.set_ylim(0, top * 1.15 + 1)
        ax.set_ylabel(ylabel)
        peak = max(counts, default=0)
        ax.set_title(f"{label}: peak {peak}", fontsize="medium", loc="left")
    axes[-1, 0].set_xlabel(xlabel)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_bars(
    values: Mapping[str, float],
    *,
    ylabel: str,
    title: str = "",
) -> Figure:
    """One bar per label: a single measured number per variant (peaks, attempts, latencies)."""
    fig, ax = plt.subplots(figsize=(5, 3))
    labels = list(values)
    ax.bar(labels, [values[label] for label in labels])
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
