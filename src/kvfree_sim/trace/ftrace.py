"""An ftrace-format tracer: the run as the kernel's ``/sys/kernel/tracing/trace`` file.

The output is what ``cat trace`` prints on a Linux 6.1 kernel with the events
enabled (``# tracer: nop``, the ``irqs-off/BH-disabled`` column header of
``print_func_help_header_irq()``, then one line per event laid out by
``trace_print_context()``: ``%16s-%-7d [%03d] FLAGS %5lu.%06lu: event: fields``),
with each event's fields printed by its ``TP_printk()`` format in
``include/trace/events/{sched,timer,workqueue,vmscan,kmem,rcu,oom}.h`` of
6.1.  It is laid out to pass the rules of Perfetto's ftrace-text (systrace)
importer, so ui.perfetto.dev opens it, as do other tools that read ftrace text.

What the kernel would know and the model does not is made up consistently,
never at random: pointers (``%p`` prints hashed values in the kernel too) are
stable per object, page frame numbers of kvfree_rcu's bulk pages come from a
synthetic pool (a page freed is one allocated earlier, last in first out),
and the ``%pS`` symbol sizes are placeholders.  ``req_cpu`` of
``workqueue_queue_work`` is ``WORK_CPU_UNBOUND`` (``NR_CPUS``), as for every
``queue_work()``/``queue_delayed_work()``/``queue_rcu_work()`` kvfree_rcu makes;
the run's configuration does not keep ``CONFIG_NR_CPUS``, so it is taken as
x86_64_defconfig's 64 (or the CPU count, if larger).

Besides the kernel's events, ``trace_marker`` writes (event ``ftrace:print``,
printed as ``tracing_mark_write: ...``) carry what Perfetto draws as tracks:

* counters ``C|<pid>|<name>|<value>``: ``free_pages``, ``wmark_min``,
  ``wmark_low``, ``wmark_high`` (summed over zones, boost included),
  ``free_pcp`` (free pages on the per-CPU lists, which the watermarks do not see),
  ``kvfree_cache_cpuN`` (``krcp->nr_bkv_objs``) and ``kvfree_count_cpuN``
  (``krcp->count``), under the first kfree thread's pid.  A counter is written
  when it changed: all of them at the first traced hook of every millisecond
  of simulated time, and the global ones and the CPU's own right after page
  allocations and frees, shrinker calls, bulk frees and work items;
* slices ``B|<pid>|direct_reclaim`` / ``E|<pid>`` around every direct reclaim and
  ``B|<pid>|fill_page_cache_func`` / ``E|<pid>`` around every refill work item
  (nested in its ``workqueue_execute_start``/``_end`` pair).

The model charges the CPU time of cheap steps after the fact (a task's
*debt*, see docs/design.md), so a work function often returns before the time
it costs has passed.  ``workqueue_execute_end`` is therefore written when the
kworker has paid for the item (when it sleeps or starts its next item), which
is when the kernel's function would have returned; a work item's slice then
covers the CPU time it took.

The tracer never schedules events of its own and never calls into the model,
so a traced run is the same run as an untraced one (same counters, same
``events``, same end time).  Lines come out in the order the hooks fire,
which is time order (a stable sort at the end would repair any exception).
They gather in memory, then stream into a temporary file next to the target
once there are many; :meth:`FtraceTracer.close` writes the header (it needs
the entry count) and the lines to another temporary file and renames it into
place, :meth:`FtraceTracer.abort` removes what was written.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Any, Iterable

from ..config import ConfigError
from ..kernel.mm.gfp import gfp_string
from .hooks import Tracer

if TYPE_CHECKING:
    from ..kernel.sched import Cpu, Task
    from ..machine import Machine

NSEC_PER_SEC = 1_000_000_000
TASK_COMM_LEN = 16
#: x86_64_defconfig CONFIG_NR_CPUS; WORK_CPU_UNBOUND == NR_CPUS
DEFAULT_NR_CPUS = 64
#: how often (simulated ns) the counters are checked, at the next traced hook
SAMPLE_NS = 1_000_000
FLUSH_LINES = 8192

#: Every event the tracer can write, by ftrace subsystem (``events/<subsystem>/<event>``).
EVENTS: dict[str, tuple[str, ...]] = {
    "sched": ("sched_switch", "sched_wakeup"),
    "timer": ("hrtimer_start", "hrtimer_cancel", "hrtimer_expire_entry"),
    "workqueue": ("workqueue_queue_work", "workqueue_execute_start", "workqueue_execute_end"),
    "vmscan": ("mm_shrink_slab_start", "mm_shrink_slab_end", "mm_vmscan_direct_reclaim_begin",
               "mm_vmscan_direct_reclaim_end", "mm_vmscan_kswapd_wake"),
    "kmem": ("mm_page_alloc", "mm_page_free"),
    "rcu": ("rcu_grace_period", "rcu_invoke_kfree_bulk_callback"),
    "oom": ("mark_victim",),
    "printk": ("console",),
    "ftrace": ("print",),  # trace_marker: the counter and slice lines
}
ALL_EVENTS: tuple[str, ...] = tuple(f"{s}:{e}" for s, evs in EVENTS.items() for e in evs)

#: Work functions drawn as trace_marker slices as well as workqueue_execute_* pairs.
MARKER_WORK = frozenset({"fill_page_cache_func"})
#: Placeholder symbol size for %pS (``sym+0x0/0xSIZE``): the model has no text section.
SYMBOL_SIZE = 0x100
NKVFREE_BULK_MAX_ENTR = (4096 - 16) // 8  # 510, as kvfree_rcu/tree.py

_GFP_CACHE: dict[int, str] = {}


def show_gfp_flags(mask: int) -> str:
    """``show_gfp_flags()``: ``__print_flags()`` over ``__def_gfpflag_names``, ``none`` for 0.

    The same table and walk as ``%pGg``, which :func:`~kvfree_sim.kernel.mm.gfp.gfp_string` follows.
    """
    s = _GFP_CACHE.get(mask)
    if s is None:
        s = _GFP_CACHE[mask] = gfp_string(mask) if mask else "none"
    return s


# -- the ftrace header ------------------------------------------------------------


def header(entries: int, ncpus: int) -> str:
    """``# tracer: nop`` and the 6.1 column header (trace.c: s_show(),
    print_event_info(), print_func_help_header_irq() without tgid)."""
    sp = "  "  # "%.*s" of spaces, prec 2
    return (
        "# tracer: nop\n"
        "#\n"
        f"# entries-in-buffer/entries-written: {entries}/{entries}   #P:{ncpus}\n"
        "#\n"
        f"#                            {sp}  _-----=> irqs-off/BH-disabled\n"
        f"#                            {sp} / _----=> need-resched\n"
        f"#                            {sp}| / _---=> hardirq/softirq\n"
        f"#                            {sp}|| / _--=> preempt-depth\n"
        f"#                            {sp}||| / _-=> migrate-disable\n"
        f"#                            {sp}|||| /     delay\n"
        f"#           TASK-PID  {sp} CPU#  |||||  TIMESTAMP  FUNCTION\n"
        f"#              | |    {sp}   |   |||||     |         |\n"
    )


# -- parsing the command-line specs ---------------------------------------------------


def parse_events(spec: str | None) -> frozenset[str]:
    """``--trace-events``: comma-separated ``subsystem:event`` globs, as ftrace's set_event.

    ``sched:*``, ``*:mm_shrink_slab_*``, ``sched_switch`` (any subsystem), ``vmscan``
    or ``vmscan:`` (the whole subsystem), ``all``; ``!pattern`` removes.  A spec
    of removals only starts from every event.  Default (None): every event.
    """
    if spec is None:
        return frozenset(ALL_EVENTS)
    items = [s.strip() for s in spec.split(",")]
    if not spec.strip() or any(not s for s in items):
        raise ConfigError(f"--trace-events '{spec}': empty event name (expected e.g. 'sched:*,vmscan:*')")
    chosen: set[str] = set(ALL_EVENTS) if all(s.startswith("!") for s in items) else set()
    for item in items:
        neg = item.startswith("!")
        pat = item[1:].strip() if neg else item
        if pat in ("all", "*"):
            pat = "*:*"
        if ":" in pat:
            sub, _, ev = pat.partition(":")
            sub = sub or "*"
            ev = ev or "*"
        elif pat in EVENTS:
            sub, ev = pat, "*"
        else:
            sub, ev = "*", pat
        hits = {f"{s}:{e}" for s, evs in EVENTS.items() if fnmatch.fnmatchcase(s, sub)
                for e in evs if fnmatch.fnmatchcase(e, ev)}
        if not hits:
            raise ConfigError(f"--trace-events '{spec}': '{item}' matches no event; "
                              f"events are {', '.join(ALL_EVENTS)}")
        if neg:
            chosen -= hits
        else:
            chosen |= hits
    return frozenset(chosen)


def parse_window(spec: str | None) -> tuple[int, int | None]:
    """``--trace-window START:END`` in seconds, either side optional: ``(start_ns, end_ns|None)``.

    Events at ``START <= t < END`` are written.
    """
    if spec is None:
        return 0, None
    start_s, colon, end_s = spec.partition(":")
    if not colon or ":" in end_s:
        raise ConfigError(f"--trace-window '{spec}': expected START:END in seconds (either side optional)")

    def sec(text: str, what: str) -> int | None:
        text = text.strip()
        if not text:
            return None
        try:
            v = float(text)
        except ValueError:
            raise ConfigError(f"--trace-window '{spec}': {what} '{text}' is not a number of seconds") from None
        if not v >= 0 or v == float("inf"):
            raise ConfigError(f"--trace-window '{spec}': {what} must be a finite time >= 0")
        return round(v * NSEC_PER_SEC)

    start = sec(start_s, "START")
    end = sec(end_s, "END")
    if start is not None and end is not None and end <= start:
        raise ConfigError(f"--trace-window '{spec}': END must be after START")
    return start or 0, end


def open_tracer(path: str, events: str | None = None, window: str | None = None) -> "FtraceTracer":
    """What ``kvfree-sim run --trace`` calls: validate the specs, open the output."""
    if not path:
        raise ConfigError("--trace: empty file name")
    return FtraceTracer(path, parse_events(events), parse_window(window))


# -- the tracer ------------------------------------------------------------------------

_CTX = {"task": ".", "hardirq": "h", "softirq": "s"}
_IDLE_HEAD = f"{'<idle>':>16}-{0:<7}"
_FLAGS: dict[tuple[bool, bool, str, int], str] = {}


def _pointer(seq: int) -> str:
    """A stable stand-in for a hashed ``%p`` (16 hex digits, upper half zero)."""
    return f"{(seq * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFFFFF:016x}"


class FtraceTracer(Tracer):
    """Writes the run as ftrace text (see the module docstring)."""

    def __init__(self, path: str, events: Iterable[str] = ALL_EVENTS,
                 window: tuple[int, int | None] = (0, None), sample_ns: int = SAMPLE_NS) -> None:
        self.path = os.fspath(path)
        self.events = frozenset(events)
        unknown = self.events - set(ALL_EVENTS)
        if unknown:
            raise ConfigError(f"unknown trace events: {', '.join(sorted(unknown))}")
        self.t0, t1 = window
        self.t1 = t1 if t1 is not None else 1 << 62
        self.sample_ns = sample_ns
        on = self.events.__contains__
        self.e_switch = on("sched:sched_switch")
        self.e_wakeup = on("sched:sched_wakeup")
        self.e_hr_start = on("timer:hrtimer_start")
        self.e_hr_cancel = on("timer:hrtimer_cancel")
        self.e_hr_expire = on("timer:hrtimer_expire_entry")
        self.e_wq_queue = on("workqueue:workqueue_queue_work")
        self.e_wq_start = on("workqueue:workqueue_execute_start")
        self.e_wq_end = on("workqueue:workqueue_execute_end")
        self.e_shrink_start = on("vmscan:mm_shrink_slab_start")
        self.e_shrink_end = on("vmscan:mm_shrink_slab_end")
        self.e_dr_begin = on("vmscan:mm_vmscan_direct_reclaim_begin")
        self.e_dr_end = on("vmscan:mm_vmscan_direct_reclaim_end")
        self.e_kswapd = on("vmscan:mm_vmscan_kswapd_wake")
        self.e_page_alloc = on("kmem:mm_page_alloc")
        self.e_page_free = on("kmem:mm_page_free")
        self.e_gp = on("rcu:rcu_grace_period")
        self.e_bulk = on("rcu:rcu_invoke_kfree_bulk_callback")
        self.e_victim = on("oom:mark_victim")
        self.e_console = on("printk:console")
        self.e_print = on("ftrace:print")
        # output: lines gather in memory, then stream into a temporary body file
        # next to the target once there are many (see _flush() and close())
        self._dir = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(self._dir):
            raise ConfigError(f"--trace {self.path}: directory {self._dir} does not exist")
        if not os.access(self._dir, os.W_OK | os.X_OK):
            raise ConfigError(f"--trace {self.path}: directory {self._dir} is not writable")
        if os.path.isdir(self.path):
            raise ConfigError(f"--trace {self.path}: is a directory")
        self._body: Any = None
        self._body_path: str | None = None
        self._buf: list[str] = []
        self._entries = 0
        self._last_now = 0
        self._unsorted = False
        self._closed = False
        # model state, set by attach()
        self._sim: Any = None
        self._ncpus = 0
        self._early: list[tuple[int, str]] = []  # printk() before attach()
        # formatting caches
        self._ts_now = -1
        self._ts_str = ""
        self._heads: dict[Any, str] = {}
        self._head_cpu: dict[tuple[Any, int], str] = {}
        self._ptrs: dict[Any, str] = {}
        self._busy: dict[Any, Any] = {}  # kworker -> work item it executes
        self._pending_end: dict[Any, Any] = {}  # kworker -> item whose CPU time it still pays
        # counters
        self._next_sample = 0
        self._cnames: list[str] = []
        self._last_vals: list[int] | None = None
        self._counter_pid = 0
        # synthetic page frames for mm_page_alloc/mm_page_free
        self._pfn_next = 0
        self._pfn_free: list[int] = []
        self._pfn_live: list[int] = []
        self._bulk_seq = 0
        self._page_ptrs: dict[int, str] = {}

    # -- set-up ------------------------------------------------------------------------

    def attach(self, machine: "Machine") -> None:
        k = machine.kernel
        self._sim = k.sim
        self._ncpus = len(k.cpus)
        self._cpus = k.cpus
        self._mm = k.mm
        self._zones = k.mm.zones
        self._krc = machine.kvfree.krc
        self._rcu_kthread = k.rcu.kthread
        self._kswapd = getattr(k.vmscan, "kswapd", None)
        self._nr_cpus = max(DEFAULT_NR_CPUS, self._ncpus)
        self._counter_pid = machine.test.threads[0].pid if machine.test.threads else 0
        self._cnames = ["free_pages", "wmark_min", "wmark_low", "wmark_high", "free_pcp"]
        self._cnames += [f"kvfree_cache_cpu{i}" for i in range(len(self._krc))]
        self._cnames += [f"kvfree_count_cpu{i}" for i in range(len(self._krc))]
        self._pfn_next = max(k.mm.present_pages, 1) - 1
        # Stand-in pointers of the objects kvfree_rcu traces, fixed up front so
        # that they do not depend on the event selection or the window.
        for krcp in self._krc:
            for name in ("hrtimer", "page_cache_work", "monitor_work"):
                obj = getattr(krcp, name, None)
                if obj is not None:
                    self._ptr(obj)
            for krwp in getattr(krcp, "krw_arr", ()):
                self._ptr(krwp.rcu_work)
        for shrinker in k.vmscan.shrinkers:
            self._ptr(shrinker)
        for t_ns, text in self._early:
            self.console(t_ns, text)
        self._early = []

    # -- output --------------------------------------------------------------------------

    def _ts(self, now: int) -> str:
        if now != self._ts_now:
            self._ts_now = now
            us = now // 1000
            self._ts_str = f"{us // 1_000_000:5d}.{us % 1_000_000:06d}"
        return self._ts_str

    def _head(self, task: "Task | None") -> str:
        if task is None:
            return _IDLE_HEAD
        h = self._heads.get(task)
        if h is None:
            h = self._heads[task] = f"{task.name[:TASK_COMM_LEN - 1]:>16}-{task.pid:<7}"
        return h

    def _ptr(self, obj: Any) -> str:
        p = self._ptrs.get(obj)
        if p is None:
            p = self._ptrs[obj] = _pointer(len(self._ptrs) + 1)
        return p

    def _prefix(self, now: int, cpu: int, task: "Task | None", flags: str) -> str:
        """``TASK-PID [CPU] FLAGS TIMESTAMP: `` of a line written now."""
        if now < self._last_now:
            self._unsorted = True
        else:
            self._last_now = now
        key = (task, cpu)
        hc = self._head_cpu.get(key)
        if hc is None:
            hc = self._head_cpu[key] = f"{self._head(task)} [{cpu:03d}] "
        ts = self._ts_str if now == self._ts_now else self._ts(now)
        return f"{hc}{flags} {ts}: "

    def _line(self, now: int, cpu: int, task: "Task | None", flags: str, text: str) -> None:
        buf = self._buf
        buf.append(f"{self._prefix(now, cpu, task, flags)}{text}\n")
        if len(buf) >= FLUSH_LINES:
            self._flush()

    def _lines(self, now: int, cpu: int, task: "Task | None", flags: str, texts: Iterable[str]) -> None:
        """Several lines of one hook: same task, CPU, flags and time."""
        pre = self._prefix(now, cpu, task, flags)
        buf = self._buf
        buf.extend([f"{pre}{t}\n" for t in texts])
        if len(buf) >= FLUSH_LINES:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        if self._body is None:
            fd, self._body_path = tempfile.mkstemp(prefix=f".{os.path.basename(self.path)}.", suffix=".body",
                                                   dir=self._dir)
            self._body = os.fdopen(fd, "w", encoding="utf-8", newline="\n", buffering=1 << 20)
        self._entries += len(self._buf)
        self._body.write("".join(self._buf))
        self._buf = []

    @staticmethod
    def _flags(cpu: "Cpu", irqs_off: bool, depth: int, ctx: str | None = None) -> str:
        """trace_print_lat_fmt(): irqs-off, need-resched, hardirq/softirq, preempt-depth, migrate-disable."""
        key = (irqs_off, cpu.need_resched, ctx or cpu.context, depth)
        f = _FLAGS.get(key)
        if f is None:
            f = _FLAGS[key] = (("d" if irqs_off else ".") + ("N" if key[1] else ".") + _CTX.get(key[2], ".")
                               + (f"{depth:x}" if depth else ".") + ".")
        return f

    def _in(self, now: int) -> bool:
        """In the window; also takes the periodic counter sample."""
        if now < self.t0 or now >= self.t1:
            return False
        if now >= self._next_sample and self.e_print:
            self._sample(now)
        return True

    # -- counters and slices (trace_marker) ------------------------------------------------

    def _counter_values(self) -> list[int]:
        wmin = wlow = whigh = 0
        for z in self._zones:
            wmin += z.wmark(0)
            wlow += z.wmark(1)
            whigh += z.wmark(2)
        krc = self._krc
        return [self._mm.nr_free_pages(), wmin, wlow, whigh, self._mm.nr_pcp_pages(),
                *[c.nr_bkv_objs for c in krc], *[c.count for c in krc]]

    def _sample(self, now: int, cpu: "Cpu | None" = None) -> None:
        """Write the counters that changed since they were last written (all of them)."""
        s = self.sample_ns
        self._next_sample = (now // s + 1) * s
        vals = self._counter_values()
        last = self._last_vals
        if vals == last:
            return
        if cpu is None:
            cpu = self._cpus[0]
        pid = self._counter_pid
        if last is None:
            texts = [f"tracing_mark_write: C|{pid}|{n}|{v}" for n, v in zip(self._cnames, vals)]
        else:
            texts = [f"tracing_mark_write: C|{pid}|{n}|{v}" for n, v, o in zip(self._cnames, vals, last) if v != o]
        self._lines(now, cpu.id, cpu.curr, self._flags(cpu, False, 0, "task"), texts)
        self._last_vals = vals

    def _changed(self, now: int, cpu: "Cpu") -> None:
        """This hook may have changed the global counters and ``cpu``'s: write those that did
        (the other CPUs' wait for the periodic sample)."""
        if not self.e_print or not self.t0 <= now < self.t1:
            return
        last = self._last_vals
        if last is None:
            self._sample(now, cpu)
            return
        wmin = wlow = whigh = 0
        for z in self._zones:
            wmin += z.wmark(0)
            wlow += z.wmark(1)
            whigh += z.wmark(2)
        krcp = self._krc[cpu.id]
        n = len(self._krc)
        idx = (0, 1, 2, 3, 4, 5 + cpu.id, 5 + n + cpu.id)
        vals = (self._mm.nr_free_pages(), wmin, wlow, whigh, self._mm.nr_pcp_pages(), krcp.nr_bkv_objs, krcp.count)
        texts = []
        pid = self._counter_pid
        names = self._cnames
        for i, v in zip(idx, vals):
            if last[i] != v:
                last[i] = v
                texts.append(f"tracing_mark_write: C|{pid}|{names[i]}|{v}")
        if texts:
            self._lines(now, cpu.id, cpu.curr, self._flags(cpu, False, 0, "task"), texts)

    def _by(self, task: "Task", text: str) -> None:
        """A line written now by ``task``, running in task context on its CPU."""
        cpu = task.cpu
        assert cpu is not None
        self._line(self._sim.now, cpu.id, task, self._flags(cpu, False, 0, "task"), text)

    def _mark(self, task: "Task", text: str) -> None:
        """A trace_marker write by ``task``."""
        self._by(task, f"tracing_mark_write: {text}")

    # -- sched ---------------------------------------------------------------------------

    def _sleep_state(self, t: "Task") -> str:
        """What __trace_sched_switch_state() prints for a task leaving the run queue."""
        if t.exited:
            return "X"  # EXIT_DEAD: kthreads are reaped at once
        if t.wq_worker:
            return "D" if t in self._busy else "I"  # worker_thread() idles in TASK_IDLE
        if t is self._rcu_kthread:
            return "I"  # swait_event_idle_*()
        if t is self._kswapd or not t.kthread:
            return "S"
        return "D"  # wait_for_completion() in synchronize_rcu(), schedule_timeout_uninterruptible()

    def sched_switch(self, cpu: "Cpu", prev: "Task | None", next: "Task | None") -> None:
        if prev is next:
            return  # __schedule() picked prev again: no context switch, no event
        if prev is not None and not prev.runnable and prev in self._pending_end:
            self._end_work(prev, self._pending_end.pop(prev))
        now = self._sim.now
        if not self.e_switch or not self.t0 <= now < self.t1:
            return
        cid = cpu.id
        if prev is None:
            p = f"prev_comm=swapper/{cid} prev_pid=0 prev_prio=120 prev_state=R"
        else:
            state = "R+" if prev.runnable else self._sleep_state(prev)
            p = (f"prev_comm={prev.name[:15]} prev_pid={prev.pid} prev_prio={120 + prev.nice} "
                 f"prev_state={state}")
        if next is None:
            n = f"next_comm=swapper/{cid} next_pid=0 next_prio=120"
        else:
            n = f"next_comm={next.name[:15]} next_pid={next.pid} next_prio={120 + next.nice}"
        self._line(now, cid, prev, "d..2.", f"sched_switch: {p} ==> {n}")
        self._in(now)  # a counter sample due now comes after the switch: cpu.curr is already next

    def sched_wakeup(self, cpu: "Cpu", task: "Task") -> None:
        now = self._sim.now
        if not self.e_wakeup or not self._in(now):
            return
        self._line(now, cpu.id, cpu.curr, self._flags(cpu, True, 3),
                   f"sched_wakeup: comm={task.name[:15]} pid={task.pid} prio={120 + task.nice} "
                   f"target_cpu={cpu.id:03d}")

    # -- timers --------------------------------------------------------------------------

    @staticmethod
    def _fn_name(obj: Any, attr: str) -> str:
        name = getattr(obj, "name", None)
        if name:
            return str(name)
        fn = getattr(obj, attr, None)
        return getattr(fn, "__name__", "0x0")

    def hrtimer_start(self, cpu: "Cpu", timer: Any, expires_ns: int) -> None:
        now = self._sim.now
        if not self.e_hr_start or not self._in(now):
            return
        # HrTimer.start() has cancelled the old event but not dropped it yet:
        # a reference left means the timer was queued (hrtimer_start_range_ns()'s was_armed).
        was_armed = 1 if getattr(timer, "_ev", None) is not None else 0
        self._line(now, cpu.id, cpu.curr, self._flags(cpu, True, 1),
                   f"hrtimer_start: hrtimer={self._ptr(timer)} function={self._fn_name(timer, 'function')} "
                   f"expires={expires_ns} softexpires={expires_ns} mode=REL was_armed={was_armed}")

    def hrtimer_cancel(self, cpu: "Cpu", timer: Any, expiring: bool = False) -> None:
        now = self._sim.now
        if not self.e_hr_cancel or not self._in(now):
            return
        self._line(now, cpu.id, cpu.curr, self._flags(cpu, True, 1, "hardirq" if expiring else None),
                   f"hrtimer_cancel: hrtimer={self._ptr(timer)}")

    def hrtimer_expire(self, cpu: "Cpu", timer: Any) -> None:
        now = self._sim.now
        if not self.e_hr_expire or not self._in(now):
            return
        self._line(now, cpu.id, cpu.curr, self._flags(cpu, True, 1, "hardirq"),
                   f"hrtimer_expire_entry: hrtimer={self._ptr(timer)} "
                   f"function={self._fn_name(timer, 'function')} now={now}")

    # -- workqueues ------------------------------------------------------------------------

    def workqueue_queue_work(self, cpu: "Cpu", wq: Any, work: Any, pool: Any) -> None:
        now = self._sim.now
        if not self.e_wq_queue or not self._in(now):
            return
        pool_cpu = pool.cpu.id if getattr(pool, "cpu", None) is not None else -1
        self._line(now, cpu.id, cpu.curr, self._flags(cpu, True, 1),
                   f"workqueue_queue_work: work struct={self._ptr(work)} function={self._fn_name(work, 'func')} "
                   f"workqueue={wq.name} req_cpu={self._nr_cpus} cpu={pool_cpu}")

    def workqueue_execute_start(self, worker: "Task", work: Any) -> None:
        if worker in self._pending_end:
            self._end_work(worker, self._pending_end.pop(worker))
        self._busy[worker] = work
        if not self._in(self._sim.now):
            return
        name = self._fn_name(work, "func")
        if self.e_wq_start:
            self._by(worker, f"workqueue_execute_start: work struct {self._ptr(work)}: function {name}")
        if self.e_print and name in MARKER_WORK:
            self._mark(worker, f"B|{worker.pid}|{name}")

    def workqueue_execute_end(self, worker: "Task", work: Any) -> None:
        self._busy.pop(worker, None)
        cpu = worker.cpu
        assert cpu is not None
        self._changed(self._sim.now, cpu)
        if worker.debt > 0:
            # The item's CPU time is still owed (the model charges cheap steps
            # after the fact): it ends when the worker has paid, i.e. when it
            # sleeps or starts its next item.
            self._pending_end[worker] = work
            return
        self._end_work(worker, work)

    def _end_work(self, worker: "Task", work: Any) -> None:
        """workqueue_execute_end (and the marker slice's end) for ``work``, now."""
        if not self._in(self._sim.now):
            return
        name = self._fn_name(work, "func")
        if self.e_print and name in MARKER_WORK:
            self._mark(worker, f"E|{worker.pid}")
        if self.e_wq_end:
            self._by(worker, f"workqueue_execute_end: work struct {self._ptr(work)}: function {name}")

    # -- reclaim ---------------------------------------------------------------------------

    def _shrinker_sym(self, shrinker: Any) -> str:
        fn = getattr(shrinker, "scan_objects", None)
        name = getattr(fn, "__name__", None) or getattr(shrinker, "name", "shrinker")
        return f"{name}+0x0/{SYMBOL_SIZE:#x}"

    def mm_shrink_slab_start(self, cpu: "Cpu", shrinker: Any, sc: Any, nr_deferred: int, freeable: int,
                             delta: int, total_scan: int, priority: int) -> None:
        now = self._sim.now
        if not self.e_shrink_start or not self._in(now):
            return
        self._line(now, cpu.id, cpu.curr, self._flags(cpu, False, 0),
                   f"mm_shrink_slab_start: {self._shrinker_sym(shrinker)} {self._ptr(shrinker)}: nid: 0 "
                   f"objects to shrink {nr_deferred} gfp_flags {show_gfp_flags(sc.gfp_mask)} "
                   f"cache items {freeable} delta {delta} total_scan {total_scan} priority {priority}")

    def mm_shrink_slab_end(self, cpu: "Cpu", shrinker: Any, freed: int, nr_deferred: int,
                           new_deferred: int, total_scan: int) -> None:
        now = self._sim.now
        if not self._in(now):
            return
        if self.e_shrink_end:
            self._line(now, cpu.id, cpu.curr, self._flags(cpu, False, 0),
                       f"mm_shrink_slab_end: {self._shrinker_sym(shrinker)} {self._ptr(shrinker)}: nid: 0 "
                       f"unused scan count {nr_deferred} new scan count {new_deferred} "
                       f"total_scan {total_scan} last shrinker return val {freed}")
        self._changed(now, cpu)

    def mm_vmscan_direct_reclaim_begin(self, task: "Task", order: int, gfp: int) -> None:
        if not self._in(self._sim.now):
            return
        if self.e_dr_begin:
            self._by(task, f"mm_vmscan_direct_reclaim_begin: order={order} gfp_flags={show_gfp_flags(gfp)}")
        if self.e_print:
            self._mark(task, f"B|{task.pid}|direct_reclaim")

    def mm_vmscan_direct_reclaim_end(self, task: "Task", nr_reclaimed: int) -> None:
        if not self._in(self._sim.now):
            return
        if self.e_print:
            self._mark(task, f"E|{task.pid}")
        if self.e_dr_end:
            self._by(task, f"mm_vmscan_direct_reclaim_end: nr_reclaimed={nr_reclaimed}")

    def mm_vmscan_kswapd_wake(self, task: "Task", order: int) -> None:
        if self.e_kswapd and self._in(self._sim.now):
            self._by(task, f"mm_vmscan_kswapd_wake: nid=0 order={order}")

    # -- kvfree_rcu's bulk pages -------------------------------------------------------------

    def _alloc_pfn(self) -> int:
        if self._pfn_free:
            pfn = self._pfn_free.pop()
        else:
            pfn = self._pfn_next
            self._pfn_next = max(pfn - 1, 0)
        self._pfn_live.append(pfn)
        return pfn

    def _free_pfn(self) -> int:
        if self._pfn_live:
            pfn = self._pfn_live.pop()
        else:  # allocated before tracing could see it
            pfn = self._pfn_next
            self._pfn_next = max(pfn - 1, 0)
        self._pfn_free.append(pfn)
        return pfn

    @staticmethod
    def _bulk_ptr(seq: int) -> str:
        """``bnode->records`` of the ``seq``-th page kfree_bulk()ed: a fresh stand-in each time."""
        return _pointer(0x40000000 + seq)

    def _page_ptr(self, pfn: int) -> str:
        """``pfn_to_page(pfn)`` as a stand-in pointer (cached: frames are reused)."""
        p = self._page_ptrs.get(pfn)
        if p is None:
            p = self._page_ptrs[pfn] = _pointer(0x100000 + pfn)
        return p

    def mm_page_alloc(self, task: "Task", n: int, gfp: int) -> None:
        pfns = [self._alloc_pfn() for _ in range(n)]
        now = self._sim.now
        if not self._in(now):
            return
        cpu = task.cpu
        assert cpu is not None
        if self.e_page_alloc:
            g = show_gfp_flags(gfp)
            pp = self._page_ptr
            self._lines(now, cpu.id, task, self._flags(cpu, False, 0),
                        [f"mm_page_alloc: page={pp(pfn)} pfn={pfn:#x} order=0 migratetype=0 gfp_flags={g}"
                         for pfn in pfns])
        self._changed(now, cpu)

    def mm_page_free(self, cpu: "Cpu", n: int) -> None:
        pfns = [self._free_pfn() for _ in range(n)]
        now = self._sim.now
        if not self._in(now):
            return
        if self.e_page_free:
            pp = self._page_ptr
            self._lines(now, cpu.id, cpu.curr, self._flags(cpu, False, 0),
                        [f"mm_page_free: page={pp(pfn)} pfn={pfn:#x} order=0" for pfn in pfns])
        self._changed(now, cpu)

    # -- RCU ----------------------------------------------------------------------------------

    def rcu_grace_period(self, gp_seq: int, event: str) -> None:
        if self.e_gp and self._in(self._sim.now):
            self._by(self._rcu_kthread, f"rcu_grace_period: rcu_preempt {gp_seq} {event}")

    def rcu_invoke_kfree_bulk_callback(self, cpu: "Cpu", nr_records: int, pages: int) -> None:
        seq = self._bulk_seq
        self._bulk_seq += pages
        now = self._sim.now
        if not self._in(now):
            return
        if self.e_bulk and pages > 0:
            # One event per page, newest first: the newest holds what the full ones do not.
            first = nr_records - (pages - 1) * NKVFREE_BULK_MAX_ENTR
            if not 0 <= first <= NKVFREE_BULK_MAX_ENTR:
                per = [nr_records // pages + (1 if i < nr_records % pages else 0) for i in range(pages)]
            else:
                per = [first] + [NKVFREE_BULK_MAX_ENTR] * (pages - 1)
            bp = self._bulk_ptr
            self._lines(now, cpu.id, cpu.curr, self._flags(cpu, False, 0),
                        [f"rcu_invoke_kfree_bulk_callback: rcu_preempt bulk=0x{bp(i)} nr_records={n}"
                         for i, n in enumerate(per, seq + 1)])
        self._changed(now, cpu)

    # -- OOM and console ------------------------------------------------------------------------

    def mark_victim(self, task: "Task") -> None:
        now = self._sim.now
        if not self.e_victim or not self._in(now):
            return
        cpu = task.cpu or self._cpus[0]
        kb = task.rss_pages * 4
        self._line(now, cpu.id, cpu.curr, self._flags(cpu, False, 0),
                   f"mark_victim: pid={task.pid} comm={task.name[:15]} total-vm={kb}kB anon-rss={kb}kB "
                   f"file-rss:0kB shmem-rss:0kB uid=0 pgtables=0kB oom_score_adj=0")

    def console(self, t_ns: int, text: str, task: "Task | None" = None) -> None:
        if self._sim is None:
            self._early.append((t_ns, text))
            return
        if not self.e_console or not self._in(t_ns):
            return
        cpu = task.cpu if task is not None and task.cpu is not None else self._cpus[0]
        text = text.replace("\n", " ")
        self._line(t_ns, cpu.id, cpu.curr, self._flags(cpu, False, 0),
                   f"console: [{self._ts(t_ns)}] {text}")

    # -- the end ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Finish the file: header with the entry count, body, rename into place."""
        if self._closed:
            return
        if self._sim is not None:
            for worker, work in list(self._pending_end.items()):
                self._end_work(worker, work)
            self._pending_end.clear()
            if self.e_print and self.t0 <= self._sim.now < self.t1:
                self._sample(self._sim.now)
        if self._body is not None:
            self._flush()
            self._body.close()
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(self.path)}.", suffix=".tmp", dir=self._dir)
        try:
            os.chmod(tmp, 0o666 & ~_umask())  # as open() would have created it, not mkstemp()'s 0600
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
                out.write(header(self._entries + len(self._buf), self._ncpus))
                if self._body_path is not None:
                    with open(self._body_path, encoding="utf-8", newline="\n") as body:
                        if self._unsorted:
                            lines = body.readlines()
                            lines.sort(key=_line_time)  # stable: same-time lines keep their order
                            out.writelines(lines)
                        else:
                            shutil.copyfileobj(body, out, 1 << 20)
                else:
                    if self._unsorted:
                        self._buf.sort(key=_line_time)
                    out.write("".join(self._buf))
            os.replace(tmp, self.path)
        except BaseException:
            _unlink(tmp)
            raise
        finally:
            if self._body_path is not None:
                _unlink(self._body_path)
            self._buf = []
            self._closed = True

    def window_note(self) -> str | None:
        """After close(): why a windowed trace holds no event, if it starts after the run ended."""
        if self._sim is None or self.t0 <= self._sim.now:
            return None
        return (f"the trace window starts at {self.t0 / NSEC_PER_SEC:g} s, after the run ended at "
                f"{self._sim.now / NSEC_PER_SEC:.6f} s: {self.path} holds only the header")

    def abort(self) -> None:
        """The run failed: leave nothing behind."""
        if self._closed:
            return
        self._closed = True
        self._buf = []
        try:
            if self._body is not None:
                self._body.close()
        finally:
            if self._body_path is not None:
                _unlink(self._body_path)


def _line_time(line: str) -> int:
    """The timestamp of a trace line, in us (for the stable re-sort)."""
    head, _, _ = line.partition(": ")
    secs, _, usecs = head.rsplit(" ", 1)[-1].partition(".")
    return int(secs) * 1_000_000 + int(usecs)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


__all__ = ["ALL_EVENTS", "EVENTS", "FtraceTracer", "header", "open_tracer", "parse_events", "parse_window",
           "show_gfp_flags"]
