"""Reclaim (src/kvfree_sim/kernel/mm/vmscan.py) against mm/vmscan.c: do_shrink_slab() in v5.11
and in v6.1 (the v5.13 deferred-work rework), direct reclaim and kswapd."""

from __future__ import annotations

import pytest

from kvfree_sim.kernel.mm.gfp import GFP_KERNEL, GFP_NOWAIT, __GFP_NORETRY
from kvfree_sim.kernel.mm.vmscan import SHRINK_BATCH, SHRINK_EMPTY, ShrinkControl, Shrinker
from kvfree_sim.kernel.mm.page_alloc import WMARK_HIGH, WMARK_LOW, WMARK_MIN, ZONE_NORMAL

from ktest import (
    MSEC, SEC, FakeShrinker, MiB, RecordingTracer, claim_all_pageblocks, drive, set_free, sleep_forever, spawn,
)


@pytest.fixture
def shrink(make_kernel):
    """``shrink(version)`` -> (call, fake, shrinker): ``call(priority)`` runs do_shrink_slab()
    once for a default shrinker (batch 0 -> SHRINK_BATCH 128, seeks DEFAULT_SEEKS 2)."""

    def make(mm_version: str, freeable: int):
        kernel = make_kernel(mm_version=mm_version, start=False)
        me = spawn(kernel, "reclaimer", sleep_forever, cpu=0, wake=False)
        fake = FakeShrinker(freeable)
        s = Shrinker("fake", fake.count, fake.scan)

        def call(priority: int) -> int:
            fake.scans.clear()
            return kernel.vmscan.do_shrink_slab(ShrinkControl(GFP_KERNEL, kernel.cpus[0], me), s, priority)

        return call, fake, s

    return make


# (freeable, priority, scan calls, nr_deferred after) - worked out by hand.
# delta = (freeable >> priority) * 4 / seeks(2).
FRESH_CASES = [
    # 1000 >> 2 = 250, delta 500; total_scan 500 -> 3 calls of 128 (384), 116 left < 128 and
    # < freeable: stop; deferred 500 - 384 = 116 (both versions)
    (1000, 2, [128, 128, 128], 116),
    # delta 100; 100 < 128 but 100 >= freeable (50): one call of min(128, 100) = 100
    (50, 0, [100], 0),
    # 10000 >> 12 = 2, delta 4: 4 < 128 and < 10000: no call; all 4 deferred
    (10000, 12, [], 4),
    # delta 2000 (cap 2 * freeable = 2000): 15 calls (1920), 80 deferred
    (1000, 0, [128] * 15, 80),
]


@pytest.mark.parametrize("mm_version", ["5.11", "6.1"])
@pytest.mark.parametrize("freeable, priority, scans, deferred", FRESH_CASES)
def test_do_shrink_slab_batches(shrink, mm_version, freeable, priority, scans, deferred) -> None:
    """do_shrink_slab() (mm/vmscan.c v5.11 and v6.1): scan_objects() is called with
    nr_to_scan = min(SHRINK_BATCH, total_scan) while total_scan >= batch_size ||
    total_scan >= freeable; with nothing deferred before, both versions agree."""
    call, fake, s = shrink(mm_version, freeable)
    assert call(priority) == sum(scans)
    assert fake.scans == scans
    assert s.nr_deferred == deferred


def test_empty_shrinker_is_not_scanned(shrink) -> None:
    """count_objects() returning 0 or SHRINK_EMPTY: do_shrink_slab() returns it at once."""
    call, fake, s = shrink("6.1", 0)
    assert call(0) == 0 and fake.scans == []
    fake.freeable = SHRINK_EMPTY
    assert call(0) == SHRINK_EMPTY and fake.scans == []
    assert s.nr_deferred == 0


@pytest.mark.parametrize("mm_version, scans_after_stop, deferred_after", [
    # v5.11: nr = 2000, delta = (1000 >> 12) * 2 = 0, total_scan = 2000, next_deferred = 2000;
    # delta < freeable/4 -> total_scan = min(2000, 1000/2) = 500 -> 3 calls (384);
    # next_deferred = 2000 - 384 = 1616
    ("5.11", [128, 128, 128], 1616),
    # v6.1: total_scan = (2000 >> 12) + 0 = 0 -> no call;
    # next_deferred = min(max(2000 + 0 - 0, 0), 2 * 1000) = 2000
    ("6.1", [], 2000),
])
def test_deferred_work_differs_between_versions(shrink, mm_version, scans_after_stop, deferred_after) -> None:
    """A shrinker that returned SHRINK_STOP leaves its work deferred: freeable 1000 at
    priority 0 gives delta 2000, the first call stops, and all 2000 are deferred
    (v5.11: next_deferred = total_scan - scanned; v6.1: min(nr + delta - scanned,
    2 * freeable)).  The next call at priority 12 then differs: v5.11 adds all of
    nr_deferred (clamped to freeable/2 when delta < freeable/4), v6.1 only
    nr_deferred >> priority."""
    call, fake, s = shrink(mm_version, 1000)
    fake.stop = True
    assert call(0) == 0
    assert fake.scans == [128]
    assert s.nr_deferred == 2000
    fake.stop = False
    call(12)
    assert fake.scans == scans_after_stop
    assert s.nr_deferred == deferred_after


@pytest.mark.parametrize("mm_version, deferred", [
    # v5.11: call 1: total 200 (delta 200), 1 call, deferred 72; call 2: nr 72, total 272,
    # next_deferred 272, capped total 200 -> 1 call -> 144; call 3: 344 - 128 = 216
    ("5.11", [72, 144, 216]),
    # v6.1: 72; min(72 + 200 - 128, 200) = 144; min(144 + 200 - 128, 200) = 200
    ("6.1", [72, 144, 200]),
])
def test_v6_1_caps_deferred_work_at_twice_freeable(shrink, mm_version, deferred) -> None:
    """freeable 100 at priority 0, three times: delta = 200, one call of 128 each time
    (72 left is < 128 and < 100); the deferred count grows without bound in v5.11 but
    is capped at 2 * freeable in v6.1."""
    call, fake, s = shrink(mm_version, 100)
    got = []
    for _ in range(3):
        call(0)
        assert fake.scans == [128]
        got.append(s.nr_deferred)
    assert got == deferred


def test_shrink_slab_calls_every_registered_shrinker(make_kernel) -> None:
    """shrink_slab() walks shrinker_list and sums what do_shrink_slab() freed."""
    kernel = make_kernel(start=False)
    me = spawn(kernel, "reclaimer", sleep_forever, cpu=0, wake=False)
    fakes = [FakeShrinker(1000), FakeShrinker(0), FakeShrinker(50)]
    for i, f in enumerate(fakes):
        kernel.register_shrinker(f"s{i}", f.count, f.scan)
    assert kernel.vmscan.shrink_slab(me, GFP_KERNEL, 0) == 1920 + 100  # see FRESH_CASES
    assert [len(f.scans) for f in fakes] == [15, 0, 1]


# -- direct reclaim and kswapd --------------------------------------------------------------


def reclaim_priorities(tracer: RecordingTracer, task) -> list[int]:
    """Priorities of the shrink_slab() calls made by ``task`` (trace_mm_shrink_slab_start)."""
    return [args[-1] for args in tracer.calls("mm_shrink_slab_start") if args[2].task is task]


@pytest.mark.parametrize("mm_version", ["5.11", "6.1"])
def test_direct_reclaim_shrinks_at_priorities_12_to_0(make_kernel, mm_version: str) -> None:
    """do_try_to_free_pages(): sc->priority runs from DEF_PRIORITY (12) down to 0,
    shrink_zones() -> shrink_node() -> shrink_slab(..., sc->priority) each time, as
    long as fewer than nr_to_reclaim (SWAP_CLUSTER_MAX) pages were reclaimed."""
    tracer = RecordingTracer("mm_shrink_slab_start")
    kernel = make_kernel(mm_version=mm_version, tracer=tracer)
    fake = FakeShrinker(10000)
    kernel.register_shrinker("fake", fake.count, fake.scan)
    kernel.sim.run(until=1 * MSEC)
    set_free(kernel, 600)

    def body(me):
        yield from kernel.mm.alloc_pages(me, GFP_KERNEL | __GFP_NORETRY, 0, "test")

    t = spawn(kernel, "allocator", body, cpu=0)
    kernel.sim.run(until=100 * MSEC)
    assert reclaim_priorities(tracer, t) == list(range(12, -1, -1))


def test_kswapd_shrinks_at_priorities_12_to_1(make_kernel) -> None:
    """balance_pgdat(): sc.priority from DEF_PRIORITY down while >= 1; with nothing
    reclaimed raise_priority stays true and each pass lowers it by one."""
    tracer = RecordingTracer("mm_shrink_slab_start")
    kernel = make_kernel(tracer=tracer)
    fake = FakeShrinker(10000)
    kernel.register_shrinker("fake", fake.count, fake.scan)
    kernel.sim.run(until=1 * MSEC)
    set_free(kernel, 1000)  # below high (1056): unbalanced
    kernel.vmscan.wakeup_kswapd(None, 0)
    kernel.sim.run(until=500 * MSEC)
    prios = reclaim_priorities(tracer, kernel.vmscan.kswapd)
    assert prios[:12] == list(range(12, 0, -1))


def test_kswapd_becomes_hopeless_after_16_failed_runs(make_kernel) -> None:
    """balance_pgdat() counts pgdat->kswapd_failures++ when a run reclaims nothing;
    kswapd_try_to_sleep() does not sleep while unbalanced, so kswapd runs again at
    once, until kswapd_failures >= MAX_RECLAIM_RETRIES (16): then
    prepare_kswapd_sleep() lets it sleep and wakeup_kswapd() no longer wakes it."""
    kernel = make_kernel()
    kernel.sim.run(until=1 * MSEC)
    set_free(kernel, 800)
    me = spawn(kernel, "current", sleep_forever, cpu=0, wake=False)
    assert drive(kernel.mm.alloc_pages(me, GFP_NOWAIT, 0, "test"))  # slow path: wakes kswapd
    kernel.sim.run(until=2 * SEC)
    vm = kernel.vmscan
    assert vm.kswapd_failures == 16
    assert vm.stats["kswapd_runs"] == 16
    assert vm.kswapd_sleeping and not vm.kswapd.runnable
    wakeups = kernel.mm.stats["kswapd_wakeups"]
    assert drive(kernel.mm.alloc_pages(me, GFP_NOWAIT, 0, "test"))
    kernel.sim.run(until=4 * SEC)
    assert kernel.mm.stats["kswapd_wakeups"] == wakeups
    assert vm.stats["kswapd_runs"] == 16


def test_slab_pages_a_shrinker_frees_count_as_reclaim_progress(make_kernel) -> None:
    """__free_slab() (mm/slub.c v6.1) adds the pages of a slab freed by the reclaiming
    task to current->reclaim_state->reclaimed_slab, and shrink_node() adds those to
    sc->nr_reclaimed (mm/vmscan.c v6.1, also v5.11).  A shrinker that frees 5 whole
    kmalloc-2k slabs (40 pages) per scan call, called 4 times at priority 12
    (freeable 2^20: delta = (2^20 >> 12) * 2 = 512, 4 batches of 128), reclaims 160
    pages >= SWAP_CLUSTER_MAX: do_try_to_free_pages() stops after priority 12, and the
    __GFP_NORETRY request succeeds after that one reclaim (600 + 160 free > min 704)."""
    tracer = RecordingTracer("mm_shrink_slab_start")
    kernel = make_kernel(ncpus=2, tracer=tracer)
    kernel.sim.run(until=1 * MSEC)
    claim_all_pageblocks(kernel)
    cache = kernel.mm.kmalloc_cache(2048)
    objs = cache.cpus[1]
    cache.refill_fast(objs, 20 * 16)
    objs.take(20 * 16)
    set_free(kernel, 600)
    fake = FakeShrinker(1 << 20)

    def scan(sc: ShrinkControl) -> int:
        fake.scans.append(sc.nr_to_scan)
        n = min(5 * 16, cache.inuse)
        objs.free(n, None)
        return n

    kernel.register_shrinker("slab-freeing", fake.count, scan)
    result: list[bool] = []

    def body(me):
        result.append((yield from kernel.mm.alloc_pages(me, GFP_KERNEL | __GFP_NORETRY, 0, "test")))

    t = spawn(kernel, "allocator", body, cpu=0)
    kernel.sim.run(until=100 * MSEC)
    assert reclaim_priorities(tracer, t) == [12]
    assert fake.scans[:4] == [128] * 4
    assert result == [True]


def test_a_zone_dma_kept_back_for_the_zones_above_is_not_balanced(make_kernel) -> None:
    """pgdat_balanced() (mm/vmscan.c v5.11, v6.1) checks each zone with
    zone_watermark_ok_safe(zone, order, high, highest_zoneidx): ZONE_DMA's
    lowmem_reserve[ZONE_NORMAL] (DMA32's managed pages / 256) counts.  GFP_KERNEL
    requests leave DMA at about min + that reserve, above DMA's bare high watermark: if
    the reserve were left out, kswapd would never wake once DMA32 ran low."""
    kernel = make_kernel(memory=512 * MiB, layout={"zone_dma": 1, "firmware_reserved_kb": 528})
    kernel.sim.run(until=1 * MSEC)
    dma, dma32 = kernel.mm.zones
    reserve = dma.lowmem_reserve[ZONE_NORMAL]
    assert reserve == dma32.managed // 256
    mm = kernel.mm
    for z, free in ((dma32, dma32.wmark(WMARK_MIN)), (dma, dma.wmark(WMARK_HIGH) + reserve)):
        mm.owners["test:filler"] = mm.owners.get("test:filler", 0) + z.free - free
        z.free = free
    assert dma.free > dma.wmark(WMARK_HIGH)
    assert not kernel.vmscan.pgdat_balanced(0)
    dma.free += 1
    assert kernel.vmscan.pgdat_balanced(0)
    # At DMA's low watermark + reserve the fast path fails in both zones: the slow path
    # wakes kswapd, then takes a page from DMA at its min watermark + reserve.
    low = dma.wmark(WMARK_LOW) + reserve
    mm.owners["test:filler"] += dma.free - low
    dma.free = low
    me = spawn(kernel, "current", sleep_forever, cpu=0, wake=False)
    assert drive(mm.alloc_pages(me, GFP_NOWAIT, 0, "test:filler"))
    assert mm.stats["kswapd_wakeups"] == 1


def test_scans_that_change_nothing_are_repeated_in_closed_form(make_kernel) -> None:
    """do_shrink_slab() runs its batches at one instant.  With ``scan_state``, once a
    call leaves the state as it found it, the further full batches are accounted at once
    (``repeat_scan``): same freed, deferred work and CPU time as calling each one."""
    def run(shortcut: bool) -> tuple[int, int, int, list[int], int]:
        kernel = make_kernel(ncpus=1)
        kernel.sim.run(until=1 * MSEC)
        items = [5]  # the first scan frees these; later ones find nothing
        calls: list[int] = []

        def scan(sc: ShrinkControl) -> int:
            calls.append(sc.nr_to_scan)
            sc.cost_ns += 100
            got, items[0] = items[0], 0
            return got + 7  # what it reports: its own items plus 7 it cannot free

        def repeat(k: int, freed: int) -> None:
            calls.extend([SHRINK_BATCH] * k)

        kernel.register_shrinker("idempotent", lambda sc: 1 << 20, scan,
                                 (lambda: items[0]) if shortcut else None, repeat)
        me = spawn(kernel, "current", sleep_forever, cpu=0, wake=False)
        sc = ShrinkControl(GFP_KERNEL, me.cpu, me)
        s = kernel.vmscan.shrinkers[-1]
        freed = kernel.vmscan.do_shrink_slab(sc, s, 10)
        return freed, s.nr_deferred, me.debt, calls, len(calls)

    fast, slow = run(True), run(False)
    assert fast == slow
    assert slow[4] == ((1 << 20) >> 10) * 4 // 2 // SHRINK_BATCH  # delta / batch calls
