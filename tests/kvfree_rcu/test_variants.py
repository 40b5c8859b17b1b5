"""Each variant behaves as its patch says (kvfree_sim.kvfree_rcu.variants)."""

from __future__ import annotations

import pytest

from kvfree_sim.config import ConfigError
from kvfree_sim.kernel.mm.gfp import GFP_KERNEL, GFP_NOMEMALLOC, GFP_NORETRY, GFP_NOWARN
from kvfree_sim.kernel.mm.vmscan import SHRINK_EMPTY
from kvfree_sim.kvfree_rcu.tree import KVFREE_BULK_MAX_ENTR
from kvfree_sim.kvfree_rcu.variants import VARIANTS, get_variant

from ktest import set_free
from kvtest import MSEC, caller, fill_cache, machine, prime_slab, run_for, shrink


def test_registry_lists_the_story_in_order():
    assert list(VARIANTS) == ["v5.11", "v5.11+v3", "v5.11+v3+backoff", "v5.11+v3+cancel", "v5.13",
                              "v5.14", "v6.1", "v6.1-nodrain", "v6.1-v3"]
    for cls in VARIANTS.values():
        assert cls.description and cls.source


def test_unknown_variant_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown variant 'v5.12'"):
        get_variant("v5.12")


def test_fill_flags_per_version():
    """v5.11: GFP_KERNEL|__GFP_NOWARN; v5.13 on: same flags as the 1-argument path."""
    assert VARIANTS["v5.11"].fill_gfp == GFP_KERNEL | GFP_NOWARN
    for v in ("v5.13", "v5.14", "v6.1"):
        assert VARIANTS[v].fill_gfp == GFP_KERNEL | GFP_NORETRY | GFP_NOMEMALLOC | GFP_NOWARN


# -- the thread's mechanisms at small scale ----------------------------------------------


def _drained_then_kicked(variant: str):
    """Fill CPU 0's cache, let the shrinker drain it, then make CPU 0's next
    2-argument call hit an empty cache at a page boundary."""
    m = machine(variant)
    fill_cache(m, 0)
    count, _ = shrink(m)
    kv = m.kvfree
    assert kv.krc[0].nr_bkv_objs == (5 if variant == "v5.11" else 0)
    paths: list[str] = []
    caller(m, 0, [True], paths)
    return m, paths, count


def test_v3_drains_the_cache_and_the_next_call_refills_it_at_once():
    """v3: scan frees the cached pages; the next 2-argument call kicks the hrtimer and
    the highpri worker refills rcu_min_cached_objs pages right away: the circle."""
    m, paths, count = _drained_then_kicked("v5.11+v3")
    kv = m.kvfree
    assert count == 5  # count_objects includes nr_bkv_objs
    assert kv.c["drained_pages"] == 5 and kv.c["refill_drained_unused"] == 5
    run_for(m, 1 * MSEC)
    assert paths == ["list"]
    assert kv.c["worker_hrtimer"] == 1 and kv.c["worker_delayed"] == 0
    assert kv.c["fill_runs"] == 1 and kv.krc[0].nr_bkv_objs == 5


def test_v5_11_shrinker_leaves_the_cache_alone():
    m, paths, count = _drained_then_kicked("v5.11")
    run_for(m, 1 * MSEC)
    assert count == 0 and paths == ["bulk"] and m.kvfree.c["fill_runs"] == 0


def test_backoff_defers_the_refill_for_hz_after_a_count():
    """v3+backoff: count sets the global flag; the next kick queues delayed work for HZ
    (the timer wheel rounds 1000 jiffies up to a multiple of 64) and clears the flag."""
    m, paths, _ = _drained_then_kicked("v5.11+v3+backoff")
    kv = m.kvfree
    run_for(m, 1 * MSEC)
    assert paths == ["list"]
    assert kv.c["worker_delayed"] == 1 and kv.c["worker_hrtimer"] == 0
    assert not kv.backoff_page_cache_fill
    run_for(m, 999 * MSEC)
    assert kv.c["fill_runs"] == 0 and kv.krc[0].nr_bkv_objs == 0
    run_for(m, 70 * MSEC)
    assert kv.c["fill_runs"] == 1 and kv.krc[0].nr_bkv_objs == 5


def test_cancel_variant_cancels_a_kicked_refill_in_count_and_rearms_it_in_scan():
    """v3+cancel: a refill kicked but not yet run is cancelled by the count and
    restored, through the hrtimer, by the scan that follows."""
    m = machine("v5.11+v3+cancel")
    kv = m.kvfree
    caller(m, 0, [True], [])
    run_for(m, 1000)  # kicked; the hrtimer fires 2 us later
    assert kv.krc[0].hrtimer.active()
    shrink(m)
    assert kv.c["cancelled_refills"] == 1
    assert kv.c["worker_hrtimer"] == 2  # the kick and its restoration
    run_for(m, 1 * MSEC)
    assert kv.c["fill_runs"] == 1 and kv.krc[0].nr_bkv_objs == 5


def test_v5_13_one_argument_call_allocates_a_page_inline():
    """add_ptr_to_bulk_krc_lock(can_alloc = !head): an empty cache makes the 1-argument
    form call __get_free_page(GFP_KERNEL|__GFP_NORETRY|...) instead of falling back."""
    m = machine("v5.13")
    paths: list[str] = []
    caller(m, 0, [False, True], paths)
    run_for(m, 500_000)
    kv = m.kvfree
    assert paths == ["bulk", "bulk"]
    assert kv.c["direct_alloc"] == 1 and kv.c["head_fallback"] == 0 and kv.c["worker_hrtimer"] == 0


def test_v5_13_failed_inline_allocation_falls_back_to_synchronize_rcu():
    """If __get_free_page() fails too, the 1-argument caller does synchronize_rcu() +
    kvfree() itself: it sleeps a full grace period."""
    m = machine("v5.13", memory="64M")
    prime_slab(m, 0, 1)
    set_free(m.kernel, 0)
    paths: list[str] = []
    t = caller(m, 0, [False], paths)
    run_for(m, 1 * MSEC)
    kv = m.kvfree
    assert kv.c["direct_alloc_fail"] == 1
    assert not paths and not t.runnable  # asleep in synchronize_rcu()
    run_for(m, 20 * MSEC)
    assert paths == ["inline"] and kv.c["inline_kvfree"] == 1
    assert m.checks.freed == 1


def test_refill_under_pressure_enters_reclaim_and_calls_the_shrinker():
    """Below the min watermark the refill's __get_free_page() goes to direct reclaim,
    which calls the kvfree_rcu shrinker from the kworker (v5.11: GFP_KERNEL retries)."""
    m = machine("v5.11", memory="64M")
    prime_slab(m, 0, 1)
    set_free(m.kernel, 10)
    caller(m, 0, [True], [])
    run_for(m, 5 * MSEC)
    kv = m.kvfree
    assert m.kernel.vmscan.stats["direct_reclaims"] >= 1
    assert kv.c["shrink_count"] >= 1
    pool = m.kernel.worker_pool(m.kernel.cpus[0], True)
    assert any(w.memalloc or not w.runnable for w in pool.workers)


def test_v5_14_backoff_is_per_cpu_and_fills_one_page_after_the_delay():
    """v5.14: count sets backoff on every CPU; a kick then queues delayed work on
    system_wq for rcu_delay_page_cache_fill_msec, which allocates 1 page."""
    m = machine("v5.14", bootargs="rcuscale.kfree_rcu_test=1 rcutree.rcu_delay_page_cache_fill_msec=100")
    kv = m.kvfree
    shrink(m)
    assert all(k.backoff_page_cache_fill for k in kv.krc)
    caller(m, 0, [True], [])
    run_for(m, 50 * MSEC)
    assert kv.c["worker_delayed"] == 1 and kv.c["fill_runs"] == 0
    run_for(m, 100 * MSEC)
    assert kv.c["fill_runs"] == 1 and kv.c["fill_pages"] == 1
    assert not kv.krc[0].backoff_page_cache_fill


def test_v6_1_flood_detection_pulls_the_monitor_in():
    """schedule_delayed_monitor_work(): 5*HZ normally, 1 jiffy once count reaches
    KVFREE_BULK_MAX_ENTR (mod_delayed_work() on the pending monitor)."""
    m = machine("v6.1")
    fill_cache(m, 0)
    caller(m, 0, [True] * 10, [])
    run_for(m, 100 * MSEC)
    kv = m.kvfree
    assert kv.c["monitor_runs"] == 0  # 5 s away
    caller(m, 0, [True] * KVFREE_BULK_MAX_ENTR, [])
    run_for(m, 5 * MSEC)
    assert kv.c["monitor_runs"] == 1 and kv.c["batches_queued"] == 1


def test_v6_1_shrink_count_returns_shrink_empty_when_nothing_is_pending():
    m = machine("v6.1")
    count, _ = shrink(m)
    assert count == SHRINK_EMPTY


def test_v6_1_monitor_waits_for_a_wholly_free_batch():
    """6.1.35+ (need_wait_for_krwp_work()): no attaching to a busy batch, so no
    object rides an older grace period."""
    m = machine("v6.1")
    fill_cache(m, 0)
    caller(m, 0, [True] * 10, [])
    run_for(m, 500_000)
    shrink(m)
    shrink(m)
    caller(m, 0, [True] * 10, [])
    run_for(m, 500_000)
    shrink(m)
    assert m.kvfree.c["pending_gp_attach"] == 0
    run_for(m, 50 * MSEC)
    assert m.checks.kernel_early_frees == 0 and m.checks.freed == 20


def test_v6_1_nodrain_and_v3_patches():
    """nodrain.patch: count/scan leave the cache; v3.patch: drain, no backoff, full refill."""
    m = machine("v6.1-nodrain")
    fill_cache(m, 0)
    count, _ = shrink(m)
    assert count == SHRINK_EMPTY and m.kvfree.krc[0].nr_bkv_objs == 5
    assert not m.kvfree.krc[0].backoff_page_cache_fill
    m, paths, count = _drained_then_kicked("v6.1-v3")
    run_for(m, 1 * MSEC)
    kv = m.kvfree
    assert count == 5 and kv.c["drained_pages"] == 5
    assert kv.c["worker_hrtimer"] == 1 and kv.c["worker_delayed"] == 0
    assert kv.c["fill_pages"] == 5


def test_v6_1_fill_stops_at_the_first_failed_allocation():
    """093590c16b44: ``if (!bnode) break;`` — one failure ends the fill."""
    m = machine("v6.1", memory="64M")
    prime_slab(m, 0, 1)
    set_free(m.kernel, 0)
    caller(m, 0, [True], [])
    run_for(m, 5 * MSEC)
    kv = m.kvfree
    assert kv.c["fill_runs"] == 1 and kv.c["fill_fail"] == 1 and kv.c["fill_pages"] == 0


@pytest.mark.parametrize("variant, panics", [("v5.11", True), ("v5.13", False)])
def test_refill_below_min_without_progress_oom_kills_before_v5_13(variant: str, panics: bool):
    """fill_page_cache_func() below the min watermark, with nothing reclaimable: v5.11's
    GFP_KERNEL|__GFP_NOWARN goes from one no-progress reclaim round to
    should_reclaim_retry() (no reclaimable pages: no retry) and __alloc_pages_may_oom();
    rcuscale's guest has no task to kill, so the kernel panics, with the kworker named as
    in the 5.11-rc3 report.  v5.13's __GFP_NORETRY|__GFP_NOMEMALLOC gives up after the
    round instead: the page is not filled."""
    m = machine(variant, memory="64M")
    prime_slab(m, 0, 1)
    set_free(m.kernel, 10)
    caller(m, 0, [True], [])
    run_for(m, 20 * MSEC)
    invoked = [text for _, text in m.kernel.console if "invoked oom-killer" in text]
    if panics:
        assert m.kernel.panicked == "System is deadlocked on memory"
        assert invoked and invoked[0].startswith("kworker/0:")
        assert "H invoked oom-killer: gfp_mask=0x2cc0(GFP_KERNEL|__GFP_NOWARN), order=0" in invoked[0]
    else:
        assert m.kernel.panicked is None and not invoked
        assert m.kvfree.c["fill_fail"] >= 1
