"""Per-run rows and per-variant statistics of a comparison, as text, JSON and CSV.

A *row* is one run flattened to plain scalars (``variant``, ``seed``,
``outcome``, ``total_ns``, ..., every kvfree_rcu counter under its own name,
the mm and sched numbers as ``mm_*`` and ``sched_*``).  Rows are what
``runs.csv``/``runs.json`` hold and what the statistics, plots and summary are
computed from, so that all of them can be tested on hand-made data and keep
working when the model adds counters.
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:
    from ..machine import RunResult

NSEC_PER_SEC = 1_000_000_000
NSEC_PER_MSEC = 1_000_000

Row = dict[str, Any]

#: the columns every row starts with, in this order
BASE_COLUMNS = ("variant", "seed", "outcome", "total_ns", "sim_ns", "batches", "footprint_mb", "gps",
                "cpus", "memory_mb", "violation", "error", "oom_invoker")

#: outcome -> the table's outcome column it counts in (anything else is "other")
OUTCOME_COLUMNS = {"completed": "completed", "oom-killed": "oom_killed", "oom-panic": "oom_panic"}


@dataclass(frozen=True)
class Metric:
    """A per-run number the table reports as its median over the runs."""

    key: str  # the row column
    label: str  # what it is, for people
    scale: float = 1.0  # divide the raw value by this (ns -> ms)
    unit: str = ""


#: the counters that explain a difference between variants (issue 4)
EXPLAINING_METRICS: tuple[Metric, ...] = (
    Metric("shrink_scan", "shrinker scans"),
    Metric("drained_pages", "cached pages drained by the shrinker"),
    Metric("fill_runs", "refill worker runs"),
    Metric("fill_pages", "pages refilled"),
    Metric("refill_drained_unused", "pages refilled then drained unused"),
    Metric("head_fallback", "objects that fell back to the rcu_head list"),
    Metric("direct_alloc", "bulk pages kfree threads allocated inline"),
    Metric("inline_kvfree", "objects freed inline after synchronize_rcu()"),
    Metric("mm_thread_direct_reclaim_ns", "kfree threads' time in direct reclaim", NSEC_PER_MSEC, "ms"),
    Metric("sched_highpri_held_kfree_cpus_ns", "time highpri kworkers held kfree threads' CPUs",
           NSEC_PER_MSEC, "ms"),
)

#: how close the runs came to memory pressure: what the shrinker needs before it is called at all
PRESSURE_METRICS: tuple[Metric, ...] = (
    Metric("mm_free_pages_min", "lowest free memory", 256, "MB"),
    Metric("mm_wmark_low_pages", "low watermark", 256, "MB"),
    Metric("mm_kswapd_runs", "kswapd runs"),
    Metric("mm_direct_reclaims", "direct reclaims"),
)

# -- rows -----------------------------------------------------------------------------


def _scalars(d: dict[str, Any], prefix: str = "") -> Row:
    """The int/float/str/bool/None entries of ``d``, keys prefixed (nested data is left out)."""
    return {prefix + k: v for k, v in d.items() if v is None or isinstance(v, (int, float, str, bool))}


_OOM_LINE = re.compile(r"(\S+) invoked oom-killer: gfp_mask=0x[0-9a-f]+\(([^)]*)\)")


def oom_invoker(report: Sequence[str]) -> str | None:
    """Who invoked the OOM killer, and with what: ``"kworker/9:0H GFP_KERNEL|__GFP_NOWARN"``
    from dump_header()'s first line; None if it never ran (or made progress unreported)."""
    m = _OOM_LINE.match(report[0]) if report else None
    return f"{m.group(1)} {m.group(2)}" if m else None


def run_row(r: "RunResult") -> Row:
    """One run as a flat row of scalars (what runs.csv and runs.json hold)."""
    row: Row = {
        "variant": r.variant, "seed": r.seed, "outcome": r.outcome, "total_ns": r.total_ns,
        "sim_ns": r.sim_ns, "batches": r.batches, "footprint_mb": r.footprint_mb, "gps": r.gps,
        "cpus": r.cpus, "memory_mb": r.memory_mb, "violation": r.violation, "error": None,
        "oom_invoker": oom_invoker(r.oom_report),
    }
    row.update(_scalars(r.counters))
    row.update(_scalars(r.mm, "mm_"))
    row.update(_scalars(r.sched, "sched_"))
    row.update(_scalars(r.wait, "wait_"))
    return row


def error_row(variant: str, seed: int, error: str) -> Row:
    """A run whose simulation raised: no numbers, the exception in ``error``."""
    row: Row = dict.fromkeys(BASE_COLUMNS)
    row.update(variant=variant, seed=seed, outcome="error", error=error)
    return row


def columns(rows: Iterable[Row]) -> list[str]:
    """The base columns, then every other key any row has, sorted (stable CSV header)."""
    extra: set[str] = set()
    for row in rows:
        extra.update(row)
    return list(BASE_COLUMNS) + sorted(extra - set(BASE_COLUMNS))


def rows_csv(rows: Sequence[Row]) -> str:
    """Rows as CSV text with a header; a missing value is an empty cell."""
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=columns(rows), restval="", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def completion_s(row: Row) -> float | None:
    """rcuscale's "Total time" in seconds, or None when the test printed none."""
    t = row.get("total_ns")
    return None if t is None else t / NSEC_PER_SEC


# -- per-variant statistics -------------------------------------------------------------


def _median(values: Iterable[float | int | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


@dataclass
class VariantStats:
    """What the runs of one variant show (medians are per run)."""

    variant: str
    runs: int
    completed: int
    oom_killed: int
    oom_panic: int
    other: int
    time_min_s: float | None
    time_median_s: float | None
    time_max_s: float | None
    gps_median: float | None  # rcuscale's "batches": grace periods the test waited for
    footprint_median_mb: float | None
    counters: dict[str, float | None] = field(default_factory=dict)  # metric key -> median, scaled
    seeds: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _outcome_counts(rows: Sequence[Row]) -> dict[str, int]:
    counts = dict.fromkeys(("completed", "oom_killed", "oom_panic", "other"), 0)
    for row in rows:
        counts[OUTCOME_COLUMNS.get(row["outcome"], "other")] += 1
    return counts


def variant_stats(variant: str, rows: Sequence[Row],
                  metrics: Sequence[Metric] = EXPLAINING_METRICS + PRESSURE_METRICS) -> VariantStats:
    """Aggregate the rows of one variant.

    Completion times come from every run that printed rcuscale's result line
    (an OOM kill of another task does not stop the test); counters are medians
    over all runs, since a run that ended in OOM still says what the machinery did.
    """
    mine = [r for r in rows if r["variant"] == variant]
    times = [t for t in map(completion_s, mine) if t is not None]
    counters = {}
    for m in metrics:
        med = _median(r.get(m.key) for r in mine)
        counters[m.key] = None if med is None else med / m.scale
    return VariantStats(
        variant=variant, runs=len(mine), **_outcome_counts(mine),
        time_min_s=min(times) if times else None, time_median_s=_median(times),
        time_max_s=max(times) if times else None,
        gps_median=_median(r.get("batches") for r in mine),
        footprint_median_mb=_median(r.get("footprint_mb") for r in mine),
        counters=counters, seeds=sorted(r["seed"] for r in mine),
    )


def all_stats(rows: Sequence[Row], variants: Sequence[str]) -> list[VariantStats]:
    """One :class:`VariantStats` per variant, in the order given."""
    return [variant_stats(v, rows) for v in variants]


# -- the text table ------------------------------------------------------------------------


def _fmt(v: float | int | None, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, int) or digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def _table_lines(stats: Sequence[VariantStats]) -> list[tuple[str, list[str]]]:
    """(label, one cell per variant) for every line of the table."""
    lines: list[tuple[str, list[str]]] = [
        ("runs", [str(s.runs) for s in stats]),
        ("  completed", [str(s.completed) for s in stats]),
        ("  OOM-killed", [str(s.oom_killed) for s in stats]),
        ("  panicked (OOM)", [str(s.oom_panic) for s in stats]),
        ("  other (timeout, ENOMEM, error...)", [str(s.other) for s in stats]),
        ("completion time min (s)", [_fmt(s.time_min_s, 3) for s in stats]),
        ("completion time median (s)", [_fmt(s.time_median_s, 3) for s in stats]),
        ("completion time max (s)", [_fmt(s.time_max_s, 3) for s in stats]),
        ("GPs (median batches)", [_fmt(s.gps_median) for s in stats]),
        ("footprint (median MB)", [_fmt(s.footprint_median_mb) for s in stats]),
        ("median per run:", ["" for _ in stats]),
    ]
    for m in EXPLAINING_METRICS + PRESSURE_METRICS:
        label = f"  {m.label}" + (f" ({m.unit})" if m.unit else "")
        digits = 1 if m.unit else 0
        lines.append((label, [_fmt(s.counters.get(m.key), digits) for s in stats]))
    return lines


def format_table(stats: Sequence[VariantStats]) -> str:
    """A text table with one column per variant and one line per measure."""
    lines = _table_lines(stats)
    header = [s.variant for s in stats]
    lw = max(len(label) for label, _ in lines)
    widths = [max(len(h), *(len(cells[i]) for _, cells in lines)) for i, h in enumerate(header)]
    out = [f"{'':<{lw}}  " + "  ".join(f"{h:>{w}}" for h, w in zip(header, widths))]
    out.append("-" * len(out[0]))
    for label, cells in lines:
        out.append(f"{label:<{lw}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(cells, widths)))
    return "\n".join(line.rstrip() for line in out)
