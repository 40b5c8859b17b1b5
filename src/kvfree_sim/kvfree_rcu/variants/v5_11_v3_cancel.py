"""v5.11+v3+cancel: Zqiang's counter-proposal in the thread, as kvfree-sim reads it.

    "Maybe can cancel the timer and cancel work in the rcu_shrink_count
     function, after the rcu_shrink_scan function is executed and recover
     timer."  (Zqiang, 2021-02-04)

Interpretation (the thread has no code):

* ``kfree_rcu_shrink_count()`` cancels, on every CPU, a refill that is kicked
  but has not started: ``hrtimer_cancel(&krcp->hrtimer)`` and a non-waiting
  cancel of ``page_cache_work`` (a running fill is left alone).  The CPU keeps
  ``work_in_progress`` set, so kvfree_rcu() does not kick another refill, and
  remembers that its refill was cancelled.
* ``kfree_rcu_shrink_scan()``, after draining a CPU's cache, re-arms that CPU's
  cancelled refill through the hrtimer, as it was ("recover timer").
* A count that is not followed by a scan (``do_shrink_slab()`` decides the
  scan is too small) leaves the refill cancelled until the next scan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...kernel.sched import Cpu
from ...kernel.workqueue import cancel_work
from ..tree import KfreeRcuCpu
from .v5_11_v3 import V5_11_V3

if TYPE_CHECKING:
    from ...checks import Invariants
    from ...kernel.mm.vmscan import ShrinkControl
    from ...kernel.system import Kernel


class V5_11_V3_Cancel(V5_11_V3):
    name = "v5.11+v3+cancel"
    description = "v3 plus Zqiang's idea: count cancels pending refills, scan re-arms them after draining"
    source = "LKML 2021-02-04 Zqiang, reply in 'Re: [PATCH v3] kvfree_rcu: Release page cache under memory pressure'"

    def __init__(self, kernel: "Kernel", rcutree: dict[str, Any], checks: "Invariants") -> None:
        super().__init__(kernel, rcutree, checks)
        self.refill_cancelled = [False] * len(self.krc)

    def shrink_count_cpu(self, krcp: KfreeRcuCpu, sc: "ShrinkControl") -> int:
        count = super().shrink_count_cpu(krcp, sc)
        if krcp.hrtimer.cancel(sc.cpu) | cancel_work(krcp.page_cache_work):
            self.refill_cancelled[krcp.cpu.id] = True
            self.c.cancelled_refills += 1
        return count

    def scan_state_extra(self) -> tuple[object, ...]:
        return (*super().scan_state_extra(), tuple(self.refill_cancelled))

    def scan_drain(self, krcp: KfreeRcuCpu, ctx: Cpu) -> int:
        freed = super().scan_drain(krcp, ctx)
        if self.refill_cancelled[krcp.cpu.id]:
            self.refill_cancelled[krcp.cpu.id] = False
            self.c.worker_hrtimer += 1
            krcp.hrtimer.start(0)  # recover the timer
        return freed
