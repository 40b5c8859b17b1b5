"""Per-CPU page lists (src/kvfree_sim/kernel/mm/pcp.py) against mm/page_alloc.c v5.11,
v5.14 and 6.1.192: zone_batchsize(), zone_highsize(), rmqueue_pcplist() ->
rmqueue_bulk(), free_unref_page_commit() -> free_pcppages_bulk(), nr_pcp_high(),
nr_pcp_free(), and the drain_all_pages() of __alloc_pages_direct_reclaim()."""

from __future__ import annotations

import pytest

from kvfree_sim.kernel.mm.gfp import GFP_KERNEL, __GFP_NORETRY
from kvfree_sim.kernel.mm.pcp import PcpVersion, pageset_high_and_batch, zone_batchsize
from kvfree_sim.kernel.mm.vmscan import ShrinkControl

from ktest import MSEC, FakeShrinker, claim_all_pageblocks, hold, set_free, spawn

MANAGED = 124000  # the test layout's one zone (ZONE_DMA32), low watermark 880


def test_batch_and_high_per_version() -> None:
    """zone_batchsize(): 124000 / 1024 = 121, / 4 = 30, rounddown_pow_of_two(45) - 1 = 31.
    v5.11: high = 6 * batch.  v5.14 on: the low watermark split over the CPUs, at least
    4 * batch.  A 16 MiB ZONE_DMA (3977 pages) gets batch 0: v5.11 high 0, batch 1."""
    assert zone_batchsize(MANAGED) == 31
    assert zone_batchsize(1 << 20) == 63  # capped at 1 MiB / 4
    assert pageset_high_and_batch(MANAGED, 880, 64, PcpVersion("5.11")) == (186, 31)
    assert pageset_high_and_batch(MANAGED, 880, 2, PcpVersion("6.1")) == (440, 31)
    assert pageset_high_and_batch(MANAGED, 880, 64, PcpVersion("5.14")) == (124, 31)
    assert pageset_high_and_batch(3977, 20, 2, PcpVersion("5.11")) == (0, 1)
    assert pageset_high_and_batch(3977, 20, 2, PcpVersion("6.1")) == (10, 1)


@pytest.mark.parametrize("mm_version", ["5.11", "6.1"])
def test_an_allocation_takes_a_batch_off_the_buddy_lists(make_kernel, mm_version: str) -> None:
    """rmqueue_pcplist(): an empty list is refilled with ``batch`` pages
    (rmqueue_bulk(), NR_FREE_PAGES -= 31), which serve the next 30 allocations
    without touching the buddy count."""
    kernel = make_kernel(ncpus=2, mm_version=mm_version)
    claim_all_pageblocks(kernel)
    mm = kernel.mm
    free0 = mm.nr_free_pages()
    assert mm.alloc_fast(1, 0, GFP_KERNEL, "test", 0) == 1
    assert (mm.nr_free_pages(), mm.nr_pcp_pages()) == (free0 - 31, 30)
    assert mm.alloc_fast(30, 0, GFP_KERNEL, "test", 0) == 30
    assert (mm.nr_free_pages(), mm.nr_pcp_pages()) == (free0 - 31, 0)
    assert mm.alloc_fast(1, 0, GFP_KERNEL, "test", 1) == 1
    assert mm.nr_free_pages() == free0 - 62
    assert [mm.zones[-1].pcp.lists[c].count for c in (0, 1)] == [0, 30]


def test_v5_11_frees_spill_a_batch_at_high(make_kernel) -> None:
    """free_unref_page_commit() (v5.11): ``if (pcp->count >= high)
    free_pcppages_bulk(zone, batch, pcp)``: 186 frees leave 155 pages on the list."""
    kernel = make_kernel(ncpus=2, mm_version="5.11")
    mm = kernel.mm
    hold(kernel, "test", 400)
    hold(kernel, "test", 12, order=2)
    free0 = mm.nr_free_pages()
    mm.free_pages(185, 0, "test", 0)
    assert (mm.nr_free_pages(), mm.nr_pcp_pages()) == (free0, 185)
    mm.free_pages(1, 0, "test", 0)
    assert (mm.nr_free_pages(), mm.nr_pcp_pages()) == (free0 + 31, 155)
    mm.free_pages(3, 2, "test", 0)  # v5.11 keeps order 0 only
    assert (mm.nr_free_pages(), mm.nr_pcp_pages()) == (free0 + 31 + 12, 155)


def test_6_1_consecutive_spills_grow_and_reclaim_lowers_high(make_kernel) -> None:
    """nr_pcp_free() (v5.14 on): each spill frees ``batch << free_factor`` (clamped to
    high - batch) and doubles the next; nr_pcp_high(): while kswapd balances the node
    (ZONE_RECLAIM_ACTIVE) the effective high is 4 * batch = 124."""
    kernel = make_kernel(ncpus=2, mm_version="6.1")
    mm = kernel.mm
    hold(kernel, "test", 1000)
    free0 = mm.nr_free_pages()
    mm.free_pages(440, 0, "test", 0)  # high 440: spill 31, free_factor 1
    assert mm.nr_pcp_pages() == 409
    mm.free_pages(31, 0, "test", 0)  # 440 again: spill 62
    assert mm.nr_pcp_pages() == 378
    assert mm.nr_free_pages() == free0 + 93
    mm.set_reclaim_active(True)
    pcp = mm.zones[-1].pcp.lists[0]
    mm.free_pages(1, 0, "test", 0)  # 379 >= 124: one spill, 31 << 2 clamped to 124 - 31 = 93
    assert pcp.count == 286
    mm.free_pages(2, 0, "test", 0)  # a spill per free: 287 - 93, 195 - 93
    assert pcp.count == 102
    mm.set_reclaim_active(False)
    assert mm.nr_free_pages() + mm.nr_pcp_pages() == free0 + 474


def test_6_1_a_high_order_free_after_a_spill_empties_the_list(make_kernel) -> None:
    """free_unref_page_commit() (6.1): ``free_high = pcp->free_factor && order && order
    <= PAGE_ALLOC_COSTLY_ORDER`` makes the effective high 0 and nr_pcp_free() the whole list."""
    kernel = make_kernel(ncpus=2, mm_version="6.1")
    mm = kernel.mm
    hold(kernel, "test", 1000)
    hold(kernel, "test", 8, order=3)
    mm.free_pages(440, 0, "test", 0)
    assert mm.zones[-1].pcp.lists[0].free_factor == 1
    free0 = mm.nr_free_pages()
    mm.free_pages(1, 3, "test", 0)
    assert (mm.nr_pcp_pages(), mm.nr_free_pages()) == (0, free0 + 409 + 8)


@pytest.mark.parametrize("mm_version", ["5.11", "6.1"])
def test_direct_reclaim_drains_the_lists_when_its_progress_is_not_enough(make_kernel, mm_version: str) -> None:
    """__alloc_pages_direct_reclaim(): the 160 kmalloc-32 slabs (order 0) a shrinker
    frees from CPU 1's context go to CPU 1's list (under its high), where the watermark
    check does not see them: 600 free < min 704 after reclaim.  "If an allocation failed
    after direct reclaim, it could be because pages are pinned on the per-cpu lists":
    drain_all_pages() once, and the __GFP_NORETRY request succeeds at 760."""
    kernel = make_kernel(ncpus=2, mm_version=mm_version)
    kernel.sim.run(until=1 * MSEC)
    claim_all_pageblocks(kernel)
    cache = kernel.mm.kmalloc_cache(32)
    assert (cache.order, cache.objs_per_slab) == (0, 128)
    objs = cache.cpus[1]
    cache.refill_fast(objs, 160 * 128)
    objs.take(160 * 128)
    kernel.mm.drain_all_pages()  # start with empty lists
    set_free(kernel, 600)
    fake = FakeShrinker(1 << 20)

    def scan(sc: ShrinkControl) -> int:
        n = min(40 * 128, cache.inuse)
        objs.free(n, 1)
        return n

    kernel.register_shrinker("slab-freeing", fake.count, scan)
    result: list[bool] = []

    def body(me):
        result.append((yield from kernel.mm.alloc_pages(me, GFP_KERNEL | __GFP_NORETRY, 0, "test")))

    spawn(kernel, "allocator", body, cpu=0)
    kernel.sim.run(until=100 * MSEC)
    assert result == [True]
    assert kernel.mm.stats["pcp_drains"] == 2  # the set-up's and reclaim's
