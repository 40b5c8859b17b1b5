"""The page allocator (src/kvfree_sim/kernel/mm/page_alloc.py) against mm/page_alloc.c and
mm/vmscan.c.  v5.11 is the kernel.org text; "6.1" is Linux 6.1.192, the kernel the
project is calibrated on (../shared/calibration), which carries some stable backports
(noted where a test depends on one).

Worked watermark examples: /work/notes/mm-v5.11-v6.1.md section 2.1.
"""

from __future__ import annotations

import pytest

from kvfree_sim.kernel.mm.gfp import (
    GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT, __GFP_HIGH, __GFP_KSWAPD_RECLAIM, __GFP_NOMEMALLOC, __GFP_NORETRY,
    __GFP_NOWARN, __GFP_RETRY_MAYFAIL,
)
from kvfree_sim.kernel.mm.page_alloc import (
    WMARK_HIGH, WMARK_LOW, WMARK_MIN, ZONE_DMA, ZONE_DMA32, ZONE_NORMAL,
)
from kvfree_sim.kernel.sched import Segments

from ktest import (
    MSEC, TEST_MANAGED_PAGES, MiB, claim_all_pageblocks, drive, fixed_zones, hold, set_free, sleep_forever, spawn,
)


@pytest.fixture(params=["5.11", "6.1"])
def mm_version(request) -> str:
    return request.param


@pytest.fixture
def booted(make_kernel, mm_version: str):
    """A 1-CPU 512 MiB kernel (124000 managed pages) after boot: kswapd asleep."""
    kernel = make_kernel(ncpus=1, mm_version=mm_version)
    kernel.sim.run(until=1 * MSEC)
    assert kernel.vmscan.kswapd_sleeping
    return kernel


@pytest.fixture
def counted(make_kernel, mm_version: str):
    """``booted`` with the counted page allocator (free memory unfragmented)."""
    kernel = make_kernel(ncpus=1, mm_version=mm_version, layout={"buddy_allocator": 0})
    kernel.sim.run(until=1 * MSEC)
    return kernel


def current(kernel):
    """A kthread to allocate on behalf of (it never runs)."""
    return spawn(kernel, "current", sleep_forever, cpu=0, wake=False)


def alloc_now(kernel, gfp: int, order: int = 0, task=None) -> bool:
    """__alloc_pages() of a request that cannot sleep (no direct reclaim happens)."""
    return drive(kernel.mm.alloc_pages(task or current(kernel), gfp, order, "test"))


def alloc_in_task(kernel, gfp: int, order: int = 0, until: int = 2000 * MSEC, **task_kw) -> list[bool]:
    """__alloc_pages() from a kthread's context, run to its end (or to a panic)."""
    result: list[bool] = []

    def body(me):
        ok = yield from kernel.mm.alloc_pages(me, gfp, order, "test")
        result.append(ok)

    spawn(kernel, "allocator", body, cpu=0, **task_kw)
    kernel.sim.run(until=until)
    return result


# -- layout and watermarks -------------------------------------------------------------


def test_512m_single_zone_watermarks(booted) -> None:
    """__setup_per_zone_wmarks() (v5.11 and v6.1), worked example (a): one lowmem zone of
    124000 managed pages: min_free_kbytes = int_sqrt(124000 * 4 * 16 = 7936000) = 2817;
    pages_min = 2817 >> 2 = 704; dist = max(704 >> 2 = 176, 124000 * 10 / 10000 = 124)
    = 176: min 704, low 880, high 1056; calculate_totalreserve_pages() = 1056."""
    mm = booted.mm
    assert [(z.idx, z.managed) for z in mm.zones] == [(ZONE_DMA32, TEST_MANAGED_PAGES)]
    assert mm.min_free_kbytes == 2817
    z = mm.zones[0]
    assert z.watermark == [704, 880, 1056]
    assert mm.totalreserve_pages == 1056
    assert mm.nr_free_pages() == TEST_MANAGED_PAGES


@pytest.mark.parametrize("zones, mfk, marks, reserve, totalreserve", [
    # (b) 13052 pages: int_sqrt(13052 * 64 = 835328) = 913 kB -> 228; dist max(57, 13) = 57
    ([(ZONE_DMA32, 13052)], 913, [[228, 285, 342]], [[0, 0, 0]], 342),
    # (c) 13052 + 124000: int_sqrt(137052 * 64 = 8771328) = 2961 kB -> 740 pages;
    # 740 * 13052 / 137052 = 70, dist max(17, 13) = 17; 740 * 124000 / 137052 = 669,
    # dist max(167, 124) = 167; lowmem_reserve DMA32[Normal] = 124000 / 256 = 484;
    # totalreserve = (104 + 484) + 1003 = 1591
    ([(ZONE_DMA32, 13052), (ZONE_NORMAL, 124000)], 2961, [[70, 87, 104], [669, 836, 1003]],
     [[0, 0, 484], [0, 0, 0]], 1591),
])
def test_watermarks_of_known_zone_sizes(booted, zones, mfk, marks, reserve, totalreserve) -> None:
    """init_per_zone_wmark_min() / __setup_per_zone_wmarks() /
    setup_per_zone_lowmem_reserve() / calculate_totalreserve_pages() (mm/page_alloc.c,
    v5.11 and v6.1), worked examples (b) and (c)."""
    mm = fixed_zones(booted, zones)
    assert mm.min_free_kbytes == mfk
    assert [z.watermark for z in mm.zones] == marks
    assert [z.lowmem_reserve for z in mm.zones] == reserve
    assert mm.totalreserve_pages == totalreserve


def test_min_free_kbytes_is_clamped(booted) -> None:
    """calculate_min_free_kbytes(): clamp(int_sqrt(lowmem_kbytes * 16), 128, 262144):
    1000 pages -> int_sqrt(64000) = 252; 100 pages -> int_sqrt(6400) = 80 -> 128;
    64 GiB of pages -> int_sqrt(2^26 KiB * 16) = 32768 (unclamped); 8 TiB ->
    int_sqrt(2^33 * 16) = 370727 -> 262144."""
    cases = [(1000, 252), (100, 128), (16 << 20, 32768), (1 << 31, 262144)]
    for pages, expected in cases:
        assert fixed_zones(booted, [(ZONE_NORMAL, pages)]).min_free_kbytes == expected


def test_the_kernel_keeps_memmap_image_and_percpu_areas(make_kernel) -> None:
    """The guest's managed pages are its RAM less the memmap (64-byte struct page per
    4 KiB page, SPARSEMEM_VMEMMAP populated per 128 MiB section), the kernel image and
    boot reservations, and the per-CPU first chunk of each possible CPU
    (pcpu_embed_first_chunk()).  600 MiB = 153600 pages in 5 sections: memmap 5 * 512
    = 2560 pages; 5024 pages of image; 4 CPUs * 216 KiB = 216 pages of per-CPU areas:
    153600 - 2560 - 5024 - 216 = 145800."""
    kernel = make_kernel(ncpus=4, memory=600 * MiB, layout={"percpu_kb_per_cpu": 216}, start=False)
    assert [(z.idx, z.present, z.managed) for z in kernel.mm.zones] == [(ZONE_DMA32, 153600, 145800)]


def test_zone_dma_is_the_first_16_mib(make_kernel) -> None:
    """x86 CONFIG_ZONE_DMA: ZONE_DMA spans the first 16 MiB (MAX_DMA_PFN = 4096 pages);
    firmware-reserved pages there are not present."""
    kernel = make_kernel(memory=512 * MiB, layout={"zone_dma": 1, "firmware_reserved_kb": 528}, start=False)
    dma = kernel.mm.zones[0]
    assert (dma.idx, dma.present) == (ZONE_DMA, 4096 - 528 // 4)
    assert kernel.mm.zones[1].idx == ZONE_DMA32


def test_si_mem_available_is_free_minus_totalreserve(booted) -> None:
    """si_mem_available() (v5.11 and v6.1): free - totalreserve_pages + page cache and
    reclaimable slab (none here), floored at 0."""
    mm = booted.mm
    assert mm.si_mem_available() == TEST_MANAGED_PAGES - 1056
    set_free(booted, 5000)
    assert mm.si_mem_available() == 5000 - 1056
    set_free(booted, 1000)
    assert mm.si_mem_available() == 0


# -- the fast path -----------------------------------------------------------------------


@pytest.mark.parametrize("order, free, ok", [(0, 881, True), (0, 880, False), (3, 888, True), (3, 887, False)])
def test_fast_path_needs_free_above_low(booted, order: int, free: int, ok: bool) -> None:
    """__alloc_pages(): the first get_page_from_freelist() uses ALLOC_WMARK_LOW;
    zone_watermark_fast()/__zone_watermark_ok(): free - (2^order - 1) > low (880)."""
    set_free(booted, free)
    assert bool(booted.mm.alloc_fast(1, order, GFP_KERNEL, "test")) is ok


def test_fast_path_success_does_not_wake_kswapd(booted) -> None:
    """Only the slow path wakes kswapd (wake_all_kswapds()); a fast-path success between
    the low and high watermarks does not (no pageblock steal here)."""
    set_free(booted, 1000)
    assert booted.mm.alloc_fast(1, 0, GFP_KERNEL, "test") == 1
    booted.sim.run(until=50 * MSEC)
    assert booted.mm.stats["kswapd_wakeups"] == 0
    assert booted.vmscan.stats["kswapd_runs"] == 0


def test_fallback_zone_must_keep_its_lowmem_reserve(booted) -> None:
    """A GFP_KERNEL request (highest_zoneidx Normal) falling back to DMA32 needs
    free(DMA32) > low + lowmem_reserve[Normal] = 87 + 484 = 571 (example (c);
    __zone_watermark_ok())."""
    booted.mm = fixed_zones(booted, [(ZONE_DMA32, 13052), (ZONE_NORMAL, 124000)])
    set_free(booted, 572)
    assert booted.mm.zones[1].free == 0 and booted.mm.zones[0].free == 572
    assert booted.mm.alloc_fast(1, 0, GFP_KERNEL, "test") == 1
    assert booted.mm.alloc_fast(1, 0, GFP_KERNEL, "test") == 0


# -- GFP semantics in the slow path ----------------------------------------------------------


# Effective minimum for the min-watermark attempt (min = 704), __zone_watermark_ok():
# plain: 704; __GFP_HIGH: 704 - 352 = 352; GFP_ATOMIC (HIGH and HARDER/NON_BLOCK): 352 - 88 = 264.
THRESHOLDS = [
    (GFP_NOWAIT, 704),
    (GFP_NOWAIT | __GFP_NOWARN, 704),
    (GFP_ATOMIC, 264),
    (GFP_ATOMIC | __GFP_NOMEMALLOC, 352),  # no ALLOC_HARDER (v5.11) / ALLOC_NON_BLOCK (6.1.192)
]


@pytest.mark.parametrize("gfp, threshold", THRESHOLDS)
def test_nonblocking_requests_fail_at_their_threshold_without_reclaim(booted, gfp: int, threshold: int) -> None:
    """__alloc_pages_slowpath(): gfp_to_alloc_flags() then get_page_from_freelist() at
    ALLOC_WMARK_MIN; without __GFP_DIRECT_RECLAIM it goes to nopage: no direct reclaim,
    no retry.  GFP_ATOMIC reaches min * (1 - 1/2) * (1 - 1/4) = 37.5 % of min."""
    set_free(booted, threshold + 1)
    assert alloc_now(booted, gfp) is True
    set_free(booted, threshold)
    assert alloc_now(booted, gfp) is False
    assert booted.vmscan.stats["direct_reclaims"] == 0
    assert booted.oom.invocations == 0


def test_gfp_high_without_direct_reclaim_in_6_1(booted, mm_version: str) -> None:
    """__GFP_HIGH on a non-blocking request: v5.11 gfp_to_alloc_flags() gives ALLOC_HIGH
    only (ALLOC_HARDER needs __GFP_ATOMIC): 352.  6.1.192 (the v6.3 reserves series,
    backported: gfp_to_alloc_flags(gfp_mask, order)) sets ALLOC_MIN_RESERVE and, for
    !__GFP_DIRECT_RECLAIM, ALLOC_NON_BLOCK, which __zone_watermark_ok() honours under
    MIN_RESERVE: 352 - 88 = 264."""
    threshold = {"5.11": 352, "6.1": 264}[mm_version]
    set_free(booted, threshold + 1)
    assert alloc_now(booted, GFP_NOWAIT | __GFP_HIGH) is True
    set_free(booted, threshold)
    assert alloc_now(booted, GFP_NOWAIT | __GFP_HIGH) is False


def test_slow_path_wakes_kswapd(booted) -> None:
    """__alloc_pages_slowpath(): ALLOC_KSWAPD -> wake_all_kswapds() -> wakeup_kswapd():
    the node is below its high watermark, kswapd is asleep and not hopeless."""
    set_free(booted, 800)
    assert alloc_now(booted, GFP_NOWAIT) is True  # fast path fails (800 <= 880), min passes
    assert booted.mm.stats["kswapd_wakeups"] == 1
    booted.sim.run(until=100 * MSEC)
    assert booted.vmscan.stats["kswapd_runs"] >= 1


def test_pf_memalloc_ignores_watermarks_unless_nomemalloc(booted) -> None:
    """__gfp_pfmemalloc_flags(): a PF_MEMALLOC task gets ALLOC_NO_WATERMARKS on the
    retry; __GFP_NOMEMALLOC forbids it; PF_MEMALLOC tasks never direct-reclaim."""
    set_free(booted, 100)
    me = current(booted)
    me.memalloc = True
    assert alloc_now(booted, GFP_KERNEL, task=me) is True
    assert alloc_now(booted, GFP_KERNEL | __GFP_NOMEMALLOC, task=me) is False
    assert booted.vmscan.stats["direct_reclaims"] == 0


def test_noretry_reclaims_once_then_fails_without_oom(booted) -> None:
    """__GFP_NORETRY: after one __alloc_pages_direct_reclaim() the slow path goes to
    nopage (v5.11 and v6.1): no retry loop and no OOM killer."""
    set_free(booted, 600)
    assert alloc_in_task(booted, GFP_KERNEL | __GFP_NORETRY) == [False]
    assert booted.mm.stats["allocstall"] == 1
    assert booted.oom.invocations == 0 and booted.panicked is None


def test_retry_mayfail_fails_without_oom(booted) -> None:
    """__GFP_RETRY_MAYFAIL: __alloc_pages_may_oom() skips out_of_memory(), so when
    reclaim cannot help the request fails instead of killing."""
    set_free(booted, 600)
    assert alloc_in_task(booted, GFP_KERNEL | __GFP_RETRY_MAYFAIL) == [False]
    assert booted.mm.stats["allocstall"] >= 1
    assert booted.oom.invocations == 0 and booted.panicked is None


def test_costly_order_fails_after_one_reclaim(booted) -> None:
    """order > PAGE_ALLOC_COSTLY_ORDER (3) without __GFP_RETRY_MAYFAIL: nopage after one
    round of reclaim (v5.11 and v6.1); no OOM."""
    set_free(booted, 600)
    assert alloc_in_task(booted, GFP_KERNEL, order=4) == [False]
    assert booted.mm.stats["allocstall"] == 1
    assert booted.oom.invocations == 0


@pytest.mark.parametrize("free", [600, 300])
def test_gfp_kernel_reclaim_retries_then_oom(booted, mm_version: str, free: int) -> None:
    """GFP_KERNEL order 0 with reclaim making no progress: each round is one direct
    reclaim; should_reclaim_retry() counts no_progress_loops and allows a retry while
    loops <= MAX_RECLAIM_RETRIES (16) and some zone would pass min with
    available = free + zone_reclaimable_pages(); then __alloc_pages_may_oom().

    There are no LRU pages here.  v5.11 (and vanilla v6.1): zone_reclaimable_pages() =
    0, available = free <= min (704): no retry, OOM after 1 reclaim.  6.1.192
    (mm/vmscan.c zone_reclaimable_pages(): "if (nr == 0) nr = NR_FREE_PAGES", a stable
    backport): available = 2 * free; with free = 600, 1200 > 704: 17 reclaims (loops
    1..16 retry, 17 > 16 stops) then OOM; with free = 300, 600 <= 704: 1 reclaim."""
    set_free(booted, free)
    alloc_in_task(booted, GFP_KERNEL)
    reclaims = 17 if (mm_version == "6.1" and 2 * free > 704) else 1
    assert booted.mm.stats["allocstall"] == reclaims
    assert booted.oom.invocations == 1
    assert booted.panicked == "System is deadlocked on memory"


# -- watermark boost -----------------------------------------------------------------------------


def steal_pageblock(kernel, gfp: int = GFP_KERNEL) -> None:
    """Counted page allocator: unmovable use grows past the pageblocks claimed so far
    while less than a pageblock is free: __rmqueue_fallback() finds no whole free
    pageblock and steals part of one (PageAllocator._steal_pageblocks(), called by the
    accounting of an allocation; below the watermarks only an atomic or reserve request
    gets there).  tests/kernel/mm/test_buddy.py has the same with the buddy lists."""
    mm = kernel.mm
    if mm.nr_free_pages() >= mm.pageblock_pages:
        set_free(kernel, mm.pageblock_pages - 16)
    mm._steal_pageblocks(mm.unmovable_blocks * mm.pageblock_pages + 1, gfp & __GFP_KSWAPD_RECLAIM)


def test_taking_a_whole_free_pageblock_does_not_boost(counted) -> None:
    """steal_suitable_fallback() (v5.11, v6.1): "Take ownership for orders >=
    pageblock_order" comes before boost_watermark(): with a whole free pageblock to
    take over (here, while a pageblock's worth of pages is free), no boost, no kswapd."""
    mm = counted.mm
    used = mm.managed_pages - mm.nr_free_pages()
    need = mm.unmovable_blocks * mm.pageblock_pages - used + 1
    blocks = mm.unmovable_blocks
    assert mm.alloc_fast(need, 0, GFP_KERNEL, "test") == need
    assert mm.unmovable_blocks == blocks + 1
    assert mm.zones[0].watermark_boost == 0 and mm.stats["kswapd_wakeups"] == 0


def test_pageblock_steal_boosts_the_watermarks(counted) -> None:
    """boost_watermark() (v5.11 and v6.1): watermark_boost = min(boost + pageblock_nr_pages,
    max(pageblock_nr_pages, high * watermark_boost_factor / 10000)) = min(boost + 512,
    1056 * 15000 / 10000 = 1584); wmark_pages() adds the boost to min, low and high."""
    z = counted.mm.zones[0]
    boosts = []
    for _ in range(4):
        steal_pageblock(counted)
        boosts.append(z.watermark_boost)
    assert boosts == [512, 1024, 1536, 1584]
    assert [z.wmark(i) for i in (WMARK_MIN, WMARK_LOW, WMARK_HIGH)] == [704 + 1584, 880 + 1584, 1056 + 1584]


def test_pageblock_steal_wakes_kswapd_in_that_allocation(counted) -> None:
    """steal_suitable_fallback(): if boost_watermark() and ALLOC_KSWAPD, set
    ZONE_BOOSTED_WATERMARK; rmqueue() of the same allocation tests and clears it and
    calls wakeup_kswapd() (v6.1 mm/page_alloc.c rmqueue(), label out:)."""
    steal_pageblock(counted, GFP_KERNEL)
    assert counted.mm.stats["kswapd_wakeups"] == 1


def test_kswapd_drops_a_boost_it_cannot_reclaim(counted) -> None:
    """balance_pgdat(): a boosted pass that reclaims nothing stops ("if (nr_boost_reclaim
    && !nr_reclaimed) break"), and at out: the boost it saw is subtracted from the zone."""
    z = counted.mm.zones[0]
    steal_pageblock(counted, GFP_KERNEL)
    counted.vmscan.wakeup_kswapd(z, 0)  # in case the allocation did not
    counted.sim.run(until=50 * MSEC)
    assert counted.vmscan.stats["kswapd_runs"] >= 1
    assert z.watermark_boost == 0


def test_oom_victim_may_use_half_of_min(booted) -> None:
    """__gfp_pfmemalloc_flags(): an OOM victim (TIF_MEMDIE, oom_reserves_allowed())
    retries with ALLOC_OOM, and __zone_watermark_ok() halves min for it: 704 -> 352.
    With 400 pages free its GFP_KERNEL request succeeds on that retry, before any
    direct reclaim."""
    set_free(booted, 400)
    me = current(booted)
    me.oom_victim = True
    assert alloc_now(booted, GFP_KERNEL | __GFP_NORETRY, task=me) is True
    assert booted.mm.stats["allocstall"] == 0


def test_oom_victim_reserve_flags_replace_atomic_ones(booted) -> None:
    """On the retry the reserve flags replace the request's alloc_flags: v5.11
    "alloc_flags = current_alloc_flags(gfp_mask, reserve_flags)"; 6.1
    "gfp_to_alloc_flags_cma(gfp_mask, reserve_flags) | (alloc_flags & ALLOC_KSWAPD)".
    So an OOM victim's GFP_ATOMIC request gets ALLOC_OOM alone (min/2 = 352) on the
    retry, after its GFP_ATOMIC attempt (264) failed: with 200 pages free it fails;
    ALLOC_HIGH and ALLOC_HARDER are not kept and stacked with ALLOC_OOM."""
    set_free(booted, 200)
    me = current(booted)
    me.oom_victim = True
    assert alloc_now(booted, GFP_ATOMIC, task=me) is False


def test_every_retry_sees_what_other_cpus_freed_meanwhile(make_kernel) -> None:
    """__alloc_pages_slowpath(): each get_page_from_freelist() reads the free lists as
    they are now.  A kthread 20 pages below the min watermark, with nothing to reclaim,
    spends 20 us per retry round; meanwhile CPU 1 frees a page every 10 us in one long
    divisible burst (a kfree_rcu_work()-like batch).  About the eleventh round sees enough
    pages and succeeds: the burst's progress is committed before each look, not only at
    CPU 1's next tick, which comes after the rounds without progress have run out (an
    OOM panic)."""
    kernel = make_kernel(ncpus=2, costs={"slowpath_retry_ns": 20_000})
    kernel.sim.run(until=1 * MSEC + 1000)  # just after a tick
    claim_all_pageblocks(kernel)
    mm = kernel.mm
    hold(kernel, "test:freer", 1000)
    set_free(kernel, mm.zones[-1].wmark(WMARK_MIN) - 20)

    def freer(me):
        yield Segments([(1000, 10_000_000, lambda k: mm.free_pages(k, 0, "test:freer"))])  # 10 us each

    result: list[tuple[bool, int]] = []

    def allocator(me):
        ok = yield from mm.alloc_pages(me, GFP_KERNEL, 0, "test")
        result.append((ok, kernel.sim.now))

    spawn(kernel, "freer", freer, cpu=1)
    spawn(kernel, "allocator", allocator, cpu=0)
    start = kernel.sim.now
    kernel.sim.run(until=20 * MSEC)
    assert kernel.panicked is None and mm.stats["oom"] == 0
    assert [ok for ok, _ in result] == [True]
    assert result[0][1] - start < 400_000
