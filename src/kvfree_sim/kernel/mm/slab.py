"""SLUB kmalloc caches (mm/slub.c, mm/slab_common.c, v5.11-v6.1).

A :class:`KmemCache` is one ``kmalloc-N`` cache.  Its slab order is
``calculate_order()``'s, with ``slub_min_objects = 4 * (fls(nr_cpus) + 1)``,
``slub_max_order = PAGE_ALLOC_COSTLY_ORDER`` (3) and the leftover fractions
16, 8, 4.  ``kmalloc(size)`` picks the cache by ``kmalloc_index()``; sizes
above ``KMALLOC_MAX_CACHE_SIZE`` (two pages) go to the page allocator as
compound pages, one object each.

``allocate_slab()`` first tries the cache's order with ``__GFP_NORETRY |
__GFP_NOWARN | __GFP_NOMEMALLOC`` and no reclaim at all, then falls back to the
minimum order (the smallest that holds one object) with the caller's flags:
under pressure a kmalloc-2k slab is one page of two objects, not eight pages of
sixteen (the OOM report in ../shared/calibration shows ``order=0`` for it).

Objects are counted per CPU slab stream (:class:`SlabCpu`), not tracked one by
one: a CPU allocates objects from its slabs in order, and rcuscale frees them
in the same order (a batch after a batch), so a slab is empty, and its pages go
back to the page allocator (``discard_slab()``), once as many objects as it
held have been freed past it.  Simplifications: no per-CPU or node partial
lists (``min_partial`` empty slabs are not kept), and frees within one batch
are counted in FIFO order.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Final, Generator

from .gfp import (
    GFP_COMP, GFP_DIRECT_RECLAIM, GFP_KERNEL, GFP_KSWAPD_RECLAIM, GFP_NOFAIL, GFP_NOMEMALLOC, GFP_NORETRY,
    GFP_NOWARN,
)

if TYPE_CHECKING:
    from ..sched import Task
    from .page_alloc import PageAllocator

PAGE_SIZE: Final = 4096
PAGE_ALLOC_COSTLY_ORDER: Final = 3
KMALLOC_MAX_CACHE_SIZE: Final = 2 * PAGE_SIZE  # SLUB: PAGE_SIZE << 1
KMALLOC_SIZES: Final = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192)
MAX_OBJS_PER_PAGE: Final = 32767


def get_order(size: int) -> int:
    """include/asm-generic/getorder.h."""
    order = 0
    size = (size - 1) >> 12
    while size:
        order += 1
        size >>= 1
    return order


def fls(x: int) -> int:
    return x.bit_length()


def kmalloc_size(size: int) -> int | None:
    """Object size of the kmalloc cache serving ``size`` (None: page allocator)."""
    if size > KMALLOC_MAX_CACHE_SIZE:
        return None
    for s in KMALLOC_SIZES:
        if size <= s:
            return s
    return None


def _slab_order(size: int, min_objects: int, max_order: int, fract_leftover: int) -> int:
    """slab_order()."""
    order = get_order(min_objects * size)
    while order <= max_order:
        slab_size = PAGE_SIZE << order
        if slab_size % size <= slab_size // fract_leftover:
            break
        order += 1
    return order


def calculate_order(size: int, nr_cpus: int) -> int:
    """calculate_order() with the default slub_min_objects/max_order."""
    min_objects = 4 * (fls(nr_cpus) + 1)
    max_objects = (PAGE_SIZE << PAGE_ALLOC_COSTLY_ORDER) // size
    min_objects = min(min_objects, max_objects)
    while min_objects > 1:
        fraction = 16
        while fraction >= 4:
            order = _slab_order(size, min_objects, PAGE_ALLOC_COSTLY_ORDER, fraction)
            if order <= PAGE_ALLOC_COSTLY_ORDER:
                return order
            fraction //= 2
        min_objects -= 1
    order = _slab_order(size, 1, PAGE_ALLOC_COSTLY_ORDER, 1)
    if order <= PAGE_ALLOC_COSTLY_ORDER:
        return order
    return get_order(size)


class SlabCpu:
    """The slabs one CPU allocated objects from, oldest first (run-length encoded)."""

    __slots__ = ("cache", "cpu", "slabs", "free_objs", "freed_into_front")

    def __init__(self, cache: "KmemCache", cpu: int) -> None:
        self.cache = cache
        self.cpu = cpu
        # [count, objects per slab, order] runs, oldest first
        self.slabs: deque[list[int]] = deque()
        self.free_objs = 0  # objects not yet handed out in the newest slabs
        self.freed_into_front = 0  # objects freed from the oldest slab so far

    def add_slabs(self, count: int, order: int) -> None:
        """New slabs of ``order`` became this CPU's (allocate_slab())."""
        objs = self.cache.objs_for_order(order)
        last = self.slabs[-1] if self.slabs else None
        if last is not None and last[1] == objs and last[2] == order:
            last[0] += count
        else:
            self.slabs.append([count, objs, order])
        self.free_objs += count * objs
        self.cache.nr_slabs += count
        self.cache.pages += count << order

    def take(self, n: int) -> None:
        """Hand out ``n`` objects (the caller made sure they exist)."""
        assert n <= self.free_objs
        self.free_objs -= n
        self.cache.inuse += n

    def free(self, n: int, ctx: int | None) -> None:
        """``n`` objects allocated by this CPU are freed, oldest first (kfree/kfree_bulk),
        from CPU ``ctx``'s context (whose per-CPU page list an empty slab goes to)."""
        cache = self.cache
        cache.inuse -= n
        acc = self.freed_into_front + n
        slabs = self.slabs
        alloc = cache.allocator
        pages = 0
        while slabs:
            run = slabs[0]
            objs = run[1]
            k = min(run[0], acc // objs)
            if k == 0:
                break
            acc -= k * objs
            run[0] -= k
            pages += k << run[2]
            cache.nr_slabs -= k
            alloc.free_pages(k, run[2], cache.owner, ctx)  # discard_slab() -> __free_pages()
            if run[0] == 0:
                slabs.popleft()
        self.freed_into_front = acc
        if pages:
            cache.pages -= pages
            vmscan = alloc.kernel.vmscan
            if vmscan.reclaiming and not alloc.kernel.foreign_commit:
                vmscan.reclaimed_slab += pages  # __free_slab(): current->reclaim_state


class KmemCache:
    """``struct kmem_cache`` for one kmalloc size."""

    def __init__(self, allocator: "PageAllocator", size: int, nr_cpus: int) -> None:
        self.allocator = allocator
        self.size = size  # object size
        self.name = f"kmalloc-{size}" if size < 1024 else f"kmalloc-{size // 1024}k"
        self.large = kmalloc_size(size) is None  # kmalloc_large(): the page allocator
        if self.large:
            self.name = f"kmalloc_large-{size}"
            self.order = get_order(size)
            self.min_order = self.order
        else:
            self.order = calculate_order(size, nr_cpus)
            self.min_order = get_order(size)
        self.owner = f"slab:{self.name}"
        self.allocflags = GFP_COMP if self.order else 0  # s->allocflags
        self.objs_per_slab = self.objs_for_order(self.order)
        self.inuse = 0
        self.nr_slabs = 0
        self.pages = 0
        self.fallbacks = 0  # ORDER_FALLBACK
        self.cpus = [SlabCpu(self, c) for c in range(nr_cpus)]

    def allocate_slab(self, task: "Task", cpu_slab: SlabCpu, gfp: int) -> Generator[Any, Any, bool]:
        """allocate_slab() (v5.11, v6.1): the cache's order without reclaim, else the minimum order."""
        alloc = self.allocator
        flags = gfp | self.allocflags
        ok = yield from alloc.alloc_pages(task, self.first_attempt_gfp(flags), self.order, self.owner)
        if ok:
            cpu_slab.add_slabs(1, self.order)
            return True
        ok = yield from alloc.alloc_pages(task, flags, self.min_order, self.owner)
        if ok:
            cpu_slab.add_slabs(1, self.min_order)
            self.fallbacks += 1  # stat(s, ORDER_FALLBACK)
        return ok

    def first_attempt_gfp(self, flags: int) -> int:
        """allocate_slab(): "Let the initial higher-order allocation fail under
        memory pressure": __GFP_NOWARN|__GFP_NORETRY, and no reclaim at all when
        the cache's order is above its minimum."""
        alloc_gfp = (flags | GFP_NOWARN | GFP_NORETRY) & ~GFP_NOFAIL
        if alloc_gfp & GFP_DIRECT_RECLAIM and self.order > self.min_order:
            alloc_gfp = (alloc_gfp | GFP_NOMEMALLOC) & ~(GFP_DIRECT_RECLAIM | GFP_KSWAPD_RECLAIM)
        return alloc_gfp

    def refill_fast(self, cpu_slab: SlabCpu, objects: int) -> int:
        """Pre-allocate, through the fast path only, slabs for up to ``objects``
        more objects; returns how many slabs it got."""
        need = objects - cpu_slab.free_objs
        if need <= 0:
            return 0
        n = -(-need // self.objs_per_slab)
        gfp = self.first_attempt_gfp(GFP_KERNEL | self.allocflags)
        got = self.allocator.alloc_fast(n, self.order, gfp, self.owner, cpu_slab.cpu)
        if got:
            cpu_slab.add_slabs(got, self.order)
        return got

    def objs_for_order(self, order: int) -> int:
        if self.large:
            return 1
        return min((PAGE_SIZE << order) // self.size, MAX_OBJS_PER_PAGE)
