"""v5.11+v3: Zqiang's "[PATCH v3] kvfree_rcu: Release page cache under memory pressure".

    kfree_rcu_shrink_count():  count += krcp->nr_bkv_objs (under krcp->lock)
    kfree_rcu_shrink_scan():   count += free_krc_page_cache(krcp)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...kernel.sched import Cpu
from ..tree import KfreeRcuCpu
from .v5_11 import V5_11

if TYPE_CHECKING:
    from ...kernel.mm.vmscan import ShrinkControl


class V5_11_V3(V5_11):
    name = "v5.11+v3"
    description = "Zqiang's v3 patch: the shrinker counts cached pages and drains the cache in scan"
    source = "LKML 2021-01-29 '[PATCH v3] kvfree_rcu: Release page cache under memory pressure' (../shared/reference)"

    def shrink_count_cpu(self, krcp: KfreeRcuCpu, sc: "ShrinkControl") -> int:
        count = krcp.count
        # raw_spin_lock_irqsave(&krcp->lock, flags);
        count += krcp.nr_bkv_objs
        sc.cost_ns += self.lock_ns
        return count

    def scan_drain(self, krcp: KfreeRcuCpu, ctx: Cpu) -> int:
        return self.drain_page_cache(krcp, ctx)  # free_krc_page_cache()
