"""Tree RCU grace periods for a PREEMPT kernel (kernel/rcu/tree.c, tree_plugin.h, rcu.h).

What is modelled, and where it comes from (v5.11; v6.1 is the same here):

* ``rcu_state.gp_seq`` with the kernel's encoding (``RCU_SEQ_CTR_SHIFT`` = 2,
  low bits = GP state) and ``rcu_seq_start/end/snap/done/diff`` verbatim, so
  rcuscale's "batches" is computed as the kernel computes it.
* The GP kthread (``rcu_gp_kthread()``, a nice-0 kthread on any CPU) sleeps until
  a GP is needed, runs ``rcu_gp_init()``, then the FQS loop
  (``rcu_gp_fqs_loop()``): it sleeps ``jiffies_till_first_fqs`` jiffies (a
  timer-wheel timeout), scans the CPUs that still owe a quiescent state
  (``force_qs_rnp()``): at the first scan idle CPUs are reported
  (``dyntick_save_progress_counter()``), at later scans CPUs whose dynticks
  counter moved (``rcu_implicit_dynticks_qs()``); it sleeps
  ``jiffies_till_next_fqs`` between scans and is woken at once when the last
  CPU reports.  Then ``rcu_gp_cleanup()`` ends the GP and starts the next if one
  is needed.  ``jiffies_till_{first,next}_fqs`` default to
  ``RCU_JIFFIES_TILL_FORCE_QS + nr_cpu_ids / RCU_JIFFIES_FQS_DIV``.
* A busy CPU (one running a task) notices a new GP at its first tick after the GP
  started (``rcu_pending()`` -> ``rcu_core()`` -> ``note_gp_changes()``) and reports
  its quiescent state at the next tick: the tick finds it outside any read-side
  critical section with preemption enabled (``rcu_flavor_sched_clock_irq()`` ->
  ``rcu_qs()``) and ``rcu_core()`` reports it (``rcu_check_quiescent_state()``).  An
  idle CPU that takes its tick (it holds callbacks, ``rcu_needs_cpu()``, or the
  machine ticks periodically, below) notices GPs the same way, but the idle task runs
  with preemption disabled (``init_idle_preempt_count()``), so its tick reports only a
  quiescent state a context switch noted since (the GP kthread's CPU, once the kthread
  sleeps).  A tick that comes while the CPU holds interrupts off (a kfree thread
  inside ``kvfree_call_rcu()``'s krcp lock) is taken where they come back on; from
  v5.13 that is in ``raw_spin_unlock_irqrestore()`` before its ``preempt_enable()``:
  preemption is still disabled and it reports nothing (``Cpu.irq_preempt_off_now()``;
  in v5.11 the unlock enabled preemption first and the tick reported).  A context
  switch between those ticks also clears the flag but the report still waits for the
  softirq of the second tick, so the model reports at that tick.  A dyntick-idle CPU
  (NO_HZ_IDLE, tick stopped) is reported by the FQS scan, which a 3-jiffy timeout puts
  4 ticks after the GP started, or, if a context switch noted its quiescent state, by
  the tick that wakes it for a timer (:meth:`Rcu.tick_from_idle`: the GP kthread's own
  CPU, woken for that very timeout).  A guest whose only clocksource is jiffies (QEMU
  TCG: no stable TSC, no HPET without ACPI) never enters nohz mode
  (``tick_check_oneshot_change()`` needs ``timekeeping_valid_for_hres()``), so every
  CPU keeps its periodic tick while idle (profile layout ``tick_periodic``).
* A CPU that holds preemption off for long (kernel_init writing the serial console,
  ``Kernel.initcall_console()``) reports nothing at its ticks.  Once the GP is
  ``jiffies_to_sched_qs`` old (``HZ / 10 + nr_cpu_ids / RCU_JIFFIES_FQS_DIV`` jiffies
  unless the FQS delays add up to more, ``adjust_jiffies_till_sched_qs()``), each later
  FQS scan sets the holdout's ``rcu_urgent_qs`` (``rcu_implicit_dynticks_qs()``); its
  next tick then sets ``need_resched`` (``rcu_sched_clock_irq()``), and the
  ``preempt_enable()`` that ends the section calls ``__schedule()``, whose
  ``rcu_note_context_switch()`` is the quiescent state, reported at the tick after.
* ``call_rcu()`` queues a callback on the calling CPU, unaccelerated (in
  ``RCU_NEXT_TAIL``, no GP assigned).  Only that CPU's own RCU code accelerates
  it (``rcu_accelerate_cbs()``: assigns ``rcu_seq_snap(&rcu_state.gp_seq)`` and
  requests that GP, ``rcu_start_this_gp()``), at four points: when the CPU
  notices a GP start or end at a tick (``rcu_pending()`` -> ``rcu_core()`` ->
  ``note_gp_changes()``); when it reports its quiescent state
  (``rcu_report_qs_rdp()``: "This GP can't end until cpu checks in, so all of our
  callbacks can be processed during the next GP"); at a tick with no GP in
  progress (``rcu_core()``: "No grace period and unregistered callbacks?"); and,
  on the GP kthread's own CPU only, in ``rcu_gp_cleanup()`` before the GP is
  declared over and in ``rcu_gp_init()`` (``__note_gp_changes()`` for
  ``this_cpu_ptr(&rcu_data)``).  So a callback queued on a CPU after its
  quiescent state for GP N waits until that CPU notices N's end; by then the GP
  kthread has usually started N+1, and the callback needs N+2, one GP more
  than on the GP kthread's CPU (Joel Fernandes' patch to the comment in
  ``rcu_report_qs_rdp()``, LKML 2023-02-04, walks through it).
  When its GP has ended, the next tick on that CPU invokes the ready callbacks
  from the RCU softirq (``rcu_do_batch()``; CPUs with callbacks keep their tick,
  ``rcu_needs_cpu()``).
* ``synchronize_rcu()`` is ``wait_rcu_gp(call_rcu)``: the caller sleeps until a
  callback wakes it.
* Each CPU's share of the tick runs at that CPU's own tick: on the jiffy grid, or
  later in the jiffy on a CPU whose tick comes later (``Cpu.tick_offset``).

Simplifications: a single rcu_node (the GP kthread's per-CPU work is a cost per
CPU rather than a walk of the tree); read-side critical sections are not
modelled (rcuscale's kfree test has none), so no CPU holds a GP up beyond its
second tick except by being idle, and neither expedited GPs, RCU priority
boosting, callback offloading (``RCU_NOCB_CPU=n`` in kvm.sh's TREE config) nor
``rcu_do_batch()``'s ``blimit`` are modelled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Final, Generator

from ..core.sim import PRIO_SOFTIRQ, Event, Simulator
from .sched import SLEEP, Cpu, Task, wake_task
from .time import TimerList

if TYPE_CHECKING:
    from .system import Kernel

RCU_SEQ_CTR_SHIFT: Final = 2
RCU_SEQ_STATE_MASK: Final = (1 << RCU_SEQ_CTR_SHIFT) - 1
RCU_JIFFIES_FQS_DIV: Final = 256


def rcu_seq_start(s: int) -> int:
    return s + 1


def rcu_seq_endval(s: int) -> int:
    return (s | RCU_SEQ_STATE_MASK) + 1


def rcu_seq_state(s: int) -> int:
    return s & RCU_SEQ_STATE_MASK


def rcu_seq_snap(s: int) -> int:
    """The gp_seq value at which a full grace period will have elapsed since now."""
    return (s + 2 * RCU_SEQ_STATE_MASK + 1) & ~RCU_SEQ_STATE_MASK


def rcu_seq_done(s: int, snap: int) -> bool:
    return s >= snap


def rcu_seq_diff(new: int, old: int) -> int:
    """kernel/rcu/rcu.h rcu_seq_diff(): grace periods between two gp_seq values."""
    if old == new:
        return 0
    rnd_diff = (
        (new & ~RCU_SEQ_STATE_MASK)
        - ((old + RCU_SEQ_STATE_MASK) & ~RCU_SEQ_STATE_MASK)
        + (1 if ((new & RCU_SEQ_STATE_MASK) or (old & RCU_SEQ_STATE_MASK)) else 0)
    )
    if RCU_SEQ_STATE_MASK >= rnd_diff:
        return 1
    return ((rnd_diff - RCU_SEQ_STATE_MASK - 1) >> RCU_SEQ_CTR_SHIFT) + 2


def rcu_jiffies_till_force_qs(hz: int) -> int:
    """RCU_JIFFIES_TILL_FORCE_QS: 1 + (HZ > 250) + (HZ > 500) (kernel/rcu/tree.h)."""
    return 1 + (hz > 250) + (hz > 500)


Callback = Callable[[Any], object]


class RcuHead:
    """A queued callback: ``struct rcu_head`` with the GP it waits for."""

    __slots__ = ("fn", "arg", "snap")

    def __init__(self, fn: Callback, arg: Any) -> None:
        self.fn = fn
        self.arg = arg
        self.snap = -1  # not yet accelerated


class Rcu:
    """``rcu_state`` + per-CPU ``rcu_data`` + the GP kthread."""

    def __init__(self, kernel: "Kernel", jiffies_till_first_fqs: int | None = None,
                 jiffies_till_next_fqs: int | None = None) -> None:
        self.kernel = kernel
        self.sim: Simulator = kernel.sim
        ncpus = len(kernel.cpus)
        default = rcu_jiffies_till_force_qs(kernel.clock.hz) + ncpus // RCU_JIFFIES_FQS_DIV
        # rcu_init_geometry(): a value of ULONG_MAX (here None) takes the default.
        self.jiffies_till_first_fqs = default if jiffies_till_first_fqs is None else jiffies_till_first_fqs
        self.jiffies_till_next_fqs = default if jiffies_till_next_fqs is None else max(1, jiffies_till_next_fqs)
        # adjust_jiffies_till_sched_qs(): 100 jiffies at HZ=1000 and up to 255 CPUs
        self.jiffies_to_sched_qs = max(self.jiffies_till_first_fqs + 2 * self.jiffies_till_next_fqs,
                                       kernel.clock.hz // 10 + ncpus // RCU_JIFFIES_FQS_DIV)
        self.urgent_qs: list[bool] = [False] * ncpus  # per CPU: rdp->rcu_urgent_qs
        self.gp_start_jiffies = 0  # rcu_state.gp_start
        self.gp_seq = 0
        self.gp_seq_needed = 0
        self.gp_count = 0  # completed GPs
        self.cbs: list[list[RcuHead]] = [[] for _ in range(ncpus)]
        self.unaccel: list[int] = [0] * ncpus  # per CPU: callbacks not yet accelerated
        self.nr_unaccel = 0
        self.gp_seq_seen: list[int] = [0] * ncpus  # rdp->gp_seq: the GP state each CPU last noticed
        self.qs_pending: set[int] = set()
        #: per CPU: its context switches when it noticed the current GP (Cpu.nr_switches)
        self.noticed_sw: list[int] = [0] * ncpus
        self.fqs_snap: list[int] = [0] * ncpus
        self._idle_wake = -1  # the dyntick-idle CPU a timer tick is waking (tick_from_idle())
        self._tick_ev: Event | None = None
        self._own_ev: list[Event | None] = [None] * ncpus  # per CPU: its own tick to come (_cpu_tick())
        #: the CPUs that tick off the jiffy grid (Cpu.tick_offset), and their ids
        self._phased: tuple[Cpu, ...] = tuple(cpu for cpu in kernel.cpus if cpu.tick_offset)
        self._phased_ids: frozenset[int] = frozenset(cpu.id for cpu in self._phased)
        self.gp_started_at = 0
        self.gp_durations: list[int] = []
        self.cb_ns = kernel.profile.ns("rcu_cb_ns")
        self.gp_init_ns = kernel.profile.ns("rcu_gp_init_ns")
        self.gp_per_cpu_ns = kernel.profile.ns("rcu_gp_per_cpu_ns")
        self.tick_periodic = bool(kernel.profile.layout["tick_periodic"])  # idle CPUs tick too (no nohz mode)
        self._kthread_sleeping = False
        self.kthread = Task(kernel, "rcu_preempt", self._gp_kthread, nice=0, boot=True)

    def start(self) -> None:
        wake_task(self.kthread)

    # -- API ------------------------------------------------------------------

    def call_rcu(self, cpu: Cpu, fn: Callback, arg: Any = None) -> RcuHead:
        """call_rcu(): ``fn(arg)`` runs on ``cpu`` in softirq after a full GP."""
        head = RcuHead(fn, arg)
        self.cbs[cpu.id].append(head)
        self.unaccel[cpu.id] += 1
        self.nr_unaccel += 1
        self._need_tick()
        return head

    def synchronize_rcu(self, task: Task) -> Generator[Any, Any, None]:
        """synchronize_rcu() -> wait_rcu_gp(call_rcu): sleep until a GP has passed."""
        assert task.cpu is not None
        self.call_rcu(task.cpu, lambda t: wake_task(t), task)
        yield SLEEP

    @property
    def gp_in_progress(self) -> bool:
        return rcu_seq_state(self.gp_seq) != 0

    # -- the RCU tick: rcu_sched_clock_irq() + rcu_core() on every CPU ---------

    def _need_tick(self) -> None:
        if self._tick_ev is None:
            t = self.kernel.clock.next_tick(self.sim.now)
            self._tick_ev = self.sim.at(t, self._tick, None, PRIO_SOFTIRQ)
            for cpu in self._phased:
                # a CPU whose own tick comes before that grid tick takes it
                own = cpu.next_tick(self.sim.now)
                if own < t:
                    self._own_tick_at(cpu, own)

    def _tick(self, _: object) -> None:
        """The tick of every CPU that ticks on the jiffy grid; the others' come later in
        the jiffy (:meth:`_cpu_tick`)."""
        self._tick_ev = self.kernel.clock.after_stall(self._tick, None, PRIO_SOFTIRQ)
        if self._tick_ev is not None:  # the ticks missed in a stall come as one at its end
            return
        cpus = self.kernel.cpus
        idle = not self.gp_in_progress
        later = self._phased_ids
        for cpu in self._phased:
            self._own_tick_at(cpu, self.sim.now + cpu.tick_offset)
        paused = [cpu for cpu in cpus if cpu.paused_until > self.sim.now and cpu.id not in later]
        if paused:
            # A descheduled vCPU takes its timer interrupt late, when it runs again.
            later = later | {cpu.id for cpu in paused}
            for cpu in paused:
                self._own_tick_at(cpu, cpu.paused_until)
        fresh: set[int] = set()  # CPUs that notice the GP in progress at this tick
        for cid in range(len(cpus)):
            if cid not in later and self._notice_at_tick(cid, idle):
                fresh.add(cid)
        if self.qs_pending:
            for cid in sorted(self.qs_pending):
                if cid not in fresh and cid not in later:
                    self._qs_at_tick(cid)
        for cid in range(len(cpus)):
            if cid not in later:
                self._invoke_ready(cid)
        self._tick_again()

    def _notice_at_tick(self, cid: int, idle: bool) -> bool:
        """rcu_core() -> note_gp_changes() at CPU ``cid``'s tick: advance and accelerate.
        True if the CPU noticed the GP in progress only now."""
        s = self.gp_seq
        if self.gp_seq_seen[cid] != s:
            if self._takes_tick(cid):
                self.gp_seq_seen[cid] = s
                if self.unaccel[cid]:
                    self._accelerate(cid)
                if not idle:
                    self.noticed_sw[cid] = self.kernel.cpus[cid].nr_switches
                    return True
        elif idle and self.unaccel[cid] and self._takes_tick(cid):
            self._accelerate(cid)  # rcu_core(): no grace period and unregistered callbacks
        return False

    def _qs_at_tick(self, cid: int) -> None:
        """rcu_flavor_sched_clock_irq() -> rcu_qs(), then rcu_check_quiescent_state()."""
        cpu = self.kernel.cpus[cid]
        curr = cpu.curr
        if not self._takes_tick(cid):
            return  # dyntick-idle (left to the FQS scan), paused, irqs off
        if self.urgent_qs[cid]:
            # rcu_sched_clock_irq(): ask for a context switch; preempt_enable() makes it
            self.urgent_qs[cid] = False
            if curr is not None:
                cpu.need_resched = True
        if (cpu.nr_switches == self.noticed_sw[cid]
                and (curr is None or curr.preempt_off or cpu.irq_preempt_off_now())):
            # Preemption disabled is no quiescent state: the idle task's (it runs with
            # preempt_count PREEMPT_DISABLED, init_idle_preempt_count(), so its CPU is left
            # to the FQS scan), or a task's (a tick that finds interrupts off is taken with
            # the lock still held); a context switch since the CPU noticed the GP was one
            # (rcu_note_context_switch() -> rcu_qs()), and this tick's softirq reports it.
            return
        if self.unaccel[cid]:
            self._accelerate(cid)  # rcu_report_qs_rdp()
        self._report_qs(cid)

    def _tick_again(self) -> None:
        if self.nr_unaccel or self._busy_pending() or self._has_ready():
            self._need_tick()

    def _own_tick_at(self, cpu: Cpu, t: int) -> None:
        """Schedule the RCU share of ``cpu``'s own tick at ``t``, unless one is pending."""
        if self._own_ev[cpu.id] is None:
            self._own_ev[cpu.id] = self.sim.at(t, self._cpu_tick, cpu.id, PRIO_SOFTIRQ)

    def tick_from_idle(self, cpu: Cpu) -> None:
        """The tick that wakes a dyntick-idle CPU for a timer-wheel timer: with the tick
        stopped, the tick's hrtimer is set to the next timer's expiry
        (tick_nohz_stop_tick()), so the wakeup is tick_sched_timer() -> tick_sched_handle()
        -> update_process_times() (6.1 kernel/time/tick-sched.c, timer.c), whose
        rcu_sched_clock_irq() runs as at any tick: the CPU notices GP changes, and a
        quiescent state a context switch noted (the GP kthread's CPU, which slept into
        this timeout) is reported by its RCU softirq before the GP kthread runs."""
        cid = cpu.id
        if not self._dyntick_idle(cid) or cpu.paused_until > self.sim.now:
            return  # its own tick does this
        self._idle_wake = cid
        self._cpu_tick_body(cid)
        self._idle_wake = -1

    def _cpu_tick(self, cid: int) -> None:
        """CPU ``cid``'s own tick: rcu_sched_clock_irq() and its RCU softirq."""
        self._own_ev[cid] = self.kernel.clock.after_stall(self._cpu_tick, cid, PRIO_SOFTIRQ)
        if self._own_ev[cid] is not None:
            return
        cpu = self.kernel.cpus[cid]
        if cpu.paused_until > self.sim.now:
            self._own_tick_at(cpu, cpu.paused_until)  # late, when the vCPU runs again
            return
        self._cpu_tick_body(cid)

    def _cpu_tick_body(self, cid: int) -> None:
        fresh = self._notice_at_tick(cid, not self.gp_in_progress)
        if cid in self.qs_pending and not fresh:
            self._qs_at_tick(cid)
        self._invoke_ready(cid)
        self._tick_again()

    def _dyntick_idle(self, cid: int) -> bool:
        """Whether CPU ``cid`` has stopped its tick: idle, no callbacks (rcu_needs_cpu()),
        and the machine in nohz mode."""
        return self.kernel.cpus[cid].curr is None and not self.cbs[cid] and not self.tick_periodic

    def _busy_pending(self) -> bool:
        return any(not self._dyntick_idle(c) for c in self.qs_pending)

    def _takes_tick(self, cid: int) -> bool:
        """Whether CPU ``cid`` runs rcu_sched_clock_irq() and its softirq at this tick."""
        cpu = self.kernel.cpus[cid]
        curr = cpu.curr
        if self._dyntick_idle(cid):
            return cid == self._idle_wake  # dyntick-idle: no tick, but the one that wakes it for a timer
        return curr is None or not curr.irqs_off  # the tick waits for interrupts to come back on

    def _accelerate(self, cid: int) -> None:
        """rcu_accelerate_cbs() + rcu_start_this_gp() for CPU ``cid``'s new callbacks."""
        snap = rcu_seq_snap(self.gp_seq)
        for head in reversed(self.cbs[cid]):
            if head.snap >= 0:
                break
            head.snap = snap
        self.nr_unaccel -= self.unaccel[cid]
        self.unaccel[cid] = 0
        if snap > self.gp_seq_needed:
            self.gp_seq_needed = snap
            if self._kthread_sleeping and not self.gp_in_progress:
                self._kthread_sleeping = False
                wake_task(self.kthread)

    def _has_ready(self) -> bool:
        s = self.gp_seq
        return any(lst and 0 <= lst[0].snap <= s for lst in self.cbs)

    def _invoke_ready(self, cid: int) -> None:
        """rcu_do_batch() on CPU ``cid`` if its oldest callbacks' GP has ended."""
        lst = self.cbs[cid]
        s = self.gp_seq
        if not lst or not (0 <= lst[0].snap <= s):
            return
        n = 0
        while n < len(lst) and 0 <= lst[n].snap <= s:
            n += 1
        ready = lst[:n]
        del lst[:n]
        self.kernel.cpus[cid].softirq(self._do_batch, ready, self.kernel.profile.ns("softirq_ns") + n * self.cb_ns)

    @staticmethod
    def _do_batch(ready: list[RcuHead]) -> None:
        for head in ready:
            head.fn(head.arg)

    # -- quiescent states -------------------------------------------------------

    def _report_qs(self, cid: int) -> None:
        """rcu_report_qs_rdp() -> ... -> rcu_report_qs_rsp() wakes the GP kthread."""
        self.qs_pending.discard(cid)
        if not self.qs_pending and self._kthread_sleeping:
            self._kthread_sleeping = False
            wake_task(self.kthread)

    def _fqs(self, first: bool) -> None:
        """rcu_gp_fqs() -> force_qs_rnp(): dyntick_save_progress_counter() at the first
        scan, rcu_implicit_dynticks_qs() at later ones."""
        cpus = self.kernel.cpus
        urgent = not first and self.kernel.clock.jiffies - self.gp_start_jiffies > self.jiffies_to_sched_qs
        for cid in sorted(self.qs_pending):
            dt = cpus[cid].dynticks
            if first:
                self.fqs_snap[cid] = dt
                if dt % 2 == 0:  # even: in dyntick-idle (an extended quiescent state)
                    self._report_qs(cid)
            elif dt != self.fqs_snap[cid] or dt % 2 == 0:
                self._report_qs(cid)
            elif urgent:
                self.urgent_qs[cid] = True

    # -- the GP kthread ---------------------------------------------------------

    def _sleep_for(self, me: Task, jiffies: int) -> Generator[Any, Any, None]:
        """swait_event_idle_timeout(): sleep until the jiffy, or until woken."""
        clock = self.kernel.clock
        assert me.cpu is not None
        timer = TimerList(me.cpu, self._timeout, me)
        timer.add(clock.jiffies + jiffies)
        self._kthread_sleeping = True
        yield SLEEP
        self._kthread_sleeping = False
        timer.delete()

    def _timeout(self, me: object) -> None:
        assert isinstance(me, Task)
        if self._kthread_sleeping:
            self._kthread_sleeping = False
            wake_task(me)

    def _note_own_cpu(self, me: Task) -> None:
        """__note_gp_changes(rnp, this_cpu_ptr(&rcu_data)) from rcu_gp_init() and
        rcu_gp_cleanup(): the GP kthread's own CPU notices at once."""
        assert me.cpu is not None
        cid = me.cpu.id
        self.gp_seq_seen[cid] = self.gp_seq
        if self.unaccel[cid]:
            self._accelerate(cid)

    def _gp_kthread(self, me: Task) -> Generator[Any, Any, None]:
        """rcu_gp_kthread()."""
        ncpus = len(self.kernel.cpus)
        tracer = self.kernel.tracer
        while True:
            while not self.gp_seq_needed > self.gp_seq:
                self._kthread_sleeping = True
                yield SLEEP
                self._kthread_sleeping = False
            # rcu_gp_init()
            yield self.gp_init_ns + ncpus * self.gp_per_cpu_ns
            self.gp_seq = rcu_seq_start(self.gp_seq)
            self.gp_started_at = self.sim.now
            self.gp_start_jiffies = self.kernel.clock.jiffies
            if tracer is not None:
                tracer.rcu_grace_period(self.gp_seq, "start")
            self.qs_pending = set(range(ncpus))
            assert me.cpu is not None
            self.noticed_sw[me.cpu.id] = me.cpu.nr_switches
            self._note_own_cpu(me)
            self._need_tick()
            # rcu_gp_fqs_loop()
            first = True
            while self.qs_pending:
                yield from self._sleep_for(me, self.jiffies_till_first_fqs if first else self.jiffies_till_next_fqs)
                if not self.qs_pending:
                    break
                yield len(self.qs_pending) * self.gp_per_cpu_ns
                self._fqs(first)
                first = False
            # rcu_gp_cleanup()
            yield ncpus * self.gp_per_cpu_ns
            self._note_own_cpu(me)  # while the GP still looks in progress: its CPU's callbacks get the next
            self.gp_seq = rcu_seq_endval(self.gp_seq)  # rcu_seq_end()
            assert me.cpu is not None
            self.gp_seq_seen[me.cpu.id] = self.gp_seq
            self.gp_count += 1
            self.gp_durations.append(self.sim.now - self.gp_started_at)
            if tracer is not None:
                tracer.rcu_grace_period(self.gp_seq, "end")
            if self._has_ready() or self.nr_unaccel:
                self._need_tick()

