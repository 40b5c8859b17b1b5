"""summary.md is generated from the numbers."""

from __future__ import annotations

from kvfree_sim.report.summary import Context, seed_sentence, summary_markdown, top_differences
from kvfree_sim.report.tables import all_stats

from report_rows import make_row

CTX = Context(cpus=64, memory="512M", bootargs="rcuscale.kfree_rcu_test=1", runs=5, seeds=[1, 2, 3, 4, 5])


def _summary(rows, variants=("base", "patched")) -> str:
    return summary_markdown(rows, all_stats(rows, list(variants)), CTX)


def test_summary_says_which_variant_is_slower_and_varies_more(rows) -> None:
    text = _summary(rows)
    assert "64 CPUs, 512M" in text and "seeds 1..5" in text
    assert "patched takes longer than base: median 17.000 s vs 10.100 s (+68%)" in text
    assert "slower on 4, faster on 0 and within 0.1% on 0 of 4" in text
    assert "it varies more (spread 6.000 s vs 0.200 s)" in text
    assert "Slowest median: patched" in text


def test_summary_counts_oom(rows) -> None:
    text = _summary(rows)
    assert "**patched**: 4 of 5 runs completed, 0 completed after the OOM killer ran, 1 panicked (OOM)" in text
    assert "Runs that ended in or went through OOM: patched 1 of 5." in text


def test_summary_names_who_invoked_the_oom_killer() -> None:
    """From each run's OOM report (dump_header()'s first line, the row's oom_invoker): a highpri
    kworker is the page-cache refill, a kfree_scale_thr the test's own allocation."""
    rows = [make_row("base", 1), make_row("base", 2, outcome="oom-panic", total_s=None,
                                          oom_invoker="kfree_scale_thr GFP_KERNEL"),
            make_row("patched", 1, outcome="oom-panic", total_s=None,
                     oom_invoker="kworker/9:0H GFP_KERNEL|__GFP_NOWARN"),
            make_row("patched", 2, outcome="oom-panic", total_s=None,
                     oom_invoker="kworker/3:1H GFP_KERNEL|__GFP_NOWARN")]
    text = _summary(rows)
    assert ("- In patched the OOM killer was invoked by a highpri kworker, the page-cache refill "
            "(GFP_KERNEL|__GFP_NOWARN) in 2 runs.") in text
    assert "- In base the OOM killer was invoked by a kfree thread's own allocation (GFP_KERNEL) in 1 run." in text


def test_summary_explains_from_counters(rows) -> None:
    text = _summary(rows)
    assert "patched's shrinker drained 403 cached pages per run over 40 scans, vs 0 for base" in text
    assert "300 of the refilled pages (6.67%) were drained again" in text
    assert "undo each other's work" in text
    assert "kfree threads spent 150.0 ms per run in direct reclaim vs 0.0 ms" in text
    assert "held the kfree threads' CPUs for 90.0 ms per run vs 2.0 ms" in text
    assert "rcu_head list" not in text.split("## What differs")[1].split("\n\n")[2]  # head_fallback equal


def test_top_differences_rank_by_relative_change(rows) -> None:
    base, patched = all_stats(rows, ["base", "patched"])
    keys = [m.key for m in top_differences(patched, base)]
    assert keys[0] in ("drained_pages", "refill_drained_unused", "mm_thread_direct_reclaim_ns")
    assert "head_fallback" not in keys


def test_summary_of_one_variant_and_of_a_variant_that_never_completes() -> None:
    only = [make_row("base", s) for s in (1, 2)]
    assert "## What differs" not in _summary(only, ["base"])
    rows = only + [make_row("dead", s, outcome="oom-panic", total_s=None) for s in (1, 2)]
    text = _summary(rows, ["base", "dead"])
    assert "**dead**: no run printed a completion time" in text
    assert "dead vs base: not comparable" in text
    assert "dead 2 of 2" in text


def test_identical_variants_are_about_the_same() -> None:
    rows = [make_row(v, s) for v in ("a", "b") for s in (1, 2)]
    text = _summary(rows, ["a", "b"])
    assert "b takes about as long as a" in text and "(0%)" in text
    assert "within 0.1% on 2 of 2" in text and "Widest spread" not in text
    assert "the explaining counters are the same" in text
    assert "No run of any variant hit the OOM killer" in text


def test_a_few_pages_drained_unused_is_not_called_a_circle() -> None:
    rows = [make_row("a", 1), make_row("b", 1, drained_pages=5, refill_drained_unused=2, fill_pages=100_000)]
    text = _summary(rows, ["a", "b"])
    assert "2 of the refilled pages (0.00%) were drained again" in text
    assert "undo each other's work" not in text


def test_memory_pressure_is_stated_from_free_memory_and_reclaim() -> None:
    calm = dict(mm_free_pages_min=51_200, mm_wmark_low_pages=1_000, mm_kswapd_runs=16, mm_direct_reclaims=0)
    rows = [make_row(v, 1, **calm) for v in ("a", "b")]
    text = _summary(rows, ["a", "b"])
    assert "- **a**: lowest free memory 200.0 MB (low watermark 3.9 MB); kswapd ran 16 times, direct reclaim 0" in text
    assert "these runs had no sustained memory pressure" in text
    rows[1].update(mm_free_pages_min=1_100, mm_direct_reclaims=40)
    text = _summary(rows, ["a", "b"])
    assert "no sustained memory pressure" not in text
    assert "Without memory pressure (free memory above 2x the low watermark, no direct reclaim): a." in text
    rows[0].update(mm_direct_reclaims=3)
    assert "Every variant ran into memory pressure" in _summary(rows, ["a", "b"])


def test_runs_that_died_without_pressure_in_the_median_are_all_or_nothing() -> None:
    """Calm medians but some runs out of memory: the summary must not call it 'no pressure'."""
    calm = dict(mm_free_pages_min=51_200, mm_wmark_low_pages=1_000, mm_kswapd_runs=0, mm_direct_reclaims=0)
    rows = [make_row(v, s, **calm) for v in ("a", "b") for s in (1, 2, 3)]
    rows[2].update(outcome="oom-panic", total_s=None)
    text = _summary(rows, ["a", "b"])
    assert "no sustained memory pressure" not in text
    assert "yet 1 of 6 runs ran out of memory: the pressure came all at once" in text


def test_a_baseline_that_never_completes_is_replaced_by_the_fastest_completed_variant() -> None:
    rows = [make_row("base", s, outcome="oom-panic", total_s=None) for s in (1, 2)]
    rows += [make_row("slow", s, total_s=12.0 + s) for s in (1, 2)]
    rows += [make_row("fast", s, total_s=10.0) for s in (1, 2)]
    text = _summary(rows, ["base", "slow", "fast"])
    assert "base never completed; against the fastest variant that did, **fast**:" in text
    assert "- slow takes longer than fast: median 13.500 s vs 10.000 s (+35%); seed by seed slower on 2" in text
    assert "not comparable" in text  # still said against the baseline itself


def _drain_costs(seeds: range, drained: dict[int, int]) -> list:
    """'base' at 10 s on every seed; 'v3' loses 0.1 ms per page its shrinker drained."""
    base = [make_row("base", s, total_s=10.0) for s in seeds]
    v3 = [make_row("v3", s, total_s=10.0 + drained[s] * 1e-4, drained_pages=drained[s]) for s in seeds]
    return base + v3


def test_the_counter_that_tracks_the_time_lost_seed_by_seed_is_named() -> None:
    drained = {1: 500, 2: 9000, 3: 400, 4: 12000, 5: 700, 6: 8000}
    rows = _drain_costs(range(1, 7), drained)
    text = seed_sentence(rows, "v3", "base")
    assert text is not None
    assert text.startswith("Seed by seed, the time v3 loses against base on the same seed rises with its "
                           "cached pages drained by the shrinker (1.00) (Pearson's r over 6 seeds).")
    assert "Its 3 seeds that lost most (2, 4, 6: 0.800-1.200 s) had 8,000-12,000 of cached pages drained" in text
    assert text.endswith("the other seeds 400-700.")
    assert text in _summary(rows, ("base", "v3"))


def test_no_seed_sentence_without_enough_seeds_or_a_counter_that_tracks() -> None:
    drained = {1: 500, 2: 9000, 3: 400, 4: 12000}
    assert seed_sentence(_drain_costs(range(1, 5), drained), "v3", "base") is None  # 4 seeds only
    flat = [make_row("base", s, total_s=10.0) for s in range(1, 7)]
    flat += [make_row("v3", s, total_s=10.0 + 0.1 * (s % 2)) for s in range(1, 7)]  # counters all equal
    assert seed_sentence(flat, "v3", "base") is None
    assert "Seed by seed" not in _summary(flat, ("base", "v3"))


def test_inline_page_allocations_and_inline_frees_are_named_when_they_differ() -> None:
    rows = [make_row("a", s) for s in (1, 2)]
    rows += [make_row("b", s, total_s=10.4, direct_alloc=700_000, inline_kvfree=12) for s in (1, 2)]
    text = _summary(rows, ["a", "b"])
    why = text.split("## What differs")[1]
    assert "bulk pages kfree threads allocated inline (700,000 vs 0)" in why
    assert "the kfree threads allocated 700,000 bulk pages per run themselves, inline in kvfree_call_rcu()" in why
    assert "12 objects per run were freed by their kfree thread after a synchronize_rcu()" in why
    same = _summary([make_row(v, 1) for v in ("a", "b")], ["a", "b"])
    assert "inline in kvfree_call_rcu()" not in same and "synchronize_rcu()" not in same
