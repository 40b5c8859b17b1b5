"""Workqueues, work items, delayed work and kworkers (kernel/workqueue.c, v5.11-v6.1).

* A :class:`WorkStruct` is ``struct work_struct``: its function is a generator
  ``func(work, worker)`` run by a kworker; it may take CPU time, allocate and
  sleep like any task.  The PENDING bit is :attr:`WorkStruct.pending`:
  queueing pending work is a no-op that returns False, and the bit is cleared
  when a worker starts executing the item (``set_work_pool_and_clear_pending()``
  in ``process_one_work()``), so the item can be queued again while it runs.
* :class:`DelayedWork` adds a timer on the wheel (``delayed_work_timer_fn()``);
  :class:`RcuWork` queues itself after a grace period (``queue_rcu_work()``).
* Each bound workqueue uses the per-CPU worker pools: normal (nice 0) and
  highpri (``HIGHPRI_NICE_LEVEL`` = MIN_NICE = -20).  Unbound workqueues use one
  pool whose workers run on any CPU.
* Concurrency management: a pool wakes an idle worker only when it has work
  and no running worker (``need_more_worker()``); when a running worker sleeps
  inside a work function, the pool wakes (or creates) another
  (``wq_worker_sleeping()``).  Worker creation is immediate (the manager's
  ``create_worker()`` latency is not modelled).
* ``WORK_CPU_UNBOUND`` on a bound workqueue means the CPU that queues
  (``raw_smp_processor_id()`` in ``__queue_work()``); work still running on a
  pool is queued on that pool again (non-reentrancy, ``find_worker_executing_work()``).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Final, Generator

from .sched import SLEEP, Cpu, Task, wake_task
from .time import TimerList

if TYPE_CHECKING:
    from .system import Kernel

HIGHPRI_NICE_LEVEL: Final = -20

WorkFunc = Callable[["WorkStruct", Task], Generator[Any, Any, None]]


class WorkStruct:
    """``struct work_struct``."""

    __slots__ = ("func", "name", "data", "pending", "pool", "current")

    def __init__(self, func: WorkFunc, name: str, data: Any = None) -> None:
        self.func = func
        self.name = name
        self.data = data
        self.pending = False
        self.pool: WorkerPool | None = None  # pool it is queued on or running in
        self.current: Task | None = None  # worker executing it


class DelayedWork(WorkStruct):
    """``struct delayed_work``: a work item behind a timer."""

    __slots__ = ("timer", "wq")

    def __init__(self, func: WorkFunc, name: str, data: Any = None) -> None:
        super().__init__(func, name, data)
        self.timer: TimerList | None = None
        self.wq: Workqueue | None = None


class RcuWork(WorkStruct):
    """``struct rcu_work``: queued on its workqueue after a grace period."""

    __slots__ = ("wq",)

    def __init__(self, func: WorkFunc, name: str, data: Any = None) -> None:
        super().__init__(func, name, data)
        self.wq: Workqueue | None = None


class WorkerPool:
    """``struct worker_pool``: a worklist and the kworkers serving it."""

    __slots__ = ("kernel", "cpu", "nice", "worklist", "workers", "idle", "nr_running", "label")

    def __init__(self, kernel: "Kernel", cpu: Cpu | None, nice: int, label: str) -> None:
        self.kernel = kernel
        self.cpu = cpu  # None: unbound
        self.nice = nice
        self.worklist: deque[WorkStruct] = deque()
        self.workers: list[Task] = []
        self.idle: list[Task] = []
        self.nr_running = 0
        self.label = label
        # workqueue_init(): every pool starts with one idle worker
        self.idle.append(self._create_worker(boot=True))

    def insert(self, work: WorkStruct) -> None:
        """insert_work() + wake_up_worker() if need_more_worker()."""
        work.pool = self
        self.worklist.append(work)
        if self.nr_running == 0:
            self._wake_worker()

    def _wake_worker(self) -> None:
        if self.idle:
            w = self.idle.pop()
        else:
            w = self._create_worker()
        self.nr_running += 1
        wake_task(w)

    def _create_worker(self, boot: bool = False) -> Task:
        """create_worker(): kworker/N:M or kworker/N:MH (u for unbound)."""
        n = len(self.workers)
        name = f"kworker/{self.label}:{n}{'H' if self.nice < 0 else ''}"
        w = Task(self.kernel, name, self._worker_thread, nice=self.nice, pinned=self.cpu, boot=boot)
        w.wq_worker = True
        self.workers.append(w)
        return w

    def worker_sleeping(self) -> None:
        """wq_worker_sleeping(): a busy worker blocked; keep the pool going."""
        self.nr_running -= 1
        if self.worklist and self.nr_running == 0:
            self._wake_worker()

    def worker_running(self) -> None:
        """wq_worker_running(): a worker that blocked in a work item runs again."""
        self.nr_running += 1

    def _execute(self, work: WorkStruct, me: Task) -> Generator[Any, Any, None]:
        """Run the work function, telling the pool when it blocks and resumes."""
        body = work.func(work, me)
        value: Any = None
        while True:
            try:
                d = body.send(value)
            except StopIteration:
                return
            if isinstance(d, int) and d < 0:
                self.worker_sleeping()
                value = yield SLEEP
                self.worker_running()
            else:
                value = yield d

    def _worker_thread(self, me: Task) -> Generator[Any, Any, None]:
        """worker_thread() / process_one_work()."""
        kernel = self.kernel
        item_ns = kernel.profile.ns("work_item_ns")
        tracer = kernel.tracer
        while True:
            while self.worklist:
                work = self.worklist.popleft()
                work.pending = False
                work.current = me
                if tracer is not None:
                    tracer.workqueue_execute_start(me, work)
                me.debt += item_ns
                yield from self._execute(work, me)
                if tracer is not None:
                    tracer.workqueue_execute_end(me, work)
                work.current = None
                if work.pool is self and not work.pending:
                    work.pool = None
            self.nr_running -= 1
            self.idle.append(me)
            yield SLEEP


class Workqueue:
    """``struct workqueue_struct``: bound (per-CPU pools) or unbound."""

    __slots__ = ("kernel", "name", "highpri", "unbound")

    def __init__(self, kernel: "Kernel", name: str, highpri: bool = False, unbound: bool = False) -> None:
        self.kernel = kernel
        self.name = name
        self.highpri = highpri
        self.unbound = unbound

    def pool_for(self, cpu: Cpu) -> WorkerPool:
        return self.kernel.worker_pool(None if self.unbound else cpu, self.highpri)

    # -- work_struct ----------------------------------------------------------

    def queue_work_on(self, cpu: Cpu, work: WorkStruct) -> bool:
        """queue_work_on(): False if the work was already pending."""
        if work.pending:
            return False
        work.pending = True
        self._queue(cpu, work)
        return True

    def _queue(self, cpu: Cpu, work: WorkStruct) -> None:
        """__queue_work()."""
        running = work.current
        if running is not None and work.pool is not None and not self.unbound:
            pool = work.pool  # still executing there: keep it non-reentrant
        else:
            pool = self.pool_for(cpu)
        tracer = self.kernel.tracer
        if tracer is not None:
            tracer.workqueue_queue_work(cpu, self, work, pool)
        pool.insert(work)

    # -- delayed_work ---------------------------------------------------------

    def queue_delayed_work_on(self, cpu: Cpu, dwork: DelayedWork, delay: int) -> bool:
        """queue_delayed_work_on(): False if already pending."""
        if dwork.pending:
            return False
        dwork.pending = True
        self._queue_delayed(cpu, dwork, delay)
        return True

    def _queue_delayed(self, cpu: Cpu, dwork: DelayedWork, delay: int) -> None:
        """__queue_delayed_work(): 0 queues at once; else arm the timer here."""
        dwork.wq = self
        if delay == 0:
            self._queue(cpu, dwork)
            return
        if dwork.timer is None:
            dwork.timer = TimerList(cpu, self._delayed_timer_fn, dwork)
        clock = self.kernel.clock
        dwork.timer.add(clock.jiffies + delay, cpu)

    def _delayed_timer_fn(self, dwork: object) -> None:
        """delayed_work_timer_fn(): runs in TIMER softirq on the timer's CPU."""
        assert isinstance(dwork, DelayedWork) and dwork.timer is not None
        self._queue(dwork.timer.cpu, dwork)

    def mod_delayed_work_on(self, cpu: Cpu, dwork: DelayedWork, delay: int) -> bool:
        """mod_delayed_work_on(): re-arm; True if it was pending before."""
        was = _grab_pending(dwork)
        dwork.pending = True
        self._queue_delayed(cpu, dwork, delay)
        return was


def _grab_pending(work: WorkStruct) -> bool:
    """try_to_grab_pending(): steal a pending item from its timer or worklist."""
    if not work.pending:
        return False
    if isinstance(work, DelayedWork) and work.timer is not None and work.timer.delete():
        work.pending = False
        return True
    pool = work.pool
    if pool is not None and work in pool.worklist:
        pool.worklist.remove(work)
        if work.current is None:
            work.pool = None
    work.pending = False
    return True


def cancel_work(work: WorkStruct) -> bool:
    """cancel_delayed_work()/cancel_work(): drop it if pending; do not wait if it runs."""
    return _grab_pending(work)
