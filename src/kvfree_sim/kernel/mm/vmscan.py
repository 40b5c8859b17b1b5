"""Reclaim: shrinkers, direct reclaim and kswapd (mm/vmscan.c, v5.11 and v6.1).

* ``shrink_slab()`` walks the registered shrinkers; ``do_shrink_slab()``
  computes how much to scan from ``count_objects()``: ``delta = (freeable >>
  priority) * 4 / seeks``, plus the work deferred from earlier calls, capped,
  and calls ``scan_objects()`` in chunks of ``SHRINK_BATCH`` (128) while
  ``total_scan >= batch_size || total_scan >= freeable``.  v5.11 adds all of
  ``nr_deferred`` and clamps to ``freeable/2`` when ``delta < freeable/4``;
  from v5.13 only ``nr_deferred >> priority`` is added
  (``mm_version`` selects which).
* Direct reclaim (``try_to_free_pages()`` -> ``do_try_to_free_pages()``)
  runs ``shrink_node()`` at priorities 12 down to 0 until it has reclaimed
  ``SWAP_CLUSTER_MAX`` pages.  Progress is what the reclaimer freed itself:
  LRU pages (the rcuscale guest has none: no page cache, no swap) and slab
  pages the shrinkers freed synchronously (``reclaim_state->reclaimed_slab``).
  The kvfree_rcu shrinker frees nothing synchronously that counts: cached
  bulk pages are not slab pages, and its objects are freed later by a
  kworker.  So under this workload reclaim never makes progress.
* kswapd (``balance_pgdat()``) reclaims at priorities 12 down to 1 while the
  node is below its high watermarks (boost included); a pass that reclaims
  nothing counts a ``kswapd_failure``; after ``MAX_RECLAIM_RETRIES`` the node
  is hopeless and kswapd sleeps until reclaim succeeds again
  (``prepare_kswapd_sleep()``, ``wakeup_kswapd()``).  A boosted pass that
  reclaims nothing gives up and drops the boost.
* v6.1's ``reclaim_throttle()`` never sleeps for kthreads other than kswapd,
  which are all rcuscale has, so it is modelled only for user tasks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Final, Generator

from ..sched import SLEEP, Cpu, Task, wake_task
from ..time import TimerList
from .gfp import GFP_KERNEL
from .page_alloc import MAX_RECLAIM_RETRIES, WMARK_HIGH, ZONE_NORMAL, Zone

if TYPE_CHECKING:
    from ..system import Kernel

SHRINK_BATCH: Final = 128
DEFAULT_SEEKS: Final = 2
DEF_PRIORITY: Final = 12
SWAP_CLUSTER_MAX: Final = 32
SHRINK_STOP: Final = (1 << 64) - 1
SHRINK_EMPTY: Final = (1 << 64) - 2


class ShrinkControl:
    """``struct shrink_control`` plus the CPU the caller runs on and the CPU time it spent."""

    __slots__ = ("gfp_mask", "nr_to_scan", "nr_scanned", "cpu", "cost_ns", "task")

    def __init__(self, gfp_mask: int, cpu: Cpu, task: Task | None) -> None:
        self.gfp_mask = gfp_mask
        self.nr_to_scan = 0
        self.nr_scanned = 0
        self.cpu = cpu
        self.cost_ns = 0
        self.task = task


class Shrinker:
    """``struct shrinker`` (not NUMA- or memcg-aware: one ``nr_deferred``)."""

    __slots__ = ("name", "count_objects", "scan_objects", "batch", "seeks", "nr_deferred", "scan_state",
                 "repeat_scan")

    def __init__(self, name: str, count: Callable[[ShrinkControl], int],
                 scan: Callable[[ShrinkControl], int], batch: int = 0, seeks: int = DEFAULT_SEEKS,
                 scan_state: Callable[[], object] | None = None,
                 repeat_scan: Callable[[int, int], None] | None = None) -> None:
        self.name = name
        self.count_objects = count
        self.scan_objects = scan
        self.batch = batch
        self.seeks = seeks
        self.nr_deferred = 0
        #: Optional, for speed only: everything a scan may change, and how to account
        #: ``k`` repeats of a scan that changed none of it (see do_shrink_slab()).
        self.scan_state = scan_state
        self.repeat_scan = repeat_scan


class Vmscan:
    """The node's reclaim state: shrinkers, kswapd, counters."""

    def __init__(self, kernel: "Kernel", mm_version: str) -> None:
        self.kernel = kernel
        self.mm_version = mm_version
        self.shrinkers: list[Shrinker] = []
        self.reclaiming = False  # a shrinker is running in some reclaimer's context
        self.reclaimed_slab = 0  # current->reclaim_state->reclaimed_slab
        self.kswapd_failures = 0
        self.kswapd_order = 0
        self.kswapd_sleeping = True
        self.kswapd = Task(kernel, "kswapd0", self._kswapd, nice=0, boot=True)
        self.kswapd.memalloc = True  # PF_MEMALLOC | PF_KSWAPD
        p = kernel.profile
        self.shrink_node_ns = p.ns("shrink_node_ns")
        self.stats = {"kswapd_runs": 0, "kswapd_passes": 0, "direct_reclaims": 0, "direct_reclaim_ns": 0,
                      "shrink_slab_calls": 0, "shrink_slab_counted": 0}
        self.direct_ns_by_task: dict[int, int] = {}

    def start(self) -> None:
        wake_task(self.kswapd)

    def register_shrinker(self, name: str, count: Callable[..., int], scan: Callable[..., int],
                          scan_state: Callable[[], object] | None = None,
                          repeat_scan: Callable[[int, int], None] | None = None) -> None:
        """register_shrinker() (batch 0 -> SHRINK_BATCH, seeks DEFAULT_SEEKS)."""
        self.shrinkers.append(Shrinker(name, count, scan, scan_state=scan_state, repeat_scan=repeat_scan))

    # -- shrink_slab ---------------------------------------------------------------

    def do_shrink_slab(self, sc: ShrinkControl, s: Shrinker, priority: int) -> int:
        """do_shrink_slab(): returns what the scans reported freed.

        The callbacks' CPU time is charged to the calling task as debt.
        """
        tracer = self.kernel.tracer
        batch_size = s.batch or SHRINK_BATCH
        freeable = s.count_objects(sc)
        assert sc.task is not None
        sc.task.debt += sc.cost_ns
        sc.cost_ns = 0
        if freeable == 0 or freeable == SHRINK_EMPTY:
            return freeable
        self.stats["shrink_slab_counted"] += 1  # the calls that reach the tracepoints
        nr = s.nr_deferred
        s.nr_deferred = 0
        if s.seeks:
            delta = (freeable >> priority) * 4 // s.seeks
        else:
            delta = freeable // 2
        if self.mm_version < "5.13":
            total_scan = nr + delta
            next_deferred = total_scan
            if delta < freeable // 4:
                total_scan = min(total_scan, freeable // 2)
            if total_scan > freeable * 2:
                total_scan = freeable * 2
        else:
            total_scan = (nr >> priority) + delta
            total_scan = min(total_scan, 2 * freeable)
            next_deferred = 0
        if tracer is not None:
            tracer.mm_shrink_slab_start(sc.cpu, s, sc, nr, freeable, delta, total_scan, priority)
        freed = 0
        scanned = 0
        task = sc.task
        state = s.scan_state
        while total_scan >= batch_size or total_scan >= freeable:
            nr_to_scan = min(batch_size, total_scan)
            sc.nr_to_scan = nr_to_scan
            sc.nr_scanned = nr_to_scan
            before = (task.debt, state()) if state is not None else None
            ret = s.scan_objects(sc)
            cost = sc.cost_ns
            unchanged = state is not None and before == (task.debt, state())
            task.debt += cost
            sc.cost_ns = 0
            if ret == SHRINK_STOP:
                break
            freed += ret
            total_scan -= sc.nr_scanned
            scanned += sc.nr_scanned
            if unchanged and nr_to_scan == batch_size and sc.nr_scanned == batch_size:
                # The calls follow each other at this same instant: one that changed
                # nothing is repeated exactly by every further full batch.  Apply
                # those at once (the loop's CPU time is the task's debt either way).
                k = total_scan // batch_size
                if k:
                    assert s.repeat_scan is not None
                    s.repeat_scan(k, ret)
                    task.debt += k * cost
                    freed += k * ret
                    total_scan -= k * batch_size
                    scanned += k * batch_size
        if self.mm_version < "5.13":
            next_deferred = next_deferred - scanned if next_deferred >= scanned else 0
        else:
            next_deferred = max(nr + delta - scanned, 0)
            next_deferred = min(next_deferred, 2 * freeable)
        s.nr_deferred += next_deferred
        if tracer is not None:
            tracer.mm_shrink_slab_end(sc.cpu, s, freed, nr, s.nr_deferred, total_scan)
        return freed

    def shrink_slab(self, task: Task, gfp: int, priority: int) -> int:
        """shrink_slab() for the root memcg of node 0."""
        assert task.cpu is not None
        freed = 0
        self.stats["shrink_slab_calls"] += 1
        for s in self.shrinkers:
            sc = ShrinkControl(gfp, task.cpu, task)
            ret = self.do_shrink_slab(sc, s, priority)
            if ret == SHRINK_EMPTY:
                ret = 0
            freed += ret
        return freed

    def shrink_node(self, task: Task, gfp: int, priority: int) -> Generator[Any, Any, int]:
        """shrink_node(): LRU lists (empty here) then slab; returns pages reclaimed.

        What counts is ``reclaim_state->reclaimed_slab``: slab pages freed by
        the shrinkers while they ran, in the reclaimer's own context
        (``__free_slab()``).  The kvfree_rcu shrinker frees none: cached bulk
        pages are not slab pages, and its objects are freed later by a kworker.
        """
        task.debt += self.shrink_node_ns
        self.reclaimed_slab = 0
        self.reclaiming = True
        try:
            self.shrink_slab(task, gfp, priority)
        finally:
            self.reclaiming = False
        reclaimed = self.reclaimed_slab
        if reclaimed:
            self.kswapd_failures = 0  # "A successful direct reclaim run will revive a dormant kswapd."
        yield 0  # the pass's CPU time elapses before the next one starts
        return reclaimed

    # -- direct reclaim --------------------------------------------------------------

    def try_to_free_pages(self, task: Task, gfp: int, order: int) -> Generator[Any, Any, int]:
        """try_to_free_pages() -> do_try_to_free_pages(): pages reclaimed."""
        kernel = self.kernel
        tracer = kernel.tracer
        start = kernel.sim.now
        self.stats["direct_reclaims"] += 1
        kernel.mm.stats["allocstall"] += 1
        if tracer is not None:
            tracer.mm_vmscan_direct_reclaim_begin(task, order, gfp)
        task.memalloc = True  # memalloc_noreclaim_save()
        nr_reclaimed = 0
        priority = DEF_PRIORITY
        while priority >= 0:
            nr_reclaimed += yield from self.shrink_node(task, gfp, priority)
            if nr_reclaimed >= SWAP_CLUSTER_MAX:
                break
            if self.mm_version >= "5.16" and priority == 1 and not nr_reclaimed:
                yield from self.reclaim_throttle(task)
            priority -= 1
        task.memalloc = False
        spent = kernel.sim.now - start
        self.stats["direct_reclaim_ns"] += spent
        self.direct_ns_by_task[task.pid] = self.direct_ns_by_task.get(task.pid, 0) + spent
        if tracer is not None:
            tracer.mm_vmscan_direct_reclaim_end(task, nr_reclaimed)
        return nr_reclaimed

    def reclaim_throttle(self, task: Task) -> Generator[Any, Any, None]:
        """reclaim_throttle(VMSCAN_THROTTLE_NOPROGRESS): kthreads only cond_resched()."""
        if task.kthread or self.kswapd_failures >= MAX_RECLAIM_RETRIES:
            return
        yield from self.schedule_timeout_uninterruptible(task, 1)

    def schedule_timeout_uninterruptible(self, task: Task, jiffies: int) -> Generator[Any, Any, None]:
        """schedule_timeout_uninterruptible(): sleep on a timer-wheel timer."""
        assert task.cpu is not None
        timer = TimerList(task.cpu, lambda t: wake_task(t), task)  # type: ignore[arg-type]
        timer.add(self.kernel.clock.jiffies + jiffies)
        yield SLEEP

    # -- kswapd ------------------------------------------------------------------------

    def pgdat_balanced(self, order: int) -> bool:
        """pgdat_balanced(pgdat, order, highest_zoneidx): some eligible zone is above its
        high watermark (boost included) plus its ``lowmem_reserve[highest_zoneidx]``
        (zone_watermark_ok_safe()).  Every request in this model may use ZONE_NORMAL
        (GFP_KERNEL), so a ZONE_DMA kept back for the zones above it is not balanced."""
        for z in self.kernel.mm.zones:
            if z.watermark_ok(order, z.wmark(WMARK_HIGH), ZONE_NORMAL, 0, False):
                return True
        return False

    def watermark_boosted(self) -> bool:
        return any(z.watermark_boost for z in self.kernel.mm.zones)

    def wakeup_kswapd(self, zone: Zone | None, order: int) -> None:
        """wakeup_kswapd(): unless it runs, the node is hopeless, or balanced and not boosted."""
        if self.kswapd_order < order:
            self.kswapd_order = order
        if not self.kswapd_sleeping:
            return
        if self.kswapd_failures >= MAX_RECLAIM_RETRIES:
            return
        if self.pgdat_balanced(order) and not self.watermark_boosted():
            return
        self.kswapd_sleeping = False
        self.kernel.mm.stats["kswapd_wakeups"] += 1
        wake_task(self.kswapd)

    def wake_all_kswapds(self, order: int) -> None:
        self.wakeup_kswapd(None, order)

    def prepare_kswapd_sleep(self, order: int) -> bool:
        if self.kswapd_failures >= MAX_RECLAIM_RETRIES:
            return True  # hopeless node, leave it to direct reclaim
        return self.pgdat_balanced(order)

    def _kswapd(self, me: Task) -> Generator[Any, Any, None]:
        """kswapd(): sleep until woken, balance_pgdat(), repeat while unbalanced."""
        clock = self.kernel.clock
        while True:
            # kswapd_try_to_sleep(): a short nap of HZ/10, then sleep for good
            # if still balanced (or hopeless); woken early, go balance.
            if self.prepare_kswapd_sleep(self.kswapd_order):
                assert me.cpu is not None
                timer = TimerList(me.cpu, self._kswapd_timeout, me)
                timer.add(clock.jiffies + clock.hz // 10)
                self.kswapd_sleeping = True
                woken = yield SLEEP
                timer.delete()
                if woken == "timeout" and self.prepare_kswapd_sleep(self.kswapd_order):
                    self.kswapd_sleeping = True
                    yield SLEEP
            self.kswapd_sleeping = False
            order = self.kswapd_order
            self.kswapd_order = 0
            yield from self.balance_pgdat(me, order)

    def _kswapd_timeout(self, me: object) -> None:
        assert isinstance(me, Task)
        if self.kswapd_sleeping and not me.runnable:
            wake_task(me, "timeout")

    def balance_pgdat(self, me: Task, order: int) -> Generator[Any, Any, None]:
        """balance_pgdat()."""
        mm = self.kernel.mm
        tracer = self.kernel.tracer
        self.stats["kswapd_runs"] += 1
        if tracer is not None:
            tracer.mm_vmscan_kswapd_wake(me, order)
        zone_boosts = [z.watermark_boost for z in mm.zones]
        nr_boost_reclaim = sum(zone_boosts)
        boosted = nr_boost_reclaim > 0
        total_reclaimed = 0
        priority = DEF_PRIORITY
        failed = True
        mm.set_reclaim_active(True)  # set_reclaim_active() at restart: (v5.14 on; no effect before)
        while True:  # restart:
            priority = DEF_PRIORITY
            restart = False
            while priority >= 1:
                balanced = self.pgdat_balanced(order)
                if not balanced and nr_boost_reclaim:
                    nr_boost_reclaim = 0
                    restart = True
                    break
                if not nr_boost_reclaim and balanced:
                    failed = False
                    break
                raise_priority = not (nr_boost_reclaim and priority == DEF_PRIORITY - 2)
                self.stats["kswapd_passes"] += 1
                reclaimed = yield from self.shrink_node(me, GFP_KERNEL, priority)
                total_reclaimed += reclaimed
                nr_boost_reclaim -= min(nr_boost_reclaim, reclaimed)
                if nr_boost_reclaim and not reclaimed:
                    break
                if raise_priority or not reclaimed:
                    priority -= 1
            if not restart:
                break
        mm.set_reclaim_active(False)  # out: clear_reclaim_active()
        if failed and not total_reclaimed:
            self.kswapd_failures += 1
        if boosted:
            for z, b in zip(mm.zones, zone_boosts):
                z.watermark_boost -= min(z.watermark_boost, b)
