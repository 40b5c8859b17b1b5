"""The buddy allocator's free lists of one zone (``struct free_area``, mm/page_alloc.c, 6.1.192).

A :class:`FreeArea` keeps free blocks by page frame number, per order and
migratetype, and the migratetype of every pageblock, so that what the
unmovable allocations leave behind fragments memory the way the kernel's
does:

* :meth:`FreeArea.free_one_page` is ``__free_one_page()``: merge with the
  buddy while it is free at the same order, then put the block at the head
  of its list, or at the tail when the next order's buddy is free too
  (``buddy_merge_likely()``);
* :meth:`FreeArea.rmqueue` is ``__rmqueue()``: ``__rmqueue_smallest()``
  (``expand()`` puts the upper halves on the lists), else
  ``__rmqueue_fallback()``: the *largest* block of a fallback type
  (``fallbacks[]``), taken over whole at ``pageblock_order`` and above
  (``change_pageblock_range()``), else ``steal_suitable_fallback()`` boosts
  the watermark, moves the pageblock's free pages to the requester's lists
  (``move_freepages_block()``) and claims the block when half of it is free
  or alike;
* :meth:`FreeArea.has_order` is the high-order part of ``__zone_watermark_ok()``.

Lists are the kernel's ``list_head`` orders: ``add_to_free_list()`` adds at
the head, ``add_to_free_list_tail()`` and ``move_to_free_list()`` at the
tail, ``get_page_from_free_area()`` takes the first entry.  Not modelled:
CMA, highatomic and isolated pageblocks, guard pages, page shuffling
(``CONFIG_SHUFFLE_PAGE_ALLOCATOR`` is off in the calibration .config),
compaction capture.  No page this model allocates is movable (no LRU or
``__PageMovable`` pages), so ``move_freepages_block()`` counts none.
"""

from __future__ import annotations

from typing import Callable, Final

MAX_ORDER: Final = 11  # orders 0..10 (include/linux/mmzone.h, 6.1)
MIGRATE_UNMOVABLE: Final = 0
MIGRATE_MOVABLE: Final = 1
MIGRATE_RECLAIMABLE: Final = 2
MIGRATE_PCPTYPES: Final = 3
# fallbacks[]: the types an allocation may steal from, in order
FALLBACKS: Final = ((MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE), (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE),
                    (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE))


class FreeArea:
    """``zone->free_area[]`` and the zone's pageblock migratetypes, over ``[start_pfn, end_pfn)``.

    ``boost`` is ``boost_watermark()`` of the zone (True if it raised the
    boost); ``boosted`` is the zone's ``ZONE_BOOSTED_WATERMARK`` bit.
    """

    __slots__ = ("start_pfn", "end_pfn", "pageblock_order", "block_mt", "order_of", "mt_of",
                 "heads", "tails", "counts", "nr_free", "boost", "boosted", "steals")

    def __init__(self, start_pfn: int, end_pfn: int, pageblock_order: int, boost: Callable[[], bool]) -> None:
        self.start_pfn = start_pfn
        self.end_pfn = end_pfn
        self.pageblock_order = pageblock_order
        nblocks = ((end_pfn - 1) >> pageblock_order) - (start_pfn >> pageblock_order) + 1
        # memmap_init_range(): every pageblock starts MIGRATE_MOVABLE
        self.block_mt = [MIGRATE_MOVABLE] * nblocks
        self.order_of: dict[int, int] = {}  # PageBuddy heads: buddy_order()
        self.mt_of: dict[int, int] = {}  # the list a free block is on
        # Each list in two parts: the blocks added at the head, newest last, then
        # those added at the tail, oldest first (dicts keep insertion order).
        self.heads: list[list[dict[int, None]]] = [[{} for _ in range(MIGRATE_PCPTYPES)] for _ in range(MAX_ORDER)]
        self.tails: list[list[dict[int, None]]] = [[{} for _ in range(MIGRATE_PCPTYPES)] for _ in range(MAX_ORDER)]
        self.counts = [[0] * MIGRATE_PCPTYPES for _ in range(MAX_ORDER)]  # nr_free per list
        self.nr_free = 0  # pages on the lists
        self.boost = boost
        self.boosted = False
        self.steals = 0  # __rmqueue_fallback() steals (mm_page_alloc_extfrag events)

    # -- pageblocks -------------------------------------------------------------------

    def pageblock_mt(self, pfn: int) -> int:
        """get_pageblock_migratetype()."""
        return self.block_mt[(pfn >> self.pageblock_order) - (self.start_pfn >> self.pageblock_order)]

    def set_pageblock_mt(self, pfn: int, mt: int) -> None:
        """set_pageblock_migratetype()."""
        self.block_mt[(pfn >> self.pageblock_order) - (self.start_pfn >> self.pageblock_order)] = mt

    # -- the lists ----------------------------------------------------------------------

    def _add(self, pfn: int, order: int, mt: int, tail: bool) -> None:
        """add_to_free_list() (head) or add_to_free_list_tail()."""
        self.order_of[pfn] = order
        self.mt_of[pfn] = mt
        (self.tails if tail else self.heads)[order][mt][pfn] = None
        self.counts[order][mt] += 1
        self.nr_free += 1 << order

    def _del(self, pfn: int) -> int:
        """del_page_from_free_list(); returns the block's order."""
        order = self.order_of.pop(pfn)
        mt = self.mt_of.pop(pfn)
        head = self.heads[order][mt]
        if pfn in head:
            del head[pfn]
        else:
            del self.tails[order][mt][pfn]
        self.counts[order][mt] -= 1
        self.nr_free -= 1 << order
        return order

    def _first(self, order: int, mt: int) -> int:
        """get_page_from_free_area(): the first block of the list, or -1."""
        if not self.counts[order][mt]:
            return -1
        head = self.heads[order][mt]
        if head:
            return next(reversed(head))
        return next(iter(self.tails[order][mt]))

    def _move_tail(self, pfn: int, mt: int) -> None:
        """move_to_free_list(): to the tail of type ``mt``'s list of its order."""
        order = self._del(pfn)
        self._add(pfn, order, mt, True)

    def has_order(self, order: int) -> bool:
        """__zone_watermark_ok() for order > 0: a free block of ``order`` or more on some list."""
        for o in range(order, MAX_ORDER):
            c = self.counts[o]
            if c[0] or c[1] or c[2]:
                return True
        return False

    # -- freeing ------------------------------------------------------------------------

    def free_one_page(self, pfn: int, order: int, mt: int, to_tail: bool = False) -> None:
        """__free_one_page(): merge with free buddies, then list the block (FPI_TO_TAIL: ``to_tail``)."""
        order_of = self.order_of
        start, end = self.start_pfn, self.end_pfn
        buddy = pfn ^ (1 << order)
        while order < MAX_ORDER - 1:
            buddy = pfn ^ (1 << order)
            # find_buddy_page_pfn(): free at the same order, in this zone
            if order_of.get(buddy) != order or not start <= buddy < end:
                break
            # order >= pageblock_order: the three types this model has all merge
            self._del(buddy)
            pfn &= buddy
            order += 1
        if not to_tail and order < MAX_ORDER - 2:
            # buddy_merge_likely(): is the buddy of the next order up free?
            higher = (buddy & pfn) ^ (1 << (order + 1))
            to_tail = order_of.get(higher) == order + 1 and start <= higher < end
        self._add(pfn, order, mt, to_tail)

    def free_pages_ok(self, pfn: int, order: int, to_tail: bool = False) -> None:
        """free_one_page() to the list of the block's pageblock type
        (get_pfnblock_migratetype())."""
        self.free_one_page(pfn, order, self.pageblock_mt(pfn), to_tail)

    # -- allocating ---------------------------------------------------------------------

    def _expand(self, pfn: int, low: int, high: int, mt: int) -> None:
        """expand(): the upper halves go to the head of their lists."""
        while high > low:
            high -= 1
            self._add(pfn + (1 << high), high, mt, False)

    def rmqueue_smallest(self, order: int, mt: int) -> int:
        """__rmqueue_smallest(): a block of ``order`` from type ``mt``'s lists, or -1."""
        counts = self.counts
        for current in range(order, MAX_ORDER):
            if counts[current][mt]:
                pfn = self._first(current, mt)
                self._del(pfn)
                self._expand(pfn, order, current, mt)
                return pfn
        return -1

    def rmqueue_bulk(self, order: int, mt: int, count: int, alloc_flags_kswapd: bool) -> list[int]:
        """``count`` calls of :meth:`rmqueue` (rmqueue_bulk()), the blocks in the order taken.

        Consecutive calls split one block: __rmqueue_smallest() takes the smallest
        block there is, so the lists below its order hold only the pieces expand()
        left, and the next calls take those, lowest first; after ``k`` of them the
        pieces left are the aligned blocks of the block's untaken end, each at the
        head of its list.  That is done here in one step per block.
        """
        out: list[int] = []
        counts = self.counts
        while len(out) < count:
            current = order
            while current < MAX_ORDER and not counts[current][mt]:
                current += 1
            if current == MAX_ORDER:
                pfn = self.rmqueue(order, mt, alloc_flags_kswapd)  # falls back, or fails
                if pfn < 0:
                    break
                out.append(pfn)
                continue
            pfn = self._first(current, mt)
            self._del(pfn)
            size = 1 << order
            k = min(count - len(out), 1 << (current - order))
            out.extend(range(pfn, pfn + k * size, size))
            q, end = pfn + k * size, pfn + (1 << current)
            while q < end:  # the untaken end, in aligned blocks
                o = (q & -q).bit_length() - 1
                while q + (1 << o) > end:
                    o -= 1
                self._add(q, o, mt, False)
                q += 1 << o
        return out

    def rmqueue(self, order: int, mt: int, alloc_flags_kswapd: bool, nofragment: bool = False) -> int:
        """__rmqueue(): a block of ``order`` for type ``mt``, stealing if need be; -1 for none."""
        while True:
            pfn = self.rmqueue_smallest(order, mt)
            if pfn >= 0 or not self.rmqueue_fallback(order, mt, alloc_flags_kswapd, nofragment):
                return pfn

    def _find_suitable_fallback(self, order: int, mt: int) -> int:
        """find_suitable_fallback(..., only_stealable=false): the first fallback type with a
        block of ``order`` (can_steal_fallback() holds for unmovable and reclaimable
        requests, and for movable ones at pageblock_order / 2 and up)."""
        for fmt in FALLBACKS[mt]:
            if self.counts[order][fmt]:
                return fmt
        return -1

    def rmqueue_fallback(self, order: int, start_mt: int, alloc_flags_kswapd: bool, nofragment: bool) -> bool:
        """__rmqueue_fallback(): steal the largest block of a fallback type."""
        min_order = self.pageblock_order if (nofragment and order < self.pageblock_order) else order
        for current in range(MAX_ORDER - 1, min_order - 1, -1):
            fmt = self._find_suitable_fallback(current, start_mt)
            if fmt < 0:
                continue
            can_steal = (start_mt != MIGRATE_MOVABLE or current >= self.pageblock_order
                         or current >= self.pageblock_order // 2)
            if not can_steal and current > order:
                # find_smallest: a movable request that cannot take the whole block
                current = next(o for o in range(order, MAX_ORDER) if self._find_suitable_fallback(o, start_mt) >= 0)
                fmt = self._find_suitable_fallback(current, start_mt)
                can_steal = current >= self.pageblock_order // 2
            self.steal_suitable_fallback(self._first(current, fmt), start_mt, can_steal, alloc_flags_kswapd)
            self.steals += 1
            return True
        return False

    def steal_suitable_fallback(self, pfn: int, start_mt: int, whole_block: bool, alloc_flags_kswapd: bool) -> None:
        """steal_suitable_fallback()."""
        current = self.order_of[pfn]
        old_mt = self.pageblock_mt(pfn)
        if current >= self.pageblock_order:
            # change_pageblock_range(): take ownership of every pageblock of the block
            for i in range(1 << (current - self.pageblock_order)):
                self.set_pageblock_mt(pfn + (i << self.pageblock_order), start_mt)
            self._move_tail(pfn, start_mt)
            return
        if self.boost() and alloc_flags_kswapd:
            self.boosted = True  # set_bit(ZONE_BOOSTED_WATERMARK)
        if not whole_block:
            self._move_tail(pfn, start_mt)
            return
        free_pages = self.move_freepages_block(pfn, start_mt)
        if not free_pages:
            self._move_tail(pfn, start_mt)
            return
        # alike pages: for an unmovable or reclaimable request in a movable block, every
        # page in use (none is movable here); between those two types, none
        alike = (1 << self.pageblock_order) - free_pages if (
            start_mt != MIGRATE_MOVABLE and old_mt == MIGRATE_MOVABLE) else 0
        if free_pages + alike >= 1 << (self.pageblock_order - 1):
            self.set_pageblock_mt(pfn, start_mt)

    def move_freepages_block(self, pfn: int, mt: int) -> int:
        """move_freepages_block(): every free block of ``pfn``'s pageblock to the tail of
        ``mt``'s lists; the pages moved (0 when the block crosses the zone's end)."""
        start = pfn >> self.pageblock_order << self.pageblock_order
        end = start + (1 << self.pageblock_order)
        if start < self.start_pfn:
            start = pfn  # "Do not cross zone boundaries"
        if end > self.end_pfn:
            return 0
        moved = 0
        p = start
        order_of = self.order_of
        while p < end:
            order = order_of.get(p)
            if order is None:
                p += 1
                continue
            self._move_tail(p, mt)
            p += 1 << order
            moved += 1 << order
        return moved

    # -- reports ------------------------------------------------------------------------

    def nr_blocks(self) -> list[list[int]]:
        """Free blocks per order and type (/proc/pagetypeinfo's first table)."""
        return [list(c) for c in self.counts]
