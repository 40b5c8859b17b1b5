"""v5.14: "kvfree_rcu: Release a page cache under memory pressure" as merged (d0bfa8b3c411).

On top of v5.13 (kernel-reference.md sections 5.2 and 7.2):

* ``drain_page_cache()`` from ``kfree_rcu_shrink_scan()``; the count adds
  ``nr_bkv_objs`` and sets a **per-CPU** ``backoff_page_cache_fill`` on every CPU;
* ``page_cache_work`` is delayed work: while backing off, the refill is queued
  on ``system_wq`` after ``rcutree.rcu_delay_page_cache_fill_msec`` (5000,
  clamped to [0, 100000]) and allocates **one** page; the fill clears the flag;
* "Refactor kfree_rcu_monitor()": the monitor detaches itself and re-arms while
  a channel stays busy; the shrinker scan calls it directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...kernel.sched import Cpu
from ...kernel.workqueue import DelayedWork
from ..tree import KfreeRcuCpu
from .v5_13 import V5_13

if TYPE_CHECKING:
    from ...kernel.mm.vmscan import ShrinkControl


class V5_14(V5_13):
    name = "v5.14"
    description = "the merged patch: per-CPU backoff, refill of 1 page after rcu_delay_page_cache_fill_msec"
    source = "Linux v5.14 kernel/rcu/tree.c, d0bfa8b3c411 'kvfree_rcu: Release a page cache under memory pressure'"
    rcutree_version = "5.14"
    mm_version = "5.14"
    page_cache_work_delayed = True

    def configure(self, rcutree: dict[str, Any]) -> None:
        # kfree_rcu_batch_init(): clamp to [0:100] seconds.
        msec = rcutree["rcu_delay_page_cache_fill_msec"]
        self.rcu_delay_page_cache_fill_msec = min(max(msec, 0), 100 * 1000)

    def fill_nr_pages(self, krcp: KfreeRcuCpu) -> int:
        return 1 if krcp.backoff_page_cache_fill else self.rcu_min_cached_objs

    def fill_done(self, krcp: KfreeRcuCpu) -> None:
        krcp.work_in_progress = False
        krcp.backoff_page_cache_fill = False

    def run_page_cache_worker(self, krcp: KfreeRcuCpu) -> None:
        if not krcp.work_in_progress:
            krcp.work_in_progress = True
            if krcp.backoff_page_cache_fill:
                assert isinstance(krcp.page_cache_work, DelayedWork)
                self.c.worker_delayed += 1
                delay = self.kernel.clock.msecs_to_jiffies(self.rcu_delay_page_cache_fill_msec)
                self.system_wq.queue_delayed_work_on(krcp.cpu, krcp.page_cache_work, delay)
            else:
                self.c.worker_hrtimer += 1
                krcp.hrtimer.start(0)

    def shrink_count_cpu(self, krcp: KfreeRcuCpu, sc: "ShrinkControl") -> int:
        count = krcp.count + krcp.nr_bkv_objs  # READ_ONCE()s, no lock
        krcp.backoff_page_cache_fill = True
        return count

    def scan_drain(self, krcp: KfreeRcuCpu, ctx: Cpu) -> int:
        return self.drain_page_cache(krcp, ctx)

    def scan_kick_monitor(self, krcp: KfreeRcuCpu, ctx: Cpu) -> None:
        self.kfree_rcu_monitor(krcp, ctx)

    def kfree_rcu_monitor(self, krcp: KfreeRcuCpu, ctx: Cpu) -> None:
        """kfree_rcu_monitor() after "Refactor kfree_rcu_monitor()"."""
        self.c.monitor_runs += 1
        krcp.lock(ctx)
        # Attempt to start a new batch.
        for krwp in krcp.krw_arr:
            self.detach_into(krcp, krwp, ctx)
        # If there is nothing to detach, our job is done; else re-arm.
        if not krcp.bkvhead[0] and not krcp.bkvhead[1] and not krcp.head:
            krcp.monitor_todo = False
        else:
            self.system_wq.queue_delayed_work_on(ctx, krcp.monitor_work, self.kfree_drain_jiffies)
