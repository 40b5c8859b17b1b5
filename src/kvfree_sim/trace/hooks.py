"""The tracer interface: what the model reports, and when.

The model holds ``kernel.tracer`` (``None`` when not tracing, so that tracing
costs nothing then) and calls these methods at the instant the kernel's
tracepoint of the same name would fire; ``machine.kernel.sim.now`` is the
time.  A tracer subclasses :class:`Tracer` and formats what it wants.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..kernel.sched import Cpu, Task
    from ..machine import Machine


class Tracer:
    """No-op base: every hook the model calls, with its arguments."""

    def attach(self, machine: "Machine") -> None:
        """Called once the machine is built, before it runs."""

    def close(self) -> None:
        """The run ended: finish the output."""

    def abort(self) -> None:
        """The run failed: remove partial output."""

    # sched
    def sched_switch(self, cpu: "Cpu", prev: "Task | None", next: "Task | None") -> None:
        """``prev`` (None: idle) leaves ``cpu`` for ``next``; prev.runnable tells R from S."""

    def sched_wakeup(self, cpu: "Cpu", task: "Task") -> None:
        """``task`` becomes runnable on ``cpu`` (try_to_wake_up)."""

    # timers
    def hrtimer_start(self, cpu: "Cpu", timer: Any, expires_ns: int) -> None:
        """An hrtimer armed on ``cpu`` to fire at ``expires_ns``."""

    def hrtimer_cancel(self, cpu: "Cpu", timer: Any, expiring: bool = False) -> None:
        """A queued hrtimer leaves the queue: cancelled, re-armed, or (``expiring``) about to run."""

    def hrtimer_expire(self, cpu: "Cpu", timer: Any) -> None:
        """hrtimer_expire_entry: its callback runs now in hardirq on ``cpu``."""

    # workqueues
    def workqueue_queue_work(self, cpu: "Cpu", wq: Any, work: Any, pool: Any) -> None:
        """``work`` queued from ``cpu`` on ``wq`` (pool.cpu is where it will run; None: unbound)."""

    def workqueue_execute_start(self, worker: "Task", work: Any) -> None:
        """``worker`` (a kworker) starts ``work`` (work.func, work.name)."""

    def workqueue_execute_end(self, worker: "Task", work: Any) -> None:
        """``worker`` finished ``work``."""

    # reclaim
    def mm_shrink_slab_start(self, cpu: "Cpu", shrinker: Any, sc: Any, nr_deferred: int, freeable: int,
                             delta: int, total_scan: int, priority: int) -> None:
        """do_shrink_slab() computed its scan; sc.task is the reclaimer, sc.gfp_mask its flags."""

    def mm_shrink_slab_end(self, cpu: "Cpu", shrinker: Any, freed: int, nr_deferred: int,
                           new_deferred: int, total_scan: int) -> None:
        """do_shrink_slab() is done."""

    def mm_vmscan_direct_reclaim_begin(self, task: "Task", order: int, gfp: int) -> None:
        """``task`` enters try_to_free_pages()."""

    def mm_vmscan_direct_reclaim_end(self, task: "Task", nr_reclaimed: int) -> None:
        """``task`` leaves try_to_free_pages()."""

    def mm_vmscan_kswapd_wake(self, task: "Task", order: int) -> None:
        """kswapd starts balance_pgdat()."""

    # kvfree_rcu's bulk pages
    def mm_page_alloc(self, task: "Task", n: int, gfp: int) -> None:
        """``task`` got ``n`` order-0 pages for kvfree_rcu bulk blocks."""

    def mm_page_free(self, cpu: "Cpu", n: int) -> None:
        """``n`` kvfree_rcu bulk pages freed from ``cpu``'s current context."""

    # RCU
    def rcu_grace_period(self, gp_seq: int, event: str) -> None:
        """The GP kthread (kernel.rcu.kthread) starts ("start") or ends ("end") a GP."""

    def rcu_invoke_kfree_bulk_callback(self, cpu: "Cpu", nr_records: int, pages: int) -> None:
        """kfree_rcu_work() on ``cpu`` kfree_bulk()s ``pages`` pages holding ``nr_records`` objects."""

    # OOM and console
    def mark_victim(self, task: "Task") -> None:
        """The OOM killer chose ``task``."""

    def console(self, t_ns: int, text: str, task: "Task | None" = None) -> None:
        """A printk() line (from ``task``, when the model knows which)."""
