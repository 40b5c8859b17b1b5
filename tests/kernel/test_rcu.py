"""Tree RCU grace periods (src/kvfree_sim/kernel/rcu.py) against kernel/rcu/{rcu.h,tree.c,tree.h,
tree_plugin.h} (v6.1, PREEMPT_RCU, one rcu_node)."""

from __future__ import annotations

import pytest

from kvfree_sim.kernel.rcu import (
    rcu_seq_diff, rcu_seq_done, rcu_seq_endval, rcu_seq_snap, rcu_seq_start, rcu_seq_state,
)
from kvfree_sim.kernel.sched import SLEEP, wake_task

from ktest import MSEC, USEC, at, hog, spawn


# -- gp_seq arithmetic (kernel/rcu/rcu.h), expected values worked out by hand ------------


@pytest.mark.parametrize("s, snap", [(0, 4), (1, 8), (3, 8), (4, 8), (5, 12), (8, 12)])
def test_rcu_seq_snap(s: int, snap: int) -> None:
    """rcu_seq_snap(): (s + 2 * RCU_SEQ_STATE_MASK + 1) & ~RCU_SEQ_STATE_MASK, i.e.
    (s + 7) & ~3: the end of the next full GP; during a GP (s odd) the GP after it."""
    assert rcu_seq_snap(s) == snap


def test_rcu_seq_start_end_state_done() -> None:
    """rcu_seq_start(): +1 (state 1 = in progress); rcu_seq_endval(): (s | 3) + 1;
    rcu_seq_state(): s & 3; rcu_seq_done(): ULONG_CMP_GE(*sp, s)."""
    assert rcu_seq_start(4) == 5 and rcu_seq_state(5) == 1
    assert rcu_seq_endval(5) == 8 and rcu_seq_state(8) == 0
    assert rcu_seq_endval(1) == 4
    assert rcu_seq_done(4, 4) and rcu_seq_done(8, 4)
    assert not rcu_seq_done(3, 4) and not rcu_seq_done(5, 8)


@pytest.mark.parametrize("new, old, diff", [
    (0, 0, 0),
    (1, 0, 1),     # rnd_diff = 0 - 0 + 1 = 1 <= 3
    (5, 4, 1),     # rnd_diff = 4 - 4 + 1 = 1
    (4, 0, 2),     # rnd_diff = 4: ((4 - 3 - 1) >> 2) + 2
    (8, 4, 2),     # rnd_diff = 8 - 4 = 4
    (9, 4, 2),     # rnd_diff = 8 - 4 + 1 = 5: ((5 - 4) >> 2) + 2
    (12, 5, 2),    # rnd_diff = 12 - ((5 + 3) & ~3 = 8) + 1 = 5
    (8, 0, 3),     # rnd_diff = 8: (4 >> 2) + 2
    (400, 0, 101), # rnd_diff = 400: (396 >> 2) + 2
])
def test_rcu_seq_diff(new: int, old: int, diff: int) -> None:
    """rcu_seq_diff() (rcu.h v6.1): rnd_diff = (new & ~3) - ((old + 3) & ~3) +
    ((new & 3) || (old & 3)); 1 if rnd_diff <= 3, else ((rnd_diff - 4) >> 2) + 2.
    rcuscale prints it as "batches"."""
    assert rcu_seq_diff(new, old) == diff


# -- FQS timing defaults (tree.h, tree.c rcu_init_geometry()) --------------------------------


@pytest.mark.parametrize("hz, ncpus, jiffies", [
    (1000, 1, 3), (1000, 256, 4), (300, 1, 2), (250, 1, 1), (250, 256, 2), (100, 1, 1),
])
def test_jiffies_till_fqs_defaults(make_kernel, hz: int, ncpus: int, jiffies: int) -> None:
    """rcu_init_geometry() (tree.c v6.1): d = RCU_JIFFIES_TILL_FORCE_QS + nr_cpu_ids /
    RCU_JIFFIES_FQS_DIV, RCU_JIFFIES_TILL_FORCE_QS = 1 + (HZ > 250) + (HZ > 500),
    RCU_JIFFIES_FQS_DIV = 256 (tree.h); both first and next FQS delays default to d."""
    kernel = make_kernel(ncpus=ncpus, hz=hz, start=False)
    assert kernel.rcu.jiffies_till_first_fqs == jiffies
    assert kernel.rcu.jiffies_till_next_fqs == jiffies


def test_explicit_fqs_jiffies_are_kept(make_kernel) -> None:
    kernel = make_kernel(start=False, jiffies_till_first_fqs=7, jiffies_till_next_fqs=5)
    assert (kernel.rcu.jiffies_till_first_fqs, kernel.rcu.jiffies_till_next_fqs) == (7, 5)


# -- grace-period length ---------------------------------------------------------------------


def one_gp(kernel, until: int = 100 * MSEC) -> tuple[int, int]:
    """Request one GP with a call_rcu() on CPU 0 at 0.5 ms; return (start, end) of it."""
    at(kernel, 500 * USEC, kernel.rcu.call_rcu, kernel.cpus[0], lambda _: None)
    kernel.sim.run(until=until)
    rcu = kernel.rcu
    assert rcu.gp_count == 1 and rcu.gp_seq == 4
    return rcu.gp_started_at, rcu.gp_started_at + rcu.gp_durations[0]


@pytest.mark.parametrize("hz, ticks", [(1000, 4), (300, 3), (250, 2), (100, 2)])
def test_gp_with_idle_cpus_ends_at_the_first_fqs(make_kernel, hz: int, ticks: int) -> None:
    """Dyntick-idle CPUs report nothing; the GP kthread's first FQS scan
    (rcu_gp_fqs(true) -> force_qs_rnp(dyntick_save_progress_counter)) reports them.
    rcu_gp_fqs_loop() sleeps jiffies_till_first_fqs (3 at HZ=1000, 2 at HZ=300,
    1 at HZ<=250) on a level-0 timer, which fires one jiffy after it expires
    (calc_index()): the GP lasts about that + 1 ticks after rcu_gp_init()."""
    kernel = make_kernel(ncpus=4, hz=hz)
    start, end = one_gp(kernel, until=300 * MSEC)
    tick = kernel.clock.tick_ns
    assert (ticks - 0.5) * tick < end - start <= ticks * tick


def test_gp_with_all_cpus_busy_ends_after_about_two_ticks(make_kernel) -> None:
    """A busy CPU notices the new GP at its first tick (rcu_pending() ->
    rcu_core() -> note_gp_changes()) and reports its quiescent state at the next
    (rcu_flavor_sched_clock_irq() -> rcu_qs(); rcu_report_qs_rdp()); the last report
    wakes the GP kthread (rcu_report_qs_rsp()): about 2 ticks, shorter than with
    idle CPUs (4 ticks at HZ=1000)."""
    kernel = make_kernel(ncpus=4)
    for c in range(4):
        spawn(kernel, f"hog{c}", hog, cpu=c)
    start, end = one_gp(kernel)
    assert 1 * MSEC < end - start <= 2 * MSEC + 200 * USEC


@pytest.mark.parametrize("periodic", [0, 1])
def test_the_gp_kthreads_idle_cpu_reports_at_its_next_tick_only_if_it_ticks(make_kernel,
                                                                            periodic: int) -> None:
    """One busy CPU, the GP kthread on the idle one (rcuscale.kfree_nthreads=1 on 2 vCPUs).
    The kthread's sleep is a context switch (rcu_note_context_switch() -> rcu_qs()), but
    rcu_core() reports it only at a tick.  With NO_HZ_IDLE the idle CPU has stopped its
    tick until its next timer, the kthread's FQS timeout, four ticks in: the tick that
    wakes it for that timer reports it (tick_from_idle()), just before the first FQS scan,
    which would find it running the kthread, not in an extended quiescent state.  A guest
    that ticks periodically (QEMU TCG, layout tick_periodic) reports it at its next tick,
    and the GP ends with the busy CPU's report, two ticks in: the kernel's event ring with
    one kfree thread measured 2.0 ms (data/qemu-tcg-fast-2026-11-27/NOTES.md item 6)."""
    kernel = make_kernel(ncpus=2, layout={"tick_periodic": periodic})
    spawn(kernel, "hog0", hog, cpu=0)
    start, end = one_gp(kernel)
    assert kernel.rcu.kthread.cpu.id == 1
    if periodic:
        assert 1 * MSEC < end - start <= 2 * MSEC + 200 * USEC
    else:
        assert 3 * MSEC < end - start <= 4 * MSEC + 200 * USEC


def test_a_periodic_idle_tick_is_no_quiescent_state(make_kernel) -> None:
    """The idle task runs with preemption disabled (init_idle_preempt_count()), so the
    tick of an idle CPU that has not switched since it noticed the GP reports nothing
    (rcu_flavor_sched_clock_irq()); the FQS scan reports it, four ticks in at HZ=1000, as
    without the tick.  The kernel's ring: GPs whose kthread sat on the busy vCPU ended
    at the FQS scan, 4 ms in, though the idle vCPU ticked every jiffy."""
    kernel = make_kernel(ncpus=3, layout={"tick_periodic": 1})
    spawn(kernel, "hog0", hog, cpu=0)
    start, end = one_gp(kernel)
    assert 3 * MSEC < end - start <= 4 * MSEC


@pytest.mark.parametrize("preempt_off", [False, True])
def test_a_long_preempt_disabled_burst_holds_the_gp_up(make_kernel, preempt_off: bool) -> None:
    """rcu_flavor_sched_clock_irq() (tree_plugin.h v6.1): a tick that finds
    preemption disabled (preempt_count() & PREEMPT_MASK) reports no quiescent
    state, and the FQS scan sees no dynticks change on a CPU that never idles
    (rcu_implicit_dynticks_qs()); so a CPU in a 20 ms preempt-off burst holds the GP
    until the burst ends.  The same 20 ms burst with preemption enabled does not."""
    kernel = make_kernel(ncpus=2)
    spawn(kernel, "hog0", hog, cpu=0)

    def burst(me):
        me.preempt_off = preempt_off
        yield 20 * MSEC
        yield SLEEP

    spawn(kernel, "burst", burst, cpu=1)
    start, end = one_gp(kernel)
    if preempt_off:
        assert 20 * MSEC <= end <= 26 * MSEC
    else:
        assert end - start <= 4 * MSEC


@pytest.mark.parametrize("hz, ncpus, jtsq", [(1000, 2, 100), (1000, 512, 102), (250, 2, 25), (100, 2, 10)])
def test_jiffies_to_sched_qs(make_kernel, hz: int, ncpus: int, jtsq: int) -> None:
    """adjust_jiffies_till_sched_qs() (tree.c v5.11, v6.1): jiffies_till_first_fqs + 2 *
    jiffies_till_next_fqs, at least HZ / 10 + nr_cpu_ids / RCU_JIFFIES_FQS_DIV ("RCU
    calculated value of scheduler-enlistment delay is 100 jiffies" at HZ=1000)."""
    kernel = make_kernel(ncpus=ncpus, hz=hz, start=False)
    assert kernel.rcu.jiffies_to_sched_qs == jtsq


@pytest.mark.parametrize("lines", [False, True])
def test_a_cpu_that_holds_preemption_off_is_made_to_switch_after_jiffies_to_sched_qs(
        make_kernel, lines: bool) -> None:
    """A CPU writing console line after console line, each with preemption disabled
    (kernel_init under initcall_debug), reports nothing at its ticks.  Once the GP is
    jiffies_to_sched_qs (100) jiffies old, the next FQS scan sets its rcu_urgent_qs
    (rcu_implicit_dynticks_qs()); its next tick sets need_resched (rcu_sched_clock_irq());
    the preempt_enable() at the end of that line schedules (rcu_note_context_switch()), and
    the tick after reports: the GP ends about 100 ms in, while the lines go on.  One
    preempt-off section that long cannot be broken: the GP waits for its end."""
    kernel = make_kernel(ncpus=2)
    spawn(kernel, "hog0", hog, cpu=0)
    line = 700 * USEC + 1  # never ends on a tick

    def writer(me):
        if lines:
            for _ in range(300 * MSEC // line):
                me.preempt_off = True
                yield line
        else:
            me.preempt_off = True
            yield 300 * MSEC
        yield SLEEP

    spawn(kernel, "kernel_init", writer, cpu=1, at=120 * MSEC)  # after kswapd's first HZ/10 nap there
    at(kernel, 130 * MSEC, kernel.rcu.call_rcu, kernel.cpus[0], lambda _: None)
    kernel.sim.run(until=500 * MSEC)
    rcu = kernel.rcu
    assert rcu.gp_count == 1
    start, end = rcu.gp_started_at, rcu.gp_started_at + rcu.gp_durations[0]
    if lines:
        assert 100 * MSEC < end - start <= 106 * MSEC
    else:
        assert 420 * MSEC <= end <= 425 * MSEC


def test_gp_kthread_is_a_nice0_cfs_task(make_kernel) -> None:
    """rcu_gp_kthread() is created by kthread_create() as SCHED_NORMAL nice 0
    (kthread_prio = 0 without CONFIG_RCU_BOOST)."""
    kernel = make_kernel()
    assert kernel.rcu.kthread.nice == 0 and kernel.rcu.kthread.name == "rcu_preempt"


# -- callbacks -------------------------------------------------------------------------------


def test_call_rcu_callbacks_wait_for_a_gp_that_started_after_the_call(make_kernel) -> None:
    """call_rcu() queues on the calling CPU; rcu_accelerate_cbs() tags the callback
    with rcu_seq_snap(&rcu_state.gp_seq): 4 when called at gp_seq 0, but 8 when
    called during GP 1 (gp_seq 1), so it waits for the next GP too; rcu_do_batch()
    invokes them in order from RCU_SOFTIRQ on the CPU that queued them."""
    kernel = make_kernel(ncpus=2)
    rcu = kernel.rcu
    ran: list[tuple[str, int, int, str]] = []

    def cb(arg: tuple[str, int]) -> None:
        name, cpu = arg
        ran.append((name, rcu.gp_seq, cpu, kernel.cpus[cpu].context))

    def first() -> None:
        assert rcu.gp_seq == 0
        rcu.call_rcu(kernel.cpus[0], cb, ("a1", 0))
        rcu.call_rcu(kernel.cpus[0], cb, ("a2", 0))

    def during_gp() -> None:
        assert rcu.gp_seq == 1  # GP 1 in progress
        rcu.call_rcu(kernel.cpus[1], cb, ("b", 1))

    at(kernel, 500 * USEC, first)
    at(kernel, 2 * MSEC + 500 * USEC, during_gp)
    kernel.sim.run(until=100 * MSEC)
    assert [r[0] for r in ran] == ["a1", "a2", "b"]
    (_, s1, c1, ctx1), (_, s2, c2, ctx2), (_, s3, c3, ctx3) = ran
    assert s1 >= 4 and s2 >= 4 and s3 >= 8
    assert (c1, c2, c3) == (0, 0, 1)
    assert ctx1 == ctx2 == ctx3 == "softirq"
    assert rcu.gp_count == 2 and rcu.gp_seq == 8


def test_a_callback_queued_after_its_cpus_quiescent_state_waits_one_gp_more(make_kernel) -> None:
    """Only a CPU's own RCU code accelerates its callbacks (tree.c v6.1): at its QS report
    (rcu_report_qs_rdp(): "This GP can't end until cpu checks in, so all of our callbacks
    can be processed during the next GP"), when it notices a GP start or end
    (__note_gp_changes()), and on the GP kthread's CPU in rcu_gp_cleanup().  During a GP
    held up by CPU 2: a callback queued on CPU 2 before it reports rides the next GP (2 GP
    ends); one queued on a CPU that has already reported stays unaccelerated until that CPU
    notices the GP's end, when the next GP (needed by CPU 2's callback) has started, so it
    needs the GP after that (3 GP ends)."""
    kernel = make_kernel(ncpus=3)
    rcu = kernel.rcu
    spawn(kernel, "hog0", hog, cpu=0)
    spawn(kernel, "hog1", hog, cpu=1)

    def burst(me):
        me.preempt_off = True  # no quiescent state until the burst ends
        yield 30 * MSEC
        yield SLEEP

    spawn(kernel, "burst", burst, cpu=2, at=500 * USEC)
    ran: dict[str, int] = {}
    queued: dict[str, int] = {}

    def queue(name: str, cid: int) -> None:
        queued[name] = rcu.gp_count
        rcu.call_rcu(kernel.cpus[cid], lambda n: ran.__setitem__(n, rcu.gp_count), name)

    rcu.call_rcu(kernel.cpus[0], lambda _: None)  # starts the first GP
    t = 0
    while "late" not in queued:
        t += 100 * USEC
        kernel.sim.run(until=t)
        if "early" not in queued and rcu.gp_in_progress:
            queue("early", 2)
        elif "early" in queued and rcu.qs_pending == {2}:
            late_cpu = 1 if rcu.kthread.cpu.id == 0 else 0
            queue("late", late_cpu)
    kernel.sim.run(until=200 * MSEC)
    assert rcu.kthread.cpu.id != late_cpu  # whose rcu_gp_cleanup() would accelerate it
    assert {name: ran[name] - queued[name] for name in queued} == {"early": 2, "late": 3}


def test_synchronize_rcu_blocks_the_caller_until_a_gp_has_passed(make_kernel) -> None:
    """synchronize_rcu() -> wait_rcu_gp(call_rcu) (include/linux/rcupdate_wait.h):
    the caller sleeps in wait_for_completion() and gives its CPU up; it resumes
    after a full GP: gp_seq >= rcu_seq_snap(gp_seq at the call)."""
    kernel = make_kernel(ncpus=1)
    rcu = kernel.rcu
    marks: list[tuple[int, int]] = []

    def caller(me):
        yield 100 * USEC
        marks.append((kernel.sim.now, rcu.gp_seq))
        yield from rcu.synchronize_rcu(me)
        marks.append((kernel.sim.now, rcu.gp_seq))

    other = spawn(kernel, "other", hog, cpu=0, at=200 * USEC)
    spawn(kernel, "caller", caller, cpu=0, at=1 * MSEC + 300 * USEC)
    kernel.sim.run(until=50 * MSEC)
    (t0, s0), (t1, s1) = marks
    assert s1 >= (s0 + 7) & ~3
    gp_end = rcu.gp_started_at + rcu.gp_durations[-1]
    assert t1 >= gp_end > t0
    # while the caller slept, the other task had the CPU
    assert other.sum_exec >= (t1 - t0) - 100 * USEC


def test_a_context_switch_is_a_quiescent_state_a_later_preempt_off_tick_reports(make_kernel) -> None:
    """rcu_note_context_switch() -> rcu_qs() records a quiescent state at a context switch
    after the CPU noticed the GP; the next tick's softirq reports it even if that tick
    finds preemption disabled (the creator of rcuscale's threads: it sleeps in
    kthread_create() between console lines it writes with preemption off)."""
    kernel = make_kernel(ncpus=2)
    spawn(kernel, "hog0", hog, cpu=0)
    spawn(kernel, "hog1", hog, cpu=1, nice=19)  # CPU 1 never idles: the FQS scan cannot help

    def printer(me):
        while True:
            me.preempt_off = True
            yield 3 * MSEC - 100 * USEC  # a console line
            yield SLEEP  # kthread_create(): waits for kthreadd

    t = spawn(kernel, "printer", printer, cpu=1)

    def wake_printer(_: object) -> None:
        wake_task(t)
        kernel.sim.after(3 * MSEC, wake_printer, None)

    kernel.sim.at(3 * MSEC - 50 * USEC, wake_printer, None)
    start, end = one_gp(kernel)
    # without the recorded switch the printer's CPU (never preemptible at a tick) would
    # hold the GP for the whole 100 ms
    assert end - start <= 8 * MSEC


def test_a_cpu_that_ticks_later_reports_its_quiescent_state_at_its_own_tick(make_kernel) -> None:
    """With CPU 1 ticking 0.7 ms after CPU 0 (vcpu_tick_phase_ns), both busy, CPU 1
    notices each GP and reports its quiescent state at its own ticks, after CPU 0 has:
    the GP ends at CPU 1's tick, 0.7 ms past the jiffy grid (rcu_report_qs_rsp() wakes
    the GP kthread then), as in the calibration kernel's ring (run 601)."""
    kernel = make_kernel(ncpus=2, layout={"vcpu_tick_phase_ns": 700 * USEC})
    rcu = kernel.rcu
    spawn(kernel, "hog0", hog, cpu=0)
    spawn(kernel, "hog1", hog, cpu=1)
    ends: list[int] = []
    gp_count = 0

    def watch() -> None:
        nonlocal gp_count
        if rcu.gp_count != gp_count:
            gp_count = rcu.gp_count
            ends.append(kernel.sim.now)

    rcu.call_rcu(kernel.cpus[0], lambda _: None)
    t = 0
    while len(ends) < 1:
        t += 10 * USEC
        kernel.sim.run(until=t)
        watch()
    assert ends[0] % MSEC in range(700 * USEC, 720 * USEC)


@pytest.mark.parametrize("pause_us", [0, 100])
def test_a_paused_vcpu_takes_its_tick_when_it_runs_again(make_kernel, pause_us: int) -> None:
    """A vCPU the host has descheduled over its tick takes the timer interrupt late, when
    it runs again (the interrupt stays pending; QEMU and KVM deliver it then): a pause of
    CPU 1 from 50 us before each tick to 50 us after delays the GP by those 50 us, not by
    a jiffy."""
    kernel = make_kernel(ncpus=2)
    for c in range(2):
        spawn(kernel, f"hog{c}", hog, cpu=c)
    if pause_us:
        for ms in range(1, 30):
            at(kernel, ms * MSEC - pause_us // 2 * USEC, kernel.cpus[1].steal, pause_us * USEC)
    start, end = one_gp(kernel)
    assert end - start == 2 * MSEC + pause_us // 2 * USEC
