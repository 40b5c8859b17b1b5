"""kvfree_rcu() as in Linux v5.11 kernel/rcu/tree.c: the base every variant patches.

One :class:`KfreeRcuCpu` per CPU mirrors ``struct kfree_rcu_cpu``; the
:class:`KvfreeRcu` methods mirror the kernel functions of the same names and
read in the same order, so each can be checked against the kernel's code
(``../shared/docs/kernel-reference.md`` sections 3-6 and 8).  Variants
(:mod:`kvfree_sim.kvfree_rcu.variants`) subclass :class:`KvfreeRcu` and
override exactly the functions their patch touches.

Objects and pages are counted, not represented one by one:

* a chain of bulk pages (``bkvhead[i]``, ``struct kvfree_rcu_bulk_data``
  linked by ``->next``) is a :class:`BulkChain`: its number of pages and the
  ``nr_records`` of its newest page - every older page is full
  (``KVFREE_BULK_MAX_ENTR`` records), because a new page is attached only
  when the current one is full;
* the page cache (``bkvcache``, an llist: last in, first out) is a short list
  of flags, one per cached page, saying whether the refill worker put it there
  and it has not been used yet;
* the rcu_head list (channel 3) is a list of :class:`ObjRun`, each a run of
  objects linked one after the other.

Every chain and run carries ``snap``, the ``rcu_seq_snap()`` of the moment its
last object was queued: the grace-period sequence number that must be reached
before any of its objects may be freed (:mod:`kvfree_sim.checks`).

Runs of calls that take the same path are applied as segments
(:meth:`KvfreeRcu.segment`): ``n`` calls that all store into the current bulk
page, or all go to the rcu_head list while a refill is already in flight,
change only counters, so they are applied in O(1) as the calling thread gets
CPU time.  A call at a decision point (a page boundary, an empty cache, an
allocation) goes through :meth:`KvfreeRcu.kvfree_call_rcu` as in the kernel.
Another CPU touching a ``kfree_rcu_cpu`` takes its lock, which here first
brings the owner CPU's running segment up to date (:meth:`KfreeRcuCpu.lock`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar, Final, Generator

from ..kernel.mm.gfp import GFP_KERNEL, GFP_NOWARN
from ..kernel.mm.vmscan import SHRINK_STOP
from ..kernel.rcu import rcu_seq_snap
from ..kernel.sched import Cpu, Segments, Task
from ..kernel.time import HrTimer
from ..kernel.workqueue import DelayedWork, RcuWork, WorkStruct, Workqueue

if TYPE_CHECKING:
    from ..checks import Invariants
    from ..core.sim import Simulator
    from ..kernel.mm.slab import SlabCpu
    from ..kernel.mm.vmscan import ShrinkControl
    from ..kernel.system import Kernel

PAGE_SIZE: Final = 4096
KVFREE_BULK_HEADER: Final = 16  # sizeof(struct kvfree_rcu_bulk_data): nr_records + next (v5.x - v6.2)
KVFREE_BULK_MAX_ENTR: Final = (PAGE_SIZE - KVFREE_BULK_HEADER) // 8  # 510
KFREE_N_BATCHES: Final = 2
FREE_N_CHANNELS: Final = 2
OWNER: Final = "kvfree_rcu"


class BulkChain:
    """``bkvhead[i]``: a chain of ``struct kvfree_rcu_bulk_data`` pages, newest first."""

    __slots__ = ("pages", "head_records", "snap", "pending_gp_bug", "freed", "origin")

    def __init__(self) -> None:
        self.pages = 0
        self.head_records = 0  # nr_records of the newest page; older pages are full
        self.snap = 0
        self.pending_gp_bug = False  # attached to a krwp whose rcu_work was already queued
        self.freed = 0  # records freed so far (exactly-once check)
        self.origin: SlabCpu | None = None  # the slab its records came from

    @property
    def nr_records(self) -> int:
        return (self.pages - 1) * KVFREE_BULK_MAX_ENTR + self.head_records if self.pages else 0


class ObjRun:
    """A run of objects queued one after another on the rcu_head list (channel 3)."""

    __slots__ = ("n", "snap", "pending_gp_bug", "freed", "origin")

    def __init__(self, n: int, snap: int, origin: "SlabCpu") -> None:
        self.n = n
        self.snap = snap
        self.pending_gp_bug = False
        self.freed = 0
        self.origin = origin


#: where a queued object waits (WaitClock stages)
IN_KRCP: Final = 0
DETACHED: Final = 1
FREEING: Final = 2


class WaitClock:
    """Objects queued and not yet freed, by where they wait, integrated over time.

    An object waits in its CPU's ``kfree_rcu_cpu`` until the monitor detaches
    it into a ``krw_arr[]`` batch (:data:`IN_KRCP`); then for the batch's grace
    period and for a kworker to start ``kfree_rcu_work()`` (:data:`DETACHED`);
    then for ``kfree_rcu_work()`` to reach it (:data:`FREEING`).  The area under
    each count, divided by the objects queued, is the mean time an object spent
    there (Little's law).  Calls applied as a segment count when the segment
    commits, at most one burst late.  Not a kernel structure: a measurement.
    """

    __slots__ = ("sim", "n0", "n1", "n2", "area0", "area1", "area2", "t", "queued")

    def __init__(self, sim: "Simulator") -> None:
        self.sim = sim
        # the count and the area of each stage (IN_KRCP, DETACHED, FREEING): plain
        # fields, not lists, so that the compiled build keeps them unboxed
        self.n0 = self.n1 = self.n2 = 0
        self.area0 = self.area1 = self.area2 = 0
        self.t = 0
        self.queued = 0

    def _integrate(self) -> None:
        """Add each count times the time since the last change to its area."""
        now = self.sim.now
        if now != self.t:
            dt = now - self.t
            self.area0 += self.n0 * dt
            self.area1 += self.n1 * dt
            self.area2 += self.n2 * dt
            self.t = now

    def _add(self, stage: int, k: int) -> None:
        if stage == IN_KRCP:
            self.n0 += k
        elif stage == DETACHED:
            self.n1 += k
        else:
            self.n2 += k

    def move(self, src: int | None, dst: int | None, k: int) -> None:
        """``k`` objects leave stage ``src`` (None: newly queued) for ``dst`` (None: freed)."""
        self._integrate()
        if src is None:
            self.queued += k
        else:
            self._add(src, -k)
        if dst is not None:
            self._add(dst, k)

    def mean_ns(self) -> dict[str, int]:
        """Mean wait per queued object in each stage, up to now."""
        self._integrate()
        q = max(self.queued, 1)
        return {"krcp_ns": self.area0 // q, "gp_ns": self.area1 // q, "freeing_ns": self.area2 // q}


class KfreeRcuCpuWork:
    """``struct kfree_rcu_cpu_work``: one batch in flight (``krw_arr[i]``)."""

    __slots__ = ("rcu_work", "head_free", "bkvhead_free", "krcp")

    def __init__(self, krcp: "KfreeRcuCpu", func: Callable[..., Generator[Any, Any, None]], i: int) -> None:
        self.rcu_work = RcuWork(func, "kfree_rcu_work", self)
        self.head_free: list[ObjRun] | None = None
        self.bkvhead_free: list[BulkChain | None] = [None] * FREE_N_CHANNELS
        self.krcp = krcp


class KfreeRcuCpu:
    """``struct kfree_rcu_cpu`` of one CPU."""

    def __init__(self, kv: "KvfreeRcu", cpu: Cpu) -> None:
        self.cpu = cpu
        self.head: list[ObjRun] | None = None
        self.bkvhead: list[BulkChain | None] = [None] * FREE_N_CHANNELS
        self.krw_arr = [KfreeRcuCpuWork(self, kv.kfree_rcu_work, i) for i in range(KFREE_N_BATCHES)]
        self.monitor_work = DelayedWork(kv.kfree_rcu_monitor_work, "kfree_rcu_monitor", self)
        self.monitor_todo = False
        self.initialized = False
        self.count = 0
        self.page_cache_work: WorkStruct = kv.make_page_cache_work(self)
        self.backoff_page_cache_fill = False
        self.work_in_progress = False
        self.hrtimer = HrTimer(cpu, kv.schedule_page_work_fn, "schedule_page_work_fn")
        self.bkvcache: list[bool] = []  # per cached page: put there by the refill worker, unused
        self.nr_bkv_objs = 0

    def scan_state(self) -> tuple[object, ...]:
        """This krcp's fields a shrinker scan may change (KvfreeRcu.scan_state())."""
        head = self.head
        return (self.count, self.monitor_todo, self.nr_bkv_objs, len(self.bkvcache), self.work_in_progress,
                self.backoff_page_cache_fill, None if head is None else (id(head), len(head)),
                tuple(map(id, self.bkvhead)),
                tuple((id(w.head_free), tuple(map(id, w.bkvhead_free))) for w in self.krw_arr))

    def lock(self, ctx: Cpu) -> None:
        """raw_spin_lock_irqsave(&krcp->lock) from CPU ``ctx``.

        From another CPU this first brings the owner's running segment of
        calls up to now: taking the lock serializes with it.
        """
        if ctx is not self.cpu:
            self.cpu.sync()

    def bulk_room(self) -> int:
        """Free slots in the channel-0 page being filled (0: none, or full)."""
        b = self.bkvhead[0]
        return 0 if b is None else KVFREE_BULK_MAX_ENTR - b.head_records


# Counters the instrumented 6.1 kernel of ../shared/calibration also counts.
CALIBRATION_COUNTERS: Final[tuple[str, ...]] = (
    "shrink_count", "shrink_scan", "drained_pages", "fill_runs", "fill_pages", "fill_fail",
    "worker_hrtimer", "worker_delayed", "cache_hit", "direct_alloc", "direct_alloc_fail",
    "head_fallback", "inline_kvfree",
)
OTHER_COUNTERS: Final[tuple[str, ...]] = (
    "calls", "calls_bulk", "calls_list", "scan_freed", "pages_alloc", "pages_free", "recycled_pages",
    "refill_drained_unused", "monitor_runs", "batches_queued", "kfree_rcu_work_runs", "objects_freed",
    "pending_gp_attach", "cancelled_refills",
)


class Counters:
    """The machinery's event counters (:data:`CALIBRATION_COUNTERS` and
    :data:`OTHER_COUNTERS`): fields rather than a dict, so that the compiled
    build adds to them natively; ``c[name]`` reads and writes one by name."""

    def __init__(self) -> None:
        self.shrink_count = 0
        self.shrink_scan = 0
        self.drained_pages = 0
        self.fill_runs = 0
        self.fill_pages = 0
        self.fill_fail = 0
        self.worker_hrtimer = 0
        self.worker_delayed = 0
        self.cache_hit = 0
        self.direct_alloc = 0
        self.direct_alloc_fail = 0
        self.head_fallback = 0
        self.inline_kvfree = 0
        self.calls = 0
        self.calls_bulk = 0
        self.calls_list = 0
        self.scan_freed = 0
        self.pages_alloc = 0
        self.pages_free = 0
        self.recycled_pages = 0
        self.refill_drained_unused = 0
        self.monitor_runs = 0
        self.batches_queued = 0
        self.kfree_rcu_work_runs = 0
        self.objects_freed = 0
        self.pending_gp_attach = 0
        self.cancelled_refills = 0

    def __getitem__(self, name: str) -> int:
        value: int = getattr(self, name)
        return value

    def __setitem__(self, name: str, value: int) -> None:
        setattr(self, name, value)

    def as_dict(self) -> dict[str, int]:
        return {n: self[n] for n in CALIBRATION_COUNTERS + OTHER_COUNTERS}


class KvfreeRcu:
    """kvfree_rcu() machinery of Linux v5.11."""

    #: name, one-line description and source, for ``kvfree-sim variants``
    name: ClassVar[str] = "v5.11"
    description: ClassVar[str] = "before the patch: the shrinker does not touch the page cache; fill GFP_KERNEL|__GFP_NOWARN"
    source: ClassVar[str] = "Linux v5.11 kernel/rcu/tree.c (56292e8609e3 'Defer kvfree_rcu() allocation to a clean context')"
    #: rcuscale's kfree_scale_thread() of the same release
    rcuscale_version: ClassVar[str] = "5.11"
    #: rcutree.* parameters of the same release
    rcutree_version: ClassVar[str] = "5.11"
    #: mm/ behaviour of the same release (page_alloc.c, vmscan.c)
    mm_version: ClassVar[str] = "5.11"
    #: fill_page_cache_func() allocation flags
    fill_gfp: ClassVar[int] = GFP_KERNEL | GFP_NOWARN
    #: True if kfree_rcu_monitor() may attach to a krwp whose rcu_work is
    #: pending (fixed by 5da7cb193db3, in 6.1.35)
    attaches_to_pending: ClassVar[bool] = True
    #: ``page_cache_work`` is a ``struct delayed_work`` (the reviewer's diff; merged in v5.14)
    page_cache_work_delayed: ClassVar[bool] = False
    #: ``krc_this_cpu_unlock()`` is ``raw_spin_unlock_irqrestore()`` (from v5.13, 7ffc9ec8eac1),
    #: which enables interrupts before preemption: a tick the locked section held off is taken
    #: with preemption still disabled.  v5.11/v5.12 do ``raw_spin_unlock()`` then
    #: ``local_irq_restore()``, so that tick finds preemption enabled.
    krc_unlock_irqrestore: ClassVar[bool] = False

    def __init__(self, kernel: "Kernel", rcutree: dict[str, Any], checks: "Invariants") -> None:
        self.kernel = kernel
        self.sim = kernel.sim
        self.rcu = kernel.rcu
        self.mm = kernel.mm
        self.checks = checks
        self.c = Counters()
        self._scan_deltas: list[tuple[str, int]] = []  # what the last shrinker scan added to c
        self.rcu_min_cached_objs: int = rcutree["rcu_min_cached_objs"]
        self.configure(rcutree)
        p = kernel.profile
        self.call_ps = p.ps("kvfree_call_rcu_ns")
        self.call_list_ps = p.ps("kvfree_call_rcu_list_ns")
        self.lock_ns = p.ns("krc_lock_ns")
        self.monitor_ns = p.ns("monitor_ns")
        self.page_alloc_ns = p.ns("page_alloc_ns")
        self.page_free_ns = p.ns("page_free_ns")
        self.per_cpu_ns = p.ns("shrinker_per_cpu_ns")
        self.kfree_bulk_ps = p.ps("kfree_bulk_ns")
        self.kfree_ps = p.ps("kfree_ns")
        self.slab_discard_ps = p.ps("slab_discard_ns")
        self.work_page_ps = p.ps("kfree_rcu_work_page_ns")
        self.system_wq = kernel.system_wq
        self.system_highpri_wq: Workqueue = kernel.system_highpri_wq
        self.inflight_pages = 0  # pages a running kfree_rcu_work() holds
        self.wait = WaitClock(self.sim)
        self.krc: list[KfreeRcuCpu] = [KfreeRcuCpu(self, cpu) for cpu in kernel.cpus]
        self.kfree_rcu_batch_init()

    def configure(self, rcutree: dict[str, Any]) -> None:
        """Boot parameters a later version adds."""

    @property
    def kfree_drain_jiffies(self) -> int:
        """KFREE_DRAIN_JIFFIES: HZ / 50."""
        return self.kernel.clock.hz // 50

    # -- page cache: get_cached_bnode() / put_cached_bnode() -------------------
    # A page in flight is represented by its "fresh" flag only: True if the
    # refill worker put it in the cache and nobody has used it since.

    def get_cached_bnode(self, krcp: KfreeRcuCpu) -> bool:
        """Take the page last put in the cache (llist_del_first()); False if empty."""
        if not krcp.nr_bkv_objs:
            return False
        krcp.nr_bkv_objs -= 1
        krcp.bkvcache.pop()
        self.c.cache_hit += 1
        return True

    def put_cached_bnode(self, krcp: KfreeRcuCpu, fresh: bool = False) -> bool:
        # Check the limit.
        if krcp.nr_bkv_objs >= self.rcu_min_cached_objs:
            return False
        krcp.bkvcache.append(fresh)
        krcp.nr_bkv_objs += 1
        return True

    def free_pages(self, n: int, ctx: Cpu) -> None:
        """``n`` free_page() calls from CPU ``ctx``."""
        self.c.pages_free += n
        self.mm.free_pages(n, 0, OWNER, ctx.id)
        if self.kernel.tracer is not None:
            self.kernel.tracer.mm_page_free(ctx, n)

    def get_free_page(self, task: Task, gfp: int) -> Generator[Any, Any, bool]:
        """__get_free_page(gfp) for a bulk block: True if a page came."""
        ok = yield from self.mm.alloc_pages(task, gfp, 0, OWNER)
        task.debt += self.page_alloc_ns
        if ok:
            self.got_pages(task, gfp, 1)
        return ok

    def got_pages(self, task: Task, gfp: int, n: int) -> None:
        self.c.pages_alloc += n
        if self.kernel.tracer is not None:
            self.kernel.tracer.mm_page_alloc(task, n, gfp)

    # -- drain side: kfree_rcu_work() ---------------------------------------------

    def kfree_rcu_work(self, work: WorkStruct, worker: Task) -> Generator[Any, Any, None]:
        """kfree_rcu_work(): after a GP, free what a batch detached.

        Per bulk page: ``kfree_bulk(nr_records, records)`` (``vfree()`` each for
        channel 1), then the page goes back to the cache if it has room
        (``put_cached_bnode()``), else ``free_page()``; then the rcu_head list,
        object by object.  As one divisible burst: the newest page of a chain,
        then its full pages as one run of identical steps.
        """
        krwp: KfreeRcuCpuWork = work.data
        krcp = krwp.krcp
        cpu = worker.cpu
        assert cpu is not None
        self.c.kfree_rcu_work_runs += 1
        krcp.lock(cpu)
        # Channels 1 and 2.
        bkvhead = list(krwp.bkvhead_free)
        krwp.bkvhead_free = [None] * FREE_N_CHANNELS
        # Channel 3.
        head = krwp.head_free
        krwp.head_free = None
        worker.debt += self.lock_ns
        runs: list[tuple[int, int, Callable[[int], None]]] = []
        for i in range(FREE_N_CHANNELS):
            chain = bkvhead[i]
            if chain is None:
                continue
            self.inflight_pages += chain.pages
            self.wait.move(DETACHED, FREEING, chain.nr_records)
            per_obj = (self.kfree_bulk_ps if i == 0 else self.kfree_ps) + self.discard_share_ps(chain.origin)
            freer = self._chain_freer(krcp, cpu, chain)
            runs.append((1, self.work_page_ps + chain.head_records * per_obj, freer))
            if chain.pages > 1:
                runs.append((chain.pages - 1, self.work_page_ps + KVFREE_BULK_MAX_ENTR * per_obj, freer))
        for run in head or ():
            self.wait.move(DETACHED, FREEING, run.n)
            runs.append((run.n, self.kfree_ps + self.discard_share_ps(run.origin), self._list_freer(run, cpu)))
        if runs:
            seg = Segments(runs)
            while not seg.finished:
                yield seg

    def discard_share_ps(self, origin: "SlabCpu | None") -> int:
        """discard_slab() spread over a slab's objects: they are freed in the order they
        were allocated, so every ``objs_per_slab`` frees empty one slab (``SlabCpu.free()``)."""
        if origin is None:
            return 0
        return self.slab_discard_ps // origin.cache.objs_per_slab

    def _chain_freer(self, krcp: KfreeRcuCpu, cpu: Cpu, chain: BulkChain) -> Callable[[int], None]:
        """Commit function for the next ``k`` pages of a detached chain, newest first."""
        done_pages = [0]

        def commit(k: int) -> None:
            first = done_pages[0]
            done_pages[0] = first + k
            # kfree_bulk() of each page's records: the newest page holds
            # head_records, every other one is full.
            objects = k * KVFREE_BULK_MAX_ENTR
            if first == 0:
                objects -= KVFREE_BULK_MAX_ENTR - chain.head_records
            tracer = self.kernel.tracer
            if tracer is not None:
                tracer.rcu_invoke_kfree_bulk_callback(cpu, objects, k)
            self.checks.free_objects(chain, objects, "bulk page")
            if chain.origin is not None:
                chain.origin.free(objects, cpu.id)
            self.c.objects_freed += objects
            self.wait.move(FREEING, None, objects)
            self.inflight_pages -= k
            krcp.lock(cpu)
            recycled = 0
            while recycled < k and self.put_cached_bnode(krcp):
                recycled += 1
            self.c.recycled_pages += recycled
            if k > recycled:
                self.free_pages(k - recycled, cpu)
        return commit

    def _list_freer(self, run: ObjRun, cpu: Cpu) -> Callable[[int], None]:
        def commit(k: int) -> None:
            # kvfree(ptr) for k more objects of this run
            self.checks.free_objects(run, k, "run of rcu_head-list objects")
            run.origin.free(k, cpu.id)
            self.c.objects_freed += k
            self.wait.move(FREEING, None, k)
        return commit

    # -- monitor: queue_kfree_rcu_work(), kfree_rcu_drain_unlock(), kfree_rcu_monitor()

    def queue_kfree_rcu_work(self, krcp: KfreeRcuCpu, ctx: Cpu) -> bool:
        """Detach bkvhead/head into free krw_arr[] channels; False: retry later."""
        repeat = False
        for krwp in krcp.krw_arr:
            self.detach_into(krcp, krwp, ctx)
            # Repeat if any "free" corresponding channel is still busy.
            if krcp.bkvhead[0] or krcp.bkvhead[1] or krcp.head:
                repeat = True
        return not repeat

    def detach_into(self, krcp: KfreeRcuCpu, krwp: KfreeRcuCpuWork, ctx: Cpu) -> None:
        """Try to detach bkvhead or head and attach it over any available
        corresponding free channel of ``krwp``, then queue ``krwp``'s batch."""
        if ((krcp.bkvhead[0] and not krwp.bkvhead_free[0])
                or (krcp.bkvhead[1] and not krwp.bkvhead_free[1])
                or (krcp.head and not krwp.head_free)):
            self.attach_channels(krcp, krwp)
            krcp.count = 0
            self.queue_batch(krwp, ctx)

    def attach_channels(self, krcp: KfreeRcuCpu, krwp: KfreeRcuCpuWork) -> None:
        """Move each of krcp's channels into krwp's, where krwp's is free."""
        riding = krwp.rcu_work.pending and self.attaches_to_pending
        moved = 0
        for j in range(FREE_N_CHANNELS):
            if not krwp.bkvhead_free[j]:
                b = krcp.bkvhead[j]
                krwp.bkvhead_free[j] = b
                krcp.bkvhead[j] = None
                if b is not None:
                    moved += b.nr_records
                    if riding:
                        self._ride(b)
        if not krwp.head_free:
            krwp.head_free = krcp.head
            if krcp.head:
                moved += sum(r.n for r in krcp.head)
                if riding:
                    self._ride(None, krcp.head)
            krcp.head = None
        self.wait.move(IN_KRCP, DETACHED, moved)

    def _ride(self, b: BulkChain | None, runs: list[ObjRun] | None = None) -> None:
        """Objects attached to a batch whose rcu_work is already queued ride on
        its (older) grace period: the kernel's use-after-free, fixed by 5da7cb193db3."""
        self.c.pending_gp_attach += 1
        if b is not None:
            b.pending_gp_bug = True
        for r in runs or ():
            r.pending_gp_bug = True

    def queue_batch(self, krwp: KfreeRcuCpuWork, ctx: Cpu) -> None:
        """queue_rcu_work(system_wq, &krwp->rcu_work)."""
        self.c.batches_queued += 1
        self.kernel.queue_rcu_work(ctx, self.system_wq, krwp.rcu_work)

    def kfree_rcu_drain_unlock(self, krcp: KfreeRcuCpu, ctx: Cpu) -> None:
        # Attempt to start a new batch.
        krcp.monitor_todo = False
        if self.queue_kfree_rcu_work(krcp, ctx):
            return
        # Previous RCU batch still in progress, try again later.
        krcp.monitor_todo = True
        self.system_wq.queue_delayed_work_on(ctx, krcp.monitor_work, self.kfree_drain_jiffies)

    def kfree_rcu_monitor(self, krcp: KfreeRcuCpu, ctx: Cpu) -> None:
        """kfree_rcu_monitor(): runs on CPU ``ctx`` with krcp->lock taken."""
        self.c.monitor_runs += 1
        krcp.lock(ctx)
        if krcp.monitor_todo:
            self.kfree_rcu_drain_unlock(krcp, ctx)

    def kfree_rcu_monitor_work(self, work: WorkStruct, worker: Task) -> Generator[Any, Any, None]:
        """The monitor_work item: kfree_rcu_monitor() in a kworker."""
        assert worker.cpu is not None
        worker.debt += self.monitor_ns
        self.kfree_rcu_monitor(work.data, worker.cpu)
        return
        yield

    def schedule_monitor(self, krcp: KfreeRcuCpu, ctx: Cpu) -> None:
        """kvfree_call_rcu(): "Set timer to drain after KFREE_DRAIN_JIFFIES"."""
        if not krcp.monitor_todo:
            krcp.monitor_todo = True
            self.system_wq.queue_delayed_work_on(ctx, krcp.monitor_work, self.kfree_drain_jiffies)

    # -- page cache refill: hrtimer -> system_highpri_wq ---------------------------

    def make_page_cache_work(self, krcp: KfreeRcuCpu) -> WorkStruct:
        """INIT_WORK(&krcp->page_cache_work, fill_page_cache_func), or INIT_DELAYED_WORK
        where ``page_cache_work`` is a ``struct delayed_work``."""
        if self.page_cache_work_delayed:
            return DelayedWork(self.fill_page_cache_func, "fill_page_cache_func", krcp)
        return WorkStruct(self.fill_page_cache_func, "fill_page_cache_func", krcp)

    def schedule_page_work_fn(self, t: HrTimer) -> None:
        """The hrtimer callback (hard irq): queue_work(system_highpri_wq, &krcp->page_cache_work),
        or queue_delayed_work(..., 0) where it is delayed work."""
        krcp = self.krc[t.cpu.id]
        work = krcp.page_cache_work
        if isinstance(work, DelayedWork):
            self.system_highpri_wq.queue_delayed_work_on(t.cpu, work, 0)
        else:
            self.system_highpri_wq.queue_work_on(t.cpu, work)

    def fill_nr_pages(self, krcp: KfreeRcuCpu) -> int:
        """How many pages one fill_page_cache_func() tries to allocate."""
        return self.rcu_min_cached_objs

    def fill_page_cache_func(self, work: WorkStruct, worker: Task) -> Generator[Any, Any, None]:
        """fill_page_cache_func(): allocate pages into this CPU's cache.

        ``for (i = 0; i < nr_pages; i++) { bnode = __get_free_page(...); ...
        pushed = put_cached_bnode(krcp, bnode); if (!pushed) { free_page(bnode);
        break; } }``.  The pages the loop will allocate are first tried all at
        once on the allocator's fast path; what that cannot give goes through
        the slow path page by page, as in the loop.
        """
        krcp: KfreeRcuCpu = work.data
        cpu = worker.cpu
        assert cpu is not None
        self.c.fill_runs += 1
        nr_pages = self.fill_nr_pages(krcp)
        want = max(0, min(nr_pages, self.rcu_min_cached_objs - krcp.nr_bkv_objs + 1))
        fast = self.mm.alloc_fast(want, 0, self.fill_gfp, OWNER, cpu.id) if want else 0
        if fast:
            self.got_pages(worker, self.fill_gfp, fast)
            worker.debt += fast * self.page_alloc_ns
        for _ in range(nr_pages):
            if fast:
                fast -= 1
                ok = True
            else:
                ok = yield from self.get_free_page(worker, self.fill_gfp)
            if not ok:
                self.c.fill_fail += 1
                if self.fill_break_on_failure():
                    break
                continue
            self.c.fill_pages += 1
            krcp.lock(cpu)
            worker.debt += self.lock_ns
            if not self.put_cached_bnode(krcp, fresh=True):
                self.free_pages(1, cpu)
                worker.debt += self.page_free_ns
                break
        assert not fast, "fill_page_cache_func() allocated pages it did not use"
        self.fill_done(krcp)

    def fill_break_on_failure(self) -> bool:
        """v6.1 backs off at the first failed allocation (093590c16b44)."""
        return False

    def fill_done(self, krcp: KfreeRcuCpu) -> None:
        """The end of fill_page_cache_func()."""
        krcp.work_in_progress = False

    def run_page_cache_worker(self, krcp: KfreeRcuCpu) -> None:
        if not krcp.work_in_progress:
            krcp.work_in_progress = True
            self.c.worker_hrtimer += 1
            krcp.hrtimer.start(0)

    # -- enqueue: kvfree_call_rcu() ------------------------------------------------

    def add_ptr_to_bulk(self, krcp: KfreeRcuCpu, task: Task, head: bool,
                        origin: "SlabCpu") -> Generator[Any, Any, bool]:
        """kvfree_call_rcu_add_ptr_to_bulk() (v5.11/v5.12): no allocation, ever."""
        if not krcp.initialized:
            return False
        idx = 0  # !!is_vmalloc_addr(ptr): rcuscale's objects come from kmalloc()
        # Check if a new block is required.
        if krcp.bulk_room() == 0:
            # Switch to emergency path.
            if not self.get_cached_bnode(krcp):
                return False
            self.attach_bnode(krcp, idx)
        # Finally insert.
        self.store_records(krcp, 1, origin)
        return True
        yield  # unreachable: a generator because v5.13 may allocate here

    def attach_bnode(self, krcp: KfreeRcuCpu, idx: int) -> None:
        """``bnode->nr_records = 0; bnode->next = bkvhead[idx]; bkvhead[idx] = bnode``."""
        chain = krcp.bkvhead[idx]
        if chain is None:
            chain = krcp.bkvhead[idx] = BulkChain()
        chain.pages += 1
        chain.head_records = 0

    def store_records(self, krcp: KfreeRcuCpu, n: int, origin: "SlabCpu") -> None:
        """``bkvhead[0]->records[nr_records++] = ptr`` for ``n`` pointers."""
        b = krcp.bkvhead[0]
        assert b is not None
        if b.origin is None:
            b.origin = origin
        b.head_records += n
        b.snap = rcu_seq_snap(self.rcu.gp_seq)

    def link_on_list(self, krcp: KfreeRcuCpu, n: int, origin: "SlabCpu") -> None:
        """``head->next = krcp->head; krcp->head = head`` for ``n`` objects."""
        snap = rcu_seq_snap(self.rcu.gp_seq)
        runs = krcp.head
        if runs is None:
            runs = krcp.head = []
        if runs and runs[-1].snap == snap and runs[-1].origin is origin:
            runs[-1].n += n
        else:
            runs.append(ObjRun(n, snap, origin))

    def kvfree_call_rcu(self, task: Task, head: bool, origin: "SlabCpu") -> Generator[Any, Any, str]:
        """kvfree_call_rcu() for one object; ``head``: the 2-argument form.

        Returns the path it took: "bulk", "list" or "inline".
        """
        cpu = task.cpu
        assert cpu is not None
        krcp = self.krc[cpu.id]  # krc_this_cpu_lock()
        self.c.calls += 1
        self.checks.note_queued(1)
        snap = rcu_seq_snap(self.rcu.gp_seq)
        success = yield from self.add_ptr_to_bulk(krcp, task, head, origin)
        path = "bulk"
        if not success:
            self.run_page_cache_worker(krcp)
            if not head:
                path = "inline"  # Inline if kvfree_rcu(one_arg) call.
            else:
                self.link_on_list(krcp, 1, origin)
                self.c.head_fallback += 1
                success = True
                path = "list"
        if success:
            if path == "bulk":
                self.c.calls_bulk += 1
            else:
                self.c.calls_list += 1
            self.wait.move(None, IN_KRCP, 1)
            krcp.count += 1
            self.schedule_monitor(krcp, cpu)
        task.debt += (self.call_list_ps if path == "list" else self.call_ps) // 1000
        if not success:
            # Inline kvfree() after synchronize_rcu().
            self.c.inline_kvfree += 1
            yield from self.rcu.synchronize_rcu(task)
            self.checks.free_inline(snap)
            origin.free(1, cpu.id)
            self.c.objects_freed += 1
        return path

    # -- segments of calls -----------------------------------------------------------

    def segment(self, krcp: KfreeRcuCpu, limit: int, doubles_ahead: int) -> tuple[int, int, bool] | None:
        """The next calls that need no decision: ``(n, unit_ps, to_list)``, or None.

        ``limit`` caps ``n``; ``doubles_ahead`` is how many of the next calls
        are 2-argument ones before the next 1-argument one.  The caller applies
        them with :meth:`queue_bulk` (``to_list`` False) or :meth:`queue_list`.
        """
        # Calls fit in the page being filled, then in pages taken from the
        # cache one after another (get_cached_bnode() needs no decision).
        room = krcp.bulk_room()
        if krcp.initialized:
            room += krcp.nr_bkv_objs * KVFREE_BULK_MAX_ENTR
        if room > 0:
            return min(limit, self.bulk_run_limit(krcp, room)), self.call_ps, False
        if (krcp.initialized and krcp.nr_bkv_objs == 0 and krcp.work_in_progress
                and doubles_ahead > 0):
            return min(limit, doubles_ahead), self.call_list_ps, True
        return None

    def bulk_run_limit(self, krcp: KfreeRcuCpu, room: int) -> int:
        """How many calls fit in the current page without another decision."""
        return room

    def queue_bulk(self, krcp: KfreeRcuCpu, k: int, origin: "SlabCpu") -> None:
        """``k`` calls that each store a pointer in a bulk page: the current one,
        then pages from the cache as each fills (get_cached_bnode(), attach)."""
        c = self.c
        c.calls += k
        c.calls_bulk += k
        self.checks.note_queued(k)
        room = krcp.bulk_room()
        if k > room:
            rest = k - room
            pages = -(-rest // KVFREE_BULK_MAX_ENTR)
            assert krcp.nr_bkv_objs >= pages, "segment planned past the cache"
            krcp.nr_bkv_objs -= pages
            del krcp.bkvcache[-pages:]
            c.cache_hit += pages
            chain = krcp.bkvhead[0]
            if chain is None:
                chain = krcp.bkvhead[0] = BulkChain()
            chain.pages += pages
            chain.head_records = rest - (pages - 1) * KVFREE_BULK_MAX_ENTR
            if chain.origin is None:
                chain.origin = origin
            chain.snap = rcu_seq_snap(self.rcu.gp_seq)
        else:
            self.store_records(krcp, k, origin)
        self.wait.move(None, IN_KRCP, k)
        krcp.count += k
        self.schedule_monitor(krcp, krcp.cpu)

    def queue_list(self, krcp: KfreeRcuCpu, k: int, origin: "SlabCpu") -> None:
        """``k`` 2-argument calls with no page while a refill is in flight."""
        self.c.calls += k
        self.c.calls_list += k
        self.c.head_fallback += k
        self.checks.note_queued(k)
        self.link_on_list(krcp, k, origin)
        self.wait.move(None, IN_KRCP, k)
        krcp.count += k
        self.schedule_monitor(krcp, krcp.cpu)

    # -- shrinker -----------------------------------------------------------------------

    def kfree_rcu_shrink_count(self, sc: "ShrinkControl") -> int:
        self.c.shrink_count += 1
        count = 0
        # Snapshot count of all CPUs
        for krcp in self.krc:
            krcp.lock(sc.cpu)  # READ_ONCE() of what the owner is changing now
            count += self.shrink_count_cpu(krcp, sc)
        sc.cost_ns += len(self.krc) * self.per_cpu_ns
        return self.shrink_count_result(count)

    def shrink_count_cpu(self, krcp: KfreeRcuCpu, sc: "ShrinkControl") -> int:
        """What one CPU adds to the shrinker's count: ``READ_ONCE(krcp->count)``."""
        return krcp.count

    def shrink_count_result(self, count: int) -> int:
        return count

    def kfree_rcu_shrink_scan(self, sc: "ShrinkControl") -> int:
        before = self.c.as_dict()
        freed = self._shrink_scan(sc)
        # what this call added to the counters, for repeat_scan()
        self._scan_deltas = [(k, v - before[k]) for k, v in self.c.as_dict().items() if v != before[k]]
        return freed

    def _shrink_scan(self, sc: "ShrinkControl") -> int:
        self.c.shrink_scan += 1
        freed = 0
        ctx = sc.cpu
        per_cpu_ns = self.lock_ns + self.per_cpu_ns
        scan_drain, scan_kick_monitor = self.scan_drain, self.scan_kick_monitor
        for krcp in self.krc:
            krcp.lock(ctx)
            count = krcp.count
            count += scan_drain(krcp, ctx)
            scan_kick_monitor(krcp, ctx)
            sc.cost_ns += per_cpu_ns
            # sc->nr_to_scan is unsigned long: "<= 0" only catches exactly 0.
            sc.nr_to_scan = (sc.nr_to_scan - count) % (1 << 64)
            freed += count
            if sc.nr_to_scan == 0:
                break
        self.c.scan_freed += freed
        return SHRINK_STOP if freed == 0 else freed

    def scan_state(self) -> tuple[object, ...]:
        """Everything kfree_rcu_shrink_scan() may change but the counters (which no
        decision reads): any event scheduled, free pages, each krcp, what a variant adds."""
        mm = self.mm
        return (self.kernel.sim.scheduled(), mm.nr_free_pages(), mm.nr_pcp_pages(),
                tuple(krcp.scan_state() for krcp in self.krc), self.scan_state_extra())

    def scan_state_extra(self) -> tuple[object, ...]:
        """State a variant's scan may change besides the krcps'."""
        return ()

    def repeat_scan(self, k: int, freed: int) -> None:
        """``k`` more kfree_rcu_shrink_scan() calls like the last, which changed nothing
        but the counters: add what it added, ``k`` times."""
        c = self.c
        for key, d in self._scan_deltas:
            c[key] += k * d

    def scan_drain(self, krcp: KfreeRcuCpu, ctx: Cpu) -> int:
        """Cached pages the scan frees (none before the patch)."""
        return 0

    def scan_kick_monitor(self, krcp: KfreeRcuCpu, ctx: Cpu) -> None:
        """v5.11: ``if (krcp->monitor_todo) kfree_rcu_drain_unlock(krcp, flags);``"""
        if krcp.monitor_todo:
            self.kfree_rcu_drain_unlock(krcp, ctx)

    def drain_page_cache(self, krcp: KfreeRcuCpu, ctx: Cpu) -> int:
        """drain_page_cache() (v3: free_krc_page_cache()): free every cached page."""
        krcp.lock(ctx)
        if not krcp.bkvcache:
            return 0
        pages, krcp.bkvcache = krcp.bkvcache, []
        krcp.nr_bkv_objs = 0
        self.c.refill_drained_unused += sum(pages)
        self.free_pages(len(pages), ctx)
        self.c.drained_pages += len(pages)
        return len(pages)

    # -- init --------------------------------------------------------------------------------

    def kfree_rcu_batch_init(self) -> None:
        for krcp in self.krc:
            krcp.initialized = True
        self.kernel.register_shrinker("rcu-kfree", self.kfree_rcu_shrink_count, self.kfree_rcu_shrink_scan,
                                      self.scan_state, self.repeat_scan)

    # -- accounting -----------------------------------------------------------------------

    def pages_held(self) -> int:
        """Pages held now, counted from the structures (page conservation)."""
        n = self.inflight_pages
        for krcp in self.krc:
            n += len(krcp.bkvcache)
            for b in krcp.bkvhead:
                n += b.pages if b is not None else 0
            for krwp in krcp.krw_arr:
                for b in krwp.bkvhead_free:
                    n += b.pages if b is not None else 0
        return n

    def objects_queued_now(self) -> int:
        """Objects queued and not yet freed, counted from the structures."""
        n = self.wait.n2  # the objects a running kfree_rcu_work() holds (FREEING)
        for krcp in self.krc:
            for b in krcp.bkvhead:
                n += b.nr_records - b.freed if b is not None else 0
            n += sum(r.n - r.freed for r in krcp.head or ())
            for krwp in krcp.krw_arr:
                for b in krwp.bkvhead_free:
                    n += b.nr_records - b.freed if b is not None else 0
                n += sum(r.n - r.freed for r in krwp.head_free or ())
        return n
