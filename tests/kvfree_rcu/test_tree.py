"""kvfree_rcu() as in Linux v5.11 kernel/rcu/tree.c (kvfree_sim.kvfree_rcu.tree)."""

from __future__ import annotations

from kvfree_sim.kernel.rcu import rcu_seq_snap
from kvfree_sim.kvfree_rcu.tree import (CALIBRATION_COUNTERS, KFREE_N_BATCHES, KVFREE_BULK_MAX_ENTR, OTHER_COUNTERS,
                                        Counters)

from kvtest import MSEC, caller, fill_cache, machine, run_for, shrink


def test_bulk_max_entries_fill_a_page():
    """KVFREE_BULK_MAX_ENTR = (PAGE_SIZE - sizeof(struct kvfree_rcu_bulk_data)) / sizeof(void *)."""
    assert KVFREE_BULK_MAX_ENTR == 510
    assert KFREE_N_BATCHES == 2


def test_double_argument_call_with_empty_cache_goes_to_list_and_kicks_one_refill():
    """kvfree_call_rcu(): no page and an empty cache -> run_page_cache_worker() and the
    rcu_head list; work_in_progress makes later failures kick nothing more."""
    m = machine("v5.11")
    paths: list[str] = []
    caller(m, 0, [True, True, True], paths)
    run_for(m, 1000)  # the three calls, before the 2 us hrtimer fires
    kv = m.kvfree
    assert paths == ["list", "list", "list"]
    assert kv.c["head_fallback"] == 3
    assert kv.c["worker_hrtimer"] == 1
    assert kv.krc[0].work_in_progress
    assert kv.krc[0].hrtimer.active()
    assert sum(r.n for r in kv.krc[0].head) == 3 and kv.krc[0].count == 3


def test_refill_fills_the_cache_then_calls_use_bulk_pages():
    """hrtimer (hard irq) -> queue_work(system_highpri_wq) -> fill_page_cache_func():
    rcu_min_cached_objs pages; the next calls take a cached page (cache_hit)."""
    m = machine("v5.11")
    caller(m, 0, [True], [])
    run_for(m, 1 * MSEC)
    kv = m.kvfree
    krcp = kv.krc[0]
    assert kv.c["fill_runs"] == 1 and kv.c["fill_pages"] == 5
    assert krcp.nr_bkv_objs == 5 and not krcp.work_in_progress
    paths: list[str] = []
    caller(m, 0, [True, True], paths)
    run_for(m, 1 * MSEC)
    assert paths == ["bulk", "bulk"]
    assert kv.c["cache_hit"] == 1 and krcp.nr_bkv_objs == 4
    assert krcp.bkvhead[0] is not None and krcp.bkvhead[0].head_records == 2


def test_refill_runs_on_a_nice_minus_20_kworker_of_the_same_cpu():
    """schedule_page_work_fn() queues on system_highpri_wq: the kworker/N:MH of that CPU."""
    m = machine("v5.11")
    caller(m, 1, [True], [])
    run_for(m, 1 * MSEC)
    pool = m.kernel.worker_pool(m.kernel.cpus[1], True)
    assert pool.nice == -20
    assert all(w.cpu is m.kernel.cpus[1] for w in pool.workers)
    assert m.kvfree.c["fill_runs"] == 1


def test_monitor_detaches_after_kfree_drain_jiffies_and_frees_after_a_grace_period():
    """kvfree_call_rcu() arms monitor_work for KFREE_DRAIN_JIFFIES (HZ/50); the monitor
    hands the batch to queue_rcu_work(); kfree_rcu_work() frees after the GP."""
    m = machine("v5.11")
    fill_cache(m, 0)
    caller(m, 0, [True] * 100, [])
    run_for(m, 10 * MSEC)
    kv = m.kvfree
    assert kv.c["monitor_runs"] == 0 and kv.krc[0].monitor_todo
    run_for(m, 15 * MSEC)  # 20 jiffies (+1 for the wheel) have passed
    assert kv.c["monitor_runs"] == 1 and kv.c["batches_queued"] == 1
    run_for(m, 20 * MSEC)
    assert kv.c["objects_freed"] == 100
    assert m.checks.freed == 100 and m.checks.kernel_early_frees == 0


def test_kfree_rcu_work_recycles_pages_up_to_the_cache_limit():
    """put_cached_bnode() keeps at most rcu_min_cached_objs pages; the rest are freed."""
    m = machine("v5.11")
    fill_cache(m, 0)
    calls = [True] * (3 * KVFREE_BULK_MAX_ENTR)  # three full pages from the cache
    caller(m, 0, calls, [])
    run_for(m, 60 * MSEC)
    kv = m.kvfree
    assert kv.c["cache_hit"] == 3
    assert kv.c["objects_freed"] == len(calls)
    assert kv.krc[0].nr_bkv_objs == 5  # two left + three recycled
    assert kv.c["recycled_pages"] == 3 and kv.c["pages_free"] == 0


def test_v5_11_shrinker_counts_pending_objects_and_kicks_the_monitor():
    """kfree_rcu_shrink_count() sums krcp->count; scan drains via kfree_rcu_drain_unlock()
    only where monitor_todo is set, and never touches the page cache."""
    m = machine("v5.11")
    fill_cache(m, 0)
    caller(m, 0, [True] * 40, [])
    run_for(m, 1 * MSEC)
    count, freed = shrink(m)
    kv = m.kvfree
    assert count == 40 and freed == 40
    assert kv.c["batches_queued"] == 1 and kv.krc[0].count == 0
    assert kv.krc[0].nr_bkv_objs == 4 and kv.c["drained_pages"] == 0


def test_shrink_scan_unsigned_nr_to_scan_visits_every_cpu():
    """sc->nr_to_scan is unsigned long: "<= 0" stops only on exactly 0, so one scan with
    nr_to_scan smaller than a CPU's count wraps and goes on to every CPU."""
    m = machine("v5.11", cpus=4)
    for cpu in range(4):
        fill_cache(m, cpu)
        caller(m, cpu, [True] * 300, [])
    run_for(m, 1 * MSEC)
    shrink(m, nr_to_scan=10)
    assert m.kvfree.c["batches_queued"] == 4


def test_v5_11_monitor_attaches_to_a_pending_batch_and_the_checker_blames_the_kernel():
    """queue_kfree_rcu_work() v5.11: a krwp whose bulk channel is busy can still take the
    rcu_head list; queue_rcu_work() then returns false and those objects ride the older
    GP (fixed by 5da7cb193db3).  The invariant checker records it as the kernel's bug."""
    m = machine("v5.11")
    fill_cache(m, 0)
    kv = m.kvfree
    krcp = kv.krc[0]
    # A first batch of bulk pages goes in flight...
    caller(m, 0, [True] * 10, [])
    run_for(m, 500_000)
    shrink(m)
    assert krcp.krw_arr[0].rcu_work.pending
    # ...then objects on the list (empty the cache first) are attached to it at once.
    krcp.bkvcache.clear()
    krcp.nr_bkv_objs = 0
    m.kernel.mm.free_pages(5, 0, "kvfree_rcu")
    krcp.work_in_progress = True  # no refill: stay on the list
    caller(m, 0, [True] * 5, [])
    run_for(m, 200_000)
    shrink(m)
    assert kv.c["pending_gp_attach"] >= 1
    run_for(m, 50 * MSEC)
    assert m.checks.freed == 15


def test_checks_record_every_snap_on_the_queue():
    """Each chain carries rcu_seq_snap() of its last call: what the checker compares."""
    m = machine("v5.11")
    fill_cache(m, 0)
    caller(m, 0, [True] * 3, [])
    run_for(m, 500_000)
    chain = m.kvfree.krc[0].bkvhead[0]
    assert chain is not None and chain.snap == rcu_seq_snap(m.kernel.rcu.gp_seq)


def test_page_conservation_holds_through_a_busy_run():
    """Pages held by kvfree_rcu's structures equal what the allocator charges to it."""
    m = machine("v5.11")
    caller(m, 0, [True] * 5000, [])
    for _ in range(10):
        run_for(m, 5 * MSEC)
        m.checks.check_pages()
    assert m.kernel.mm.owners["kvfree_rcu"] == m.kvfree.pages_held()


def test_wait_clock_follows_every_object_from_queue_to_free():
    """WaitClock: an object waits in the krcp until the monitor detaches it (about
    KFREE_DRAIN_JIFFIES, 20 ms, for the first ones of a batch), then for at least a
    grace period, then in kfree_rcu_work(); its counts always add up to the objects
    queued and not yet freed, and its queued total to the calls that queued one."""
    m = machine("v5.11")
    caller(m, 0, [True] * 2000, [])
    kv = m.kvfree
    for _ in range(20):
        run_for(m, 5 * MSEC)
        assert kv.wait.n0 + kv.wait.n1 + kv.wait.n2 == kv.objects_queued_now()
    assert kv.objects_queued_now() == 0  # all freed by now
    assert kv.wait.queued == kv.c["calls_bulk"] + kv.c["calls_list"] == 2000
    w = kv.wait.mean_ns()
    # every call comes within the first microseconds: each waits out the monitor's delay
    assert 20 * MSEC <= w["krcp_ns"] <= 22 * MSEC
    assert w["gp_ns"] >= min(m.kernel.rcu.gp_durations)
    assert 0 < w["freeing_ns"] < 1 * MSEC


def test_the_counters_are_exactly_the_named_ones():
    """Counters keeps one field per name of CALIBRATION_COUNTERS + OTHER_COUNTERS, no more,
    and ``c[name]`` reads and writes the same field as ``c.name``."""
    c = Counters()
    names = CALIBRATION_COUNTERS + OTHER_COUNTERS
    assert list(c.as_dict()) == list(names) and not any(c.as_dict().values())
    if hasattr(c, "__dict__"):  # the pure-Python build: no field beyond the names
        assert set(vars(c)) == set(names)
    c["fill_runs"] += 3
    c.fill_runs += 1
    assert c.fill_runs == c["fill_runs"] == 4
