"""rcuscale's kfree test: ``kfree_scale_init()`` and ``kfree_scale_thread()`` (kernel/rcu/rcuscale.c).

As in v5.11 (always ``kfree_rcu(p, rh)``), v5.13-v6.1 (``kfree_rcu(p)`` or
``kfree_rcu(p, rh)`` at random when ``kfree_rcu_test_single ==
kfree_rcu_test_double``, else only the one set):

* ``kfree_nrealthreads = compute_real(kfree_nthreads)`` kthreads, created one
  after the other; thread ``me`` starts at nice 0 on any CPU, prints ``task
  started`` (``rcuscale.verbose``), then pins itself to CPU ``me % nr_cpu_ids``
  and drops to nice 19 (``MAX_NICE``);
* each does ``kfree_loops`` loops of ``kfree_alloc_num`` ``kmalloc(kfree_mult *
  sizeof(struct kfree_obj), GFP_KERNEL)`` + ``kfree_rcu()``, then
  ``cond_resched()`` (a no-op under CONFIG_PREEMPT);
* the thread that starts last samples ``rcu_state.gp_seq``, the one that ends
  last prints ``Total time taken by all kfree'ers: %llu ns, loops: %d,
  batches: %ld, memory footprint: %lldMB`` with its own run time, the GPs in
  between (``rcu_seq_diff()``) and the footprint from its ``si_mem_available()``
  samples: ``mem_begin`` at loop 0, then ``mem_during = (mem_during +
  si_mem_available()) / 2`` at every ``loop % (kfree_loops / 4) == 0``;
  footprint ``(mem_begin - mem_during) >> (20 - PAGE_SHIFT)``.

The random choice is ``torture_random(&tr) & 0x800``: each object is
1-argument with probability 1/2.  What matters is only which form the call
at a page boundary has, so the thread keeps the number of 2-argument calls
before the next 1-argument one and draws it, when needed, from fair random
bits (a geometric law, exact whatever the segmenting).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Callable, Final, Generator

from ..kernel.mm.gfp import GFP_KERNEL
from ..kernel.rcu import rcu_seq_diff
from ..kernel.sched import MAX_NICE, Chunk, Task, set_cpus_allowed_ptr, wake_task

if TYPE_CHECKING:
    from ..kernel.mm.slab import KmemCache, SlabCpu
    from ..kernel.system import Kernel
    from ..kvfree_rcu.tree import KvfreeRcu

PAGE_SHIFT: Final = 12
KFREE_OBJ_SIZE: Final = 24  # struct kfree_obj { char kfree_obj[8]; struct rcu_head rh; }
ALL_DOUBLE: Final = 1 << 62  # "no 1-argument call ahead, ever"


def compute_real(n: int, ncpus: int) -> int:
    """rcuscale's compute_real(): n if >= 0, else num_online_cpus() + 1 + n, at least 1."""
    if n >= 0:
        return n
    return max(1, ncpus + 1 + n)


def doubles_before_single(getrandbits: Callable[[int], int]) -> int:
    """How many 2-argument calls come before the next 1-argument one (P = 1/2 each),
    from ``getrandbits`` (a ``random.Random``'s, bound once by the caller)."""
    n = 0
    while True:
        bits = getrandbits(32)
        if bits != 0xFFFFFFFF:
            return n + ((~bits) & (bits + 1)).bit_length() - 1
        n += 32


class KfreeScaleResult:
    """What the last thread printed, or why nothing was printed."""

    def __init__(self) -> None:
        self.total_ns: int | None = None
        self.batches: int | None = None
        self.footprint_mb: int | None = None
        self.loops = 0
        self.line: str | None = None


class KfreeScaleTest:
    """The kfree test of one boot."""

    def __init__(self, kernel: "Kernel", kv: "KvfreeRcu", params: dict[str, Any], version: str) -> None:
        self.kernel = kernel
        self.kv = kv
        self.p = params
        self.version = version
        ncpus = len(kernel.cpus)
        self.nthreads = compute_real(params["kfree_nthreads"], ncpus)
        self.size = params["kfree_mult"] * KFREE_OBJ_SIZE
        self.cache: KmemCache = kernel.mm.kmalloc_cache(self.size)
        self.loops = params["kfree_loops"]
        self.alloc_num = params["kfree_alloc_num"]
        self.quarter = self.loops // 4
        if version == "5.11":
            self.mode = "double"
        elif params["kfree_rcu_test_single"] == params["kfree_rcu_test_double"]:
            self.mode = "both"
        else:
            self.mode = "single" if params["kfree_rcu_test_single"] else "double"
        prof = kernel.profile
        self.obj_ps = prof.ps("kmalloc_ns") + prof.ps("rcuscale_loop_ns")
        self.obj_ns = self.obj_ps // 1000
        self.slab_new_ps = prof.ps("slab_new_ns")
        self.slab_page_ps = prof.ps("slab_page_ns")
        self.slab_fast_ps = self.slab_ps(self.cache.order)  # a slab of the cache's own order
        self.started = 0
        self.ended = 0
        self.gp_started = 0
        self.result = KfreeScaleResult()
        self.result.loops = self.loops
        self.threads: list[Task] = []
        self.done = False
        self.enomem = False
        self.objects_done = 0
        self.verbose = bool(params["verbose"])
        for me in range(self.nthreads):
            # a new kthread: nice 0, any CPU, until it pins itself and lowers its priority
            t = Task(kernel, "kfree_scale_thread", self._thread_fn(me))
            self.threads.append(t)

    def start(self) -> None:
        """rcu_scale_init() -> kfree_scale_init(): the initcall creates the threads."""
        init = Task(self.kernel, "rcu_scale_init", self.kfree_scale_init, kthread=False)
        # do_initcalls() runs in kernel_init, PID 1: is_global_init(), never an OOM victim
        init.oom_killable = False
        wake_task(init)

    def kfree_scale_init(self, task: Task) -> Generator[Any, Any, None]:
        """kfree_scale_init(): ``pr_alert("kfree object size=%zu\n", ...)``, then the
        loop of ``torture_create_kthread(kfree_scale_thread, ...)``, one thread after
        the other (kthreadd creates it while kernel_init sleeps, :meth:`Kernel.kthread_create`),
        each running as soon as it is woken, then the initcalls after
        it (:meth:`Kernel.late_initcalls`).  With ``rcuscale.verbose``
        (the default) each creation prints ``rcu-torture: Creating
        kfree_scale_thread task`` and each thread ``rcu-scale: kfree_scale_thread
        task started`` before it takes its start time: on a slow serial console
        the threads (and with them each CPU's monitor timer) start milliseconds
        apart, as in the calibration logs.  Then it waits for all of them to have
        started, polling ``n_kfree_scale_thread_started`` with
        ``schedule_timeout_uninterruptible(1)``: woken by its timer, kernel_init is placed
        again (select_task_rq_fair()), away from a CPU a kfree thread has pinned itself to."""
        kernel = self.kernel
        yield from kernel.printk_from(task, f"kfree object size={self.size}")
        for t in self.threads:
            if self.verbose:
                yield from kernel.printk_from(task, "rcu-torture: Creating kfree_scale_thread task")
            yield from kernel.kthread_create(task)  # torture_create_kthread(): kthread_create()
            wake_task(t)  # then wake_up_process()
        while self.started < self.nthreads:
            yield from kernel.vmscan.schedule_timeout_uninterruptible(task, 1)
        yield from kernel.late_initcalls(task)

    def _thread_fn(self, me: int) -> Callable[[Task], Generator[Any, Any, None]]:
        return lambda task: self.kfree_scale_thread(task, me)

    # -- the thread body ---------------------------------------------------------

    def _next_doubles(self, getrandbits: Callable[[int], int]) -> int:
        if self.mode == "double":
            return ALL_DOUBLE
        if self.mode == "single":
            return 0
        return doubles_before_single(getrandbits)

    def kfree_scale_thread(self, task: Task, me: int) -> Generator[Any, Any, None]:
        kernel = self.kernel
        kv = self.kv
        mm = kernel.mm
        if self.verbose:
            yield from kernel.printk_from(task, "rcu-scale: kfree_scale_thread task started")
        cpu = kernel.cpus[me % len(kernel.cpus)]
        yield from set_cpus_allowed_ptr(task, cpu)
        task.set_nice(MAX_NICE)
        krcp = kv.krc[cpu.id]
        slab = self.cache.cpus[cpu.id]
        calls = CallStream(self, krcp, slab, kernel.rng.stream(f"kfree_scale_thread/{me}"))
        start_time = kernel.clock.ktime_ns()  # ktime_get_mono_fast_ns(): the guest's clock
        self.started += 1
        if self.started >= self.nthreads:
            self.gp_started = kernel.rcu.gp_seq
        mem_begin = mem_during = 0
        loop = 0
        while True:
            if not mem_during:
                mem_during = mem_begin = mm.si_mem_available()
            elif loop % self.quarter == 0:
                mem_during = (mem_during + mm.si_mem_available()) // 2
            i = 0
            while i < self.alloc_num:
                # kmalloc(): a slab object must be at hand; getting a new slab
                # may reclaim, which may drain this CPU's kvfree_rcu cache, so
                # this comes before the kvfree_rcu() calls are planned.
                if slab.free_objs == 0:
                    ok = yield from self.new_slab(task, slab)
                    if not ok:
                        self.enomem = True
                        return  # kmalloc() failed: "return -ENOMEM"
                left = self.alloc_num - i
                seg = kv.segment(krcp, left, calls.doubles_ahead)
                if seg is None:
                    # A decision point: one kmalloc() + kfree_rcu() the kernel's way.
                    slab.take(1)
                    task.debt += self.obj_ns
                    head = calls.doubles_ahead > 0
                    yield from kv.kvfree_call_rcu(task, head, slab)
                    calls.consume(1)
                    i += 1
                    self.objects_done += 1
                    continue
                n, unit_ps, to_list = seg
                # The slabs these objects need, by the allocator's fast path only.
                new_slabs = self.cache.refill_fast(slab, n)
                calls.plan(min(n, slab.free_objs), self.obj_ps + unit_ps, to_list,
                           new_slabs * self.slab_fast_ps)
                yield calls
                i += calls.done
                self.objects_done += calls.done
            # cond_resched(): nothing to do under CONFIG_PREEMPT
            loop += 1
            if loop >= self.loops:
                break
        self.ended += 1
        if self.ended >= self.nthreads:
            end_time = kernel.clock.ktime_ns()
            batches = rcu_seq_diff(kernel.rcu.gp_seq, self.gp_started)
            footprint = (mem_begin - mem_during) >> (20 - PAGE_SHIFT)
            r = self.result
            r.total_ns = end_time - start_time
            r.batches = batches
            r.footprint_mb = footprint
            r.line = (f"Total time taken by all kfree'ers: {r.total_ns} ns, loops: {self.loops}, "
                      f"batches: {batches}, memory footprint: {footprint}MB")
            kernel.printk(r.line)
            self.done = True
            kernel.sim.stop()  # rcuscale.shutdown=1: kernel_power_off()

    def new_slab(self, task: Task, slab: "SlabCpu") -> Generator[Any, Any, bool]:
        """___slab_alloc() -> new_slab(): the slow way, reclaim and all."""
        cache = self.cache
        fallbacks = cache.fallbacks
        ok = yield from cache.allocate_slab(task, slab, GFP_KERNEL)
        task.debt += self.slab_ps(cache.min_order if cache.fallbacks > fallbacks else cache.order) // 1000
        return ok

    def slab_ps(self, order: int) -> int:
        """CPU time of allocate_slab() for a slab of ``order``."""
        return self.slab_new_ps + (self.slab_page_ps << order)


class CallStream(Chunk):
    """A segment of one thread's ``kmalloc()`` + ``kfree_rcu()`` calls that all
    take the same path: a divisible burst whose calls are applied as the CPU
    time for them is granted.  One per thread, planned again for each segment.
    """

    __slots__ = ("test", "kv", "krcp", "slab", "getrandbits", "doubles_ahead", "n", "unit_ps", "to_list",
                 "head_ps", "spent_ps", "done")

    def __init__(self, test: KfreeScaleTest, krcp: Any, slab: "SlabCpu", rng: random.Random) -> None:
        super().__init__(0, volatile=True)
        self.test = test
        self.kv = test.kv
        self.krcp = krcp
        self.slab = slab
        self.getrandbits: Callable[[int], int] = rng.getrandbits
        # how many 2-argument calls come before the next 1-argument one
        self.doubles_ahead = test._next_doubles(self.getrandbits)
        self.n = self.unit_ps = self.head_ps = self.spent_ps = self.done = 0
        self.to_list = False

    def plan(self, n: int, unit_ps: int, to_list: bool, head_ps: int) -> None:
        """``n`` calls of ``unit_ps`` each, after ``head_ps`` of slab set-up."""
        self.n = n
        self.unit_ps = unit_ps
        self.to_list = to_list
        self.head_ps = head_ps
        self.spent_ps = self.done = self.prefix = 0
        self.remaining = -(-(head_ps + n * unit_ps) // 1000)

    def advance(self, ns: int) -> None:
        self.remaining -= ns
        if self.prefix:
            paid = min(self.prefix, ns)
            self.prefix -= paid
            ns -= paid
        self.spent_ps += ns * 1000
        k = (self.spent_ps - self.head_ps) // self.unit_ps
        if k > self.n or self.remaining <= 0:
            k = self.n
        if k > self.done:
            self.commit(k - self.done)
            self.done = k

    def irq_preempt_off_after(self, ns: int) -> bool:
        """Each call ends in ``kvfree_call_rcu()``, which holds the krcp lock with
        interrupts off from ``krc_this_cpu_lock()`` (``local_irq_save()`` +
        ``raw_spin_lock()``) to ``krc_this_cpu_unlock()`` (kernel/rcu/tree.c,
        v5.11-v6.1): the last ``unit_ps - obj_ps`` of each call's ``unit_ps``.  An
        interrupt held off there is taken with preemption disabled only where the
        unlock is ``raw_spin_unlock_irqrestore()`` (v5.13 on:
        ``KvfreeRcu.krc_unlock_irqrestore``)."""
        if not self.kv.krc_unlock_irqrestore:
            return False
        ns -= self.prefix
        pos = self.spent_ps + ns * 1000 - self.head_ps
        if ns < 0 or pos < 0 or not self.unit_ps:
            return False
        return pos % self.unit_ps >= self.test.obj_ps

    def commit(self, k: int) -> None:
        self.slab.take(k)
        if self.to_list:
            self.kv.queue_list(self.krcp, k, self.slab)
        else:
            self.kv.queue_bulk(self.krcp, k, self.slab)
        self.consume(k)

    def consume(self, k: int) -> None:
        """The random call forms move on by ``k`` calls (memoryless: redraw past the next 1-arg)."""
        if k <= self.doubles_ahead:
            self.doubles_ahead -= k
        else:
            self.doubles_ahead = self.test._next_doubles(self.getrandbits)
