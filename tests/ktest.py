"""Plain helpers shared by the tests (the fixtures that use them are in conftest.py).

``tests/`` is on ``sys.path`` because ``tests/conftest.py`` lives there (pytest's
default ``prepend`` import mode), so a test module can ``from ktest import ...``.
"""

from __future__ import annotations

from typing import Any, Callable, Generator

import pytest

from kvfree_sim import build
from kvfree_sim.core.costs import COSTS, LAYOUT, MachineProfile
from kvfree_sim.kernel.mm.buddy import MIGRATE_UNMOVABLE
from kvfree_sim.kernel.mm.page_alloc import ALLOC_NO_WATERMARKS, PageAllocator
from kvfree_sim.kernel.mm.vmscan import SHRINK_STOP, ShrinkControl
from kvfree_sim.kernel.sched import SLEEP, Task, wake_task

#: the model is the mypyc-compiled build (``make mypyc``), whose classes cannot be monkeypatched
COMPILED = build() != "pure Python"
needs_pure_python = pytest.mark.skipif(COMPILED, reason="monkeypatches a model class; compiled classes are immutable")

USEC = 1_000
MSEC = 1_000_000
SEC = 1_000_000_000
MiB = 1 << 20

#: A guest layout that keeps exactly 5024 pages for the kernel besides the
#: memmap: a 512 MiB machine (131072 pages, 4 sections, 2048 memmap pages) then
#: has one zone (no ZONE_DMA, all below 3 GiB) of 131072 - 2048 - 5024 = 124000
#: managed pages, the worked example (a) of /work/notes/mm-v5.11-v6.1.md 2.1.
#: Nothing is charged after boot and nothing is freed after it, so the free
#: count starts at the managed count.
TEST_LAYOUT: dict[str, float] = {
    "firmware_reserved_kb": 0,
    "firmware_top_kb": 0,
    "kernel_image_kb": 5024 * 4,
    "kernel_text_kb": 0,
    "kernel_rodata_kb": 0,
    "kernel_rwdata_kb": 0,
    "freed_after_boot_kb": 0,
    "reserved_other_kb": 0,
    "percpu_kb_per_cpu": 0,
    "boot_used_kb": 0,
    "boot_used_kb_per_cpu": 0,
    "zone_dma": 0,
    "late_initcall_reclaimable_kb": 0,
    "late_initcall_ns": 0,
    "pageblock_order": 9,
    "buddy_allocator": 1,
    "host_cpus": 0,
    "host_slice_ns": 0,
    "vcpu_tick_phase_ns": 0,
    "tick_periodic": 0,
    "kvm_sh_x86": 0,
}
TEST_MANAGED_PAGES = 124000

#: CPU costs are zero unless a test asks for some, so times are exact; the
#: clock-event minimum delta is a few microseconds as on real hardware.
TEST_COSTS: dict[str, float] = {k: 0.0 for k in COSTS}
TEST_COSTS["hrtimer_min_delta_ns"] = 2000.0


def make_profile(costs: dict[str, float] | None = None, layout: dict[str, float] | None = None) -> MachineProfile:
    """A MachineProfile built in code (every COSTS and LAYOUT entry present)."""
    c = dict(TEST_COSTS)
    c.update(costs or {})
    lay = dict(TEST_LAYOUT)
    lay.update(layout or {})
    assert set(c) == set(COSTS) and set(lay) == set(LAYOUT)
    sources = {k: "tests/ktest.py" for k in (*c, *lay)}
    return MachineProfile("test", "profile for the test suite", "tests/ktest.py", c, lay, sources)


# -- tasks -----------------------------------------------------------------------

TaskBody = Callable[[Task], Generator[Any, Any, None]]


def spawn(kernel: Any, name: str, body: TaskBody, *, nice: int = 0, cpu: int | None = None,
          kthread: bool = True, at: int | None = None, wake: bool = True, boot: bool = True) -> Task:
    """Create a task (pinned to ``cpu`` if given) and wake it now or at time ``at``.

    By default it is a thread that has existed (and slept) since boot, so it
    wakes with place_entity(initial=0); ``boot=False`` makes it a new task,
    placed with START_DEBIT on its first enqueue.
    """
    pinned = kernel.cpus[cpu] if cpu is not None else None
    t = Task(kernel, name, body, nice=nice, pinned=pinned, kthread=kthread, boot=boot)
    if wake:
        if at is None:
            wake_task(t)
        else:
            kernel.sim.at(at, lambda _: wake_task(t))
    return t


def hog(me: Task) -> Generator[Any, Any, None]:
    """A CPU-bound task: it never sleeps."""
    while True:
        yield 10 * MSEC


def sleep_forever(me: Task) -> Generator[Any, Any, None]:
    yield SLEEP


def at(kernel: Any, t: int, fn: Callable[..., Any], *args: Any) -> None:
    """Call ``fn(*args)`` from an event at absolute time ``t``."""
    kernel.sim.at(t, lambda _: fn(*args))


def drive(gen: Generator[Any, Any, Any]) -> Any:
    """Run a model generator that must finish without taking CPU time or sleeping."""
    try:
        d = next(gen)
    except StopIteration as stop:
        return stop.value
    raise AssertionError(f"generator yielded {d!r}: it needed CPU time or slept")


# -- memory ----------------------------------------------------------------------


def hold(kernel: Any, owner: str, pages: int, order: int = 0) -> None:
    """Make ``owner`` hold ``pages`` more pages (in blocks of ``order``), taken from the
    highest zones first.

    Test set-up, not an allocation: the pageblocks the pages sit in count as
    already claimed, so setting up a state does not boost the watermarks.
    """
    mm = kernel.mm
    if mm.held is not None and pages < 0:
        mm.free_pages(-pages, 0, owner)
        return
    if mm.held is not None:
        boosts = [z.watermark_boost for z in mm.zones]
        got = mm._take(pages >> order, order, ALLOC_NO_WATERMARKS)
        assert got << order == pages, "not enough free memory to hold"
        mm._hold(owner, pages)
        for z, b in zip(mm.zones, boosts):
            z.watermark_boost = b
        return
    left = pages
    for z in reversed(mm.zones):
        k = min(z.free, left)
        z.free -= k
        left -= k
    assert left == 0, "not enough free memory to hold"
    mm.owners[owner] = mm.owners.get(owner, 0) + pages
    used = mm.managed_pages - mm.nr_free_pages()
    mm.unmovable_blocks = max(mm.unmovable_blocks, -(-used // mm.pageblock_pages))


def claim_all_pageblocks(kernel: Any) -> None:
    """Count every pageblock as already claimed for unmovable pages, so that the
    allocations a test makes do not boost the watermarks (boost_watermark())."""
    mm = kernel.mm
    mm.unmovable_blocks = -(-mm.managed_pages // mm.pageblock_pages)
    for z in mm.zones:
        if z.area is not None:
            z.area.block_mt = [MIGRATE_UNMOVABLE] * len(z.area.block_mt)
            for pfn in list(z.area.order_of):
                z.area._move_tail(pfn, MIGRATE_UNMOVABLE)


def set_free(kernel: Any, free: int) -> None:
    """Bring the node's free page count down to ``free`` (held by a filler)."""
    hold(kernel, "test:filler", kernel.mm.nr_free_pages() - free)


def fixed_zones(kernel: Any, zones: list[tuple[int, int]]) -> PageAllocator:
    """A PageAllocator whose zones have given managed page counts (idx, pages)."""
    return PageAllocator(kernel, 0, kernel.mm.mm_version, zones)


class RecordingTracer:
    """A tracer that records the calls named in ``only`` (others are no-ops)."""

    def __init__(self, *only: str) -> None:
        self.only = set(only)
        self.events: list[tuple[str, tuple]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self.only:
            return lambda *args: self.events.append((name, args))
        return _noop

    def calls(self, name: str) -> list[tuple]:
        return [args for n, args in self.events if n == name]


def _noop(*args: Any) -> None:
    pass


class FakeShrinker:
    """count_objects() reports ``freeable``; scan_objects() records nr_to_scan and
    returns it as freed (or SHRINK_STOP while ``stop`` is set)."""

    def __init__(self, freeable: int) -> None:
        self.freeable = freeable
        self.stop = False
        self.scans: list[int] = []

    def count(self, sc: ShrinkControl) -> int:
        return self.freeable

    def scan(self, sc: ShrinkControl) -> int:
        self.scans.append(sc.nr_to_scan)
        return SHRINK_STOP if self.stop else sc.nr_to_scan
