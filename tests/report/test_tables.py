"""Rows, per-variant statistics and the text table."""

from __future__ import annotations

import csv
import io

from kvfree_sim.config import make_config
from kvfree_sim.machine import simulate
from kvfree_sim.report.tables import (
    BASE_COLUMNS,
    EXPLAINING_METRICS,
    all_stats,
    error_row,
    oom_invoker,
    format_table,
    rows_csv,
    run_row,
    variant_stats,
)

from report_rows import make_row

SMALL = "rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=2 rcuscale.kfree_loops=4 rcuscale.kfree_alloc_num=2000"


def test_run_row_is_flat_and_has_every_counter() -> None:
    r = simulate(make_config("v5.11+v3", cpus=2, bootargs=SMALL, seed=3))
    row = run_row(r)
    assert (row["variant"], row["seed"], row["outcome"]) == ("v5.11+v3", 3, r.outcome)
    assert all(row[k] == v for k, v in r.counters.items())
    assert row["mm_thread_direct_reclaim_ns"] == r.mm["thread_direct_reclaim_ns"]
    assert row["sched_highpri_held_kfree_cpus_ns"] == r.sched["highpri_held_kfree_cpus_ns"]
    assert all(not isinstance(v, (dict, list)) for v in row.values())
    assert "mm_watermarks" not in row  # nested data is left out


def test_stats_count_outcomes_and_take_times_from_timed_runs(rows) -> None:
    base, patched = all_stats(rows, ["base", "patched"])
    assert (base.runs, base.completed, base.oom_panic, base.other) == (5, 5, 0, 0)
    assert (patched.runs, patched.completed, patched.oom_panic) == (5, 4, 1)
    assert (patched.time_min_s, patched.time_median_s, patched.time_max_s) == (14.0, 17.0, 20.0)
    assert patched.counters["drained_pages"] == 403  # median over all 5 runs, the OOM one too
    assert patched.counters["mm_thread_direct_reclaim_ns"] == 150.0  # ns -> ms
    assert base.seeds == patched.seeds == [1, 2, 3, 4, 5]


def test_stats_of_a_variant_without_runs_or_times() -> None:
    s = variant_stats("gone", [make_row("other", 1)])
    assert s.runs == 0 and s.time_median_s is None
    s = variant_stats("x", [make_row("x", 1, outcome="timeout", total_s=None), error_row("x", 2, "boom")])
    assert (s.other, s.time_min_s, s.gps_median) == (2, None, 101)


def test_table_has_a_column_per_variant_and_every_measure(rows) -> None:
    text = format_table(all_stats(rows, ["base", "patched"]))
    header = text.splitlines()[0]
    assert "base" in header and "patched" in header
    for label in ("completed", "OOM-killed", "panicked", "completion time median (s)", "GPs", "footprint"):
        assert label in text
    for m in EXPLAINING_METRICS:
        assert m.label in text
    assert "17.000" in text  # patched median


def test_csv_has_base_columns_first_and_empty_cells_for_none(rows) -> None:
    rows = rows + [error_row("patched", 6, "ValueError: x")]
    parsed = list(csv.DictReader(io.StringIO(rows_csv(rows))))
    assert len(parsed) == len(rows)
    header = rows_csv(rows).splitlines()[0].split(",")
    assert header[: len(BASE_COLUMNS)] == list(BASE_COLUMNS)
    assert parsed[-1]["error"] == "ValueError: x" and parsed[-1]["drained_pages"] == ""
    assert parsed[-2]["total_ns"] == ""  # the OOM panic


def test_oom_invoker_comes_from_the_reports_first_line() -> None:
    report = ["kworker/9:0H invoked oom-killer: gfp_mask=0x2cc0(GFP_KERNEL|__GFP_NOWARN), order=0, "
              "oom_score_adj=0", "Mem-Info:"]
    assert oom_invoker(report) == "kworker/9:0H GFP_KERNEL|__GFP_NOWARN"
    assert oom_invoker([]) is None
