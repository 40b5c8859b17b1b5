"""The plots of a comparison (matplotlib, Agg backend): completion.png and timeline.png.

Both draw from plain data, rows (see :mod:`.tables`) and samples (lists of
dicts), so that they can be tested without running the model.  Each function
writes a PNG to a path or binary file object; the caller decides where (the
compare command writes to a temporary file and renames it).
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any, Mapping, Sequence, Union

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

from .tables import Row, completion_s  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Target = Union[str, "IO[bytes]"]
Sample = Mapping[str, Any]

PAGE_MB = 4096 / (1024 * 1024)
NSEC_PER_SEC = 1e9

#: how runs without a completion time are marked (red x at the top, as asked in issue 4)
NO_TIME_COLOR = "tab:red"
OOM_KILLED_COLOR = "tab:orange"
COMPLETED_COLOR = "tab:blue"


def _save(fig: "Figure", target: Target) -> None:
    """Write the figure as PNG with nothing clipped, and free it."""
    try:
        fig.savefig(target, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def _label_variants(ax: "Axes", variants: Sequence[str]) -> None:
    """Variant names under the ticks, rotated when they would collide."""
    ax.set_xticks(range(len(variants)))
    long = len(variants) > 3 or max(map(len, variants), default=0) > 10
    ax.set_xticklabels(variants, rotation=25 if long else 0, ha="right" if long else "center")


def _jitter(i: int, n: int, width: float = 0.25) -> float:
    """A deterministic horizontal offset for the i-th of n points (no RNG in plots)."""
    return 0.0 if n <= 1 else -width + 2 * width * i / (n - 1)


def same_as_earlier(series: Mapping[str, Any]) -> dict[str, str]:
    """Variants whose data equal an earlier variant's, mapped to the first such variant.

    Their lines lie exactly under the later ones, so the legend has to say so."""
    firsts: list[tuple[str, Any]] = []
    same: dict[str, str] = {}
    for v, data in series.items():
        first = next((u for u, d in firsts if d == data), None)
        if first is None:
            firsts.append((v, data))
        else:
            same[v] = first
    return same


def _legend_label(v: str, same: Mapping[str, str], what: str) -> str:
    return f"{v} (same {what} as {same[v]})" if v in same else v


# -- completion.png -----------------------------------------------------------------------


def _strip(ax: "Axes", x: int, rows: Sequence[Row], top: float) -> None:
    """One variant's runs: a box over the times, every run a point, runs without a time at the top."""
    times = [completion_s(r) for r in rows]
    timed = [t for t in times if t is not None]
    if len(timed) >= 2:
        ax.boxplot([timed], positions=[x], widths=0.6, showfliers=False, manage_ticks=False,
                   medianprops={"color": "black"}, boxprops={"color": "0.5"},
                   whiskerprops={"color": "0.5"}, capprops={"color": "0.5"})
    missing = 0
    for i, (row, t) in enumerate(zip(rows, times)):
        dx = _jitter(i, len(rows))
        if t is None:
            missing += 1
            ax.plot(x + dx, top, marker="x", color=NO_TIME_COLOR, markersize=9, mew=2, ls="none")
        else:
            color = OOM_KILLED_COLOR if row["outcome"] == "oom-killed" else COMPLETED_COLOR
            ax.plot(x + dx, t, marker="o", color=color, markersize=5, alpha=0.8, ls="none")
    if missing:
        ax.annotate(f"{missing} no time", (x, top), textcoords="offset points", xytext=(0, 8),
                    ha="center", color=NO_TIME_COLOR, fontsize=8)


def _by_seed(ax: "Axes", rows: Sequence[Row], variants: Sequence[str], top: float) -> None:
    """Completion time per seed, a line per variant: the same seeds, so lines pair up."""
    runs = {}
    for v in variants:
        mine = sorted((r for r in rows if r["variant"] == v), key=lambda r: r["seed"])
        runs[v] = [(r["seed"], completion_s(r)) for r in mine]
    same = same_as_earlier(runs)
    for v, pairs in runs.items():
        seeds = [s for s, _ in pairs]
        times = [t for _, t in pairs]
        (line,) = ax.plot(seeds, [t if t is not None else float("nan") for t in times],
                          marker="o", markersize=4, label=_legend_label(v, same, "times"))
        lost = [s for s, t in zip(seeds, times) if t is None]
        ax.plot(lost, [top] * len(lost), marker="x", color=line.get_color(), mew=2, ls="none")
    ax.set_xlabel("seed (run)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)


def _legend_proxies(ax: "Axes") -> None:
    """Explain the markers once."""
    handles = [
        plt.Line2D([], [], marker="o", color=COMPLETED_COLOR, ls="none", label="completed"),
        plt.Line2D([], [], marker="o", color=OOM_KILLED_COLOR, ls="none", label="completed, OOM killer ran"),
        plt.Line2D([], [], marker="x", color=NO_TIME_COLOR, mew=2, ls="none",
                   label="no completion time (OOM panic, timeout...)"),
    ]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.22), ncol=1, frameon=False)


def _top(rows: Sequence[Row]) -> float:
    """Where runs without a time are drawn: above the slowest run."""
    timed = [t for t in map(completion_s, rows) if t is not None]
    return max(timed) * 1.08 if timed else 1.0


def completion_plot(rows: Sequence[Row], variants: Sequence[str], target: Target, title: str = "") -> None:
    """completion.png: every run's completion time, per variant side by side, and per seed."""
    top = _top(rows)
    fig, (ax, ax_seed) = plt.subplots(1, 2, figsize=(max(8.0, 1.6 * len(variants) + 5), 5.2),
                                      gridspec_kw={"width_ratios": [max(len(variants), 2), 3]},
                                      layout="constrained")
    for x, v in enumerate(variants):
        _strip(ax, x, [r for r in rows if r["variant"] == v], top)
    _label_variants(ax, variants)
    ax.set_xlim(-0.6, len(variants) - 0.4)
    ax.set_ylabel("rcuscale kfree test completion time (s)")
    ax.set_ylim(bottom=0, top=top * 1.1)
    ax.grid(axis="y", alpha=0.3)
    _legend_proxies(ax)
    _by_seed(ax_seed, rows, variants, top)
    ax_seed.set_ylim(bottom=0, top=top * 1.1)
    ax_seed.set_ylabel("completion time (s)")
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, target)


# -- timeline.png ---------------------------------------------------------------------------

#: (sample key, axis label, scale) of the panels after the free-memory one
_COUNTER_PANELS = (
    ("cached_pages", "cached pages\n(sum over CPUs)", 1.0),
    ("shrink_scan", "shrinker scan calls\n(cumulative)", 1.0),
    ("fill_runs", "refill worker runs\n(cumulative)", 1.0),
)


def _times_s(samples: Sequence[Sample]) -> list[float]:
    return [s["t_ns"] / NSEC_PER_SEC for s in samples]


def _plotted(samples: Sequence[Sample]) -> list[tuple[Any, ...]]:
    """What the timeline draws of one run's samples."""
    keys = ("t_ns", "free_pages") + tuple(k for k, _, _ in _COUNTER_PANELS)
    return [tuple(s.get(k, 0) for k in keys) for s in samples]


def _memory_panel(ax: "Axes", series: Mapping[str, Sequence[Sample]], same: Mapping[str, str]) -> None:
    """Free memory of every variant's run against the watermarks (the same for all: same memory)."""
    longest = max(series.values(), key=len)
    t0 = _times_s(longest)
    for key, style in (("wmark_min", ":"), ("wmark_low", "--"), ("wmark_high", "-.")):
        ax.plot(t0, [s[key] * PAGE_MB for s in longest], color="0.3", ls=style, lw=1,
                label=key.replace("wmark_", "") + " watermark")
    for v, samples in series.items():
        ax.plot(_times_s(samples), [s["free_pages"] * PAGE_MB for s in samples], lw=1.2,
                label=_legend_label(v, same, "curves"))
    ax.set_ylabel("free memory (MB)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _counter_panel(ax: "Axes", series: Mapping[str, Sequence[Sample]], key: str, label: str, scale: float) -> None:
    for v, samples in series.items():
        ax.plot(_times_s(samples), [s.get(key, 0) / scale for s in samples], lw=1.2, label=v)
    ax.set_ylabel(label)
    top = max((s.get(key, 0) / scale for samples in series.values() for s in samples), default=0)
    if top == 0:
        ax.text(0.5, 0.5, "none in any run", transform=ax.transAxes, ha="center", va="center",
                fontsize=9, color="0.4")
    ax.set_ylim(bottom=0, top=max(1.0, top * 1.05))  # a count: whole numbers, at least 0..1
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:,.0f}"))


def _no_samples(target: Target, variants: Sequence[str], why: str) -> None:
    """A figure that says there is nothing to plot, and why."""
    fig, ax = plt.subplots(figsize=(7, 2.5))
    ax.axis("off")
    ax.text(0.5, 0.5, f"no samples for {', '.join(variants) or 'any variant'}\n{why}",
            ha="center", va="center", fontsize=11, wrap=True)
    _save(fig, target)


def timeline_plot(samples: Mapping[str, Sequence[Sample] | None], target: Target, title: str = "",
                  why_empty: str = "the simulation model recorded no time series") -> None:
    """timeline.png: one run per variant over time (free memory, cached pages, shrinker, refill).

    ``samples`` maps a variant to its run's samples, each a dict with at least
    ``t_ns``, ``free_pages``, ``wmark_min``, ``wmark_low``, ``wmark_high``,
    ``cached_pages``, ``shrink_scan`` and ``fill_runs`` (counters cumulative).
    Variants without samples are left out; with none at all the figure says so.
    """
    series = {v: s for v, s in samples.items() if s}
    if not series:
        _no_samples(target, list(samples), why_empty)
        return
    fig, axes = plt.subplots(1 + len(_COUNTER_PANELS), 1, sharex=True, figsize=(9, 9), layout="constrained")
    _memory_panel(axes[0], series, same_as_earlier({v: _plotted(s) for v, s in series.items()}))
    for ax, (key, label, scale) in zip(axes[1:], _COUNTER_PANELS):
        _counter_panel(ax, series, key, label, scale)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("simulated time (s)")
    missing = [v for v in samples if v not in series]
    if missing:
        axes[-1].annotate(f"no samples: {', '.join(missing)}", (0, -0.45), xycoords="axes fraction", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, target)
