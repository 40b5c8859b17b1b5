"""Workqueues (src/kvfree_sim/kernel/workqueue.py) against kernel/workqueue.c (v5.11-v6.1)."""

from __future__ import annotations

import re

import pytest

from kvfree_sim.kernel.sched import SLEEP, wake_task
from kvfree_sim.kernel.workqueue import DelayedWork, RcuWork, WorkStruct, cancel_work

from ktest import MSEC, USEC, at, hog, spawn


def recorder(kernel, log: list, cost: int = 10 * USEC):
    """A work function that records (time, worker, cpu) and takes ``cost`` of CPU."""

    def func(work, worker):
        log.append((kernel.sim.now, worker, worker.cpu.id))
        yield cost

    return func


def test_queueing_pending_work_is_a_noop_until_the_item_starts(make_kernel) -> None:
    """queue_work_on() (workqueue.c): test_and_set_bit(WORK_STRUCT_PENDING_BIT) -
    queueing a pending item returns false and does nothing; process_one_work()
    clears PENDING (set_work_pool_and_clear_pending()) before calling the
    function, so the item can be queued again while it runs."""
    kernel = make_kernel(ncpus=1)
    cpu = kernel.cpus[0]
    wq = kernel.system_wq
    runs: list[int] = []
    requeued: list[bool] = []

    def func(work, worker):
        runs.append(kernel.sim.now)
        if len(runs) == 1:
            requeued.append(wq.queue_work_on(cpu, work))
            requeued.append(wq.queue_work_on(cpu, work))
        yield 100 * USEC

    work = WorkStruct(func, "w")
    results: list[bool] = []

    def queue_twice() -> None:
        results.append(wq.queue_work_on(cpu, work))
        results.append(wq.queue_work_on(cpu, work))

    at(kernel, 1 * MSEC, queue_twice)
    kernel.sim.run(until=10 * MSEC)
    assert results == [True, False]
    assert requeued == [True, False]
    assert runs == [1 * MSEC, 1 * MSEC + 100 * USEC]  # the requeued run follows the first
    assert not work.pending


@pytest.mark.parametrize("delay, fires_at_jiffy", [
    (1, 12),      # level 0: expires 11 + 1
    (20, 31),     # level 0: expires 30 + 1
    (100, 112),   # level 1 (gran 8): ((110 >> 3) + 1) << 3 = 14 * 8
    (1000, 1024), # level 2 (gran 64): ((1010 >> 6) + 1) << 6 = 16 * 64
])
def test_delayed_work_runs_at_the_wheel_jiffy(make_kernel, delay: int, fires_at_jiffy: int) -> None:
    """queue_delayed_work_on() at jiffy 10 arms dwork->timer with expires =
    jiffies + delay (__queue_delayed_work()); calc_wheel_index() rounds it up
    (kernel/time/timer.c); delayed_work_timer_fn() queues the work from the TIMER
    softirq of that tick and the idle CPU's kworker runs it at once."""
    kernel = make_kernel(ncpus=1)
    log: list = []
    dwork = DelayedWork(recorder(kernel, log), "dw")
    at(kernel, 10 * MSEC + 400 * USEC, kernel.system_wq.queue_delayed_work_on, kernel.cpus[0], dwork, delay)
    kernel.sim.run(until=(fires_at_jiffy + 10) * MSEC)
    assert [t for t, _, _ in log] == [fires_at_jiffy * MSEC]


def test_delayed_work_with_zero_delay_is_queued_at_once(make_kernel) -> None:
    """__queue_delayed_work(): if (!delay) { __queue_work(); return; } - no timer."""
    kernel = make_kernel(ncpus=1)
    log: list = []
    dwork = DelayedWork(recorder(kernel, log), "dw")
    t = 10 * MSEC + 400 * USEC
    at(kernel, t, kernel.system_wq.queue_delayed_work_on, kernel.cpus[0], dwork, 0)
    kernel.sim.run(until=20 * MSEC)
    assert [x[0] for x in log] == [t]


def test_mod_delayed_work_rearms_a_pending_timer(make_kernel) -> None:
    """mod_delayed_work_on(): try_to_grab_pending() steals the pending item (returns
    true), then __queue_delayed_work() arms the timer anew; the item runs once, at
    the new expiry (jiffy 20 + 5 + 1), not at the old one (10 + 50 + 1)."""
    kernel = make_kernel(ncpus=1)
    cpu = kernel.cpus[0]
    wq = kernel.system_wq
    log: list = []
    dwork = DelayedWork(recorder(kernel, log), "dw")
    results: list[bool] = []
    at(kernel, 10 * MSEC + 500 * USEC, lambda: results.append(wq.queue_delayed_work_on(cpu, dwork, 50)))
    at(kernel, 20 * MSEC + 500 * USEC, lambda: results.append(wq.mod_delayed_work_on(cpu, dwork, 5)))
    kernel.sim.run(until=100 * MSEC)
    assert [x[0] for x in log] == [26 * MSEC]
    assert results == [True, True]
    # on an idle item mod_delayed_work_on() returns false but still queues it
    at(kernel, 200 * MSEC + 500 * USEC, lambda: results.append(wq.mod_delayed_work_on(cpu, dwork, 2)))
    kernel.sim.run(until=300 * MSEC)
    assert results[2] is False
    assert [x[0] for x in log] == [26 * MSEC, 203 * MSEC]


def test_cancel_drops_pending_work_and_delayed_work(make_kernel) -> None:
    """cancel_work()/cancel_delayed_work() (try_to_grab_pending()): a pending item
    is taken off its worklist or its timer is deleted; it never runs; the call
    returns true only if the item was pending."""
    kernel = make_kernel(ncpus=2)
    cpu = kernel.cpus[0]
    spawn(kernel, "hog", hog, nice=-20, cpu=0)  # keeps the nice 0 kworker from running at once
    log: list = []
    work = WorkStruct(recorder(kernel, log), "w")
    dwork = DelayedWork(recorder(kernel, log), "dw")
    results: list[bool] = []

    def queue_and_cancel() -> None:
        assert kernel.system_wq.queue_work_on(cpu, work)
        assert kernel.system_wq.queue_delayed_work_on(cpu, dwork, 5)
        results.append(cancel_work(work))

    at(kernel, 1 * MSEC, queue_and_cancel)
    at(kernel, 3 * MSEC, lambda: results.append(cancel_work(dwork)))
    at(kernel, 4 * MSEC, lambda: results.append(cancel_work(work)))
    kernel.sim.run(until=50 * MSEC)
    assert results == [True, True, False]
    assert log == []
    assert not work.pending and not dwork.pending


@pytest.mark.parametrize("wq_name, nice, suffix", [("system_wq", 0, ""), ("system_highpri_wq", -20, "H")])
def test_bound_workqueue_workers_nice_level_and_cpu(make_kernel, wq_name: str, nice: int, suffix: str) -> None:
    """create_worker() (workqueue.c): per-CPU pool workers are named kworker/<cpu>:<id>
    plus "H" for the highpri pool and get the pool's nice level
    (set_user_nice(worker->task, pool->attrs->nice)): 0 for the normal pool,
    HIGHPRI_NICE_LEVEL = MIN_NICE = -20 for the highpri one.  A bound workqueue's
    work runs on the CPU it was queued on, even if another CPU is idle."""
    kernel = make_kernel(ncpus=2)
    spawn(kernel, "hog", hog, cpu=1)
    log: list = []
    wq = getattr(kernel, wq_name)
    at(kernel, 1 * MSEC, wq.queue_work_on, kernel.cpus[1], WorkStruct(recorder(kernel, log), "w"))
    kernel.sim.run(until=50 * MSEC)
    assert len(log) == 1
    _, worker, cpu_id = log[0]
    assert cpu_id == 1
    assert worker.nice == nice and worker.weight == {0: 1024, -20: 88761}[nice]
    assert re.fullmatch(rf"kworker/1:\d+{suffix}", worker.name)


def test_unbound_work_runs_on_an_idle_cpu(make_kernel) -> None:
    """An unbound pool's workers are not bound to a CPU (WQ_UNBOUND); the scheduler
    wakes the worker on an idle CPU (select_idle_sibling()), so the item does not
    wait behind the busy CPU that queued it."""
    kernel = make_kernel(ncpus=2)
    spawn(kernel, "hog", hog, nice=-20, cpu=0)
    log: list = []
    t = 1 * MSEC
    at(kernel, t, kernel.system_unbound_wq.queue_work_on, kernel.cpus[0], WorkStruct(recorder(kernel, log), "w"))
    kernel.sim.run(until=20 * MSEC)
    assert [(x[0], x[2]) for x in log] == [(t, 1)]
    assert re.fullmatch(r"kworker/u.*", log[0][1].name)


def test_a_sleeping_work_item_lets_another_worker_run_the_next(make_kernel) -> None:
    """Concurrency management: when a running worker blocks, wq_worker_sleeping()
    drops pool->nr_running to 0 and, with work pending, wakes another worker
    (kick_pool()/wake_up_worker()); the next item runs while the first sleeps."""
    kernel = make_kernel(ncpus=1)
    cpu = kernel.cpus[0]
    events: list = []

    def sleeper(work, worker):
        events.append(("a-start", kernel.sim.now, worker))
        kernel.sim.after(5 * MSEC, lambda _: wake_task(worker))
        yield SLEEP
        events.append(("a-end", kernel.sim.now, worker))

    def quick(work, worker):
        events.append(("b-start", kernel.sim.now, worker))
        yield 100 * USEC

    def queue_both() -> None:
        kernel.system_wq.queue_work_on(cpu, WorkStruct(sleeper, "a"))
        kernel.system_wq.queue_work_on(cpu, WorkStruct(quick, "b"))

    at(kernel, 1 * MSEC, queue_both)
    kernel.sim.run(until=20 * MSEC)
    names = [e[0] for e in events]
    assert names == ["a-start", "b-start", "a-end"]
    a_start, b_start, a_end = events
    assert b_start[1] == 1 * MSEC
    assert b_start[2] is not a_start[2]
    assert a_end[1] == 6 * MSEC and a_end[2] is a_start[2]


def test_a_cpu_bound_work_item_holds_the_next_on_the_same_pool(make_kernel) -> None:
    """need_more_worker() is false while a worker runs (pool->nr_running > 0), so
    insert_work() wakes no second worker: the next item waits for the running
    one and is run by the same worker (worker_thread() loops while keep_working())."""
    kernel = make_kernel(ncpus=1)
    cpu = kernel.cpus[0]
    log: list = []

    def queue_both() -> None:
        kernel.system_wq.queue_work_on(cpu, WorkStruct(recorder(kernel, log, cost=5 * MSEC), "a"))
        kernel.system_wq.queue_work_on(cpu, WorkStruct(recorder(kernel, log), "b"))

    at(kernel, 1 * MSEC, queue_both)
    kernel.sim.run(until=20 * MSEC)
    assert [x[0] for x in log] == [1 * MSEC, 6 * MSEC]
    assert log[0][1] is log[1][1]


def test_rcu_work_runs_only_after_a_full_grace_period(make_kernel) -> None:
    """queue_rcu_work() sets PENDING and call_rcu()s rcu_work_rcufn(), which queues
    the work after a grace period (workqueue.c); queueing it again while pending
    returns false.  A GP is full when gp_seq reaches rcu_seq_snap() of the value
    at the call: gp_seq 0 -> (0 + 2*3 + 1) & ~3 = 4 (kernel/rcu/rcu.h)."""
    kernel = make_kernel(ncpus=2)
    cpu = kernel.cpus[0]
    log: list = []

    def func(work, worker):
        log.append((kernel.sim.now, kernel.rcu.gp_seq, kernel.rcu.gp_count))
        yield 10 * USEC

    rwork = RcuWork(func, "rw")
    results: list[bool] = []

    def queue() -> None:
        assert kernel.rcu.gp_seq == 0
        results.append(kernel.queue_rcu_work(cpu, kernel.system_wq, rwork))
        results.append(kernel.queue_rcu_work(cpu, kernel.system_wq, rwork))

    at(kernel, 500 * USEC, queue)
    kernel.sim.run(until=100 * MSEC)
    assert results == [True, False]
    assert len(log) == 1
    t, gp_seq, gp_count = log[0]
    assert gp_seq >= 4 and gp_count >= 1
    assert kernel.rcu.gp_count == 1  # so gp_started_at is that GP's
    gp_end = kernel.rcu.gp_started_at + kernel.rcu.gp_durations[0]
    assert t >= gp_end


def test_running_work_requeued_elsewhere_stays_non_reentrant(make_kernel) -> None:
    """__queue_work() (workqueue.c): if the item is still executing on another pool
    (find_worker_executing_work()), it is queued to that pool, so it never runs
    concurrently with itself: queued again on CPU 1 while running on CPU 0, its
    second run is on CPU 0 after the first ends."""
    kernel = make_kernel(ncpus=2)
    log: list = []
    work = WorkStruct(recorder(kernel, log, cost=5 * MSEC), "w")
    at(kernel, 1 * MSEC, kernel.system_wq.queue_work_on, kernel.cpus[0], work)
    at(kernel, 2 * MSEC, kernel.system_wq.queue_work_on, kernel.cpus[1], work)
    kernel.sim.run(until=50 * MSEC)
    assert [(t, cpu) for t, _, cpu in log] == [(1 * MSEC, 0), (6 * MSEC, 0)]
