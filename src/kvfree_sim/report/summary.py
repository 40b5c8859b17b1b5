"""summary.md: what a comparison's runs show, in sentences generated from the numbers.

Every statement is computed from the rows and the per-variant statistics:
which variants take longer or vary more than the baseline (the first variant
given), how many runs ended in OOM, and which of the explaining counters
differ most.  The mechanism sentences are templates filled from counter
differences; a template is used only when its counters say it applies.  Seed by
seed, the counters that rise with the time a variant loses against the baseline
on the same seed are named with their correlation.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from .tables import EXPLAINING_METRICS, Metric, Row, VariantStats, completion_s

#: medians closer than this (relative) are "about the same"
SAME_TIME = 0.02
#: a variant "varies more" when its relative spread is this many times the baseline's ...
MORE_SPREAD = 1.5
#: ... and the spreads differ by more than this share of the baseline median
MIN_SPREAD_DIFF = 0.01
#: how many of the explaining counters the summary lists per variant
TOP_COUNTERS = 3
#: two runs of one seed closer than this (relative) count as equally fast
PAIR_TOLERANCE = 0.001
#: the share of refilled pages drained unused from which refill and shrinker "undo each other's work"
CIRCLE_SHARE = 0.01
#: a run whose lowest free memory stayed above this many low watermarks, with no direct reclaim,
#: had no memory pressure to speak of
NO_PRESSURE_WMARKS = 2.0
#: seeds both variants timed before the summary looks for what tracks the time lost seed by seed,
#: and the correlation from which a counter is said to track it
MIN_PAIRED_SEEDS = 5
TRACKS = 0.7
#: how many of the seeds that lost most are named
WORST_SEEDS = 3


@dataclass(frozen=True)
class Context:
    """What was compared, for the summary's first lines."""

    cpus: int
    memory: str
    bootargs: str
    runs: int
    seeds: Sequence[int]
    #: the machine profile when it is not the default as shipped ('profile NAME (set a=1)'), else ''
    machine: str = ""


def _num(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def _pct(a: float, b: float) -> str:
    if not b:
        return "n/a"
    pct = round((a - b) / b * 100)
    return f"{pct:+d}%" if pct else "0%"


def _spread(s: VariantStats) -> float | None:
    """max - min completion time (s), None with fewer than two timed runs."""
    if s.time_min_s is None or s.time_max_s is None:
        return None
    return s.time_max_s - s.time_min_s


# -- outcomes ----------------------------------------------------------------------------


def outcome_line(s: VariantStats) -> str:
    """'v: 8 of 10 runs completed, 1 OOM-killed, 1 panicked (OOM), 0 other'."""
    return (f"- **{s.variant}**: {s.completed} of {s.runs} runs completed, "
            f"{s.oom_killed} completed after the OOM killer ran, {s.oom_panic} panicked (OOM), "
            f"{s.other} other (timeout, ENOMEM, invariant violation or error)")


def _invoker_kind(invoker: str) -> str:
    """Who an OOM report's first line names, in words: the highpri kworkers run only
    kvfree_rcu's page-cache refill (fill_page_cache_func(), on system_highpri_wq)."""
    task, _, gfp = invoker.partition(" ")
    if re.fullmatch(r"kworker/\d+:\d+H", task):
        return f"a highpri kworker, the page-cache refill ({gfp})"
    if task.startswith("kfree_scale_thr"):
        return f"a kfree thread's own allocation ({gfp})"
    return f"{task} ({gfp})"


def oom_invoker_lines(rows: Sequence[Row], stats: Sequence[VariantStats]) -> list[str]:
    """Per variant, who invoked the OOM killer in its runs that reached it."""
    lines = []
    for s in stats:
        kinds = Counter(_invoker_kind(r["oom_invoker"]) for r in rows
                        if r["variant"] == s.variant and r.get("oom_invoker"))
        if kinds:
            parts = [f"{kind} in {n} run{'s' if n > 1 else ''}" for kind, n in kinds.most_common()]
            lines.append(f"- In {s.variant} the OOM killer was invoked by " + "; ".join(parts) + ".")
    return lines


def oom_sentence(stats: Sequence[VariantStats]) -> str:
    """The OOM counts in one sentence."""
    hit = [s for s in stats if s.oom_killed or s.oom_panic]
    if not hit:
        return "No run of any variant hit the OOM killer or panicked."
    parts = [f"{s.variant} {s.oom_killed + s.oom_panic} of {s.runs}" for s in hit]
    return "Runs that ended in or went through OOM: " + ", ".join(parts) + "."


# -- completion time ---------------------------------------------------------------------------


def paired(rows: Sequence[Row], variant: str, base: str) -> tuple[int, int, int]:
    """Seed by seed: (slower, faster, both timed) of ``variant`` against ``base``.

    Differences within PAIR_TOLERANCE count as neither slower nor faster.
    """
    def times(v: str) -> dict[int, float]:
        return {r["seed"]: t for r in rows if r["variant"] == v and (t := completion_s(r)) is not None}

    a, b = times(variant), times(base)
    both = a.keys() & b.keys()
    slower = sum(a[s] > b[s] * (1 + PAIR_TOLERANCE) for s in both)
    faster = sum(a[s] < b[s] * (1 - PAIR_TOLERANCE) for s in both)
    return slower, faster, len(both)


def time_line(s: VariantStats) -> str:
    """A variant's completion times."""
    if s.time_median_s is None:
        return f"- **{s.variant}**: no run printed a completion time."
    return (f"- **{s.variant}**: median {_num(s.time_median_s, 3)} s "
            f"(min {_num(s.time_min_s, 3)}, max {_num(s.time_max_s, 3)}, spread {_num(_spread(s), 3)} s)")


def _longer_phrase(s: VariantStats, base: VariantStats) -> str:
    a, b = s.time_median_s, base.time_median_s
    assert a is not None and b is not None
    if abs(a - b) <= SAME_TIME * b:
        word = "takes about as long as"
    else:
        word = "takes longer than" if a > b else "is faster than"
    return f"{s.variant} {word} {base.variant}: median {_num(a, 3)} s vs {_num(b, 3)} s ({_pct(a, b)})"


def _varies_phrase(s: VariantStats, base: VariantStats) -> str:
    sa, sb = _spread(s), _spread(base)
    if sa is None or sb is None or not base.time_median_s:
        return ""
    more = sa > MORE_SPREAD * sb and sa - sb > MIN_SPREAD_DIFF * base.time_median_s
    less = sb > MORE_SPREAD * sa and sb - sa > MIN_SPREAD_DIFF * base.time_median_s
    word = "varies more" if more else "varies less" if less else "varies about as much"
    return f"; it {word} (spread {_num(sa, 3)} s vs {_num(sb, 3)} s)"


def comparison_line(s: VariantStats, base: VariantStats, rows: Sequence[Row]) -> str:
    """How one variant's completion time compares with the baseline's, seed by seed too."""
    if s.time_median_s is None or base.time_median_s is None:
        return f"- {s.variant} vs {base.variant}: not comparable, one of them has no completed run."
    slower, faster, both = paired(rows, s.variant, base.variant)
    seeds = (f"; seed by seed slower on {slower}, faster on {faster} and within "
             f"{PAIR_TOLERANCE:.1%} on {both - slower - faster} of {both}") if both else ""
    return f"- {_longer_phrase(s, base)}{seeds}{_varies_phrase(s, base)}."


def timed_comparison(stats: Sequence[VariantStats], rows: Sequence[Row]) -> list[str]:
    """When the baseline never completed: the completed variants against the fastest of them."""
    timed = [s for s in stats if s.time_median_s is not None]
    if stats[0].time_median_s is not None or len(timed) < 2:
        return []
    fastest = min(timed, key=lambda s: s.time_median_s or 0.0)
    return (["", f"{stats[0].variant} never completed; against the fastest variant that did, **{fastest.variant}**:"]
            + [comparison_line(s, fastest, rows) for s in timed if s is not fastest])


def extremes_line(stats: Sequence[VariantStats]) -> str:
    """Which variant is slowest and which varies most."""
    timed = [s for s in stats if s.time_median_s is not None]
    if len(timed) < 2:
        return ""
    slow = max(timed, key=lambda s: s.time_median_s or 0.0)
    text = f"Slowest median: {slow.variant} ({_num(slow.time_median_s, 3)} s)."
    wide = max(timed, key=lambda s: _spread(s) or 0.0)
    if round(_spread(wide) or 0.0, 3):
        text += f" Widest spread: {wide.variant} ({_num(_spread(wide), 3)} s)."
    return text


# -- counters -------------------------------------------------------------------------------


def _rel_diff(a: float | None, b: float | None) -> float:
    """|a - b| relative to the larger of the two (0 when both are 0 or unknown)."""
    if a is None or b is None:
        return 0.0
    big = max(abs(a), abs(b))
    return abs(a - b) / big if big else 0.0


def top_differences(s: VariantStats, base: VariantStats, n: int = TOP_COUNTERS) -> list[Metric]:
    """The explaining metrics that differ most from the baseline (relative), largest first."""
    diffs = [(m, _rel_diff(s.counters.get(m.key), base.counters.get(m.key))) for m in EXPLAINING_METRICS]
    diffs = [(m, d) for m, d in diffs if d > 0]
    diffs.sort(key=lambda md: -md[1])
    return [m for m, _ in diffs[:n]]


def _metric_value(s: VariantStats, m: Metric) -> str:
    v = s.counters.get(m.key)
    return _num(v, 1 if m.unit else 0) + (f" {m.unit}" if m.unit else "")


def differences_line(s: VariantStats, base: VariantStats) -> str:
    """'v differs most in: X (a vs b), ...'."""
    top = top_differences(s, base)
    if not top:
        return f"- {s.variant}: the explaining counters are the same as {base.variant}'s."
    parts = [f"{m.label} ({_metric_value(s, m)} vs {_metric_value(base, m)})" for m in top]
    return f"- {s.variant} differs most from {base.variant} in: " + "; ".join(parts) + "."


def _c(s: VariantStats, key: str) -> float:
    return s.counters.get(key) or 0.0


def _drain_sentence(s: VariantStats, base: VariantStats) -> str:
    """The shrinker's drains against the refill worker's work."""
    unused = _c(s, "refill_drained_unused")
    text = (f"{s.variant}'s shrinker drained {_num(_c(s, 'drained_pages'))} cached pages per run over "
            f"{_num(_c(s, 'shrink_scan'))} scans, vs {_num(_c(base, 'drained_pages'))} for {base.variant}; "
            f"its refill worker ran {_num(_c(s, 'fill_runs'))} times for {_num(_c(s, 'fill_pages'))} pages "
            f"(vs {_num(_c(base, 'fill_runs'))} runs, {_num(_c(base, 'fill_pages'))} pages)")
    if unused:
        share = unused / _c(s, "fill_pages") if _c(s, "fill_pages") else 1.0
        text += (f", and {_num(unused)} of the refilled pages ({share:.2%}) were drained again before any "
                 f"kvfree_rcu() call used them")
        if share >= CIRCLE_SHARE:
            text += ": the refill worker and the shrinker undo each other's work"
    return text + "."


def mechanism_sentences(s: VariantStats, base: VariantStats) -> list[str]:
    """Templated explanations, each used only when the counters it names differ."""
    out = []
    if _c(s, "drained_pages") != _c(base, "drained_pages"):
        out.append(_drain_sentence(s, base))
    for key, template in (
        ("mm_thread_direct_reclaim_ns", "the kfree threads spent {a} ms per run in direct reclaim vs {b} ms"),
        ("sched_highpri_held_kfree_cpus_ns",
         "highpri kworkers (the refill work runs on system_highpri_wq) held the kfree threads' CPUs "
         "for {a} ms per run vs {b} ms"),
        ("head_fallback", "{a} objects per run fell back to the rcu_head list (no cached page at hand) vs {b}"),
        ("direct_alloc",
         "the kfree threads allocated {a} bulk pages per run themselves, inline in kvfree_call_rcu() "
         "(single-argument calls that found no cached page drop the krcp lock and call "
         "__get_free_page()), vs {b}"),
        ("inline_kvfree",
         "{a} objects per run were freed by their kfree thread after a synchronize_rcu() "
         "(single-argument calls that could get no page wait a grace period in place), vs {b}"),
    ):
        a, b = _c(s, key), _c(base, key)
        if _rel_diff(a, b) > SAME_TIME:
            digits = 1 if key.endswith("_ns") else 0
            out.append(f"In {s.variant} " + template.format(a=_num(a, digits), b=_num(b, digits)) + ".")
    return out


def _pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's r, None when either series is constant."""
    try:
        return statistics.correlation(x, y)
    except statistics.StatisticsError:
        return None


def _span(values: Sequence[float], m: Metric) -> str:
    lo, hi = min(values) / m.scale, max(values) / m.scale
    digits = 1 if m.unit else 0
    text = _num(lo, digits) if lo == hi else f"{_num(lo, digits)}-{_num(hi, digits)}"
    return text + (f" {m.unit}" if m.unit else "")


def seed_sentence(rows: Sequence[Row], variant: str, base: str) -> str | None:
    """Seed by seed, which of the variant's explaining counters rise with the time it loses.

    A seed gives both variants the same random draws, so the time a variant loses against the
    baseline's run of the same seed is its own doing, and a counter of its own that rises and
    falls with that loss (Pearson's r over the seeds) points at the mechanism.  None when too few
    seeds were timed by both or no counter tracks the loss.
    """
    def timed(v: str) -> dict[int, tuple[float, Row]]:
        return {r["seed"]: (t, r) for r in rows if r["variant"] == v and (t := completion_s(r)) is not None}

    mine, theirs = timed(variant), timed(base)
    seeds = sorted(mine.keys() & theirs.keys())
    if len(seeds) < MIN_PAIRED_SEEDS:
        return None
    lost = [mine[s][0] - theirs[s][0] for s in seeds]
    tracking = []
    for m in EXPLAINING_METRICS:
        values = [float(mine[s][1].get(m.key) or 0) for s in seeds]
        r = _pearson(values, lost)
        if r is not None and r >= TRACKS:
            tracking.append((r, m, values))
    if not tracking:
        return None
    tracking.sort(key=lambda t: -t[0])
    r0, m0, values0 = tracking[0]
    order = sorted(range(len(seeds)), key=lambda i: -lost[i])
    worst, rest = order[:WORST_SEEDS], order[WORST_SEEDS:]
    listed = "; ".join(f"{m.label} ({r:.2f})" for r, m, _ in tracking)
    text = (f"Seed by seed, the time {variant} loses against {base} on the same seed rises with its "
            f"{listed} (Pearson's r over {len(seeds)} seeds). Its {len(worst)} seeds that lost most "
            f"({', '.join(str(seeds[i]) for i in sorted(worst))}: {_num(min(lost[i] for i in worst), 3)}-"
            f"{_num(max(lost[i] for i in worst), 3)} s) had {_span([values0[i] for i in worst], m0)} of "
            f"{m0.label}")
    if rest:
        text += f", the other seeds {_span([values0[i] for i in rest], m0)}"
    return text + "."


def pressure_line(s: VariantStats) -> str:
    return (f"- **{s.variant}**: lowest free memory {_num(_c(s, 'mm_free_pages_min'), 1)} MB "
            f"(low watermark {_num(_c(s, 'mm_wmark_low_pages'), 1)} MB); kswapd ran {_num(_c(s, 'mm_kswapd_runs'))} "
            f"times, direct reclaim {_num(_c(s, 'mm_direct_reclaims'))} times, the shrinker was scanned "
            f"{_num(_c(s, 'shrink_scan'))} times")


def pressure_sentence(stats: Sequence[VariantStats]) -> str:
    """Whether the runs had the memory pressure the shrinker needs."""
    calm = [s for s in stats if _c(s, "mm_direct_reclaims") == 0
            and _c(s, "mm_free_pages_min") > NO_PRESSURE_WMARKS * _c(s, "mm_wmark_low_pages")]
    if len(calm) == len(stats):
        died = sum(s.oom_killed + s.oom_panic for s in stats)
        if died:
            # The medians describe the runs that lived; the others went from plenty to none.
            return (f"In the median run no variant's free memory fell below {NO_PRESSURE_WMARKS:g}x its low "
                    f"watermark and no task entered direct reclaim, yet {died} of "
                    f"{sum(s.runs for s in stats)} runs ran out of memory: the pressure came all at once, "
                    "not as a slow build-up, so a run either ran out of memory or never needed the "
                    "shrinker, and the variants could differ only in the runs that died.")
        return (f"No variant's free memory fell below {NO_PRESSURE_WMARKS:g}x its low watermark and no task "
                "entered direct reclaim: these runs had no sustained memory pressure, so the shrinker had "
                "little reason to run and a drain-and-refill circle could not form. A smaller --memory, "
                "more threads, or grace periods held up for longer (a host that preempts a busy vCPU for "
                "tens of ms: objects keep coming while none is freed) move the runs towards the edge.")
    if calm:
        return ("Without memory pressure (free memory above "
                f"{NO_PRESSURE_WMARKS:g}x the low watermark, no direct reclaim): "
                + ", ".join(s.variant for s in calm) + ".")
    return "Every variant ran into memory pressure (direct reclaim, or free memory near the watermarks)."


# -- the document -------------------------------------------------------------------------------


def _header(ctx: Context, base: str) -> list[str]:
    seeds = f"{min(ctx.seeds)}..{max(ctx.seeds)}" if ctx.seeds else "none"
    return [
        "# kvfree-sim compare: summary", "",
        f"{ctx.cpus} CPUs, {ctx.memory} memory{', ' + ctx.machine if ctx.machine else ''}, "
        f"boot parameters `{ctx.bootargs}`; "
        f"{ctx.runs} runs per variant with seeds {seeds}, the same seeds for every variant.",
        f"Comparisons are against the first variant given, **{base}**; counters are medians per run.",
        "These are the model's results, not measurements of a kernel.", "",
    ]


def summary_markdown(rows: Sequence[Row], stats: Sequence[VariantStats], ctx: Context) -> str:
    """The whole summary.md text."""
    base = stats[0]
    others = stats[1:]
    lines = _header(ctx, base.variant)
    lines += ["## Outcomes", "", *map(outcome_line, stats), "", oom_sentence(stats), ""]
    invokers = oom_invoker_lines(rows, stats)
    lines += [*invokers, ""] if invokers else []
    lines += ["## Memory pressure (medians per run)", "", *map(pressure_line, stats), "",
              pressure_sentence(stats), ""]
    lines += ["## Completion time", "", *map(time_line, stats), ""]
    lines += [comparison_line(s, base, rows) for s in others]
    lines += timed_comparison(stats, rows)
    ext = extremes_line(stats)
    lines += ["", ext, ""] if ext else [""]
    if others:
        lines += ["## What differs, and why", ""]
        lines += [differences_line(s, base) for s in others]
        lines.append("")
        for s in others:
            lines += [f"- {m}" for m in mechanism_sentences(s, base)]
        lines.append("")
        by_seed = [t for s in others if (t := seed_sentence(rows, s.variant, base.variant))]
        if by_seed:
            lines += [*(f"- {t}" for t in by_seed), ""]
    return "\n".join(lines).rstrip() + "\n"
