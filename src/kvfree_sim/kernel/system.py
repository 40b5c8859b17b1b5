"""One simulated kernel: the services kvfree_rcu() lives on, wired together.

:class:`Kernel` owns the event loop, the clock, the CPUs and their run queues,
RCU, the workqueues and the memory manager.  It knows nothing of kvfree_rcu or
of rcuscale: those are built on top of it by :mod:`kvfree_sim.machine`.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any, Callable, Generator, Mapping

from ..core.costs import MachineProfile
from ..core.rng import Rng
from ..core.sim import Simulator
from .host import TimerIrqLatency, start_host
from .mm.gfp import GFP_KERNEL, __GFP_RECLAIMABLE
from .mm.page_alloc import PageAllocator
from .mm.vmscan import Vmscan
from .mm.oom import OomKiller
from .rcu import Rcu
from .sched import SLEEP, CfsParams, Cpu, Task, wake_task
from .time import Clock
from .workqueue import RcuWork, Workqueue, WorkerPool

#: a kernfs node's radix_tree_node slab (SLAB_RECLAIM_ACCOUNT: kmem_cache_alloc() adds __GFP_RECLAIMABLE)
GFP_KERNEL_RECLAIMABLE = GFP_KERNEL | __GFP_RECLAIMABLE

if TYPE_CHECKING:
    from ..trace.hooks import Tracer

#: include/linux/printk.h: CONSOLE_LOGLEVEL_DEFAULT (CONFIG_CONSOLE_LOGLEVEL_DEFAULT=7);
#: a record is shown if its level is below console_loglevel
CONSOLE_LOGLEVEL_DEFAULT = 7
LOGLEVEL_DEBUG = 7  # KERN_DEBUG, initcall_debug's own lines
#: tools/testing/selftests/rcutorture/bin/functions.sh identify_qemu_append(), x86: kvm.sh's
#: own 'initcall_debug debug' comes before the user's --bootargs, so a user's setting wins
KVM_SH_X86_LOGLEVEL = 10  # debug: CONSOLE_LOGLEVEL_DEBUG


@cache
def boot_tail() -> tuple[tuple[int, int, str], ...]:
    """The console lines kernel_init writes after the test's initcall in a kvm.sh x86
    guest, as (preemptible ns before the line, its printk level, text): the data file
    ``boot_tail_kvm_x86.tsv`` (its header says where it comes from)."""
    rows = []
    for line in files(__package__).joinpath("boot_tail_kvm_x86.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            body_us, level, text = line.split("\t", 2)
            rows.append((int(body_us) * 1000, int(level), text))
    return tuple(rows)


class Kernel:
    """The kernel services of one machine."""

    def __init__(
        self,
        ncpus: int,
        memory_bytes: int,
        hz: int,
        profile: MachineProfile,
        seed: int,
        mm_version: str,
        tracer: "Tracer | None" = None,
        jiffies_till_first_fqs: int | None = None,
        jiffies_till_next_fqs: int | None = None,
        cmdline: Mapping[str, Any] | None = None,
    ) -> None:
        self.sim = Simulator()
        self.rng = Rng(seed)
        self.clock = Clock(self.sim, hz)
        self.profile = profile
        self.tracer = tracer
        self.costs_hrtimer_min_delta = profile.ns("hrtimer_min_delta_ns")
        self.cfs = CfsParams(ncpus, base_slice=mm_version >= "5.13")
        self._pid = 0
        self.tasks: list[Task] = []
        self.console: list[tuple[int, str]] = []  # printk() lines: (ns, text)
        self.console_char_ns = profile.costs["console_char_ns"]
        self.console_busy_until = 0  # when the serial console has written every line so far
        kvm_sh = bool(profile.layout["kvm_sh_x86"])
        given = dict(cmdline or {})
        self.initcall_debug: bool = bool(given.get("initcall_debug", kvm_sh))
        self.console_loglevel: int = int(given.get("loglevel", KVM_SH_X86_LOGLEVEL if kvm_sh
                                                   else CONSOLE_LOGLEVEL_DEFAULT))
        self.kvm_sh_x86 = kvm_sh  # kernel_init's later initcalls are boot_tail()'s
        self.cpus = [Cpu(self, i) for i in range(ncpus)]
        self.timer_irq_latency = TimerIrqLatency(self)
        # pid 1: the guest's init, asleep for the whole run (kvm.sh's initrd)
        self.init_task = Task(self, "init", _sleep_forever, kthread=False, boot=True)
        # pid 2: kthreadd, which creates every kthread (kernel/kthread.c)
        self.kthreadd = Task(self, "kthreadd", self._kthreadd, boot=True)
        self._kthread_create_list: list[Task] = []  # the creators waiting for kthreadd
        self.kthread_create_ns = profile.ns("kthread_create_ns")
        self._pools: dict[tuple[int, bool], WorkerPool] = {}
        self.system_wq = Workqueue(self, "events")
        self.system_highpri_wq = Workqueue(self, "events_highpri", highpri=True)
        self.system_unbound_wq = Workqueue(self, "events_unbound", unbound=True)
        self.rcu = Rcu(self, jiffies_till_first_fqs, jiffies_till_next_fqs)
        self.mm = PageAllocator(self, memory_bytes, mm_version, buddy=bool(profile.layout["buddy_allocator"]))
        self.vmscan = Vmscan(self, mm_version)
        self.oom = OomKiller(self)
        self.panicked: str | None = None
        #: set while another CPU's progress is committed on behalf of a caller
        self.foreign_commit = False
        #: called as hook(cpu, prev, ns_prev_ran) at every context switch
        self.switch_hook: Callable[[Cpu, Task, int], None] | None = None

    def start(self) -> None:
        """Start the kernel threads (rcu_preempt, kswapd) and the host's vCPU scheduling (:mod:`.host`)."""
        self.rcu.start()
        self.vmscan.start()
        start_host(self)

    # -- tasks -------------------------------------------------------------------

    def new_pid(self) -> int:
        self._pid += 1
        return self._pid

    def register_task(self, t: Task) -> None:
        self.tasks.append(t)

    def kthread_create(self, creator: Task) -> Generator[Any, Any, None]:
        """kthread_create_on_node(): queue the request on ``kthread_create_list``, wake
        kthreadd and sleep until the new thread, run once by kthread(), complete()s it
        (kernel/kthread.c).  The caller then wakes the new thread itself."""
        self._kthread_create_list.append(creator)
        wake_task(self.kthreadd)
        yield SLEEP

    def _kthreadd(self, me: Task) -> Generator[Any, Any, None]:
        """kthreadd(): for each request, create_kthread() -> kernel_thread() (copy_process(),
        ``kthread_create_ns`` of kthreadd's CPU); the new thread's kthread() sets
        ``create->result``, complete()s the creator and sleeps, here folded into the wakeup."""
        while True:
            while not self._kthread_create_list:
                yield SLEEP
            creator = self._kthread_create_list.pop(0)
            yield self.kthread_create_ns
            wake_task(creator)

    def select_cpu(self, t: Task) -> Cpu:
        """select_task_rq_fair() for an unpinned task: its previous CPU if idle,
        else the first idle CPU, else the previous CPU (select_idle_sibling())."""
        prev = t.cpu or self.cpus[0]
        if prev.is_idle:
            return prev
        n = len(self.cpus)
        for i in range(1, n):
            c = self.cpus[(prev.id + i) % n]
            if c.is_idle:
                return c
        return prev

    # -- workqueues -----------------------------------------------------------------

    def worker_pool(self, cpu: Cpu | None, highpri: bool) -> WorkerPool:
        """The per-CPU (or the unbound) worker pool of the given priority."""
        key = (-1 if cpu is None else cpu.id, highpri)
        pool = self._pools.get(key)
        if pool is None:
            label = "u" if cpu is None else str(cpu.id)
            pool = WorkerPool(self, cpu, -20 if highpri else 0, label)
            self._pools[key] = pool
        return pool

    def queue_rcu_work(self, cpu: Cpu, wq: Workqueue, rwork: RcuWork) -> bool:
        """queue_rcu_work(): set PENDING, call_rcu(); after the GP the callback
        (rcu_work_rcufn()) queues the work on the CPU that runs it."""
        if rwork.pending:
            return False
        rwork.pending = True
        rwork.wq = wq
        self.rcu.call_rcu(cpu, self._rcu_work_rcufn, (rwork, cpu))
        return True

    @staticmethod
    def _rcu_work_rcufn(arg: Any) -> None:
        rwork, cpu = arg
        rwork.wq._queue(cpu, rwork)

    # -- memory -----------------------------------------------------------------------

    def register_shrinker(self, name: str, count: Callable[..., int], scan: Callable[..., int],
                          scan_state: Callable[[], object] | None = None,
                          repeat_scan: Callable[[int, int], None] | None = None) -> None:
        self.vmscan.register_shrinker(name, count, scan, scan_state, repeat_scan)

    # -- the end ------------------------------------------------------------------------

    def printk(self, text: str, task: Task | None = None) -> None:
        """Log a line (its timestamp is now, as vprintk_emit() takes it), at no CPU cost."""
        self.console.append((self.sim.now, text))
        if self.tracer is not None:
            self.tracer.console(self.sim.now, text, task)

    def late_initcalls(self, task: Task) -> Generator[Any, Any, None]:
        """do_initcalls() goes on after a built-in test's initcall (kernel_init, PID 1):
        in a kvm.sh x86 guest, its console output (:meth:`initcall_console`); in the
        calibration guest, its page allocations (:meth:`initcall_pages`)."""
        if self.kvm_sh_x86:
            yield from self.initcall_console(task)
        yield from self.initcall_pages(task)

    def initcall_console(self, task: Task) -> Generator[Any, Any, None]:
        """kernel_init's later initcalls in a kvm.sh x86 guest, line by line (:func:`boot_tail`).

        init/main.c do_one_initcall(): with ``initcall_debug`` each initcall is framed by
        ``calling  fn @ 1`` and ``initcall fn returned 0 after N usecs`` (KERN_DEBUG, so on
        the console only with kvm.sh's ``debug``); the drivers print their own lines.
        Each line is written by printk_from() with preemption disabled, so the CPU reports
        no quiescent state meanwhile; the initcalls' own work in between is preemptible."""
        for body_ns, level, text in boot_tail():
            if body_ns:
                yield body_ns
            if level < self.console_loglevel and (level < LOGLEVEL_DEBUG or self.initcall_debug):
                yield from self.printk_from(task, text)

    def initcall_pages(self, task: Task) -> Generator[Any, Any, None]:
        """The calibration guest's later initcalls (pty_init's 256 terminal pairs,
        slab_sysfs_init, ...) add kernfs nodes, whose inode-number radix_tree_nodes are
        RECLAIMABLE slab pages, kept (boot memory): the profile's
        ``late_initcall_reclaimable_kb`` spread over ``late_initcall_ns``
        (data/qemu-tcg-here-2026-11-26/NOTES.md item 10).  Only their page requests are
        modelled, not the initcalls' CPU time."""
        layout = self.profile.layout
        n = int(layout["late_initcall_reclaimable_kb"]) // 4
        if not n:
            return
        step = max(1, int(layout["late_initcall_ns"]) * self.clock.hz // (n * 1_000_000_000))
        for _ in range(n):
            yield from self.vmscan.schedule_timeout_uninterruptible(task, step)
            if (yield from self.mm.alloc_pages(task, GFP_KERNEL_RECLAIMABLE, 0, "base")):
                self.mm.base_pages += 1

    def printk_from(self, task: Task, text: str) -> Generator[Any, Any, None]:
        """printk() from ``task``, which also writes the line to the serial console.

        kernel/printk/printk.c (v5.11, v6.1): vprintk_emit() stores the record, then,
        with preemption disabled, the caller takes the console
        (console_trylock_spinning(): it spins while another CPU's line goes out)
        and console_unlock() writes it.  The console writes ``"[%5lu.%06lu] "``,
        the text and CRLF, ``console_char_ns`` a character; lines go out in order.
        The kernel also turns interrupts off for each record; here they stay on,
        so the tick comes on time rather than at the end of the record.
        """
        self.printk(text, task)
        now = self.sim.now
        start = max(now, self.console_busy_until)
        self.console_busy_until = start + round((len(text) + 17) * self.console_char_ns)
        spin_and_write = self.console_busy_until - now
        if spin_and_write > 0:
            task.preempt_off = True
            # The serial port's time is the emulator's and the host's, not guest code:
            # however fast the vCPU runs now, the line takes as long (host.VcpuSpeed).
            assert task.cpu is not None
            yield task.cpu.work(spin_and_write)

    def panic(self, message: str) -> None:
        """panic(): the machine stops here."""
        self.panicked = message
        self.printk(f"Kernel panic - not syncing: {message}")
        self.sim.stop()

    def kill_task(self, t: Task) -> None:
        """The OOM victim exits: off its run queue, its pages back to the allocator."""
        if t.cpu is not None:
            t.cpu.remove(t)
        t.exited = True
        t.runnable = False
        if t.rss_pages:
            self.mm.free_pages(t.rss_pages, 0, f"task:{t.pid}")
            t.rss_pages = 0

    def sync_all(self) -> None:
        """Bring every CPU's divisible burst up to now (before a global decision)."""
        for cpu in self.cpus:
            if cpu.curr is not None and cpu.curr.chunk is not None:
                cpu.sync()


def _sleep_forever(me: Task) -> Generator[Any, Any, None]:
    yield SLEEP
