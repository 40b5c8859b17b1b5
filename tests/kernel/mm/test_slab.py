"""SLUB kmalloc caches (src/kvfree_sim/kernel/mm/slab.py) against mm/slub.c and
mm/slab_common.c (v6.1; the same in v5.11 for what is tested)."""

from __future__ import annotations

import pytest

from kvfree_sim.kernel.mm.gfp import GFP_KERNEL
from kvfree_sim.kernel.mm.slab import KmemCache, kmalloc_size

from ktest import MSEC, drive, set_free, sleep_forever, spawn


@pytest.mark.parametrize("size, cache", [
    (1, 8), (8, 8), (9, 16), (17, 32), (32, 32), (33, 64), (65, 96), (96, 96), (97, 128),
    (129, 192), (193, 256), (1025, 2048), (4097, 8192), (8192, 8192), (8193, None),
])
def test_kmalloc_size_classes(size: int, cache: int | None) -> None:
    """kmalloc_index() (include/linux/slab.h v6.1) with KMALLOC_MIN_SIZE 8: power-of-two
    caches plus kmalloc-96 and kmalloc-192; SLUB's KMALLOC_MAX_CACHE_SIZE is
    PAGE_SIZE << 1 = 8192, larger requests go to the page allocator."""
    assert kmalloc_size(size) == cache


@pytest.mark.parametrize("ncpus", [2, 64])
@pytest.mark.parametrize("size, order, objects", [
    # min_objects = 4 * (fls(nr_cpus) + 1): 12 at 2 CPUs, 32 at 64 CPUs
    (32, 0, 128),    # get_order(12*32) = get_order(32*32) = 0, 4096 % 32 = 0
    (2048, 3, 16),   # min(min_objects, order_objects(3) = 16) -> get_order(>=24576) = 3, 32768 % 2048 = 0
])
def test_calculate_order(make_kernel, ncpus: int, size: int, order: int, objects: int) -> None:
    """calculate_order()/calc_slab_order() (mm/slub.c v6.1): slub_max_order 3, leftover
    at most 1/16 of the slab; worked examples of /work/notes/mm-v5.11-v6.1.md section 3."""
    kernel = make_kernel(ncpus=ncpus, start=False)
    cache = kernel.mm.kmalloc_cache(size)
    assert (cache.order, cache.objs_per_slab) == (order, objects)


@pytest.mark.parametrize("ncpus, order, objects", [
    # 2 CPUs: min_objects 12: get_order(2304) = 0, 4096 % 192 = 64 <= 4096/16 -> order 0, 21 objects
    (2, 0, 21),
    # 64 CPUs: min_objects 32: get_order(6144) = 1, 8192 % 192 = 128 <= 512 -> order 1, 42 objects
    (64, 1, 42),
])
def test_calculate_order_depends_on_cpu_count(make_kernel, ncpus: int, order: int, objects: int) -> None:
    """calculate_order() for kmalloc-192 (mm/slub.c v6.1): more CPUs, more objects per slab."""
    kernel = make_kernel(ncpus=ncpus, start=False)
    cache = kernel.mm.kmalloc_cache(192)
    assert (cache.name, cache.order, cache.objs_per_slab) == ("kmalloc-192", order, objects)


def test_slab_pages_come_back_only_in_whole_empty_slabs(make_kernel) -> None:
    """__slab_free() (mm/slub.c v6.1) discards a slab (discard_slab() -> __free_slab())
    only when its last object is freed (!new.inuse); SLUB may keep a few empty slabs
    (at most min_partial = 5 on the node list and cpu_partial_slabs = 3 on the per-CPU
    partial list for kmalloc-2k, plus the CPU slab).  Objects freed in allocation order:
    15 of a 16-object order-3 slab free no page; freeing 20 slabs' worth returns pages
    in whole slabs of 8 pages, at least 20 - 9 slabs of them."""
    kernel = make_kernel(ncpus=2, start=False)
    mm = kernel.mm
    cache = mm.kmalloc_cache(2048)
    cpu_slab = cache.cpus[0]
    cache.refill_fast(cpu_slab, 320)
    assert cache.nr_slabs == 20 and cache.pages == 160
    cpu_slab.take(320)
    free0 = mm.nr_free_pages()
    cpu_slab.free(15, None)
    assert mm.nr_free_pages() == free0 and cache.pages == 160
    cpu_slab.free(305, None)
    returned = mm.nr_free_pages() - free0
    assert returned % 8 == 0
    assert 11 * 8 <= returned <= 160
    assert cache.inuse == 0


def test_allocate_slab_falls_back_to_the_minimum_order(make_kernel) -> None:
    """allocate_slab() (mm/slub.c v6.1): the cache's order (3 for kmalloc-2k) is tried
    with __GFP_NOWARN|__GFP_NORETRY|__GFP_NOMEMALLOC and without __GFP_RECLAIM; when that
    fails, s->min (order 0, 2 objects) with the caller's flags.  With 708 pages free
    (min 704): order 3 at min fails (708 - 7 = 701 <= 704) without any reclaim, order 0
    succeeds at min (708 > 704)."""
    kernel = make_kernel(ncpus=2)
    kernel.sim.run(until=1 * MSEC)
    set_free(kernel, 708)
    cache: KmemCache = kernel.mm.kmalloc_cache(2048)
    me = spawn(kernel, "current", sleep_forever, cpu=0, wake=False)
    cpu_slab = cache.cpus[0]
    assert drive(cache.allocate_slab(me, cpu_slab, GFP_KERNEL)) is True
    assert (cache.nr_slabs, cache.pages, cpu_slab.free_objs) == (1, 1, 2)
    assert cache.fallbacks == 1  # ORDER_FALLBACK
    assert kernel.mm.stats["allocstall"] == 0
    # the order-0 page came through the CPU's per-CPU list, which keeps the rest of its batch
    assert kernel.mm.nr_free_pages() + kernel.mm.nr_pcp_pages() == 707


def test_allocate_slab_uses_the_cache_order_when_memory_allows(make_kernel) -> None:
    kernel = make_kernel(ncpus=2)
    cache = kernel.mm.kmalloc_cache(2048)
    me = spawn(kernel, "current", sleep_forever, cpu=0, wake=False)
    free0 = kernel.mm.nr_free_pages()
    assert drive(cache.allocate_slab(me, cache.cpus[0], GFP_KERNEL)) is True
    assert (cache.pages, cache.cpus[0].free_objs, cache.fallbacks) == (8, 16, 0)
    assert kernel.mm.nr_free_pages() + kernel.mm.nr_pcp_pages() == free0 - 8
