"""CPUs, tasks and CFS (src/kvfree_sim/kernel/sched.py) against kernel/sched/{core,fair}.c.

Numbers from v6.1 kernel/sched/fair.c: sysctl_sched_latency 6 ms,
min_granularity 0.75 ms, wakeup_granularity 1 ms, each scaled by
get_update_sysctl_factor(); weights from sched_prio_to_weight[] (core.c).
"""

from __future__ import annotations

from typing import Any

import pytest

from kvfree_sim.core.sim import PRIO_SOFTIRQ
from kvfree_sim.kernel.sched import SLEEP, CfsParams, Segments, nice_to_weight, set_cpus_allowed_ptr, sysctl_factor, wake_task
from kvfree_sim.kernel.time import HrTimer
from kvfree_sim.kernel.workqueue import WorkStruct

from ktest import MSEC, SEC, USEC, at, hog, spawn


def starts_log(kernel, log: list[int]):
    """A task body that records when it first runs, then stays CPU-bound."""

    def body(me):
        log.append(kernel.sim.now)
        while True:
            yield 10 * MSEC

    return body


@pytest.mark.parametrize("nice, weight", [(-20, 88761), (-5, 3121), (0, 1024), (5, 335), (19, 15)])
def test_weights_are_sched_prio_to_weight(nice: int, weight: int) -> None:
    """kernel/sched/core.c sched_prio_to_weight[] (v6.1)."""
    assert nice_to_weight(nice) == weight


@pytest.mark.parametrize("ncpus, factor", [(1, 1), (2, 2), (8, 4), (64, 4)])
def test_sysctl_scaling_factor(ncpus: int, factor: int) -> None:
    """get_update_sysctl_factor() (fair.c v6.1), SCHED_TUNABLESCALING_LOG:
    1 + ilog2(min(num_online_cpus(), 8)): 1 -> 1, 2 -> 2, 8 -> 4, 64 -> 4;
    update_sysctl() multiplies the 6 ms / 0.75 ms / 1 ms defaults by it."""
    assert sysctl_factor(ncpus) == factor
    p = CfsParams(ncpus)
    assert (p.latency, p.min_granularity, p.wakeup_granularity) == (
        6_000_000 * factor, 750_000 * factor, 1_000_000 * factor)


def test_sched_period_stretches_beyond_sched_nr_latency() -> None:
    """__sched_period() (fair.c v6.1): latency while nr_running <= 8, else
    nr_running * min_granularity."""
    p = CfsParams(1)
    assert p.period(8) == 6_000_000
    assert p.period(9) == 9 * 750_000


@pytest.mark.parametrize("nice_a, nice_b", [(0, 19), (0, 5), (0, 0)])
def test_cpu_bound_tasks_share_a_cpu_by_weight(make_kernel, nice_a: int, nice_b: int) -> None:
    """CFS (fair.c v6.1): each task's vruntime grows by delta * NICE_0_LOAD / weight
    (calc_delta_fair()) and the leftmost runs (pick_next_entity()), ticks end
    slices (check_preempt_tick()); over a long run the CPU time ratio is the
    weight ratio: 1024:15 = 68.3 for nice 0 vs 19, 1024:335 = 3.06 for 0 vs 5."""
    kernel = make_kernel(ncpus=1)
    a = spawn(kernel, "a", hog, nice=nice_a, cpu=0)
    b = spawn(kernel, "b", hog, nice=nice_b, cpu=0)
    kernel.sim.run(until=10 * SEC)
    expected = nice_to_weight(nice_a) / nice_to_weight(nice_b)
    assert a.sum_exec + b.sum_exec == pytest.approx(10 * SEC, rel=1e-3)
    assert a.sum_exec / b.sum_exec == pytest.approx(expected, rel=0.1)


def test_nice_minus20_kworker_preempts_a_nice19_task_at_once(make_kernel) -> None:
    """check_preempt_wakeup() -> wakeup_preempt_entity() (fair.c v6.1): the woken
    kworker is placed at min_vruntime - latency/2 (place_entity(), GENTLE_FAIR_SLEEPERS),
    so vdiff = 3 ms > wakeup_gran(se) = 1 ms * 1024 / 88761 = 11.5 us: resched_curr()
    at once, not at the next tick.  The system_highpri_wq kworker is nice -20
    (HIGHPRI_NICE_LEVEL, kernel/workqueue.c)."""
    kernel = make_kernel(ncpus=1)
    spawn(kernel, "nice19", hog, nice=19, cpu=0)
    ran: list[tuple[int, int]] = []

    def func(work, worker):
        ran.append((kernel.sim.now, worker.nice))
        yield 100 * USEC

    work = WorkStruct(func, "w")
    t = 5 * MSEC + 500 * USEC
    at(kernel, t, kernel.system_highpri_wq.queue_work_on, kernel.cpus[0], work)
    kernel.sim.run(until=20 * MSEC)
    assert ran == [(t, -20)]


def test_a_task_woken_by_an_interrupt_runs_after_the_other_interrupts_of_that_instant(make_kernel) -> None:
    """irq_exit() -> invoke_softirq() runs every pending softirq before the return to task
    context switches to the woken task (kernel/softirq.c): at a tick, a work item queued from
    the TIMER softirq runs after the RCU softirq of the same tick, whatever order the two
    were raised in.  Alone, the woken kworker runs at once (the test above)."""
    kernel = make_kernel(ncpus=1)
    spawn(kernel, "nice19", hog, nice=19, cpu=0)
    order: list[str] = []

    def func(work, worker):
        order.append("work")
        yield 100 * USEC

    def timer_softirq() -> None:
        kernel.cpus[0].softirq(lambda _: kernel.system_highpri_wq.queue_work_on(kernel.cpus[0], WorkStruct(func, "w")), None)

    def rcu_softirq() -> None:
        kernel.cpus[0].softirq(lambda _: order.append("rcu softirq"), None)

    t = 5 * MSEC
    kernel.sim.at(t, lambda _: timer_softirq(), None, PRIO_SOFTIRQ)
    kernel.sim.at(t, lambda _: rcu_softirq(), None, PRIO_SOFTIRQ)
    kernel.sim.run(until=20 * MSEC)
    assert order == ["rcu softirq", "work"]


def test_nice19_wakeup_does_not_preempt_nice0_and_waits_for_the_slice_end(make_kernel) -> None:
    """wakeup_gran() for a nice 19 wakee is 1 ms * 1024 / 15 = 68 ms > any vdiff
    (at most latency/2 = 3 ms after place_entity()), so no wakeup preemption
    (check_preempt_wakeup()).  It runs when check_preempt_tick() ends the nice 0
    task's slice: sched_slice() = 6 ms * 1024 / 1039 = 5.91 ms, passed at the
    tick of 6 ms (the nice 0 task got the CPU at 0).  Both are threads that slept
    since boot (new ones would get START_DEBIT instead)."""
    kernel = make_kernel(ncpus=1)
    spawn(kernel, "nice0", hog, nice=0, cpu=0)
    log: list[int] = []
    spawn(kernel, "nice19", starts_log(kernel, log), nice=19, cpu=0, at=200 * USEC)
    kernel.sim.run(until=20 * MSEC)
    assert log[:1] == [6 * MSEC]


def test_a_sleeping_task_gives_its_cpu_up_at_once(make_kernel) -> None:
    """A task that blocks leaves the run queue in __schedule() (deactivate_task())
    and the next runnable task runs at that instant, not at a tick."""
    kernel = make_kernel(ncpus=1)
    slept: list[int] = []

    def sleeper(me):
        yield 2 * MSEC + 500 * USEC
        slept.append(kernel.sim.now)
        yield SLEEP

    spawn(kernel, "sleeper", sleeper, cpu=0)
    log: list[int] = []
    spawn(kernel, "other", starts_log(kernel, log), cpu=0, at=500 * USEC)
    kernel.sim.run(until=10 * MSEC)
    assert slept == [2 * MSEC + 500 * USEC]
    assert log == [2 * MSEC + 500 * USEC]


def test_a_woken_task_resumes_with_the_wakers_value(make_kernel) -> None:
    kernel = make_kernel(ncpus=1)
    got: list[Any] = []

    def body(me):
        got.append((yield SLEEP))

    t = spawn(kernel, "t", body, cpu=0)
    at(kernel, 3 * MSEC, wake_task, t, "hello")
    kernel.sim.run(until=10 * MSEC)
    assert got == ["hello"]
    assert t.exited and not wake_task(t)  # an exited task cannot be woken


def test_a_divisible_burst_that_costs_nothing_is_done_at_once(make_kernel) -> None:
    """A run of operations that cost 0 ns each (a profile with zero costs) is
    applied when yielded: no CPU time would ever come to commit it, and a task
    that loops until its work is done would spin at one instant for ever."""
    kernel = make_kernel(ncpus=1)
    done: list[int] = []
    left = [3]

    def commit(k: int) -> None:
        left[0] -= k
        done.append(kernel.sim.now)

    def body(me):
        while left[0]:
            yield Segments([(left[0], 0, commit)])
        yield 1 * MSEC

    t = spawn(kernel, "t", body, cpu=0)
    kernel.sim.run(until=10 * MSEC)
    assert done == [0] and t.exited and t.sum_exec == 1 * MSEC


def test_hardirq_time_delays_the_current_tasks_burst(make_kernel) -> None:
    """Interrupt handlers run on the CPU they interrupt (irq_enter()/irq_exit()):
    the current task's 1 ms burst ends later by the handler's time, and the
    handler sees hardirq context."""
    kernel = make_kernel(ncpus=1)
    cpu = kernel.cpus[0]
    done: list[int] = []
    ctx: list[str] = []

    def body(me):
        yield 1 * MSEC
        done.append(kernel.sim.now)

    spawn(kernel, "t", body, cpu=0)
    at(kernel, 300 * USEC, cpu.hardirq, lambda _: ctx.append(cpu.context), None, 50 * USEC)
    kernel.sim.run(until=5 * MSEC)
    assert ctx == ["hardirq"]
    assert done == [1 * MSEC + 50 * USEC]


def test_a_faster_vcpu_does_the_same_work_sooner_and_time_still_counts_as_time(make_kernel) -> None:
    """Cpu.set_speed(): a 1 ms burst at speed 2 ends after 0.5 ms; slowed to 0.5 at
    0.25 ms (half of it done), the rest takes 1 ms more.  CFS accounts wall time, an
    interrupt's cost takes cost / speed, and speed 1 is exact."""
    kernel = make_kernel(ncpus=3)
    fast, varied, irq = kernel.cpus
    done: dict[str, int] = {}

    def body(me):
        yield 1 * MSEC
        done[me.name] = kernel.sim.now

    tasks = [spawn(kernel, name, body, cpu=i) for i, name in enumerate(("fast", "varied", "irq"))]
    fast.set_speed(2.0)
    varied.set_speed(2.0)
    at(kernel, 250 * USEC, varied.set_speed, 0.5)
    irq.set_speed(0.5)
    at(kernel, 100 * USEC, irq.hardirq, lambda _: None, None, 50 * USEC)
    kernel.sim.run(until=5 * MSEC)
    assert done == {"fast": 500 * USEC, "varied": 1250 * USEC, "irq": 2100 * USEC}
    assert [t.sum_exec for t in tasks] == [500 * USEC, 1250 * USEC, 2000 * USEC]


def test_a_pinned_task_stays_on_its_cpu(make_kernel) -> None:
    """select_task_rq() (core.c v6.1): with nr_cpus_allowed == 1 the task goes to its
    one allowed CPU, even when that CPU is busy and another is idle."""
    kernel = make_kernel(ncpus=2)
    spawn(kernel, "hog1", hog, cpu=1)
    cpus_seen: list[int] = []

    def body(me):
        for _ in range(20):
            cpus_seen.append(me.cpu.id)
            yield 500 * USEC
            kernel.sim.after(200 * USEC, lambda _: wake_task(me))
            yield SLEEP

    spawn(kernel, "pinned", body, cpu=1, at=1 * MSEC)
    kernel.sim.run(until=200 * MSEC)
    assert cpus_seen == [1] * 20
    assert kernel.cpus[0].idle_time > 0


def test_an_unpinned_task_wakes_on_an_idle_cpu(make_kernel) -> None:
    """select_task_rq_fair() -> select_idle_sibling(): a waking task whose previous
    CPU is busy goes to an idle one."""
    kernel = make_kernel(ncpus=2)
    spawn(kernel, "hog0", hog, cpu=0)
    log: list[int] = []

    def body(me):
        log.append((kernel.sim.now, me.cpu.id))
        yield 1 * MSEC

    spawn(kernel, "free", body, at=2 * MSEC)
    kernel.sim.run(until=10 * MSEC)
    assert log == [(2 * MSEC, 1)]


def test_preempt_off_burst_defers_preemption_to_its_end(make_kernel) -> None:
    """With preemption disabled resched_curr() only sets TIF_NEED_RESCHED; the
    switch happens at preempt_enable() -> preempt_schedule() (include/linux/preempt.h),
    so the nice -20 kworker runs when the 3 ms preempt-off burst ends."""
    kernel = make_kernel(ncpus=1)

    def body(me):
        me.preempt_off = True
        yield 3 * MSEC
        while True:
            yield 10 * MSEC

    spawn(kernel, "nopreempt", body, nice=19, cpu=0)
    ran: list[int] = []

    def func(work, worker):
        ran.append(kernel.sim.now)
        yield 10 * USEC

    at(kernel, 500 * USEC, kernel.system_highpri_wq.queue_work_on, kernel.cpus[0], WorkStruct(func, "w"))
    kernel.sim.run(until=10 * MSEC)
    assert ran == [3 * MSEC]


def test_irqs_off_burst_holds_interrupts_until_it_ends(make_kernel) -> None:
    """local_irq_disable() masks interrupts: an hrtimer expiring inside the
    region is handled when interrupts are enabled again."""
    kernel = make_kernel(ncpus=1)
    cpu = kernel.cpus[0]

    def body(me):
        me.irqs_off = True
        yield 2 * MSEC
        yield SLEEP

    spawn(kernel, "irqsoff", body, cpu=0)
    fired: list[tuple[int, str]] = []
    timer = HrTimer(cpu, lambda t: fired.append((kernel.sim.now, cpu.context)))
    at(kernel, 100 * USEC, timer.start, 400 * USEC)
    kernel.sim.run(until=10 * MSEC)
    assert fired == [(2 * MSEC, "hardirq")]


def test_tick_preemption_alternates_equal_tasks_by_slices(make_kernel) -> None:
    """check_preempt_tick() (fair.c v6.1): with two nice 0 tasks, sched_slice() =
    6 ms * 1024 / 2048 = 3 ms; the running task is preempted at the first tick
    after it ran more than that, so each runs about 3-4 ms at a time."""
    kernel = make_kernel(ncpus=1)
    runs: list[tuple[str, int]] = []
    kernel.switch_hook = lambda cpu, prev, ran: runs.append((prev.name, ran))
    spawn(kernel, "a", hog, cpu=0)
    spawn(kernel, "b", hog, cpu=0)
    kernel.sim.run(until=200 * MSEC)
    lengths = [ran for name, ran in runs if name in ("a", "b")][2:]
    assert len(lengths) > 20
    assert all(3 * MSEC <= ran <= 4 * MSEC for ran in lengths), lengths


def test_a_tick_that_falls_in_a_host_pause_comes_when_the_vcpu_runs_again(make_kernel) -> None:
    """A vCPU descheduled over its tick takes the timer interrupt late, when it runs
    again: with the host pausing the CPU for 300 us over every tick, each tick comes 150
    us late and the two tasks still switch once one has run its 3 ms slice (0.7 ms of
    each 1 ms: about 5 ms of wall time), where ticks that waited for the next tick would all
    fall in pauses and never preempt."""
    kernel = make_kernel(ncpus=1)
    cpu = kernel.cpus[0]
    runs: list[tuple[str, int]] = []
    kernel.switch_hook = lambda cpu, prev, ran: runs.append((prev.name, ran))
    spawn(kernel, "a", hog, cpu=0)
    spawn(kernel, "b", hog, cpu=0)
    for ms in range(1, 100):
        at(kernel, ms * MSEC - 150 * USEC, cpu.steal, 300 * USEC)
    kernel.sim.run(until=100 * MSEC)
    lengths = [ran for name, ran in runs if name in ("a", "b")][2:]
    assert len(lengths) > 10
    assert set(lengths) <= {4850 * USEC, 5 * MSEC}


def test_set_cpus_allowed_ptr_moves_the_running_task(make_kernel) -> None:
    """A task that pins itself elsewhere leaves its CPU and runs on the new one from then on."""
    kernel = make_kernel(ncpus=2)
    ran_on: list[int] = []

    def body(me):
        ran_on.append(me.cpu.id)
        yield from set_cpus_allowed_ptr(me, kernel.cpus[1])
        ran_on.append(me.cpu.id)
        yield 1 * MSEC
        ran_on.append(me.cpu.id)
        yield from set_cpus_allowed_ptr(me, kernel.cpus[1])  # already there: nothing to do
        yield SLEEP

    t = spawn(kernel, "mover", body, cpu=0)
    kernel.sim.run(until=5 * MSEC)
    assert ran_on == [0, 1, 1] and t.pinned is kernel.cpus[1]
