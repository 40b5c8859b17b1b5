"""v6.1 (as 6.1.y stable, 6.1.35 and later: what ../shared/calibration measured, 6.1.192).

On top of v5.14:

* 51824b780b71 "rcu/kvfree: Update KFREE_DRAIN_JIFFIES interval":
  ``KFREE_DRAIN_JIFFIES`` is ``5 * HZ``; ``schedule_delayed_monitor_work()``,
  called on every kvfree_call_rcu(), uses 1 jiffy once ``count >=
  KVFREE_BULK_MAX_ENTR`` and pulls a pending monitor in with
  ``mod_delayed_work()``; ``monitor_todo`` is gone (82d26c36cc68), the monitor
  re-arms while ``need_offload_krc()``.
* 093590c16b44 "rcu: Back off upon fill_page_cache_func() allocation failure".
* 38269096351806 "rcu/kfree: Fix kfree_rcu_shrink_count() return value": SHRINK_EMPTY.
* 6.1.35 (c6cbb4e1c10c, backport of 5da7cb193db3): the monitor uses a batch
  only when all its channels are free (``need_wait_for_krwp_work()``), so new
  objects never ride on an older grace period.
"""

from __future__ import annotations

from ...kernel.mm.vmscan import SHRINK_EMPTY
from ...kernel.sched import Cpu
from ..tree import KVFREE_BULK_MAX_ENTR, FREE_N_CHANNELS, KfreeRcuCpu, KfreeRcuCpuWork
from .v5_14 import V5_14


class V6_1(V5_14):
    name = "v6.1"
    description = "KFREE_DRAIN_JIFFIES 5*HZ with flood detection, fill stops at a failure (6.1.y stable)"
    source = "Linux 6.1.192 kernel/rcu/tree.c (Debian linux-source-6.1), the calibration kernel"
    rcuscale_version = "6.1"
    mm_version = "6.1"
    attaches_to_pending = False

    @property
    def kfree_drain_jiffies(self) -> int:
        return 5 * self.kernel.clock.hz

    def fill_break_on_failure(self) -> bool:
        return True

    def shrink_count_result(self, count: int) -> int:
        return SHRINK_EMPTY if count == 0 else count

    def bulk_run_limit(self, krcp: KfreeRcuCpu, room: int) -> int:
        # The call that makes count reach KVFREE_BULK_MAX_ENTR pulls the monitor in.
        if krcp.count < KVFREE_BULK_MAX_ENTR:
            return min(room, KVFREE_BULK_MAX_ENTR - krcp.count)
        return room

    @staticmethod
    def need_offload_krc(krcp: KfreeRcuCpu) -> bool:
        return bool(krcp.bkvhead[0] or krcp.bkvhead[1] or krcp.head)

    @staticmethod
    def need_wait_for_krwp_work(krwp: KfreeRcuCpuWork) -> bool:
        return any(krwp.bkvhead_free[i] for i in range(FREE_N_CHANNELS)) or bool(krwp.head_free)

    def schedule_monitor(self, krcp: KfreeRcuCpu, ctx: Cpu) -> None:
        """schedule_delayed_monitor_work()."""
        delay = 1 if krcp.count >= KVFREE_BULK_MAX_ENTR else self.kfree_drain_jiffies
        dw = krcp.monitor_work
        if dw.pending:
            if dw.timer is not None and dw.timer.pending():
                delay_left = dw.timer.expires - self.kernel.clock.jiffies
                if delay < delay_left:
                    self.system_wq.mod_delayed_work_on(ctx, dw, delay)
            return
        self.system_wq.queue_delayed_work_on(ctx, dw, delay)

    def kfree_rcu_monitor(self, krcp: KfreeRcuCpu, ctx: Cpu) -> None:
        self.c.monitor_runs += 1
        krcp.lock(ctx)
        # Attempt to start a new batch.
        for krwp in krcp.krw_arr:
            # Detach only into a batch whose channels are all free.
            if self.need_wait_for_krwp_work(krwp):
                continue
            if self.need_offload_krc(krcp):
                self.attach_channels(krcp, krwp)
                krcp.count = 0
                self.queue_batch(krwp, ctx)
        if self.need_offload_krc(krcp):
            self.schedule_monitor(krcp, ctx)
