"""kernel/mm/buddy.py: the free lists by page frame, order and migratetype (6.1.192 mm/page_alloc.c)."""

from __future__ import annotations

import random

from ktest import MSEC, hold

from kvfree_sim.config import make_config
from kvfree_sim.kernel.mm.buddy import MAX_ORDER, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE, FreeArea
from kvfree_sim.kernel.mm.gfp import GFP_KERNEL, __GFP_MOVABLE, __GFP_RECLAIMABLE, gfp_migratetype
from kvfree_sim.machine import Machine


def area(pages: int = 4096, order: int = 10, start: int = 0) -> tuple[FreeArea, list[int]]:
    """A free area whose boost_watermark() is logged; nothing free yet."""
    boosts: list[int] = []
    return FreeArea(start, start + pages, order, lambda: boosts.append(1) is None), boosts


def lists(a: FreeArea) -> list[list[list[int]]]:
    """Each list's blocks from its first entry on (get_page_from_free_area() order)."""
    return [[list(reversed(a.heads[o][mt])) + list(a.tails[o][mt]) for mt in range(3)] for o in range(MAX_ORDER)]


def test_frees_merge_with_their_buddies_up_to_max_order() -> None:
    """__free_one_page(): a page whose buddy is free merges and moves up an order,
    until MAX_ORDER - 1: 2048 pages freed one by one make two order-10 blocks."""
    a, _ = area(2048)
    for pfn in range(2048):
        a.free_one_page(pfn, 0, MIGRATE_MOVABLE)
    assert a.order_of == {0: 10, 1024: 10} and a.nr_free == 2048
    assert a.nr_blocks()[10][MIGRATE_MOVABLE] == 2 and sum(map(sum, a.nr_blocks())) == 2


def test_a_block_whose_next_buddy_is_free_goes_to_the_tail() -> None:
    """buddy_merge_likely(): page 0 freed beside free page 2-3 (order 1) but with page 1
    in use stays order 0; its order-1 "higher buddy" (2) is free, so it goes to the
    tail, behind page 8, and the next allocation takes page 8 first."""
    a, _ = area(16)
    a.free_one_page(2, 1, MIGRATE_MOVABLE)
    a.free_one_page(8, 0, MIGRATE_MOVABLE)
    a.free_one_page(0, 0, MIGRATE_MOVABLE)
    assert lists(a)[0][MIGRATE_MOVABLE] == [8, 0]
    assert a.rmqueue_smallest(0, MIGRATE_MOVABLE) == 8


def test_splitting_leaves_the_upper_halves_at_the_list_heads() -> None:
    """__rmqueue_smallest() -> expand(): an order-0 request from an order-4 block takes its
    first page and lists pages 8 (order 3), 4 (2), 2 (1) and 1 (0)."""
    a, _ = area(16, order=4)
    a.free_one_page(0, 4, MIGRATE_UNMOVABLE)
    assert a.rmqueue_smallest(0, MIGRATE_UNMOVABLE) == 0
    assert a.order_of == {8: 3, 4: 2, 2: 1, 1: 0} and a.nr_free == 15


def test_bulk_takes_what_one_call_at_a_time_takes() -> None:
    """rmqueue_bulk() of ``count`` blocks in one step per block split gives the frames
    and the lists that ``count`` calls of __rmqueue() give, on fragmented memory."""
    rng = random.Random(7)
    for trial in range(40):
        frees = [(pfn, rng.choice((MIGRATE_UNMOVABLE, MIGRATE_MOVABLE))) for pfn in range(4096) if rng.random() < 0.6]
        (a, _), (b, _) = area(4096), area(4096)
        for x in (a, b):
            for pfn, mt in frees:
                x.free_one_page(pfn, 0, mt)
        order, count = rng.choice((0, 0, 1, 3)), rng.randint(1, 70)
        bulk = a.rmqueue_bulk(order, MIGRATE_UNMOVABLE, count, False)
        one_by_one = [p for p in (b.rmqueue(order, MIGRATE_UNMOVABLE, False) for _ in range(count)) if p >= 0]
        assert bulk == one_by_one[:len(bulk)] and len(bulk) == len(one_by_one), trial
        assert lists(a) == lists(b) and a.block_mt == b.block_mt, trial


def test_a_whole_free_pageblock_is_taken_over_without_a_boost() -> None:
    """steal_suitable_fallback(): "Take ownership for orders >= pageblock_order" comes
    before boost_watermark(): an unmovable request finding only a free order-10 movable
    block changes the pageblock's type and splits it on the unmovable lists (the list's
    first block: the one freed last, at its head)."""
    a, boosts = area(2048)
    a.free_one_page(0, 10, MIGRATE_MOVABLE)
    a.free_one_page(1024, 10, MIGRATE_MOVABLE)
    assert a.rmqueue(3, MIGRATE_UNMOVABLE, True) == 1024
    assert a.block_mt == [MIGRATE_MOVABLE, MIGRATE_UNMOVABLE] and boosts == [] and not a.boosted
    assert a.nr_blocks()[10][MIGRATE_MOVABLE] == 1 and a.steals == 1


def test_a_partial_steal_boosts_and_claims_a_block_with_half_of_it_free_or_alike() -> None:
    """With no whole free pageblock the largest movable block is taken (order 9 here, the
    other half of the block in use): boost_watermark() (ZONE_BOOSTED_WATERMARK with
    ALLOC_KSWAPD), move_freepages_block() moves the block's free pages to the unmovable
    lists, and free (512) + alike (512 in use, none movable) >= 512 claims the block."""
    a, boosts = area(1024)
    a.free_one_page(512, 9, MIGRATE_MOVABLE)
    assert a.rmqueue(3, MIGRATE_UNMOVABLE, True) == 512
    assert boosts == [1] and a.boosted
    assert a.block_mt == [MIGRATE_UNMOVABLE]
    assert sum(c[MIGRATE_MOVABLE] for c in a.nr_blocks()) == 0


def test_a_pageblock_crossing_the_zone_end_is_never_claimed() -> None:
    """move_freepages_block(): "Do not cross zone boundaries": a pageblock that runs past
    the zone's end moves nothing and keeps its type, so only the stolen block moves, and
    every later fallback to it boosts again (the calibration kernel's last pageblock,
    data/qemu-tcg-here-2026-11-26/NOTES.md item 9)."""
    a, boosts = area(1000)
    a.free_one_page(512, 8, MIGRATE_MOVABLE)
    a.free_one_page(768, 7, MIGRATE_MOVABLE)
    assert a.rmqueue(3, MIGRATE_UNMOVABLE, False) == 512
    assert a.block_mt == [MIGRATE_MOVABLE] and boosts == [1]
    assert a.nr_blocks()[7][MIGRATE_MOVABLE] == 1  # the rest of the block stayed movable
    for _ in range(31):  # the stolen order-8 block, now on the unmovable lists
        assert a.rmqueue(3, MIGRATE_UNMOVABLE, False) >= 0
    assert boosts == [1]
    assert a.rmqueue(3, MIGRATE_UNMOVABLE, False) == 768 and boosts == [1, 1]


def fragment(kernel) -> int:
    """Hold every free page, then give back every other one: plenty free, nothing above
    order 0.  Returns the free count."""
    mm = kernel.mm
    z = mm.zones[-1]
    hold(kernel, "test:all", mm.nr_free_pages())
    held = mm.held["test:all"][0]
    keep = [p for p in held if p % 2]
    for p in held:
        if not p % 2:
            z.area.free_one_page(p, 0, z.area.pageblock_mt(p))
            z.free += 1
    mm.owners["test:all"] = len(keep)
    held.clear()
    held.extend(keep)
    return mm.nr_free_pages()


def test_a_high_order_request_needs_a_block_of_its_order(make_kernel) -> None:
    """__zone_watermark_ok(): past the order-0 check, an order > 0 request needs a free
    block of its order or more on some list.  With 62,000 pages free in single pages, an
    order-3 allocation fails where an order-0 one succeeds."""
    kernel = make_kernel(ncpus=1)
    kernel.sim.run(until=1 * MSEC)
    assert fragment(kernel) > 60_000
    assert kernel.mm.alloc_fast(1, 3, GFP_KERNEL, "test") == 0
    assert kernel.mm.alloc_fast(1, 0, GFP_KERNEL, "test") == 1


def test_frees_from_the_per_cpu_lists_merge_back(make_kernel) -> None:
    """Pages taken through a CPU's list (rmqueue_bulk()) and freed back (free_unref_page(),
    then free_pcppages_bulk() and drain_all_pages()) end as the block they came from,
    which the first allocation took over for unmovable pages and which stays so (an
    order-10 block: two pageblocks of order 9, change_pageblock_range())."""
    kernel = make_kernel(ncpus=2)
    kernel.sim.run(until=1 * MSEC)
    mm = kernel.mm
    a = mm.zones[-1].area
    before = [sum(c) for c in a.nr_blocks()]
    claimed = a.block_mt.count(MIGRATE_UNMOVABLE)
    assert mm.alloc_fast(500, 0, GFP_KERNEL, "test", cpu=0) == 500
    mm.free_pages(500, 0, "test", 1)
    mm.drain_all_pages()
    assert [sum(c) for c in a.nr_blocks()] == before
    assert claimed == 0 and a.block_mt.count(MIGRATE_UNMOVABLE) == 2


def test_the_calibration_guest_layout() -> None:
    """The qemu-tcg-6.1 guest at 56 MB, against the kernel's census at its test's start
    (data/qemu-tcg-here-2026-11-26/NOTES.md item 9): the kernel image's first pageblock
    (16-20 MiB) all reserved; the text/rodata gap (2044K) free in the next; the last
    pageblock crossing the zone's end (e820 keeps the top 128 KiB); the others wholly
    free but for the first (the low 1 MiB) and the boot allocations' (unmovable)."""
    m = Machine(make_config("v6.1", cpus=2, memory="56M", profile="qemu-tcg-6.1"))
    z = m.kernel.mm.zones[-1]
    a = z.area
    assert z.start_pfn + z.present == 14304  # 0x37e0000 >> 12
    free = [0] * len(a.block_mt)
    for pfn, order in a.order_of.items():
        free[pfn >> 10] += 1 << order
    assert free[4] == 0 and free[5] == 511
    assert 0 < free[13] < 992 and a.block_mt[13] == MIGRATE_MOVABLE
    whole = [i for i, f in enumerate(free) if f == 1024]
    assert len(whole) == 7 and a.block_mt.count(MIGRATE_UNMOVABLE) == 1


def test_reclaimable_and_unmovable_requests_steal_a_block_back_and_forth() -> None:
    """fallbacks[]: RECLAIMABLE falls back to UNMOVABLE first.  An order-0 reclaimable
    request finding only a mostly free unmovable pageblock (768 pages free, in blocks of
    order 9 and 8) steals the order-9 one, boosts, moves the block's free pages and claims
    it (768 >= half; between these two types nothing counts as alike); the next order-3
    unmovable request finds no unmovable block and steals it back (767 free), boosting
    again: the kernel's ping-pong, data/qemu-tcg-here-2026-11-26/NOTES.md item 10.  With
    less than half of the block free the type would stay, the free pages moving alone."""
    a, boosts = area(1024)
    a.block_mt[0] = MIGRATE_UNMOVABLE
    a.free_one_page(512, 9, MIGRATE_UNMOVABLE)
    a.free_one_page(256, 8, MIGRATE_UNMOVABLE)
    assert a.rmqueue(0, MIGRATE_RECLAIMABLE, True) == 256  # the smallest block, once moved
    assert a.block_mt == [MIGRATE_RECLAIMABLE] and boosts == [1]
    assert a.rmqueue(3, MIGRATE_UNMOVABLE, True) >= 0
    assert a.block_mt == [MIGRATE_UNMOVABLE] and boosts == [1, 1]


def test_gfp_migratetype() -> None:
    """gfp_migratetype(): __GFP_MOVABLE (0x08) and __GFP_RECLAIMABLE (0x10) >> GFP_MOVABLE_SHIFT (3)."""
    assert [gfp_migratetype(g) for g in (GFP_KERNEL, GFP_KERNEL | __GFP_MOVABLE, GFP_KERNEL | __GFP_RECLAIMABLE)] == [
        MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE]
