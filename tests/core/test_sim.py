"""The event core (src/kvfree_sim/core/sim.py): issue 2 item 2.

Events are ordered by (time, priority, sequence); the priorities stand for the
kernel's order at one instant: hard interrupts before softirqs before the
scheduler (irq_exit() runs softirqs before returning to the interrupted task,
kernel/softirq.c).
"""

from __future__ import annotations

import pytest

from kvfree_sim.core.sim import PRIO_HARDIRQ, PRIO_LATE, PRIO_NORMAL, PRIO_SOFTIRQ, Simulator

from kvfree_sim.kernel.sched import SLEEP, wake_task

from ktest import MSEC, USEC, hog, spawn


@pytest.fixture
def sim() -> Simulator:
    return Simulator()


def test_events_run_in_time_order_whatever_the_insertion_order(sim: Simulator) -> None:
    """Issue 2 item 2: the clock is an integer ns; earlier events run first."""
    log: list[tuple[int, str]] = []
    for t, name in ((30, "c"), (10, "a"), (20, "b")):
        sim.at(t, lambda n: log.append((sim.now, n)), name)
    sim.run(until=100)
    assert log == [(10, "a"), (20, "b"), (30, "c")]


def test_same_instant_orders_by_priority_then_by_sequence(sim: Simulator) -> None:
    """At one instant a hardirq runs before a softirq (irq_exit() -> invoke_softirq(),
    kernel/softirq.c) and both before the scheduler; equal priorities keep the order
    in which they were scheduled (the sequence number)."""
    log: list[str] = []
    sim.at(5, log.append, "late", PRIO_LATE)
    sim.at(5, log.append, "normal-1", PRIO_NORMAL)
    sim.at(5, log.append, "softirq", PRIO_SOFTIRQ)
    sim.at(5, log.append, "normal-2", PRIO_NORMAL)
    sim.at(5, log.append, "hardirq", PRIO_HARDIRQ)
    sim.run(until=5)
    assert log == ["hardirq", "softirq", "normal-1", "normal-2", "late"]


def test_cancelled_event_does_not_run_and_cancel_is_idempotent(sim: Simulator) -> None:
    """Cancelling is how timers are deleted (del_timer(), hrtimer_cancel())."""
    log: list[str] = []
    ev = sim.at(10, log.append, "cancelled")
    keep = sim.at(20, log.append, "kept")
    assert Simulator.pending(ev)
    Simulator.cancel(ev)
    Simulator.cancel(ev)
    Simulator.cancel(None)
    assert not Simulator.pending(ev)
    sim.run(until=100)
    assert log == ["kept"]
    assert not Simulator.pending(keep)  # it ran
    Simulator.cancel(keep)  # harmless after it ran
    assert sim.peek() is None


def test_run_until_runs_events_at_until_and_leaves_later_ones(sim: Simulator) -> None:
    """run(until) executes the events due by ``until`` (inclusive) and then moves the
    clock to ``until``; later events wait for a later run."""
    log: list[int] = []
    for t in (10, 20, 30):
        sim.at(t, log.append, t)
    sim.run(until=20)
    assert log == [10, 20]
    assert sim.now == 20
    assert sim.peek() == 30
    sim.run(until=25)
    assert sim.now == 25 and log == [10, 20]
    with pytest.raises(ValueError):
        sim.at(24, log.append, 24)  # the clock is at 25 now
    sim.run(until=30)
    assert log == [10, 20, 30]


def test_events_scheduled_while_running_are_ordered_too(sim: Simulator) -> None:
    log: list[str] = []

    def first(_: object) -> None:
        log.append("first")
        sim.after(0, log.append, "same-instant-later")
        sim.after(5, log.append, "later")

    sim.at(1, first)
    sim.at(1, log.append, "queued-before")
    sim.run(until=100)
    assert log == ["first", "queued-before", "same-instant-later", "later"]
    assert sim.now == 100


def test_scheduling_in_the_past_is_refused(sim: Simulator) -> None:
    sim.at(10, lambda _: None)
    sim.run(until=10)
    with pytest.raises(ValueError):
        sim.at(9, lambda _: None)


def test_stop_ends_the_run_after_the_current_event(sim: Simulator) -> None:
    """panic() stops the machine at once (Kernel.panic -> Simulator.stop)."""
    log: list[int] = []

    def stop(_: object) -> None:
        log.append(2)
        sim.stop()

    sim.at(1, log.append, 1)
    sim.at(2, stop)
    sim.at(2, log.append, 3)
    sim.run(until=100)
    assert log == [1, 2]
    assert sim.now == 2  # a stopped run leaves the clock at the event that stopped it
    sim.run(until=100)  # a later run goes on
    assert log == [1, 2, 3]


def test_irq_due_now_sees_only_live_interrupt_events_of_this_instant(sim: Simulator) -> None:
    """irq_due_now(): whether an interrupt-priority event (hardirq or softirq) is still due at
    the current instant, so that a task an interrupt woke waits for it (irq_exit())."""
    seen: list[tuple[str, bool]] = []
    sim.at(10, lambda _: seen.append(("first", sim.irq_due_now())), prio=PRIO_SOFTIRQ)
    sim.at(10, lambda _: seen.append(("second", sim.irq_due_now())), prio=PRIO_SOFTIRQ)
    sim.at(10, lambda _: seen.append(("task", sim.irq_due_now())), prio=PRIO_NORMAL)
    cancelled = sim.at(20, lambda _: None, prio=PRIO_HARDIRQ)
    sim.at(20, lambda _: seen.append(("late", sim.irq_due_now())), prio=PRIO_LATE)
    sim.at(19, lambda _: (seen.append(("before", sim.irq_due_now())), Simulator.cancel(cancelled)))
    sim.run(until=100)
    assert seen == [("first", True), ("second", False), ("task", False), ("before", False), ("late", False)]


def test_event_count(sim: Simulator) -> None:
    ev = sim.at(1, lambda _: None)
    sim.at(2, lambda _: None)
    Simulator.cancel(ev)
    sim.run(until=10)
    assert sim.events == 1


def _trace_of(make_kernel, seed: int) -> list[tuple[int, int, str, int]]:
    """Context switches of a small randomised kernel run."""
    kernel = make_kernel(ncpus=3, seed=seed, costs={"context_switch_ns": 1500, "hardirq_ns": 700})
    rng = kernel.rng.stream("test-bursts")
    log: list[tuple[int, int, str, int]] = []
    kernel.switch_hook = lambda cpu, prev, ran: log.append((kernel.sim.now, cpu.id, prev.name, ran))

    def worker(me):
        for _ in range(40):
            yield rng.randrange(10 * USEC, 3 * MSEC)
            if rng.random() < 0.3:
                kernel.sim.after(rng.randrange(USEC, 2 * MSEC), lambda _: wake_task(me))
                yield SLEEP

    for i in range(5):
        spawn(kernel, f"w{i}", worker, nice=(0, 5, 19, -5, 0)[i])
    spawn(kernel, "hog", hog, cpu=2)
    kernel.sim.run(until=200 * MSEC)
    return log


def test_a_kernel_run_is_deterministic_for_a_seed(make_kernel) -> None:
    """Issue 2 item 8: the same seed gives the same run, event for event."""
    a = _trace_of(make_kernel, seed=7)
    b = _trace_of(make_kernel, seed=7)
    c = _trace_of(make_kernel, seed=8)
    assert len(a) > 50
    assert a == b
    assert a != c
