"""Per-CPU page lists (``struct per_cpu_pages``, mm/page_alloc.c, v5.11-v6.1).

Each CPU keeps, per zone, a list of free pages that are *not* counted in the
zone's ``NR_FREE_PAGES``: ``rmqueue_bulk()`` moves ``batch`` pages from the
buddy lists to the CPU's list when an allocation finds it empty, and a free
goes to the freeing CPU's list (``free_unref_page_commit()``), which spills
back to the buddy lists (``free_pcppages_bulk()``) once it holds ``high``
pages.  The watermark checks see only the buddy lists, so with many CPUs a
good share of free memory can sit where reclaim cannot count it, until direct
reclaim that made progress still finds no page and calls
``drain_all_pages()``.

Two generations:

* **v5.11-v5.13**: order-0 pages only; ``high = 6 * batch``; a spill frees
  ``batch`` pages (``pageset_set_high_and_batch()``).
* **v5.14 on** (Mel Gorman's series "Calculate pcp->high based on zone sizes
  and active CPUs", "scale the number of pages that are batch freed", "limit
  the number of pages on PCP lists when reclaim is active", "allow high-order
  pages to be stored on the per-cpu lists"): orders up to
  ``PAGE_ALLOC_COSTLY_ORDER``, one list per order; ``high = max(low_wmark /
  CPUs of the node, 4 * batch)`` (``zone_highsize()``); consecutive frees
  double the spill (``free_factor``, halved by each allocation,
  ``nr_pcp_free()``); while kswapd balances the node (``ZONE_RECLAIM_ACTIVE``)
  the effective high drops to ``4 * batch`` (``nr_pcp_high()``).  6.1 adds
  ``free_high``: freeing a page of order 1-3 while ``free_factor`` is set
  empties the list, and 6.1.192 caps ``free_factor`` at
  ``CONFIG_PCP_BATCH_SCALE_MAX`` (5).

With the buddy model (:mod:`.buddy`) the lists also hold the pages' frame
numbers, in the kernel's order: an allocation takes the head, a free adds at
the head, ``rmqueue_bulk()`` adds at the tail and ``free_pcppages_bulk()``
takes from the tail; the pages a spill or drain gives back are left in
:attr:`ZonePcp.spilled` for the buddy lists.

Simplifications: one migratetype (every page this model allocates through the
lists is unmovable; the kernel keeps a list per migratetype, so a page freed
from a pageblock of another type waits on that type's list); without the
buddy model pages are counted, not listed; ``drain_all_pages()`` takes effect at once (v5.11-v5.14
queue a work item per CPU on ``mm_percpu_wq`` and wait for it, 6.1 drains the
remote lists from the caller).  Sources: docs/design.md, the excerpts read
from v5.11.4, v5.14.2 and 6.1.192 ``mm/page_alloc.c``.
"""

from __future__ import annotations

from collections import deque
from typing import Final

PAGE_ALLOC_COSTLY_ORDER: Final = 3
PCP_BATCH_SCALE_MAX: Final = 5  # CONFIG_PCP_BATCH_SCALE_MAX default (6.1.192 backport)


def rounddown_pow_of_two(n: int) -> int:
    return 1 << (n.bit_length() - 1)


def zone_batchsize(managed: int) -> int:
    """zone_batchsize(): about a thousandth of the zone, no more than 1 MiB, /4, as 2^n - 1."""
    batch = min(managed // 1024, (1024 * 1024) // 4096)
    batch //= 4  # "We effectively *= 4 below"
    batch = max(batch, 1)
    return rounddown_pow_of_two(batch + batch // 2) - 1


class PcpVersion:
    """Which generation of the per-CPU lists a kernel has."""

    __slots__ = ("max_order", "scaled", "free_high", "scale_max")

    def __init__(self, mm_version: str) -> None:
        scaled = mm_version >= "5.14"
        #: highest order kept on the lists (pcp_allowed_order(); v5.11: order 0)
        self.max_order = PAGE_ALLOC_COSTLY_ORDER if scaled else 0
        #: zone_highsize(), nr_pcp_free() scaling, nr_pcp_high() under reclaim
        self.scaled = scaled
        #: 6.1: a high-order free while free_factor is set empties the list
        self.free_high = mm_version >= "6.1"
        #: 6.1.192: free_factor stops at CONFIG_PCP_BATCH_SCALE_MAX; v5.14: no cap
        self.scale_max = PCP_BATCH_SCALE_MAX if mm_version >= "6.1" else 1 << 30


class PerCpuPages:
    """``struct per_cpu_pages``: one CPU's free pages of one zone, counted per order."""

    __slots__ = ("count", "high", "batch", "free_factor", "blocks", "pfns")

    def __init__(self, high: int, batch: int, listed: bool) -> None:
        self.count = 0  # pages on the lists, all orders
        self.high = high
        self.batch = batch
        self.free_factor = 0
        self.blocks = [0] * (PAGE_ALLOC_COSTLY_ORDER + 1)  # blocks per order
        #: with the buddy model: each order's list of frame numbers, head at the right
        self.pfns: list[deque[int]] | None = [deque() for _ in self.blocks] if listed else None


def pageset_high_and_batch(managed: int, low_wmark: int, ncpus: int, version: PcpVersion) -> tuple[int, int]:
    """zone_set_pageset_high_and_batch(): ``(high, batch)`` for every CPU of a zone.

    v5.11: ``high = 6 * zone_batchsize()``, ``batch = max(1, zone_batchsize())``.
    v5.14 on: ``zone_highsize()``, the low watermark split over the node's CPUs
    (all of them, once the last CPU is online), at least ``4 * batch``.
    """
    batch = zone_batchsize(managed)
    if not version.scaled:
        return 6 * batch, max(1, batch)
    batch = max(1, batch)
    return max(low_wmark // ncpus, batch << 2), batch


class ZonePcp:
    """A zone's per-CPU lists (``zone->pageset``, 6.1: ``zone->per_cpu_pageset``)."""

    __slots__ = ("lists", "pages", "version", "reclaim_active", "spilled")

    def __init__(self, high: int, batch: int, ncpus: int, version: PcpVersion, listed: bool = False) -> None:
        self.lists = [PerCpuPages(high, batch, listed) for _ in range(ncpus)]
        self.pages = 0  # on every CPU's lists (show_free_areas()'s free_pcp)
        self.version = version
        #: ZONE_RECLAIM_ACTIVE: kswapd is in balance_pgdat() (v5.14 on)
        self.reclaim_active = False
        #: with the buddy model: (pfn, order) of the blocks given back, for __free_one_page()
        self.spilled: list[tuple[int, int]] = []

    def refill_count(self, pcp: PerCpuPages, order: int) -> int:
        """__rmqueue_pcplist(): how many blocks rmqueue_bulk() asks for."""
        batch = pcp.batch
        if self.version.scaled and batch > 1:
            batch = max(batch >> order, 2)
        return batch

    def nr_pcp_high(self, pcp: PerCpuPages, free_high: bool) -> int:
        """nr_pcp_high() (v5.14 on); v5.11: ``pcp->high``."""
        if not self.version.scaled:
            return pcp.high
        if not pcp.high or free_high:
            return 0
        if not self.reclaim_active:
            return pcp.high
        return min(pcp.batch << 2, pcp.high)

    def nr_pcp_free(self, pcp: PerCpuPages, high: int, free_high: bool) -> int:
        """nr_pcp_free() (v5.14 on); v5.11: ``pcp->batch``."""
        batch = pcp.batch
        if not self.version.scaled:
            return batch
        if free_high:
            return pcp.count
        if high < batch:
            return 1
        min_nr_free, max_nr_free = batch, high - batch
        batch <<= pcp.free_factor
        if batch < max_nr_free and pcp.free_factor < self.version.scale_max:
            pcp.free_factor += 1
        return max(min_nr_free, min(batch, max_nr_free))

    def take(self, cpu: int, order: int, nr_blocks: int, out: list[int] | None = None) -> int:
        """Blocks of ``order`` the CPU's list hands out now, up to ``nr_blocks``
        (__rmqueue_pcplist() while the list is not empty); their frame numbers,
        head first, go to ``out``."""
        pcp = self.lists[cpu]
        k = min(pcp.blocks[order], nr_blocks)
        if k:
            pcp.blocks[order] -= k
            pcp.count -= k << order
            self.pages -= k << order
            if pcp.pfns is not None:
                assert out is not None
                lst = pcp.pfns[order]
                out.extend(lst.pop() for _ in range(k))
        return k

    def allocated(self, cpu: int, nr_blocks: int) -> None:
        """rmqueue_pcplist() ran ``nr_blocks`` times: ``pcp->free_factor >>= 1`` each (v5.14 on)."""
        if self.version.scaled:
            self.lists[cpu].free_factor >>= min(nr_blocks, 8)

    def add_bulk(self, cpu: int, order: int, blocks: int, pfns: list[int] | None = None) -> None:
        """rmqueue_bulk() moved ``blocks`` (frame numbers ``pfns``, in the order it took
        them) from the buddy lists to the tail of the CPU's list."""
        pcp = self.lists[cpu]
        pcp.blocks[order] += blocks
        pcp.count += blocks << order
        self.pages += blocks << order
        if pcp.pfns is not None:
            assert pfns is not None and len(pfns) == blocks
            pcp.pfns[order].extendleft(pfns)

    def free(self, cpu: int, order: int, nr_blocks: int, pfns: list[int] | None = None) -> int:
        """free_unref_page_commit() of ``nr_blocks`` blocks (frame numbers ``pfns``) on
        ``cpu``: the pages spilled to the buddy lists."""
        pcp = self.lists[cpu]
        size = 1 << order
        spilled = 0
        left = nr_blocks
        done = 0  # of pfns
        while left:
            if self.version.free_high and order and pcp.free_factor:
                # free_high: nr_pcp_high() is 0 and nr_pcp_free() the whole list, at every free
                spilled += pcp.count + left * size
                self.pages -= pcp.count
                if pcp.pfns is not None:
                    assert pfns is not None
                    self._spill_all(pcp)
                    self.spilled.extend((p, order) for p in pfns[done:])
                pcp.count = 0
                pcp.blocks = [0] * len(pcp.blocks)
                return spilled
            high = self.nr_pcp_high(pcp, False)
            if high <= 0 and pcp.batch <= 1 and not pcp.count:
                # v5.11 with high 0: each page passes straight through
                if pfns is not None and pcp.pfns is not None:
                    self.spilled.extend((p, order) for p in pfns[done:])
                return spilled + left * size
            # blocks added before ``count >= high`` holds (at least the next one)
            k = min(left, max(1, -(-(high - pcp.count) // size)))
            pcp.blocks[order] += k
            pcp.count += k * size
            self.pages += k * size
            if pcp.pfns is not None:
                assert pfns is not None
                pcp.pfns[order].extend(pfns[done:done + k])  # list_add(): at the head
                done += k
            left -= k
            if pcp.count >= high:
                spilled += self.free_pcppages_bulk(pcp, self.nr_pcp_free(pcp, high, False), order)
        return spilled

    def free_pcppages_bulk(self, pcp: PerCpuPages, count: int, order: int) -> int:
        """free_pcppages_bulk(): give ``count`` pages back, from the list just freed to
        on, round robin over the orders, whole blocks, oldest (the tail) first;
        returns the pages given."""
        count = min(pcp.count, count)
        given = 0
        o = order
        while count > 0:
            have = pcp.blocks[o]
            if have:
                size = 1 << o
                k = min(have, -(-count // size))
                pcp.blocks[o] -= k
                count -= k * size
                given += k * size
                if pcp.pfns is not None:
                    lst = pcp.pfns[o]
                    self.spilled.extend((lst.popleft(), o) for _ in range(k))
            o = o + 1 if o + 1 < len(pcp.blocks) else 0
        pcp.count -= given
        self.pages -= given
        return given

    def _spill_all(self, pcp: PerCpuPages) -> None:
        """Every page of the CPU's lists to :attr:`spilled`, tail first."""
        assert pcp.pfns is not None
        for o, lst in enumerate(pcp.pfns):
            self.spilled.extend((p, o) for p in lst)
            lst.clear()

    def drain(self) -> int:
        """drain_pages_zone() on every CPU: the pages given back."""
        given = self.pages
        for pcp in self.lists:
            if pcp.pfns is not None:
                self._spill_all(pcp)
            pcp.count = 0
            pcp.blocks = [0] * len(pcp.blocks)
        self.pages = 0
        return given
