"""Helpers for the kvfree_rcu tests: a machine with a zero-cost profile, driven by hand."""

from __future__ import annotations

from typing import Any, Generator

from kvfree_sim.config import make_config
from kvfree_sim.kernel.mm.vmscan import ShrinkControl
from kvfree_sim.kernel.sched import Task
from kvfree_sim.machine import Machine

from ktest import MSEC, make_profile, spawn

#: Costs small but nonzero where ordering matters (a refill takes some time).
KV_COSTS = {
    "kvfree_call_rcu_ns": 20.0, "kvfree_call_rcu_list_ns": 25.0, "kmalloc_ns": 10.0,
    "page_alloc_ns": 200.0, "krc_lock_ns": 20.0, "context_switch_ns": 1000.0,
    "hrtimer_min_delta_ns": 2000.0, "kfree_bulk_ns": 10.0, "kfree_ns": 50.0,
}


def machine(variant: str, cpus: int = 2, memory: str = "512M", bootargs: str = "rcuscale.kfree_rcu_test=1",
            costs: dict[str, float] | None = None, start: bool = True) -> Machine:
    """A machine whose kfree test never starts: the tests drive kvfree_rcu themselves."""
    c = dict(KV_COSTS)
    c.update(costs or {})
    m = Machine(make_config(variant, cpus=cpus, memory=memory, bootargs=bootargs), profile=make_profile(c))
    if start:
        m.kernel.start()
    return m


def caller(m: Machine, cpu: int, calls: list[bool], paths: list[str]) -> Task:
    """A task on ``cpu`` making one kvfree_call_rcu() per entry of ``calls``
    (True: the 2-argument form), recording the path each took."""
    kv = m.kvfree
    slab = m.test.cache.cpus[cpu]

    def body(me: Task) -> Generator[Any, Any, None]:
        for head in calls:
            if slab.free_objs == 0:
                ok = yield from m.test.cache.allocate_slab(me, slab, 0xcc0)
                assert ok
            slab.take(1)
            path = yield from kv.kvfree_call_rcu(me, head, slab)
            paths.append(path)

    return spawn(m.kernel, "caller", body, cpu=cpu, nice=19)


def shrink(m: Machine, cpu: int = 0, nr_to_scan: int = 128) -> tuple[int, int]:
    """Call the kvfree_rcu shrinker's count then scan from CPU ``cpu``."""
    kv = m.kvfree
    sc = ShrinkControl(0xcc0, m.kernel.cpus[cpu], None)
    count = kv.kfree_rcu_shrink_count(sc)
    sc.nr_to_scan = nr_to_scan
    freed = kv.kfree_rcu_shrink_scan(sc)
    return count, freed


def fill_cache(m: Machine, cpu: int) -> None:
    """Put rcu_min_cached_objs pages in CPU ``cpu``'s cache (as the refill would)."""
    kv = m.kvfree
    krcp = kv.krc[cpu]
    n = kv.rcu_min_cached_objs - krcp.nr_bkv_objs
    got = m.kernel.mm.alloc_fast(n, 0, 0, "kvfree_rcu")
    assert got == n
    for _ in range(n):
        assert kv.put_cached_bnode(krcp, fresh=True)


def prime_slab(m: Machine, cpu: int, objects: int) -> None:
    """Give CPU ``cpu`` slab objects in advance, so a test's calls need no new slab."""
    got = m.test.cache.refill_fast(m.test.cache.cpus[cpu], objects)
    assert got


def run_for(m: Machine, ns: int) -> None:
    m.kernel.sim.run(until=m.kernel.sim.now + ns)


__all__ = ["machine", "caller", "shrink", "fill_cache", "prime_slab", "run_for", "MSEC"]
