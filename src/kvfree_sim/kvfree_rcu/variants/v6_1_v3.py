"""v6.1-v3: v6.1 with ../shared/calibration/linux-6.1-qemu-tcg/v3.patch.

    fill_page_cache_func():
    -	nr_pages = atomic_read(&krcp->backoff_page_cache_fill) ? 1 : rcu_min_cached_objs;
    +	nr_pages = rcu_min_cached_objs;
    run_page_cache_worker():
    -		if (atomic_read(&krcp->backoff_page_cache_fill)) {
    +		if (0 && atomic_read(&krcp->backoff_page_cache_fill)) {
    kfree_rcu_shrink_count():
    -		atomic_set(&krcp->backoff_page_cache_fill, 1);

The shrinker drains the cache and the refill comes back at once, in full: Zqiang's
v3 on a 6.1 kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..tree import KfreeRcuCpu
from .v6_1 import V6_1

if TYPE_CHECKING:
    from ...kernel.mm.vmscan import ShrinkControl


class V6_1_V3(V6_1):
    name = "v6.1-v3"
    description = "v6.1 draining without backoff: immediate refill of rcu_min_cached_objs pages (calibration v3.patch)"
    source = "../shared/calibration/linux-6.1-qemu-tcg/v3.patch on Linux 6.1.192"

    def fill_nr_pages(self, krcp: KfreeRcuCpu) -> int:
        return self.rcu_min_cached_objs

    def run_page_cache_worker(self, krcp: KfreeRcuCpu) -> None:
        if not krcp.work_in_progress:
            krcp.work_in_progress = True
            self.c.worker_hrtimer += 1
            krcp.hrtimer.start(0)

    def shrink_count_cpu(self, krcp: KfreeRcuCpu, sc: "ShrinkControl") -> int:
        return krcp.count + krcp.nr_bkv_objs
