"""v5.11+v3+backoff: v3 plus Uladzislau Rezki's diff from the thread (2021-02-01).

    -	struct work_struct page_cache_work;
    +	struct delayed_work page_cache_work;
    schedule_page_work_fn():  queue_delayed_work(system_highpri_wq, &krcp->page_cache_work, 0)
    +static bool backoff_page_cache_fill;
    run_page_cache_worker():
    +	if (READ_ONCE(backoff_page_cache_fill)) {
    +		queue_delayed_work(system_highpri_wq, &krcp->page_cache_work, HZ);
    +		WRITE_ONCE(backoff_page_cache_fill, false);
    +	} else { hrtimer_start(&krcp->hrtimer, 0, HRTIMER_MODE_REL); }
    kfree_rcu_shrink_count():
    +	WRITE_ONCE(backoff_page_cache_fill, true);

One global flag: set by every count, consumed by the first refill kicked after it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...kernel.workqueue import DelayedWork
from ..tree import KfreeRcuCpu
from .v5_11_v3 import V5_11_V3

if TYPE_CHECKING:
    from ...kernel.mm.vmscan import ShrinkControl


class V5_11_V3_Backoff(V5_11_V3):
    name = "v5.11+v3+backoff"
    description = "v3 plus the reviewer's backoff: a count sets a global flag; the next refill is delayed work after HZ"
    source = "LKML 2021-02-04 Uladzislau Rezki, 'Re: [PATCH v3] kvfree_rcu: Release page cache under memory pressure'"

    page_cache_work_delayed = True
    backoff_page_cache_fill = False

    def run_page_cache_worker(self, krcp: KfreeRcuCpu) -> None:
        if not krcp.work_in_progress:
            krcp.work_in_progress = True
            if self.backoff_page_cache_fill:
                assert isinstance(krcp.page_cache_work, DelayedWork)
                self.c.worker_delayed += 1
                self.system_highpri_wq.queue_delayed_work_on(
                    krcp.cpu, krcp.page_cache_work, self.kernel.clock.hz)
                self.backoff_page_cache_fill = False
            else:
                self.c.worker_hrtimer += 1
                krcp.hrtimer.start(0)

    def scan_state_extra(self) -> tuple[object, ...]:
        return (self.backoff_page_cache_fill,)

    def kfree_rcu_shrink_count(self, sc: "ShrinkControl") -> int:
        count = super().kfree_rcu_shrink_count(sc)
        # Low memory condition, limit a page cache worker activity.
        self.backoff_page_cache_fill = True
        return count
