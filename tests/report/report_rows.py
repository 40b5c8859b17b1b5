"""Hand-made rows for the report tests: no simulation, known numbers (imported by name, so not conftest)."""

from __future__ import annotations

from typing import Any

from kvfree_sim.report.tables import BASE_COLUMNS

NS = 1_000_000_000


def make_row(variant: str, seed: int, outcome: str = "completed", total_s: float | None = 10.0,
             **counters: Any) -> dict[str, Any]:
    """A row as run_row() makes it, with fixed explaining counters that keywords override."""
    row: dict[str, Any] = dict.fromkeys(BASE_COLUMNS)
    row.update(variant=variant, seed=seed, outcome=outcome, batches=100 + seed, footprint_mb=300, gps=90,
               total_ns=None if total_s is None else int(total_s * NS), sim_ns=int((total_s or 20.0) * NS))
    row.update({"shrink_scan": 10, "drained_pages": 0, "fill_runs": 50, "fill_pages": 250,
                "refill_drained_unused": 0, "head_fallback": 1000, "direct_alloc": 0, "inline_kvfree": 0,
                "mm_thread_direct_reclaim_ns": 0,
                "sched_highpri_held_kfree_cpus_ns": 2_000_000})
    row.update(counters)
    return row


def sample_rows() -> list[dict[str, Any]]:
    """'base' steady at 10-10.2 s; 'patched' slower, spread out, draining, one OOM panic."""
    base = [make_row("base", s, total_s=10.0 + 0.1 * (s % 3)) for s in range(1, 6)]
    patched = [make_row("patched", s, total_s=12.0 + 2.0 * s, drained_pages=400 + s, fill_runs=900,
                        fill_pages=4500, refill_drained_unused=300, shrink_scan=40,
                        mm_thread_direct_reclaim_ns=150_000_000, sched_highpri_held_kfree_cpus_ns=90_000_000)
               for s in range(1, 5)]
    patched.append(make_row("patched", 5, outcome="oom-panic", total_s=None, drained_pages=500))
    return base + patched
