"""The page allocator: zones, watermarks and the allocation slow path (mm/page_alloc.c).

Modelled after v5.11 (v6.1 differs nowhere this model looks):

* **Memory layout.**  RAM below 4 GiB is ZONE_DMA (first 16 MiB, when the
  kernel has CONFIG_ZONE_DMA) and ZONE_DMA32; QEMU's ``pc`` machine puts RAM
  beyond 3 GiB above 4 GiB, in ZONE_NORMAL.  The kernel keeps its image, the
  memmap (64-byte ``struct page`` per page, mapped by SPARSEMEM_VMEMMAP in 2 MiB
  blocks per 128 MiB section), per-CPU areas and other boot reservations; the
  machine profile's layout section says how much, with sources.
* **Watermarks** (``init_per_zone_wmark_min()``, ``__setup_per_zone_wmarks()``):
  ``min_free_kbytes = int_sqrt(lowmem_kbytes * 16)`` clamped to [128, 262144],
  split over zones by managed pages; ``low = min + max(min/4,
  managed*watermark_scale_factor/10000)``, ``high = min + 2*that``;
  ``lowmem_reserve`` from ``sysctl_lowmem_reserve_ratio``; ``watermark_boost``
  raised by a pageblock when an unmovable allocation steals part of a
  pageblock, no whole free one being left (``steal_suitable_fallback()`` ->
  ``boost_watermark()``, ``watermark_boost_factor`` 15000), and dropped by
  kswapd.
* **Fast path**: ``get_page_from_freelist()`` at the low watermark
  (``zone_watermark_fast()``/``__zone_watermark_ok()``).
* **Slow path** (:meth:`PageAllocator.alloc_pages`, ``__alloc_pages_slowpath()``):
  wake kswapd, retry at the min watermark (``ALLOC_HIGH``/``ALLOC_HARDER``
  lower it, ``PF_MEMALLOC`` ignores it), direct reclaim, ``__GFP_NORETRY``
  gives up after one reclaim, ``should_reclaim_retry()`` allows
  ``MAX_RECLAIM_RETRIES`` rounds without progress (a workqueue worker sleeps a
  jiffy between rounds, anyone else only ``cond_resched()``\\s), then
  ``__alloc_pages_may_oom()``.

* **Per-CPU page lists** (:mod:`.pcp`): allocations of a CPU's context take
  pages from its list, frees go to it; the watermarks see only the buddy
  count, and direct reclaim that made progress but still finds no page drains
  every list once (``__alloc_pages_direct_reclaim()``).

Not modelled: page fragmentation (a high-order request succeeds whenever the
count of free pages passes the watermark, so compaction never runs),
highatomic reserves, CMA, NUMA (one node), cpusets.
"""

from __future__ import annotations

from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Generator

from .gfp import (
    GFP_ATOMIC_FLAG, GFP_DIRECT_RECLAIM, GFP_HIGH, GFP_KSWAPD_RECLAIM, GFP_MEMALLOC,
    GFP_NOFAIL, GFP_NOMEMALLOC, GFP_NORETRY, GFP_NOWARN, GFP_RETRY_MAYFAIL, gfp_migratetype, gfp_string,
)
from .buddy import MAX_ORDER, MIGRATE_UNMOVABLE, FreeArea
from .pcp import PcpVersion, ZonePcp, pageset_high_and_batch
from .slab import KmemCache, kmalloc_size

if TYPE_CHECKING:
    from ..sched import Task
    from ..system import Kernel

PAGE_SHIFT: Final = 12
PAGE_SIZE: Final = 1 << PAGE_SHIFT
MAX_RECLAIM_RETRIES: Final = 16
PAGE_ALLOC_COSTLY_ORDER: Final = 3
WATERMARK_SCALE_FACTOR: Final = 10  # vm.watermark_scale_factor default
WATERMARK_BOOST_FACTOR: Final = 15000  # vm.watermark_boost_factor default

WMARK_MIN: Final = 0
WMARK_LOW: Final = 1
WMARK_HIGH: Final = 2
ALLOC_WMARK_MASK: Final = 0x03
ALLOC_NO_WATERMARKS: Final = 0x04
ALLOC_OOM: Final = 0x08
ALLOC_HARDER: Final = 0x10  # v5.11; 6.1.192 calls the bit ALLOC_NON_BLOCK
ALLOC_HIGH: Final = 0x20  # == __GFP_HIGH; 6.1.192: ALLOC_MIN_RESERVE
ALLOC_NON_BLOCK: Final = ALLOC_HARDER
ALLOC_MIN_RESERVE: Final = ALLOC_HIGH
ALLOC_CPUSET: Final = 0x40
ALLOC_KSWAPD: Final = 0x800  # == __GFP_KSWAPD_RECLAIM

ZONE_DMA: Final = 0
ZONE_DMA32: Final = 1
ZONE_NORMAL: Final = 2
ZONE_NAMES: Final = ("DMA", "DMA32", "Normal")
# sysctl_lowmem_reserve_ratio (v5.11): DMA 256, DMA32 256, Normal 32
LOWMEM_RESERVE_RATIO: Final = (256, 256, 32)

SECTION_PAGES: Final = (128 << 20) >> PAGE_SHIFT  # SECTION_SIZE_BITS = 27 (x86_64)
STRUCT_PAGE_BYTES: Final = 64


def int_sqrt(x: int) -> int:
    """lib/math/int_sqrt.c: floor(sqrt(x))."""
    import math

    return math.isqrt(x)


class Zone:
    """``struct zone``."""

    __slots__ = ("idx", "name", "present", "managed", "free", "watermark", "watermark_boost",
                 "lowmem_reserve", "pcp", "start_pfn", "area")

    def __init__(self, idx: int, present: int, managed: int) -> None:
        self.idx = idx
        self.name = ZONE_NAMES[idx]
        self.present = present
        self.managed = managed
        self.free = managed  # NR_FREE_PAGES: the buddy lists, not the per-CPU lists
        self.pcp: ZonePcp | None = None  # set up with the watermarks
        self.watermark = [0, 0, 0]  # _watermark[WMARK_MIN..HIGH]
        self.watermark_boost = 0
        self.lowmem_reserve = [0, 0, 0]
        self.start_pfn = 0  # zone_start_pfn
        self.area: FreeArea | None = None  # the buddy lists, with the buddy model

    def wmark(self, i: int) -> int:
        """min/low/high_wmark_pages(): the watermark plus the boost."""
        return self.watermark[i] + self.watermark_boost

    def watermark_ok(self, order: int, mark: int, highest: int, alloc_flags: int, new_reserves: bool,
                     free: int | None = None) -> bool:
        """__zone_watermark_ok() (no highatomic reserve, no CMA, no fragmentation)."""
        free_pages = (self.free if free is None else free) - ((1 << order) - 1)
        return free_pages > reserve_min(mark, alloc_flags, new_reserves) + self.lowmem_reserve[highest]


def reserve_min(mark: int, alloc_flags: int, new_reserves: bool) -> int:
    """The watermark a caller must stay above, after the reserves its flags open.

    v5.11 (and vanilla v6.1): ALLOC_HIGH takes half; ALLOC_OOM half, or else
    ALLOC_HARDER a quarter.  6.1.192 (the v6.3 reserves series, backported):
    ALLOC_MIN_RESERVE takes half and, with ALLOC_NON_BLOCK too, a quarter
    more; ALLOC_OOM half again.
    """
    m = mark
    if new_reserves:
        if alloc_flags & ALLOC_MIN_RESERVE:
            m -= m // 2
            if alloc_flags & ALLOC_NON_BLOCK:
                m -= m // 4
        if alloc_flags & ALLOC_OOM:
            m -= m // 2
        return m
    if alloc_flags & ALLOC_HIGH:
        m -= m // 2
    if alloc_flags & ALLOC_OOM:
        m -= m // 2
    elif alloc_flags & ALLOC_HARDER:
        m -= m // 4
    return m


class PageAllocator:
    """Zones of one node, the buddy allocator's counts and the slow path."""

    def __init__(self, kernel: "Kernel", memory_bytes: int, mm_version: str,
                 zones: list[tuple[int, int]] | None = None, buddy: bool = True) -> None:
        """``zones``, given as (zone index, managed pages), replaces the layout's zones
        (the worked examples of the watermark arithmetic use it); ``buddy`` keeps free
        pages by frame number (:mod:`.buddy`) instead of counting them."""
        self.kernel = kernel
        self.mm_version = mm_version
        #: 6.1.192 backports: the v6.3 reserve rules, and zone_reclaimable_pages()
        #: counting free pages when the LRU lists are empty
        self.new_reserves = mm_version >= "6.1"
        self.retry_ns = kernel.profile.ns("slowpath_retry_ns")
        layout = kernel.profile.layout
        ncpus = len(kernel.cpus)
        if zones is None:
            self.zones = self._make_zones(memory_bytes, layout, ncpus)
        else:
            self.zones = [Zone(idx, n, n) for idx, n in zones]
        self.managed_pages = sum(z.managed for z in self.zones)
        self.present_pages = sum(z.present for z in self.zones)
        self.pageblock_order = int(layout["pageblock_order"])
        self.pageblock_pages = 1 << self.pageblock_order
        self.owners: dict[str, int] = {}
        #: with the buddy model: each owner's blocks by order, oldest first (a free
        #: gives back the oldest the owner holds), and the blocks _take() just got
        self.held: dict[str, list[deque[int]]] | None = {} if buddy else None
        self._got: list[int] = []
        self.caches: dict[int, KmemCache] = {}
        self._setup_watermarks(layout)
        self.pcp_version = PcpVersion(mm_version)
        self._setup_pagesets(ncpus, buddy)
        self.stats = {"allocstall": 0, "oom": 0, "alloc_fail": 0, "pgsteal_boost": 0,
                      "direct_reclaim_ns": 0, "kswapd_wakeups": 0, "pcp_drains": 0}
        if buddy:
            self._setup_free_areas(layout)
        self.base_pages = 0
        self._charge_base(layout, ncpus)
        # without the buddy model: pageblocks unmovable allocations have claimed
        used = self.managed_pages - self.nr_free_pages()
        self.unmovable_blocks = -(-used // self.pageblock_pages)
        #: the lowest free page count seen after an allocation (how close the run came to the watermarks)
        self.free_pages_min = self.nr_free_pages()

    # -- layout -------------------------------------------------------------------

    def _make_zones(self, memory_bytes: int, layout: dict[str, float], ncpus: int) -> list[Zone]:
        total = memory_bytes >> PAGE_SHIFT
        present = total - int(layout["firmware_reserved_kb"]) // 4  # below 1 MiB and at the top
        low_limit = (3 << 30) >> PAGE_SHIFT  # QEMU pc: RAM above 3 GiB is remapped above 4 GiB
        dma_pages = 4096 - int(layout["firmware_reserved_kb"]) // 4 if layout["zone_dma"] else 0
        below4g = min(present, low_limit - int(layout["firmware_reserved_kb"]) // 4)
        above4g = present - below4g
        sections = -(-total // SECTION_PAGES)
        memmap_pages = sections * (SECTION_PAGES * STRUCT_PAGE_BYTES >> PAGE_SHIFT)
        # Reserved at boot, less the init sections freed once boot is over.
        reserved_kb = (layout["kernel_image_kb"] + layout["reserved_other_kb"]
                       + layout["percpu_kb_per_cpu"] * ncpus - layout["freed_after_boot_kb"])
        reserved = int(reserved_kb) // 4 + memmap_pages
        zones: list[Zone] = []
        if dma_pages:
            zones.append(Zone(ZONE_DMA, dma_pages, dma_pages))
        dma32_present = below4g - dma_pages
        at_boot = reserved + int(layout["freed_after_boot_kb"]) // 4  # before init memory is freed
        if dma32_present <= at_boot + 1024:
            from ...config import ConfigError

            raise ConfigError(
                f"{memory_bytes >> 20}M is too small to boot: the kernel keeps {at_boot * 4 // 1024}M of it")
        if above4g > 0:
            zones.append(Zone(ZONE_DMA32, dma32_present, dma32_present))
            zones.append(Zone(ZONE_NORMAL, above4g, above4g - reserved))
        else:
            zones.append(Zone(ZONE_DMA32, dma32_present, dma32_present - reserved))
        return zones

    def _setup_watermarks(self, layout: dict[str, float]) -> None:
        # init_per_zone_wmark_min(): lowmem_kbytes = nr_free_buffer_pages() in KiB,
        # taken at core_initcall time, before init memory and the initrd are freed.
        lowmem_kbytes = (self.managed_pages - int(layout["freed_after_boot_kb"]) // 4) * 4
        mfk = int_sqrt(lowmem_kbytes * 16)
        self.min_free_kbytes = max(128, min(mfk, 262144))
        pages_min = self.min_free_kbytes >> (PAGE_SHIFT - 10)
        lowmem = self.managed_pages
        for z in self.zones:
            tmp = pages_min * z.managed // lowmem
            z.watermark[WMARK_MIN] = tmp
            tmp = max(tmp >> 2, z.managed * WATERMARK_SCALE_FACTOR // 10000)
            z.watermark[WMARK_LOW] = z.watermark[WMARK_MIN] + tmp
            z.watermark[WMARK_HIGH] = z.watermark[WMARK_MIN] + tmp * 2
        # setup_per_zone_lowmem_reserve(): zone i keeps back upper zones' managed/ratio
        by_idx = {z.idx: z for z in self.zones}
        for z in self.zones:
            upper = 0
            for j in range(z.idx + 1, 3):
                if j in by_idx:
                    upper += by_idx[j].managed
                z.lowmem_reserve[j] = upper // LOWMEM_RESERVE_RATIO[z.idx]
        # calculate_totalreserve_pages()
        total = 0
        for z in self.zones:
            m = max(z.lowmem_reserve) + z.watermark[WMARK_HIGH]
            total += min(m, z.managed)
        self.totalreserve_pages = total

    def _setup_pagesets(self, ncpus: int, listed: bool) -> None:
        """setup_zone_pageset() at boot, then zone_pcp_update() as each CPU comes online."""
        for z in self.zones:
            high, batch = pageset_high_and_batch(z.managed, z.watermark[WMARK_LOW], ncpus, self.pcp_version)
            z.pcp = ZonePcp(high, batch, ncpus, self.pcp_version, listed)

    def _setup_free_areas(self, layout: dict[str, float]) -> None:
        """Page frames of each zone, and memblock_free_all() of those not reserved.

        The zones follow each other from the first page after the firmware's
        low reservation, the rest of the low 1 MiB reserved; the last one ends
        below the firmware's reservation at the top of RAM (which need not be pageblock aligned: move_freepages_block() will
        not take over a pageblock that crosses the zone's end).  The kernel
        image sits at CONFIG_PHYSICAL_START (16 MiB): code, rodata and rwdata
        each start on a 2 MiB boundary, and the gaps between them and the init
        sections after rwdata are freed after boot (free_kernel_image_pages(),
        free_initmem()), leaving partly free pageblocks; bss follows.  The rest
        of the boot reservations (memmap, per-CPU areas, others) are at the top
        of memory, as memblock allocates top-down.  Free ranges go to the buddy
        lists in the largest aligned blocks (__free_pages_memory(),
        FPI_TO_TAIL), every pageblock MIGRATE_MOVABLE.
        """
        pfn = (int(layout["firmware_reserved_kb"]) - int(layout["firmware_top_kb"])) // 4
        for z in self.zones:
            if z.idx == ZONE_DMA32 and any(o.idx == ZONE_DMA for o in self.zones):
                pfn = 4096
            if z.idx == ZONE_NORMAL:
                pfn = 1 << (32 - PAGE_SHIFT)
            z.start_pfn = pfn
            pfn += z.present
        reserved_total = sum(z.present - z.managed for z in self.zones)
        top = self.zones[-1].start_pfn + self.zones[-1].present
        # (zones given by their managed pages alone have nothing reserved); what of
        # the image lies beyond the top of memory is placed with the rest
        reserved: list[tuple[int, int]] = []
        rest = reserved_total
        for r0, r1 in self._image_reservation(layout) if reserved_total else []:
            r1 = min(r1, top, r0 + rest)
            if r1 > r0:
                reserved.append((r0, r1))
                rest -= r1 - r0
        # the low 1 MiB that the firmware leaves is reserved too (reserve_real_mode(),
        # trim_low_memory_range()), when it is in the zone the reservations are
        # charged to (_make_zones() charges them all to the highest)
        first = self.zones[0].start_pfn
        low = min(rest, max(0, ((1 << 20) >> PAGE_SHIFT) - first)) if len(self.zones) == 1 else 0
        if low:
            reserved.append((first, first + low))
            rest -= low
        for r0, r1 in sorted(reserved, reverse=True):  # top-down, skipping the image
            low = max(r1, top - rest)
            if low < top:
                reserved.append((low, top))
                rest -= top - low
            top = r0
        if rest:
            reserved.append((top - rest, top))
        for z in self.zones:
            end = z.start_pfn + z.present
            z.area = FreeArea(z.start_pfn, end, self.pageblock_order, partial(self._boost_watermark, z))
            start = z.start_pfn
            for r0, r1 in sorted(reserved):
                if r1 <= start or r0 >= end:
                    continue
                self._free_range(z.area, start, max(start, r0))
                start = max(start, r1)
            self._free_range(z.area, start, end)
            if z.area.nr_free != z.managed:
                from ...config import ConfigError

                raise ConfigError(f"{z.name}: the boot reservations do not fit the zone's layout")

    def _image_reservation(self, layout: dict[str, float]) -> list[tuple[int, int]]:
        """The kernel image's page ranges still reserved after boot (code, rodata,
        rwdata, bss; the 2 MiB alignment gaps and the init sections freed)."""
        align = (2 << 20) >> PAGE_SHIFT
        pos = (16 << 20) >> PAGE_SHIFT  # CONFIG_PHYSICAL_START
        ranges: list[tuple[int, int]] = []
        gaps = 0
        for key in ("kernel_text_kb", "kernel_rodata_kb", "kernel_rwdata_kb"):
            n = int(layout[key]) // 4
            if n:
                ranges.append((pos, pos + n))
                nxt = pos + n if key == "kernel_rwdata_kb" else -(-(pos + n) // align) * align
                gaps += nxt - pos - n
                pos = nxt
        # the rest of the image: init sections (freed, with whatever else the freed
        # total holds) after rwdata, then bss
        rest = max(0, int(layout["kernel_image_kb"]) // 4 - sum(r1 - r0 for r0, r1 in ranges))
        init = min(rest, max(0, int(layout["freed_after_boot_kb"]) // 4 - gaps))
        bss = rest - init
        ranges.append((pos + init, pos + init + bss))
        return [(r0, r1) for r0, r1 in ranges if r1 > r0]

    @staticmethod
    def _free_range(area: FreeArea, start: int, end: int) -> None:
        """__free_pages_memory(): the largest aligned blocks, to the tail of their lists."""
        while start < end:
            order = min(MAX_ORDER - 1, (start & -start).bit_length() - 1 if start else MAX_ORDER - 1)
            while start + (1 << order) > end:
                order -= 1
            area.free_pages_ok(start, order, to_tail=True)
            start += 1 << order

    def _charge_base(self, layout: dict[str, float], ncpus: int) -> None:
        """Memory in use once boot is over: slab, page tables, kthread stacks, rootfs."""
        kb = layout["boot_used_kb"] + layout["boot_used_kb_per_cpu"] * ncpus
        pages = int(kb) // 4
        got = self._take(pages, 0, ALLOC_NO_WATERMARKS)
        self.base_pages = got
        self._hold("base", got)

    # -- counters -----------------------------------------------------------------------

    def nr_free_pages(self) -> int:
        """NR_FREE_PAGES: the buddy lists only."""
        free = 0
        for z in self.zones:
            free += z.free
        return free

    def nr_pcp_pages(self) -> int:
        """Free pages on the per-CPU lists (show_free_areas()'s ``free_pcp``)."""
        return sum(self.zone_pcp(z).pages for z in self.zones)

    @staticmethod
    def zone_pcp(z: Zone) -> ZonePcp:
        assert z.pcp is not None
        return z.pcp

    def drain_all_pages(self) -> None:
        """drain_all_pages(NULL): every CPU's lists back to the buddy lists."""
        for z in self.zones:
            z.free += self.zone_pcp(z).drain()
            if z.area is not None:
                self._to_buddy(z)
        self.stats["pcp_drains"] += 1

    def set_reclaim_active(self, active: bool) -> None:
        """set_reclaim_active()/clear_reclaim_active() (balance_pgdat(), v5.14 on)."""
        for z in self.zones:
            self.zone_pcp(z).reclaim_active = active

    def held_pages(self) -> dict[str, int]:
        return {k: v for k, v in self.owners.items() if v}

    def si_mem_available(self) -> int:
        """si_mem_available(): free minus totalreserve (no page cache, no reclaimable slab)."""
        return max(0, self.nr_free_pages() - self.totalreserve_pages)

    def kmalloc_cache(self, size: int) -> KmemCache:
        """The kmalloc cache serving ``size`` bytes (created on first use)."""
        s = kmalloc_size(size) or size
        cache = self.caches.get(s)
        if cache is None:
            cache = KmemCache(self, s, len(self.kernel.cpus))
            self.caches[s] = cache
        return cache

    # -- fast path ---------------------------------------------------------------------

    def _take(self, nr_blocks: int, order: int, alloc_flags: int, highest: int = ZONE_NORMAL,
              cpu: int | None = None, mt: int = MIGRATE_UNMOVABLE) -> int:
        """get_page_from_freelist() for up to ``nr_blocks`` blocks of migratetype ``mt``;
        how many it got (with the buddy model, their frame numbers are left in ``_got``).

        Zones are tried from the highest one allowed down (the zonelist), each
        while it passes its watermark; from CPU ``cpu``'s context, through its
        per-CPU list (rmqueue_pcplist()).  The lists here hold unmovable pages only:
        other types go to the buddy lists directly, which is what the kernel's lists
        do with a batch of 1 (the calibration guest's).
        """
        got = 0
        size = 1 << order
        wm = alloc_flags & ALLOC_WMARK_MASK
        nowm = alloc_flags & ALLOC_NO_WATERMARKS
        use_pcp = cpu is not None and order <= self.pcp_version.max_order and mt == MIGRATE_UNMOVABLE
        for z in reversed(self.zones):
            if z.idx > highest:
                continue
            # free - (size - 1) > min + reserve, for each block taken
            limit = -1 if nowm else (reserve_min(z.wmark(wm), alloc_flags, self.new_reserves)
                                     + z.lowmem_reserve[highest] + size - 1)
            if use_pcp:
                assert cpu is not None
                got += self._take_pcp(z, cpu, order, nr_blocks - got, limit, alloc_flags)
            elif z.area is not None:
                got += self._take_buddy(z, order, nr_blocks - got, limit, alloc_flags, mt)
            elif z.free > limit:
                room = z.free // size if nowm else (z.free - limit - 1) // size + 1
                k = min(room, nr_blocks - got)
                z.free -= k * size
                got += k
            if got == nr_blocks:
                break
        return got

    @staticmethod
    def _order_check(z: Zone, order: int, alloc_flags: int) -> FreeArea | None:
        """The free area whose lists __zone_watermark_ok()'s high-order part must find a
        block of ``order`` or more on (None: no such check)."""
        if not order or alloc_flags & ALLOC_NO_WATERMARKS:
            return None
        return z.area

    def _wake_if_boosted(self, z: Zone) -> None:
        """rmqueue(): test and clear ZONE_BOOSTED_WATERMARK, then wakeup_kswapd()."""
        area = z.area
        if area is not None and area.boosted:
            area.boosted = False
            self.kernel.vmscan.wakeup_kswapd(z, 0)

    def _take_buddy(self, z: Zone, order: int, want: int, limit: int, alloc_flags: int, mt: int) -> int:
        """rmqueue_buddy() up to ``want`` times while the zone passes its watermark."""
        area = z.area
        assert area is not None
        check = self._order_check(z, order, alloc_flags)
        size = 1 << order
        got = 0
        while got < want and z.free > limit and (check is None or check.has_order(order)):
            pfn = area.rmqueue(order, mt, bool(alloc_flags & ALLOC_KSWAPD))  # __rmqueue()
            self._wake_if_boosted(z)
            if pfn < 0:
                break
            z.free -= size
            self._got.append(pfn)
            got += 1
        return got

    def _take_pcp(self, z: Zone, cpu: int, order: int, want: int, limit: int, alloc_flags: int) -> int:
        """rmqueue_pcplist() up to ``want`` times while the zone passes its watermark
        (the buddy count, which the list's pages are not part of)."""
        pcp = self.zone_pcp(z)
        check = self._order_check(z, order, alloc_flags)
        size = 1 << order
        got = 0
        # Each allocation checks the watermark first; taking from the list does not
        # change the buddy count, refilling it does.
        while got < want and z.free > limit and (check is None or check.has_order(order)):
            if not pcp.lists[cpu].blocks[order]:
                n = min(pcp.refill_count(pcp.lists[cpu], order), z.free // size)  # rmqueue_bulk()
                if z.area is not None:
                    pfns = self._rmqueue_bulk(z, order, n, alloc_flags)
                    n = len(pfns)
                    if n:
                        pcp.add_bulk(cpu, order, n, pfns)
                elif n > 0:
                    pcp.add_bulk(cpu, order, n)
                if n <= 0:
                    break
                z.free -= n * size
            got += pcp.take(cpu, order, want - got, self._got)
        if got:
            pcp.allocated(cpu, got)
        return got

    def _rmqueue_bulk(self, z: Zone, order: int, count: int, alloc_flags: int) -> list[int]:
        """rmqueue_bulk(): up to ``count`` blocks from the buddy lists, in the order taken."""
        area = z.area
        assert area is not None
        pfns = area.rmqueue_bulk(order, MIGRATE_UNMOVABLE, count, bool(alloc_flags & ALLOC_KSWAPD))
        self._wake_if_boosted(z)
        return pfns

    def _hold(self, owner: str, pages: int) -> None:
        """``owner`` now holds ``pages`` more (with the buddy model: the blocks in ``_got``)."""
        self.owners[owner] = self.owners.get(owner, 0) + pages
        if self.held is not None and self._got:
            lists = self.held.get(owner)
            if lists is None:
                lists = self.held[owner] = [deque() for _ in range(MAX_ORDER)]
            order = (pages // len(self._got)).bit_length() - 1
            lists[order].extend(self._got)
            self._got.clear()

    def _charge(self, owner: str, pages: int, alloc_flags: int) -> None:
        """Account pages to ``owner``; without the buddy model, claim pageblocks (and
        boost) as unmovable use grows."""
        self._hold(owner, pages)
        free = self.nr_free_pages()
        if free < self.free_pages_min:
            self.free_pages_min = free
        if self.held is not None:
            return
        used = self.managed_pages - free
        if used > self.unmovable_blocks * self.pageblock_pages:
            self._steal_pageblocks(used, alloc_flags)

    def _boost_watermark(self, z: Zone) -> bool:
        """boost_watermark(): raise the zone's boost by a pageblock, up to
        watermark_boost_factor of the high watermark; False on so small a zone
        that boosting is "unlikely to produce results"."""
        if self.pageblock_pages * 4 > z.managed:
            return False
        max_boost = max(self.pageblock_pages, z.watermark[WMARK_HIGH] * WATERMARK_BOOST_FACTOR // 10000)
        z.watermark_boost = min(z.watermark_boost + self.pageblock_pages, max_boost)
        self.stats["pgsteal_boost"] += 1
        return True

    def _steal_pageblocks(self, used: int, alloc_flags: int) -> None:
        """Without the buddy model: __rmqueue_fallback() -> steal_suitable_fallback() ->
        boost_watermark(); with ALLOC_KSWAPD the same allocation's rmqueue() wakes
        kswapd (ZONE_BOOSTED_WATERMARK).

        The fallback takes the largest free block of the other migratetype, and a
        block of pageblock_order or more is simply taken over ("Take ownership for
        orders >= pageblock_order", before the boost, v5.0-v6.9): only a steal from
        a partly used pageblock boosts.  Free memory is taken to be unfragmented
        here, so a whole free pageblock exists while a pageblock's worth of pages
        is free.
        """
        z = self.zones[-1]
        boosted = False
        while used > self.unmovable_blocks * self.pageblock_pages:
            self.unmovable_blocks += 1
            if z.free >= self.pageblock_pages:
                continue  # change_pageblock_range() of a whole free block: no boost
            boosted = self._boost_watermark(z) or boosted
        if boosted and alloc_flags & ALLOC_KSWAPD:
            self.kernel.vmscan.wakeup_kswapd(z, 0)

    def alloc_fast(self, nr_blocks: int, order: int, gfp: int, owner: str, cpu: int | None = None) -> int:
        """The first get_page_from_freelist() of __alloc_pages() (low watermark,
        alloc_flags_nofragment()) for ``nr_blocks`` blocks at once, from CPU
        ``cpu``'s context; returns how many."""
        flags = WMARK_LOW | (gfp & GFP_KSWAPD_RECLAIM)
        got = self._take(nr_blocks, order, flags, cpu=cpu, mt=gfp_migratetype(gfp))
        if got:
            self._charge(owner, got << order, flags)
        return got

    def free_pages(self, nr_blocks: int, order: int, owner: str, cpu: int | None = None) -> None:
        """__free_pages() from CPU ``cpu``'s context: to its per-CPU list, or (no CPU,
        or an order the lists do not keep) to the buddy lists, of the zone they
        came from (here: the highest with pages in use)."""
        pages = nr_blocks << order
        left = self.owners.get(owner, 0) - pages
        if left < 0:
            from ...checks import InvariantViolation

            raise InvariantViolation("pages not conserved", f"{owner} frees {pages} pages but holds {left + pages}")
        self.owners[owner] = left
        use_pcp = cpu is not None and order <= self.pcp_version.max_order
        if self.held is not None:
            self._free_blocks(nr_blocks, order, owner, cpu if use_pcp else None)
            return
        for z in reversed(self.zones):
            pcp = self.zone_pcp(z)
            room = z.managed - z.free - pcp.pages  # pages in use in this zone
            if use_pcp:
                assert cpu is not None
                k = min(room >> order, nr_blocks)
                if k:
                    z.free += pcp.free(cpu, order, k)
                    nr_blocks -= k
                    pages -= k << order
            else:
                k = min(room, pages)
                z.free += k
                pages -= k
            if not pages:
                break
        if pages:  # blocks straddling zones in this count-only model: by the page
            for z in reversed(self.zones):
                k = min(z.managed - z.free - self.zone_pcp(z).pages, pages)
                z.free += k
                pages -= k

    def _free_blocks(self, nr_blocks: int, order: int, owner: str, cpu: int | None) -> None:
        """free_pages() with the buddy model: the owner's oldest blocks, to CPU ``cpu``'s
        list (free_unref_page()) or to the buddy lists (__free_pages_ok())."""
        assert self.held is not None
        lst = self.held[owner][order]
        pfns = [lst.popleft() for _ in range(nr_blocks)]
        for z in reversed(self.zones):  # each block to the zone it lies in
            mine = [p for p in pfns if p >= z.start_pfn]
            if not mine:
                continue
            pfns = [p for p in pfns if p < z.start_pfn]
            if cpu is not None:
                z.free += self.zone_pcp(z).free(cpu, order, len(mine), mine)
                self._to_buddy(z)
            else:
                area = z.area
                assert area is not None
                for p in mine:
                    area.free_pages_ok(p, order)
                z.free += len(mine) << order

    def _to_buddy(self, z: Zone) -> None:
        """__free_one_page() of what the zone's per-CPU lists gave back, each to its
        pageblock's list (get_pcppage_migratetype())."""
        pcp = self.zone_pcp(z)
        if pcp.spilled:
            area = z.area
            assert area is not None
            for p, o in pcp.spilled:
                area.free_pages_ok(p, o)
            pcp.spilled.clear()

    # -- __alloc_pages() ------------------------------------------------------------------

    def gfp_to_alloc_flags(self, gfp: int) -> int:
        """gfp_to_alloc_flags(): v5.11, or 6.1.192's (non-blocking means no direct reclaim)."""
        flags = WMARK_MIN | ALLOC_CPUSET
        flags |= gfp & (GFP_HIGH | GFP_KSWAPD_RECLAIM)
        if self.new_reserves:
            if not gfp & GFP_DIRECT_RECLAIM:
                if not gfp & GFP_NOMEMALLOC:
                    flags |= ALLOC_NON_BLOCK
                if flags & ALLOC_MIN_RESERVE:
                    flags &= ~ALLOC_CPUSET
        elif gfp & GFP_ATOMIC_FLAG:
            if not gfp & GFP_NOMEMALLOC:
                flags |= ALLOC_HARDER
            flags &= ~ALLOC_CPUSET
        return flags

    def _pfmemalloc_flags(self, gfp: int, task: "Task | None") -> int:
        """__gfp_pfmemalloc_flags()."""
        if gfp & GFP_NOMEMALLOC:
            return 0
        if gfp & GFP_MEMALLOC:
            return ALLOC_NO_WATERMARKS
        if task is not None:
            if task.memalloc:
                return ALLOC_NO_WATERMARKS
            if task.oom_victim:
                return ALLOC_OOM
        return 0

    def alloc_pages(self, task: "Task | None", gfp: int, order: int, owner: str) -> Generator[Any, Any, bool]:
        """__alloc_pages(gfp, order) from ``task``'s context: fast path, then slow path.

        A generator: reclaim takes CPU time and may sleep.  Returns True when a
        block was allocated (and charged to ``owner``).
        """
        cpu = task.cpu.id if task is not None and task.cpu is not None else None
        if self.alloc_fast(1, order, gfp, owner, cpu):
            return True
        self.kernel.sync_all()  # frees that have happened by now count
        if self.alloc_fast(1, order, gfp, owner, cpu):
            return True
        flags = yield from self._slowpath(task, cpu, gfp, order)
        if flags < 0:
            return False
        self._charge(owner, 1 << order, flags)
        return True

    def _slowpath(self, task: "Task | None", cpu: int | None, gfp: int, order: int) -> Generator[Any, Any, int]:
        """__alloc_pages_slowpath() from CPU ``cpu``'s context: the alloc_flags that got
        the block, or -1 for none."""
        kernel = self.kernel
        vmscan = kernel.vmscan
        can_direct_reclaim = bool(gfp & GFP_DIRECT_RECLAIM) and task is not None
        costly = order > PAGE_ALLOC_COSTLY_ORDER
        no_progress_loops = 0
        alloc_flags = self.gfp_to_alloc_flags(gfp)
        mt = gfp_migratetype(gfp)
        if alloc_flags & ALLOC_KSWAPD:
            vmscan.wake_all_kswapds(order)
        if self._take(1, order, alloc_flags, cpu=cpu, mt=mt):
            return alloc_flags
        while True:  # retry:
            if task is not None:
                task.debt += self.retry_ns
            if alloc_flags & ALLOC_KSWAPD:
                vmscan.wake_all_kswapds(order)
            reserve = self._pfmemalloc_flags(gfp, task)
            if reserve:
                # The reserve flags replace the others (current_alloc_flags());
                # 6.1 keeps waking kswapd.
                keep = alloc_flags & ALLOC_KSWAPD if self.mm_version >= "6.1" else 0
                alloc_flags = reserve | keep
            # Every look at the free lists sees what other CPUs have freed by now
            # (their divisible bursts commit lazily otherwise), here after a
            # reclaim round or a jiffy's sleep.
            kernel.sync_all()
            if self._take(1, order, alloc_flags, cpu=cpu, mt=mt):
                return alloc_flags
            if not can_direct_reclaim or task is None or task.memalloc:
                break  # nopage
            # __alloc_pages_direct_reclaim(): no retry of the freelist without progress
            progress = yield from vmscan.try_to_free_pages(task, gfp, order)
            if progress:
                kernel.sync_all()
                if self._take(1, order, alloc_flags, cpu=cpu, mt=mt):
                    return alloc_flags
                # "pages are pinned on the per-cpu lists": drain them all, retry once
                self.drain_all_pages()
                if self._take(1, order, alloc_flags, cpu=cpu, mt=mt):
                    return alloc_flags
            if gfp & GFP_NORETRY:
                break
            if costly and not gfp & GFP_RETRY_MAYFAIL:
                break
            # should_reclaim_retry()
            no_progress_loops = 0 if (progress and order <= PAGE_ALLOC_COSTLY_ORDER) else no_progress_loops + 1
            kernel.sync_all()
            retry = yield from self._should_reclaim_retry(task, order, alloc_flags, no_progress_loops)
            if retry:
                continue
            # __alloc_pages_may_oom()
            got, did_some_progress = yield from self._may_oom(task, cpu, gfp, order)
            if got:
                return WMARK_HIGH | ALLOC_CPUSET
            if kernel.panicked is not None:
                yield SLEEP_FOREVER
            if task.oom_victim and (alloc_flags & ALLOC_OOM or gfp & GFP_NOMEMALLOC):
                break
            if did_some_progress:
                no_progress_loops = 0
                continue
            break
        # nopage:
        if gfp & GFP_NOFAIL:
            raise NotImplementedError("__GFP_NOFAIL")  # nothing kvfree-sim models uses it
        self.stats["alloc_fail"] += 1
        if not gfp & GFP_NOWARN:
            kernel.printk(f"{task.name if task else 'irq'}: page allocation failure: order:{order}, "
                          f"mode:{gfp:#x}({gfp_string(gfp)})")
        return -1

    def _should_reclaim_retry(self, task: "Task", order: int, alloc_flags: int,
                              no_progress_loops: int) -> Generator[Any, Any, bool]:
        """should_reclaim_retry(): worth another round of reclaim?"""
        if no_progress_loops > MAX_RECLAIM_RETRIES:
            return False
        ret = False
        for z in reversed(self.zones):
            # available = zone_reclaimable_pages() + free.  No LRU pages here;
            # 6.1.192's zone_reclaimable_pages() then returns the free count.
            reclaimable = z.free if self.new_reserves else 0
            if z.watermark_ok(order, z.wmark(WMARK_MIN), ZONE_NORMAL, alloc_flags, self.new_reserves,
                              z.free + reclaimable):
                ret = True
                break
        # A workqueue worker must sleep here or the pool would never run its
        # other items; anyone else only cond_resched()s (a no-op under PREEMPT).
        if task.wq_worker:
            yield from self.kernel.vmscan.schedule_timeout_uninterruptible(task, 1)
        return ret

    def _may_oom(self, task: "Task", cpu: int | None, gfp: int, order: int) -> Generator[Any, Any, tuple[bool, bool]]:
        """__alloc_pages_may_oom()."""
        oom = self.kernel.oom
        if oom.lock_held:
            # Somebody else is OOM killing: back off a jiffy and count it as progress.
            yield from self.kernel.vmscan.schedule_timeout_uninterruptible(task, 1)
            return False, True
        # Go through the zonelist once more at the high watermark: perhaps
        # somebody freed memory meanwhile.
        self.kernel.sync_all()
        if self._take(1, order, WMARK_HIGH | ALLOC_CPUSET, cpu=cpu, mt=gfp_migratetype(gfp)):
            return True, False
        if order > PAGE_ALLOC_COSTLY_ORDER or gfp & GFP_RETRY_MAYFAIL:
            return False, False
        killed = yield from oom.out_of_memory(task, gfp, order)
        return False, killed


SLEEP_FOREVER: Final = -1  # the sched.SLEEP directive: a panicked machine never wakes the task
