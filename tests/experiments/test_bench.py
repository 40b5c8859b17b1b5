"""kvfree-sim bench (src/kvfree_sim/experiments/bench.py): what it runs and prints, never how fast."""

from __future__ import annotations

import json

import pytest

from kvfree_sim.cli import main
from kvfree_sim.experiments.bench import CASES, BenchRow, _scaled, format_table


@pytest.mark.parametrize("scale, loops", [(1.0, 100), (0.1, 10), (0.0001, 1), (0.025, 4), (0.03, 4)])
def test_scaled_sets_kfree_loops_and_avoids_the_kernels_division_by_zero(scale: float, loops: int) -> None:
    """At least one loop; 2 and 3 become 4 (rcuscale divides by kfree_loops / 4)."""
    bootargs, got = _scaled("rcuscale.kfree_rcu_test=1 rcuscale.kfree_loops=100", scale)
    assert got == loops
    assert bootargs == f"rcuscale.kfree_rcu_test=1 rcuscale.kfree_loops={loops}"


def test_the_cases_are_the_issues_configurations() -> None:
    """The thread's configuration, the same without pressure, 128 CPUs x 64 threads, a small one."""
    assert [(c.cpus, c.memory) for c in CASES] == [(64, "512M"), (64, "16G"), (128, "16G"), (2, "512M")]
    assert "rcuscale.kfree_nthreads=64" in CASES[2].bootargs


def test_format_table_has_a_column_per_figure() -> None:
    row = BenchRow("small (2 CPUs, 512M)", "v6.1", 100, "completed", 0.1, 0.05, 2.0, 2785, 55700.0, 22.4)
    head, rule, line = format_table([row]).splitlines()
    assert head.split()[-4:] == ["events", "events/s", "RSS", "MB"] and set(rule) == {"-"}
    assert line.split()[-7:] == ["completed", "0.100", "0.05", "2.00", "2785", "55700", "22"]


def test_bench_json_runs_the_chosen_case_in_a_fresh_process(capsys) -> None:
    assert main(["bench", "--case", "small", "--scale", "0.01", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (row,) = data["rows"]
    assert row["name"].startswith("small") and row["loops"] == 1 and row["outcome"] == "completed"
    assert row["events"] > 0 and row["sim_s"] > 0 and row["peak_rss_mb"] > 0
    assert "model build:" in data["machine"]


def test_bench_all_variants_runs_the_case_with_each(capsys) -> None:
    from kvfree_sim.kvfree_rcu.variants import VARIANTS

    assert main(["bench", "--case", "small", "--scale", "0.01", "--variants", "all", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["variant"] for r in rows] == list(VARIANTS)
    assert all(r["outcome"] == "completed" for r in rows)


@pytest.mark.parametrize("argv, message", [
    (["bench", "--scale", "0"], "--scale must be positive"),
    (["bench", "--case", "nope"], "no bench case matches"),
    (["bench", "--variants", "v9"], "unknown variant 'v9'"),
])
def test_bench_bad_input_is_one_line_and_status_2(capsys, argv: list[str], message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
