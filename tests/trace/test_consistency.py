"""The trace against the run's own counters, and a traced run against an untraced one."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvfree_sim.kvfree_rcu.variants import VARIANTS
from kvfree_sim.machine import Machine

from tracekit import count, read_lines, tiny_config, traced_run


def test_shrinker_events_match_the_shrinker_calls(tiny_trace):
    """One mm_shrink_slab_start/_end pair per do_shrink_slab() call whose count_objects()
    found something (0 and SHRINK_EMPTY return before the tracepoint, as in mm/vmscan.c);
    every do_shrink_slab() call is one count_objects() call, i.e. one 'shrink_count'."""
    result, tracer, _, lines = tiny_trace
    ends = count(lines, "mm_shrink_slab_end")
    assert ends > 0
    assert ends == count(lines, "mm_shrink_slab_start") == tracer.nonzero_counts == result.mm["shrink_slab_counted"]
    calls = result.mm["shrink_slab_calls"] * len(tracer.machine.kernel.vmscan.shrinkers)
    assert result.counters["shrink_count"] == calls >= ends
    # each start is followed by its end on the same CPU before anything else of the shrinker
    open_: dict[int, int] = {}
    for ln in lines:
        if ln.event == "mm_shrink_slab_start":
            assert ln.cpu not in open_
            open_[ln.cpu] = ln.ts_us
        elif ln.event == "mm_shrink_slab_end":
            assert open_.pop(ln.cpu) <= ln.ts_us
    assert not open_


def test_work_gp_page_and_reclaim_events_match_the_counters(tiny_trace):
    result, _, _, lines = tiny_trace
    c = result.counters
    assert count(lines, "workqueue_execute_start", "function fill_page_cache_func") == c["fill_runs"] > 0
    # each kworker's fill_page_cache_func starts and ends alternate; the run may stop
    # (rcuscale's last thread done) while a refill is still running: its end is missing
    seqs: dict[int, list[str]] = {}
    for ln in lines:
        if ln.event in ("workqueue_execute_start", "workqueue_execute_end") and "fill_page_cache_func" in ln.args:
            seqs.setdefault(ln.pid, []).append("start" if ln.event.endswith("start") else "end")
    for seq in seqs.values():
        assert seq[::2] == ["start"] * len(seq[::2]) and seq[1::2] == ["end"] * len(seq[1::2])
    unfinished = sum(len(seq) % 2 for seq in seqs.values())
    assert count(lines, "workqueue_execute_end", "function fill_page_cache_func") == c["fill_runs"] - unfinished
    assert count(lines, "workqueue_execute_start", "function kfree_rcu_work") == c["kfree_rcu_work_runs"]
    assert count(lines, "workqueue_execute_start", "function kfree_rcu_monitor") == c["monitor_runs"]
    assert count(lines, "hrtimer_start", "function=schedule_page_work_fn") == c["worker_hrtimer"]
    # __run_hrtimer() traces hrtimer_cancel just before each expiry, on the same CPU
    for before, ln in zip(lines, lines[1:]):
        if ln.event == "hrtimer_expire_entry":
            assert before.event == "hrtimer_cancel" and before.cpu == ln.cpu and before.ts_us == ln.ts_us
            assert before.args == ln.args.split()[0]
    assert count(lines, "rcu_grace_period", " end") == result.gps > 0
    assert count(lines, "rcu_grace_period", " start") in (result.gps, result.gps + 1)
    assert count(lines, "mm_page_alloc") == c["pages_alloc"] > 0
    assert count(lines, "mm_page_free") == c["pages_free"] > 0
    assert count(lines, "mm_vmscan_direct_reclaim_begin") == result.mm["direct_reclaims"] > 0
    # begin and end alternate per task; a task may still be reclaiming when the run ends
    # (the machine panicked out of memory)
    reclaims: dict[int, list[str]] = {}
    for ln in lines:
        if ln.event.startswith("mm_vmscan_direct_reclaim_"):
            reclaims.setdefault(ln.pid, []).append(ln.event.rsplit("_", 1)[1])
    for seq in reclaims.values():
        assert seq[::2] == ["begin"] * len(seq[::2]) and seq[1::2] == ["end"] * len(seq[1::2])
    in_reclaim = sum(len(seq) % 2 for seq in reclaims.values())
    assert in_reclaim == 0 or result.outcome != "completed"
    assert count(lines, "mm_vmscan_direct_reclaim_end") == result.mm["direct_reclaims"] - in_reclaim
    assert count(lines, "mm_vmscan_kswapd_wake") == result.mm["kswapd_runs"]
    records = sum(int(ln.kv()["nr_records"]) for ln in lines if ln.event == "rcu_invoke_kfree_bulk_callback")
    assert 0 < records <= c["objects_freed"]
    assert count(lines, "tracing_mark_write", "|direct_reclaim") == result.mm["direct_reclaims"]
    assert count(lines, "tracing_mark_write", "|fill_page_cache_func") == c["fill_runs"]


def test_counter_tracks_end_at_the_runs_final_state(tiny_trace):
    result, tracer, _, lines = tiny_trace
    last: dict[str, int] = {}
    for ln in lines:
        if ln.event == "tracing_mark_write" and ln.args.startswith("C|"):
            _, _, name, value = ln.args.split("|")
            last[name] = int(value)
    assert last["free_pages"] == result.mm["free_pages_end"]
    assert last["free_pcp"] == result.mm["pcp_pages_end"]
    z = tracer.machine.kernel.mm.zones
    assert last["wmark_min"] == sum(x.wmark(0) for x in z)
    for i, krcp in enumerate(tracer.machine.kvfree.krc):
        assert last[f"kvfree_cache_cpu{i}"] == krcp.nr_bkv_objs
        assert last[f"kvfree_count_cpu{i}"] == krcp.count
    # the cache was drained to empty at least once and refilled: the vicious circle
    cache0 = [int(ln.args.split("|")[3]) for ln in lines if ln.args.startswith("C|") and "|kvfree_cache_cpu" in ln.args]
    assert 0 in cache0 and max(cache0) > 0


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_tracing_does_not_change_the_run(tmp_path: Path, variant: str):
    plain = Machine(tiny_config(variant)).run().as_dict()
    traced, _ = traced_run(tmp_path / "t.trace", variant)
    assert traced.as_dict() == plain


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_writes_a_valid_trace(tmp_path: Path, variant: str):
    path = tmp_path / "t.trace"
    result, _ = traced_run(path, variant)
    head, lines = read_lines(path)  # asserts the layout of every line
    assert head[2].startswith(f"# entries-in-buffer/entries-written: {len(lines)}/{len(lines)} ")
    ts = [ln.ts_us for ln in lines]
    assert ts == sorted(ts)
    assert count(lines, "rcu_grace_period", " end") == result.gps
    assert count(lines, "workqueue_execute_start", "function fill_page_cache_func") == result.counters["fill_runs"]
    assert count(lines, "mm_page_alloc") == result.counters["pages_alloc"]
    assert count(lines, "mm_page_free") == result.counters["pages_free"]
    # each hrtimer_start arms a timer, each hrtimer_cancel disarms one (expiry, re-arm or cancel)
    armed_at_end = count(lines, "hrtimer_start") - count(lines, "hrtimer_cancel")
    assert 0 <= armed_at_end <= result.cpus
    assert count(lines, "hrtimer_cancel") >= count(lines, "hrtimer_expire_entry")
    # nothing but the trace is left in the directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.trace"]
