"""v6.1-nodrain: v6.1 with ../shared/calibration/linux-6.1-qemu-tcg/nodrain.patch.

    kfree_rcu_shrink_count():
    -		count += READ_ONCE(krcp->nr_bkv_objs);
    -		atomic_set(&krcp->backoff_page_cache_fill, 1);
    kfree_rcu_shrink_scan():
    -		count += drain_page_cache(krcp);

The shrinker neither counts nor drains the cache and never sets backoff: the
pre-patch behaviour on a 6.1 kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...kernel.sched import Cpu
from ..tree import KfreeRcuCpu
from .v6_1 import V6_1

if TYPE_CHECKING:
    from ...kernel.mm.vmscan import ShrinkControl


class V6_1_Nodrain(V6_1):
    name = "v6.1-nodrain"
    description = "v6.1 with the shrinker not touching the page cache (calibration nodrain.patch)"
    source = "../shared/calibration/linux-6.1-qemu-tcg/nodrain.patch on Linux 6.1.192"

    def shrink_count_cpu(self, krcp: KfreeRcuCpu, sc: "ShrinkControl") -> int:
        return krcp.count

    def scan_drain(self, krcp: KfreeRcuCpu, ctx: Cpu) -> int:
        return 0
