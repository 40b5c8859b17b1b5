"""CPUs, tasks and the CFS scheduler (kernel/sched/{core,fair}.c, v5.11-v6.1).

A :class:`Task` is a Python generator.  It yields what it does next:

* an ``int`` ``ns >= 0``: run on the CPU for ``ns`` of CPU time (a *burst*);
  the value sent back is ``ns``;
* a :class:`Chunk`: a *divisible* burst, a run of identical operations (a
  segment of ``kvfree_rcu()`` calls, a batch of frees) whose progress can be
  committed at any instant: when the task is preempted, interrupted or
  observed from another CPU (:meth:`Cpu.sync`), the CPU calls
  ``chunk.advance(ns)`` with the CPU time it got so far;
* :data:`SLEEP`: block until :meth:`Machine.wake` (the value sent back is the
  waker's).

Each CPU has a CFS run queue: runnable tasks share it by the weight of their
nice level (``sched_prio_to_weight``), a waking task is placed by
``place_entity()`` and preempts the current one when ``wakeup_preempt_entity()``
says so (``check_preempt_wakeup()``); at a tick, ``check_preempt_tick()``
ends a slice.  Everything here follows v5.11 kernel/sched/fair.c (v6.1 is the
same for these paths; EEVDF replaced them only in v6.6).

Hard and soft interrupts run a plain function at once and take their CPU time
from whatever the CPU was running.  A burst marked ``irqs_off`` holds
interrupts until it ends; one marked ``preempt_off`` holds preemption.

Simplifications (documented in docs/design.md): no load balancing (rcuscale's
threads and per-CPU kworkers are pinned; unpinned tasks pick a CPU when they
wake, preferring an idle one, like ``select_idle_sibling()``), no group
scheduling, no buddies, no PELT; the CPU time of wakeups is folded into the
costs of the operations that wake.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Final, Generator

from ..core.sim import PRIO_LATE, PRIO_NORMAL, PRIO_SOFTIRQ, Event, Simulator

if TYPE_CHECKING:
    from .system import Kernel

#: Yielded by a task to block until woken.
SLEEP: Final = -1
#: Internal: the task ended (its generator returned) and is paying its debt.
EXIT: Final = -2

TaskBody = Generator[Any, Any, None]

# kernel/sched/core.c
SCHED_PRIO_TO_WEIGHT: Final = (
    88761, 71755, 56483, 46273, 36291,
    29154, 23254, 18705, 14949, 11916,
    9548, 7620, 6100, 4904, 3906,
    3121, 2501, 1991, 1586, 1277,
    1024, 820, 655, 526, 423,
    335, 272, 215, 172, 137,
    110, 87, 70, 56, 45,
    36, 29, 23, 18, 15,
)
NICE_0_LOAD: Final = 1024
MAX_NICE: Final = 19
MIN_NICE: Final = -20

# kernel/sched/fair.c, unscaled defaults (ns)
SYSCTL_SCHED_LATENCY: Final = 6_000_000
SYSCTL_SCHED_MIN_GRANULARITY: Final = 750_000
SYSCTL_SCHED_WAKEUP_GRANULARITY: Final = 1_000_000
SCHED_NR_LATENCY: Final = 8


def nice_to_weight(nice: int) -> int:
    if not MIN_NICE <= nice <= MAX_NICE:
        raise ValueError(f"nice {nice} out of range")
    return SCHED_PRIO_TO_WEIGHT[nice - MIN_NICE]


def sysctl_factor(ncpus: int) -> int:
    """get_update_sysctl_factor(), SCHED_TUNABLESCALING_LOG: 1 + ilog2(min(ncpus, 8))."""
    n = min(ncpus, 8)
    return 1 + (n.bit_length() - 1)


class CfsParams:
    """The CFS tunables after update_sysctl() scaled them for this machine."""

    __slots__ = ("latency", "min_granularity", "wakeup_granularity", "base_slice")

    def __init__(self, ncpus: int, base_slice: bool = False) -> None:
        f = sysctl_factor(ncpus)
        self.latency = SYSCTL_SCHED_LATENCY * f
        self.min_granularity = SYSCTL_SCHED_MIN_GRANULARITY * f
        self.wakeup_granularity = SYSCTL_SCHED_WAKEUP_GRANULARITY * f
        #: v5.13+ sched_slice() never returns less than min_granularity (BASE_SLICE)
        self.base_slice = base_slice

    def period(self, nr_running: int) -> int:
        """__sched_period()."""
        if nr_running > SCHED_NR_LATENCY:
            return nr_running * self.min_granularity
        return self.latency


class Chunk:
    """A divisible burst: ``remaining`` ns of CPU, committed by ``advance()``.

    A *volatile* chunk was planned from state other CPUs or tasks may change
    while it is off the CPU (a segment of kvfree_rcu() calls): when preempted
    or synced it is dropped, and the task re-plans when it runs again.  Any
    other chunk just continues.
    """

    __slots__ = ("remaining", "volatile", "prefix")

    def __init__(self, cost: int, volatile: bool = False) -> None:
        self.remaining = cost
        self.volatile = volatile
        self.prefix = 0  # ns of other work (the task's debt) done before the chunk proper

    def add_prefix(self, ns: int) -> None:
        self.remaining += ns
        self.prefix += ns

    def advance(self, ns: int) -> None:
        """Commit the effect of ``ns`` more ns of CPU time (``ns <= remaining``)."""
        self.remaining -= ns

    def irq_preempt_off_after(self, ns: int) -> bool:
        """Whether an interrupt that comes ``ns`` into what is not yet committed is taken
        with preemption disabled (held off by a section that enables interrupts before
        preemption, as ``raw_spin_unlock_irqrestore()`` does)."""
        return False


class Segments(Chunk):
    """A divisible burst made of runs of identical operations.

    Each run is ``(n, unit_ps, commit)``: ``n`` operations costing ``unit_ps``
    picoseconds each; ``commit(k)`` applies the effect of ``k`` more of them
    as the CPU time to do them is granted.  This is how kvfree-sim models a
    stream of ``kvfree_rcu()`` calls, or a batch of frees, with one event for
    the whole run instead of one per object, and still with exact counts.
    """

    __slots__ = ("runs", "idx", "done", "spent_ps")

    def __init__(self, runs: list[tuple[int, int, Callable[[int], None]]], volatile: bool = False) -> None:
        total = sum(n * unit for n, unit, _ in runs)
        super().__init__(-(-total // 1000), volatile)
        self.runs = runs
        self.idx = 0  # current run
        self.done = 0  # operations of the current run committed
        self.spent_ps = 0  # CPU time granted to the current run, in ps

    def advance(self, ns: int) -> None:
        self.remaining -= ns
        if self.prefix:
            paid = min(self.prefix, ns)
            self.prefix -= paid
            ns -= paid
        budget = ns * 1000
        runs = self.runs
        last = len(runs) - 1
        while self.idx <= last:
            n, unit, commit = runs[self.idx]
            self.spent_ps += budget
            k = min(n, self.spent_ps // unit) if unit > 0 else n
            if self.remaining <= 0 and self.idx == last:
                k = n
            if k > self.done:
                commit(k - self.done)
                self.done = k
            if k < n:
                return
            budget = self.spent_ps - n * unit
            if budget < 0:
                budget = 0
            self.idx += 1
            self.done = 0
            self.spent_ps = 0

    @property
    def finished(self) -> bool:
        return self.idx >= len(self.runs)


class Task:
    """A kernel thread (or a user process) with a CFS scheduling entity."""

    __slots__ = (
        "kernel", "name", "pid", "nice", "weight", "body", "pinned", "cpu",
        "runnable", "exited", "vruntime", "sum_exec", "prev_sum_exec",
        "burst", "chunk", "send", "started", "irqs_off", "preempt_off",
        "kthread", "oom_killable", "rss_pages", "wq_worker", "memalloc", "oom_victim",
        "debt", "then",
    )

    def __init__(
        self,
        kernel: "Kernel",
        name: str,
        body: Callable[["Task"], TaskBody],
        nice: int = 0,
        pinned: "Cpu | None" = None,
        kthread: bool = True,
        boot: bool = False,
    ) -> None:
        self.kernel = kernel
        self.name = name
        self.pid = kernel.new_pid()
        self.nice = nice
        self.weight = nice_to_weight(nice)
        self.pinned = pinned
        self.cpu: Cpu | None = pinned
        self.runnable = False
        self.exited = False
        self.vruntime = 0
        self.sum_exec = 0
        self.prev_sum_exec = 0
        self.burst = 0  # ns left of the current plain burst
        self.chunk: Chunk | None = None  # current divisible burst
        self.send: Any = None  # value for the next generator resume
        # A thread from boot has slept since: it wakes with place_entity(initial=0);
        # a new one gets START_DEBIT on its first enqueue.
        self.started = boot
        self.irqs_off = False
        self.preempt_off = False
        self.kthread = kthread
        self.oom_killable = not kthread
        self.rss_pages = 0
        self.wq_worker = False  # PF_WQ_WORKER
        self.memalloc = False  # PF_MEMALLOC: in reclaim, or kswapd
        # CPU time owed for work already done at a decision point; it is paid
        # before the task's next burst, so a cheap step costs no event of its own.
        self.debt = 0
        self.then: int | None = None  # SLEEP or EXIT, once the debt is paid
        self.oom_victim = False  # TIF_MEMDIE
        self.body: TaskBody = body(self)
        kernel.register_task(self)

    def set_nice(self, nice: int) -> None:
        """set_user_nice(): takes effect for future accounting."""
        self.nice = nice
        w = nice_to_weight(nice)
        cpu = self.cpu
        if self.runnable and cpu is not None:
            cpu.load += w - self.weight
        self.weight = w

    def __repr__(self) -> str:
        return f"<{self.name}-{self.pid}>"


class Cpu:
    """One CPU: its CFS run queue, the running task and interrupt handling."""

    __slots__ = (
        "kernel", "sim", "id", "cfs", "curr", "rq", "load", "min_vruntime",
        "burst_ev", "run_start", "in_resume", "need_resched", "tick_ev",
        "dynticks", "idle_since", "idle_time", "tracer", "deferred",
        "resume_ev", "ctx_switch_ns", "irq_ns", "softirq_ns", "context", "curr_since",
        "paused_until", "steal_ns", "burst_end_cb", "tick_offset", "nr_switches", "speed",
    )

    def __init__(self, kernel: "Kernel", cpu_id: int) -> None:
        self.kernel = kernel
        self.sim: Simulator = kernel.sim
        self.id = cpu_id
        self.cfs: CfsParams = kernel.cfs
        self.curr: Task | None = None
        self.rq: list[Task] = []  # runnable tasks other than curr
        self.load = 0  # sum of weights of runnable tasks, curr included
        self.min_vruntime = 0
        self.burst_ev: Event | None = None
        self.resume_ev: Event | None = None
        self.run_start = 0  # when curr's burst (re)started progressing
        self.in_resume = False
        self.need_resched = False
        self.tick_ev: Event | None = None
        self.dynticks = 0  # even: idle, an extended quiescent state (EQS); odd: not
        self.idle_since = 0
        self.idle_time = 0
        self.tracer = kernel.tracer
        self.deferred: list[tuple[Callable[[Any], None], Any, int]] = []
        self.ctx_switch_ns = kernel.profile.ns("context_switch_ns")
        self.irq_ns = kernel.profile.ns("hardirq_ns")
        self.softirq_ns = kernel.profile.ns("softirq_ns")
        self.context = "task"
        self.curr_since = 0  # when curr got the CPU
        self.nr_switches = 0  # __schedule() calls: each is a quiescent state (rcu_note_context_switch())
        self.paused_until = 0  # the host has descheduled this vCPU until then
        self.steal_ns = 0
        # how fast the host runs this vCPU now: ns of the profile's costs done per ns (host.VcpuSpeed)
        self.speed = 1.0
        # this CPU's ticks come this long after the jiffy grid (profile layout vcpu_tick_phase_ns)
        tick_ns = kernel.clock.tick_ns
        self.tick_offset = cpu_id * int(kernel.profile.layout["vcpu_tick_phase_ns"]) % tick_ns
        # one bound method for every burst-end event, not a new one each time
        self.burst_end_cb: Callable[[object], None] = self._burst_end

    # -- state ------------------------------------------------------------

    @property
    def nr_running(self) -> int:
        return len(self.rq) + (self.curr is not None)

    @property
    def is_idle(self) -> bool:
        return self.curr is None and not self.rq

    def irq_preempt_off_now(self) -> bool:
        """Whether an interrupt that comes at this instant is taken with curr's preemption
        disabled: curr holds interrupts off in a section that ends in
        ``raw_spin_unlock_irqrestore()``, whose ``local_irq_restore()`` comes before its
        ``preempt_enable()``."""
        curr = self.curr
        if curr is None:
            return False
        chunk = curr.chunk
        return curr.irqs_off or (chunk is not None
                                 and chunk.irq_preempt_off_after(self.work(max(0, self.sim.now - self.run_start))))

    def next_tick(self, t: int) -> int:
        """This CPU's first tick strictly after ``t``."""
        off = self.tick_offset
        return self.kernel.clock.next_tick(t - off) + off

    def work(self, wall: int) -> int:
        """The costs' ns this vCPU gets done in ``wall`` ns at its current speed."""
        speed = self.speed
        return wall if speed == 1.0 else int(wall * speed + 0.5)

    def wall(self, work: int) -> int:
        """The ns it takes this vCPU at its current speed to do ``work`` ns of the costs."""
        speed = self.speed
        return work if speed == 1.0 else -int(-work // speed)

    def set_speed(self, speed: float) -> None:
        """The host now runs this vCPU at ``speed``: what ran so far counts at the old
        speed, curr's burst ends when its remaining work is done at the new one."""
        self._account()
        self.speed = speed
        if self.burst_ev is not None:
            self._arm_burst_end()

    # -- CFS arithmetic -----------------------------------------------------

    def _update_min_vruntime(self) -> None:
        """update_min_vruntime()."""
        curr = self.curr
        found = curr is not None
        v = curr.vruntime if curr is not None else 0
        for t in self.rq:
            if not found or t.vruntime < v:
                v = t.vruntime
                found = True
        if found and v > self.min_vruntime:
            self.min_vruntime = v

    def sched_slice(self, t: Task) -> int:
        """sched_slice(): t's share of the period by weight."""
        nr = self.nr_running + (0 if t.runnable else 1)
        load = self.load + (0 if t.runnable else t.weight)
        s = self.cfs.period(nr) * t.weight // max(load, 1)
        if self.cfs.base_slice and s < self.cfs.min_granularity:
            s = self.cfs.min_granularity
        return s

    def _place(self, t: Task) -> None:
        """place_entity(initial=0) with GENTLE_FAIR_SLEEPERS; a new task gets START_DEBIT."""
        v = self.min_vruntime
        if not t.started:
            v += self.sched_slice(t) * NICE_0_LOAD // t.weight
            t.vruntime = v
            return
        v -= self.cfs.latency >> 1
        if v > t.vruntime:
            t.vruntime = v

    def _should_preempt(self, woken: Task) -> bool:
        """check_preempt_wakeup() -> wakeup_preempt_entity(curr, woken) == 1."""
        curr = self.curr
        if curr is None:
            return True
        vdiff = curr.vruntime - woken.vruntime
        if vdiff <= 0:
            return False
        gran = self.cfs.wakeup_granularity * NICE_0_LOAD // woken.weight
        return vdiff > gran

    # -- running the current task -------------------------------------------

    def _account(self) -> int:
        """update_curr(): credit curr with the CPU time since run_start."""
        curr = self.curr
        now = self.sim.now
        ran = now - self.run_start
        if curr is None or ran <= 0:
            return 0
        self.run_start = now
        curr.sum_exec += ran
        curr.vruntime += ran * NICE_0_LOAD // curr.weight
        done = self.work(ran)
        chunk = curr.chunk
        if chunk is not None:
            if done > chunk.remaining:
                done = chunk.remaining
            chunk.advance(done)
        elif curr.burst > 0:
            curr.burst -= min(done, curr.burst)
        self._update_min_vruntime()
        return ran

    def _arm_burst_end(self) -> None:
        curr = self.curr
        assert curr is not None
        Simulator.cancel(self.burst_ev)
        left = self.wall(curr.chunk.remaining if curr.chunk is not None else curr.burst)
        self.burst_ev = self.sim.at(max(self.run_start, self.sim.now) + left, self.burst_end_cb, None, PRIO_NORMAL)
        if self.rq:
            self._maybe_tick()

    def _burst_end(self, _: object) -> None:
        self.burst_ev = None
        self._account()
        curr = self.curr
        assert curr is not None
        preempt_enable = curr.preempt_off
        curr.irqs_off = curr.preempt_off = False
        chunk = curr.chunk
        if chunk is not None and chunk.remaining > 0:
            # Only reachable if the chunk shrank itself; re-arm what remains.
            self._arm_burst_end()
            return
        curr.chunk = None
        curr.burst = 0
        if self.deferred:
            self._run_deferred()
        then = curr.then
        if then is not None:
            curr.then = None
            self._leave(exited=then == EXIT)
            return
        if preempt_enable and self.need_resched:
            self._preempt()  # preempt_enable() -> preempt_schedule(), before the task goes on
            return
        self._step()

    def _step(self) -> None:
        """Resume curr's generator until it asks for CPU time, sleeps or exits."""
        curr = self.curr
        assert curr is not None
        while True:
            self.in_resume = True
            try:
                value = curr.send
                curr.send = None
                d = curr.body.send(value)
            except StopIteration:
                self.in_resume = False
                if curr.debt:
                    self._pay_then(curr, EXIT)
                    return
                self._leave(exited=True)
                return
            finally:
                self.in_resume = False
            if isinstance(d, int):
                if d < 0:
                    if curr.debt:
                        self._pay_then(curr, SLEEP)
                        return
                    self._leave(exited=False)
                    return
                if d == 0 and not curr.debt:
                    curr.send = 0
                    if self.need_resched:
                        self._preempt()
                        return
                    continue
                curr.send = d
                curr.burst = d + curr.debt
                curr.debt = 0
            else:
                curr.send = None
                if d.remaining <= 0 and not curr.debt:
                    # A chunk that costs nothing (a profile with zero costs) is done at
                    # once: no CPU time will come to commit it.
                    d.advance(0)
                    if self.need_resched:
                        self._preempt()
                        return
                    continue
                curr.chunk = d
                if curr.debt:
                    d.add_prefix(curr.debt)
                    curr.debt = 0
            break
        if self.need_resched and not curr.preempt_off:
            self._preempt()
            return
        self._arm_burst_end()

    def _pay_then(self, curr: Task, then: int) -> None:
        """Run the debt as a burst, then sleep or exit (unless woken meanwhile)."""
        curr.burst = curr.debt
        curr.debt = 0
        curr.then = then
        if self.need_resched and not curr.preempt_off:
            self._preempt()
            return
        self._arm_burst_end()

    def _start_curr(self) -> None:
        """curr just got the CPU: continue its burst or resume its generator."""
        curr = self.curr
        assert curr is not None
        curr.prev_sum_exec = curr.sum_exec
        curr.started = True
        if curr.burst > 0 or curr.chunk is not None:
            self._arm_burst_end()
        else:
            self._step()

    # -- switching ------------------------------------------------------------

    def _pick_next(self) -> Task | None:
        rq = self.rq
        if not rq:
            return None
        best = rq[0]
        for t in rq:
            if t.vruntime < best.vruntime:
                best = t
        rq.remove(best)
        return best

    def _switch(self, prev: Task | None) -> None:
        """__schedule(): give the CPU to the leftmost runnable task (or idle)."""
        self.need_resched = False
        now = self.sim.now
        hook = self.kernel.switch_hook
        if hook is not None and prev is not None:
            hook(self, prev, now - self.curr_since)
        self.curr_since = now
        self.nr_switches += 1
        nxt = self._pick_next()
        self.curr = nxt
        if self.tracer is not None:
            self.tracer.sched_switch(self, prev, nxt)
        if nxt is None:
            if prev is not None:
                self._enter_idle()
            return
        if prev is None:
            self._exit_idle()
        self.run_start = max(self.run_start, self.sim.now) + self.wall(self.ctx_switch_ns)
        self._start_curr()

    def _preempt(self) -> None:
        """Put curr back on the run queue and reschedule."""
        curr = self.curr
        assert curr is not None
        Simulator.cancel(self.burst_ev)
        self.burst_ev = None
        self._account()
        if curr.chunk is not None and curr.chunk.volatile:
            self._drop_chunk(curr)  # re-plan when it runs again
        self.rq.append(curr)
        self.curr = None
        self._switch(curr)

    @staticmethod
    def _drop_chunk(curr: Task) -> None:
        """Forget a volatile chunk; the part of its prefix not yet run (the task's
        debt from before it, e.g. a kvfree_call_rcu() at a decision point) is still owed."""
        chunk = curr.chunk
        assert chunk is not None
        curr.debt += chunk.prefix
        curr.chunk = None

    def _leave(self, exited: bool) -> None:
        """curr sleeps or exits: it leaves the run queue."""
        curr = self.curr
        assert curr is not None
        curr.runnable = False
        curr.exited = exited
        self.load -= curr.weight
        self.curr = None
        self._switch(curr)

    def _enter_idle(self) -> None:
        self.dynticks += 1
        self.idle_since = self.sim.now
        Simulator.cancel(self.tick_ev)
        self.tick_ev = None

    def _exit_idle(self) -> None:
        self.dynticks += 1
        self.idle_time += self.sim.now - self.idle_since

    # -- entry points used by the rest of the model -------------------------

    def enqueue(self, t: Task) -> None:
        """ttwu_do_activate() + check_preempt_curr() on this CPU."""
        t.cpu = self
        self._place(t)
        t.runnable = True
        self.load += t.weight
        if self.tracer is not None:
            self.tracer.sched_wakeup(self, t)
        curr = self.curr
        if curr is None:
            self.rq.append(t)
            if not self.in_resume and self.resume_ev is None:
                # Idle CPU: schedule from a fresh event so the waker finishes first.
                self.resume_ev = self.sim.at(self.sim.now, self._idle_wake, None, PRIO_LATE)
            return
        self._account()
        self.rq.append(t)
        self._maybe_tick()
        if self._should_preempt(t):
            self.need_resched = True
            if not self.in_resume and not curr.preempt_off and self.resume_ev is None:
                # Woken from elsewhere: the reschedule IPI lands after the
                # waker is done (resched_curr() -> smp_send_reschedule()).
                self.resume_ev = self.sim.at(self.sim.now, self._resched, None, PRIO_LATE)

    def _resched(self, _: object) -> None:
        """scheduler_ipi(): preempt curr if a wakeup asked for it."""
        self.resume_ev = None
        if self.paused_until > self.sim.now:
            self.resume_ev = self.sim.at(self.paused_until, self._resched, None, PRIO_LATE)
            return
        curr = self.curr
        if curr is None:
            if self.rq:
                self._switch(None)
            return
        if self.need_resched and not curr.preempt_off and not self.in_resume:
            self._preempt()

    def _idle_wake(self, _: object) -> None:
        self.resume_ev = None
        if self.paused_until > self.sim.now:
            self.resume_ev = self.sim.at(self.paused_until, self._idle_wake, None, PRIO_LATE)
            return
        if self.curr is None and self.rq:
            self._switch(None)

    def remove(self, t: Task) -> None:
        """Take a killed task off this CPU (it will never run again)."""
        if t is self.curr:
            Simulator.cancel(self.burst_ev)
            self.burst_ev = None
            self._account()
            self.load -= t.weight
            t.runnable = False
            self.curr = None
            self._switch(t)
        elif t in self.rq:
            self.rq.remove(t)
            self.load -= t.weight
            t.runnable = False

    def sync(self) -> None:
        """Bring curr's divisible burst up to now (another CPU is about to look).

        Called before another CPU reads or changes state that curr's running
        chunk is changing (e.g. the shrinker draining this CPU's kvfree_rcu
        page cache).  The chunk's progress so far is committed; a volatile
        chunk is dropped and curr re-plans at once, after the caller is done.
        """
        curr = self.curr
        if curr is None or curr.chunk is None or self.in_resume:
            return
        kernel = self.kernel
        was, kernel.foreign_commit = kernel.foreign_commit, True  # not the caller's work
        try:
            self._account()
        finally:
            kernel.foreign_commit = was
        if not curr.chunk.volatile:
            return
        Simulator.cancel(self.burst_ev)
        self.burst_ev = None
        self._drop_chunk(curr)
        Simulator.cancel(self.resume_ev)
        self.resume_ev = self.sim.at(self.sim.now, self._resume_after_sync, None, PRIO_LATE)

    def _resume_after_sync(self, _: object) -> None:
        self.resume_ev = None
        if self.curr is None:
            if self.rq:
                self._idle_wake(None)
            return
        if self.burst_ev is None and not self.in_resume:
            self._step()

    def hardirq(self, fn: Callable[[Any], None], arg: Any, cost: int | None = None) -> None:
        """Run ``fn(arg)`` as a hard interrupt on this CPU now."""
        self._interrupt(fn, arg, self.irq_ns if cost is None else cost, "hardirq")

    def softirq(self, fn: Callable[[Any], None], arg: Any, cost: int | None = None) -> None:
        """Run ``fn(arg)`` as a softirq on this CPU now (after its hardirq)."""
        self._interrupt(fn, arg, self.softirq_ns if cost is None else cost, "softirq")

    def _interrupt(self, fn: Callable[[Any], None], arg: Any, cost: int, ctx: str) -> None:
        if self.paused_until > self.sim.now:
            # A descheduled vCPU takes its interrupts when it runs again.
            self.sim.at(self.paused_until, lambda _: self._interrupt(fn, arg, cost, ctx), None, PRIO_SOFTIRQ)
            return
        curr = self.curr
        if curr is not None and curr.irqs_off:
            self.deferred.append((fn, arg, cost))
            return
        self.charge(cost)
        prev_ctx = self.context
        self.context = ctx
        was = self.in_resume
        self.in_resume = True  # wakeups inside the handler only set need_resched
        try:
            fn(arg)
        finally:
            self.in_resume = was
            self.context = prev_ctx
        if self.need_resched and not was and self.curr is not None and not self.curr.preempt_off:
            if self.sim.irq_due_now():
                # irq_exit(): the interrupts and softirqs of this same instant (a tick's timer
                # and RCU softirqs) all run before the switch to the task they woke.
                if self.resume_ev is None:
                    self.resume_ev = self.sim.at(self.sim.now, self._resched, None, PRIO_LATE)
            else:
                self._preempt()
        elif self.curr is None and self.rq and not was and self.resume_ev is None:
            self.resume_ev = self.sim.at(self.sim.now, self._idle_wake, None, PRIO_LATE)

    def _run_deferred(self) -> None:
        pending, self.deferred = self.deferred, []
        for fn, arg, cost in pending:
            self._interrupt(fn, arg, cost, "hardirq")

    def steal(self, ns: int) -> None:
        """The host deschedules this vCPU for ``ns``: nothing runs on it meanwhile."""
        now = self.sim.now
        self.paused_until = max(self.paused_until, now) + ns
        self.steal_ns += ns
        self._busy(ns)

    def charge(self, ns: int) -> None:
        """Take ``ns`` of CPU time from whatever this CPU runs (interrupt work)."""
        if ns > 0:
            self._busy(self.wall(ns))

    def _busy(self, ns: int) -> None:
        """The next ``ns`` of wall time go to something other than curr."""
        curr = self.curr
        if curr is None or self.in_resume:
            self.run_start = max(self.run_start, self.sim.now) + ns
            return
        self._account()
        self.run_start = max(self.run_start, self.sim.now) + ns
        if self.burst_ev is not None:
            self._arm_burst_end()

    # -- ticks ------------------------------------------------------------------

    def _maybe_tick(self) -> None:
        """Schedule the next tick only if it can matter: someone waits, and curr's
        burst will still run then (scheduler_tick() -> check_preempt_tick())."""
        if self.tick_ev is None and self.rq and self.burst_ev is not None:
            t = self.next_tick(self.sim.now)
            if self.burst_ev.time >= t:
                self.tick_ev = self.sim.at(t, self._tick, None, PRIO_SOFTIRQ)

    def _tick(self, _: object) -> None:
        """scheduler_tick() -> task_tick_fair() -> check_preempt_tick()."""
        self.tick_ev = self.kernel.clock.after_stall(self._tick, None, PRIO_SOFTIRQ)
        if self.tick_ev is not None:  # the emulator delivers no tick until the stall ends
            return
        curr = self.curr
        if curr is None or not self.rq:
            return
        if self.paused_until > self.sim.now:
            # A descheduled vCPU takes its timer interrupt late, when it runs again.
            self.tick_ev = self.sim.at(self.paused_until, self._tick, None, PRIO_SOFTIRQ)
            return
        self._account()
        if self.in_resume or curr.preempt_off:
            self._maybe_tick()
            return
        ideal = self.sched_slice(curr)
        delta_exec = curr.sum_exec - curr.prev_sum_exec
        if delta_exec > ideal:
            self._preempt()
            return
        if delta_exec >= self.cfs.min_granularity:
            left = min(t.vruntime for t in self.rq)
            if curr.vruntime - left > ideal:
                self._preempt()
                return
        self._maybe_tick()


def set_cpus_allowed_ptr(t: Task, cpu: Cpu) -> Generator[Any, Any, None]:
    """set_cpus_allowed_ptr(current, cpumask_of(cpu)) by the running task ``t``: from
    now on it runs on ``cpu`` only; if it is elsewhere, the migration stopper moves
    it there (it leaves this CPU and is enqueued on ``cpu`` at once)."""
    t.pinned = cpu
    if t.cpu is cpu:
        return
    t.kernel.sim.at(t.kernel.sim.now, _migrated, t, PRIO_NORMAL)
    yield SLEEP


def _migrated(t: Task) -> None:
    wake_task(t)


def wake_task(t: Task, value: Any = None) -> bool:
    """try_to_wake_up(): make a sleeping task runnable on its (chosen) CPU."""
    if t.exited:
        return False
    if t.runnable:
        if t.then == SLEEP:
            # Woken before it got to schedule(): it does not sleep.
            t.then = None
            t.send = value
            return True
        return False
    t.send = value
    cpu = t.pinned or t.kernel.select_cpu(t)
    cpu.enqueue(t)
    return True
