"""v5.13: inline page allocation for the 1-argument form, and new fill flags.

* "kvfree_rcu: Directly allocate page for single-argument case" (+ the
  __GFP_NORETRY / __GFP_NOMEMALLOC follow-ups): ``add_ptr_to_bulk_krc_lock()``
  drops the lock and calls ``__get_free_page(GFP_KERNEL | __GFP_NORETRY |
  __GFP_NOMEMALLOC | __GFP_NOWARN)`` when the cache is empty and the caller may
  sleep (``can_alloc = !head``).
* "kvfree_rcu: Use same set of GFP flags as does single-argument":
  ``fill_page_cache_func()`` allocates with the same flags.
* rcuscale: "rcuscale: Add kfree_rcu() single-argument scale test" - each
  object is freed by ``kfree_rcu(p)`` or ``kfree_rcu(p, rh)`` at random.
* "kvfree_rcu: Make krc_this_cpu_unlock() use raw_spin_unlock_irqrestore()"
  (7ffc9ec8eac1): a tick that comes while a kfree thread holds the krcp lock is
  taken before ``preempt_enable()``, so it reports no quiescent state
  (``rcu_flavor_sched_clock_irq()``); in v5.11 it came after and did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator

from ...kernel.mm.gfp import GFP_KERNEL, GFP_NOMEMALLOC, GFP_NORETRY, GFP_NOWARN
from ...kernel.sched import Task
from ..tree import KfreeRcuCpu
from .v5_11 import V5_11

if TYPE_CHECKING:
    from ...kernel.mm.slab import SlabCpu

INLINE_GFP = GFP_KERNEL | GFP_NORETRY | GFP_NOMEMALLOC | GFP_NOWARN


class V5_13(V5_11):
    name = "v5.13"
    description = "inline page allocation for kfree_rcu(one_arg); fill with __GFP_NORETRY|__GFP_NOMEMALLOC; rcuscale mixes 1- and 2-arg"
    source = "Linux v5.13 RCU pull <20210428071032.GA84588@gmail.com>; kernel-reference.md section 4.2"
    rcuscale_version = "5.13"
    mm_version = "5.13"
    fill_gfp = INLINE_GFP
    krc_unlock_irqrestore = True

    def add_ptr_to_bulk(self, krcp: KfreeRcuCpu, task: Task, head: bool,
                        origin: "SlabCpu") -> Generator[Any, Any, bool]:
        """add_ptr_to_bulk_krc_lock(&krcp, &flags, ptr, can_alloc = !head)."""
        if not krcp.initialized:
            return False
        idx = 0
        # Check if a new block is required.
        if krcp.bulk_room() == 0:
            got = self.get_cached_bnode(krcp)
            if not got and not head:
                # krc_this_cpu_unlock(); __get_free_page(); krc_this_cpu_lock()
                got = yield from self.get_free_page(task, INLINE_GFP)
                if got:
                    self.c.direct_alloc += 1
                else:
                    self.c.direct_alloc_fail += 1
            if not got:
                return False
            self.attach_bnode(krcp, idx)
        # Finally insert.
        self.store_records(krcp, 1, origin)
        return True
