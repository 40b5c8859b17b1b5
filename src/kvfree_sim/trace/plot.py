"""Read an ftrace text file back and draw the run as a timeline.

:func:`read_trace` turns the file (what ``kvfree-sim run --trace`` writes, or
any ftrace ``trace`` file with these events) into a :class:`Timeline`:

* per CPU, what ran when, from ``sched_switch``: the kfree threads, kworkers
  split by the work function they are executing (``workqueue_execute_start``/
  ``_end``), kswapd, the RCU GP kthread, anything else;
* per CPU, direct reclaim intervals (``mm_vmscan_direct_reclaim_begin``/``_end``,
  or the ``direct_reclaim`` marker slices when vmscan events were not recorded);
* the counters written as ``tracing_mark_write: C|pid|name|value``;
* the times of ``mm_shrink_slab_end`` (one per ``do_shrink_slab()`` call that
  found something to count) and of every ``fill_page_cache_func`` start.

:func:`plot_timeline` draws it with matplotlib (Agg): one lane per CPU (the
CPUs a kfree thread ran on, or the busiest ones) with a thin direct-reclaim
strip under each, then the counter panels: free pages against the
watermarks, kvfree_rcu's cached pages summed over CPUs, and the cumulative
shrinker calls and refill runs.  That is the drain/refill cycle of the
LKML thread: the shrinker empties the per-CPU caches, the next
``kvfree_rcu()`` kicks the refill worker, which allocates them again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, TextIO

from ..config import ConfigError

NSEC_PER_SEC = 1_000_000_000

#: One ftrace text line (trace_print_context() layout, tgid column optional).
LINE_RE = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*(?:\d+|-+)\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?P<flags>[a-zA-Z0-9.]{0,5})\s+(?P<secs>\d+)\.(?P<usecs>\d{6}):\s+(?P<event>[^\s:]+):\s?(?P<args>.*)$")
_KV_RE = re.compile(r"(\w+)=(\S+)")

#: Lane categories, in legend order: (key, label, colour).
CATEGORIES: tuple[tuple[str, str, str], ...] = (
    ("kfree", "kfree_scale_thread", "#4c72b0"),
    ("fill_page_cache_func", "kworker: fill_page_cache_func (refill)", "#dd8452"),
    ("kfree_rcu_work", "kworker: kfree_rcu_work (drain after GP)", "#55a868"),
    ("kfree_rcu_monitor", "kworker: kfree_rcu_monitor", "#8172b3"),
    ("kworker", "kworker: other / idle loop", "#937860"),
    ("kswapd", "kswapd0", "#da8bc3"),
    ("rcu", "rcu_preempt (GP kthread)", "#8c8c8c"),
    ("other", "other task", "#ccb974"),
)
RECLAIM_COLOUR = "#c44e52"
_COLOURS = {k: c for k, _, c in CATEGORIES}


@dataclass
class Timeline:
    """What :func:`read_trace` found (times in ns)."""

    ncpus: int = 0
    t_first: int | None = None
    t_last: int = 0
    lines: int = 0
    #: per CPU: [start, end, category] runs, merged when adjacent and alike
    runs: dict[int, list[list[Any]]] = field(default_factory=dict)
    #: per CPU: [start, end] of direct reclaim by a task on that CPU
    reclaim: dict[int, list[list[int]]] = field(default_factory=dict)
    #: counter name -> [(t, value)]
    counters: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    shrink_ends: list[int] = field(default_factory=list)
    fill_starts: list[int] = field(default_factory=list)
    #: CPUs a kfree thread ran on
    kfree_cpus: set[int] = field(default_factory=set)
    #: events seen, by name
    event_counts: dict[str, int] = field(default_factory=dict)

    def busy_ns(self, cpu: int) -> int:
        return sum(e - s for s, e, _ in self.runs.get(cpu, ()))


def _category(comm: str, func: str | None) -> str:
    if comm.startswith("kfree_scale_thr"):
        return "kfree"
    if comm.startswith("kworker/"):
        if func in _COLOURS:
            return func  # type: ignore[return-value]
        return "kworker"
    if comm.startswith("kswapd"):
        return "kswapd"
    if comm.startswith("rcu_"):
        return "rcu"
    return "other"


class _Reader:
    """Streams lines into a :class:`Timeline`."""

    def __init__(self, window: tuple[int, int | None]) -> None:
        self.tl = Timeline()
        self.t0, t1 = window
        self.t1 = t1 if t1 is not None else 1 << 62
        self.cur: dict[int, tuple[str, int, int]] = {}  # cpu -> (comm, pid, since)
        self.func: dict[int, str] = {}  # kworker pid -> work function it executes
        self.worker_cpu: dict[int, int] = {}
        self.dr_open: dict[int, tuple[int, int]] = {}  # pid -> (cpu, since)
        self.dr_marker_open: dict[int, tuple[int, int]] = {}
        self.dr_from_vmscan = False
        self.dr_marker: list[tuple[int, int, int]] = []
        self.cmd_pids: dict[int, str] = {}

    def _close_run(self, cpu: int, t: int) -> None:
        cur = self.cur.get(cpu)
        if cur is None:
            return
        comm, pid, since = cur
        if pid != 0 and t > since:
            cat = _category(comm, self.func.get(pid))
            if cat == "kfree":
                self.tl.kfree_cpus.add(cpu)
            runs = self.tl.runs.setdefault(cpu, [])
            if runs and runs[-1][2] == cat and runs[-1][1] == since:
                runs[-1][1] = t
            else:
                runs.append([since, t, cat])
        self.cur[cpu] = (comm, pid, t)

    def line(self, m: "re.Match[str]") -> None:
        tl = self.tl
        t = int(m.group("secs")) * NSEC_PER_SEC + int(m.group("usecs")) * 1000
        if t < self.t0 or t >= self.t1:
            return
        ev = m.group("event")
        cpu = int(m.group("cpu"))
        pid = int(m.group("pid"))
        tl.lines += 1
        if tl.t_first is None:
            tl.t_first = t
        if t > tl.t_last:
            tl.t_last = t
        tl.event_counts[ev] = tl.event_counts.get(ev, 0) + 1
        args = m.group("args")
        if ev == "sched_switch":
            kv = dict(_KV_RE.findall(args))
            try:
                next_pid = int(kv["next_pid"])
                next_comm = kv["next_comm"]
                prev_pid = int(kv["prev_pid"])
                prev_comm = kv["prev_comm"]
            except (KeyError, ValueError):
                raise ConfigError(f"malformed sched_switch line: {m.group(0)}") from None
            if cpu not in self.cur:
                # first sight of this CPU in the window: prev ran from the window's start
                self.cur[cpu] = (prev_comm, prev_pid, max(self.t0, tl.t_first or t))
            self._close_run(cpu, t)
            self.cur[cpu] = (next_comm, next_pid, t)
        elif ev == "workqueue_execute_start":
            func = args.rsplit("function ", 1)[-1].strip()
            self._close_run(cpu, t)
            self.func[pid] = func
            self.worker_cpu[pid] = cpu
            if func == "fill_page_cache_func":
                tl.fill_starts.append(t)
        elif ev == "workqueue_execute_end":
            self._close_run(cpu, t)
            self.func.pop(pid, None)
        elif ev == "mm_shrink_slab_end":
            tl.shrink_ends.append(t)
        elif ev == "mm_vmscan_direct_reclaim_begin":
            self.dr_from_vmscan = True
            self.dr_open[pid] = (cpu, t)
        elif ev == "mm_vmscan_direct_reclaim_end":
            c, since = self.dr_open.pop(pid, (cpu, max(self.t0, tl.t_first or t)))
            tl.reclaim.setdefault(c, []).append([since, t])
        elif ev in ("tracing_mark_write", "print", "0"):
            self._marker(args.strip(), pid, cpu, t)

    def _marker(self, text: str, pid: int, cpu: int, t: int) -> None:
        parts = text.split("|")
        ph = parts[0]
        if ph == "C" and len(parts) >= 4:
            try:
                v = float(parts[3])
            except ValueError:
                return
            self.tl.counters.setdefault(parts[2], []).append((t, v))
        elif ph == "B" and len(parts) >= 3 and parts[2] == "direct_reclaim":
            self.dr_marker_open[pid] = (cpu, t)
        elif ph == "E" and pid in self.dr_marker_open:
            c, since = self.dr_marker_open.pop(pid)
            self.dr_marker.append((c, since, t))

    def finish(self) -> Timeline:
        tl = self.tl
        end = tl.t_last
        for cpu in list(self.cur):
            self._close_run(cpu, end)
        for c, since in self.dr_open.values():
            tl.reclaim.setdefault(c, []).append([since, end])
        if not self.dr_from_vmscan:
            for c, s, e in self.dr_marker:
                tl.reclaim.setdefault(c, []).append([s, e])
            for c, since in self.dr_marker_open.values():
                tl.reclaim.setdefault(c, []).append([since, end])
        return tl


def parse_lines(lines: Iterable[str], window: tuple[int, int | None] = (0, None)) -> Timeline:
    """Build a :class:`Timeline` from ftrace text lines."""
    r = _Reader(window)
    match = LINE_RE.match
    saw_header = False
    for raw in lines:
        if raw.startswith("#"):
            if "#P:" in raw:
                saw_header = True
                try:
                    r.tl.ncpus = int(raw.rsplit("#P:", 1)[1])
                except ValueError:
                    pass
            continue
        if not raw.strip():
            continue
        m = match(raw.rstrip("\n"))
        if m is None:
            continue
        r.line(m)
    tl = r.finish()
    if not saw_header and tl.lines == 0:
        raise ConfigError("not an ftrace text file (no '# tracer' header and no trace lines)")
    return tl


def read_trace(path: str, window: tuple[int, int | None] = (0, None)) -> Timeline:
    """Read an ftrace text file (raises ConfigError if it cannot)."""
    try:
        f: TextIO = open(path, encoding="utf-8", errors="replace")
    except OSError as e:
        raise ConfigError(f"cannot read trace '{path}': {e.strerror or e}") from None
    with f:
        try:
            return parse_lines(f, window)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


# -- drawing --------------------------------------------------------------------------------


def choose_lanes(tl: Timeline, max_lanes: int) -> list[int]:
    """The CPUs a kfree thread ran on (the busiest if more than ``max_lanes``), else the busiest CPUs."""
    pool = sorted(tl.kfree_cpus) if tl.kfree_cpus else sorted(tl.runs)
    if len(pool) > max_lanes:
        pool = sorted(sorted(pool, key=lambda c: (-tl.busy_ns(c), c))[:max_lanes])
    return pool


def _steps(points: list[tuple[int, float]], t_end: int) -> tuple[list[float], list[float]]:
    xs = [t / NSEC_PER_SEC for t, _ in points]
    ys = [v for _, v in points]
    if points and points[-1][0] < t_end:
        xs.append(t_end / NSEC_PER_SEC)
        ys.append(ys[-1])
    return xs, ys


def _summed(tl: Timeline, prefix: str) -> list[tuple[int, float]]:
    """One series: the sum of every counter named ``prefix<N>``, stepping at each change."""
    series = [(name, pts) for name, pts in tl.counters.items() if name.startswith(prefix)]
    if not series:
        return []
    events = sorted((t, i, v) for i, (_, pts) in enumerate(series) for t, v in pts)
    cur = [0.0] * len(series)
    out: list[tuple[int, float]] = []
    for t, i, v in events:
        cur[i] = v
        total = sum(cur)
        if out and out[-1][0] == t:
            out[-1] = (t, total)
        else:
            out.append((t, total))
    return out


def _cumulative(times: list[int], t_start: int, t_end: int) -> tuple[list[float], list[float]]:
    xs = [t_start / NSEC_PER_SEC]
    ys = [0.0]
    for i, t in enumerate(sorted(times), 1):
        xs.append(t / NSEC_PER_SEC)
        ys.append(float(i))
    xs.append(t_end / NSEC_PER_SEC)
    ys.append(ys[-1])
    return xs, ys


def _seen(tl: Timeline, *events: str) -> bool:
    """Whether the trace holds any of ``events`` (an empty panel then means zero, not unrecorded)."""
    return any(tl.event_counts.get(e) for e in events)


def untraced(tl: Timeline) -> set[str]:
    """What the plot cannot show because the trace does not hold its events (``--trace-events``):
    "memory" and "cache" (counter lines), "work" (work items), "vmscan" (reclaim and shrinker)."""
    missing = set()
    if "free_pages" not in tl.counters:
        missing.add("memory")
    if not any(name.startswith("kvfree_cache_cpu") for name in tl.counters):
        missing.add("cache")
    if not _seen(tl, "workqueue_execute_start"):
        missing.add("work")
    if not _seen(tl, "mm_shrink_slab_end", "mm_shrink_slab_start", "mm_vmscan_direct_reclaim_begin",
                 "mm_vmscan_kswapd_wake"):
        missing.add("vmscan")
    return missing


def _absent(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="#666666")


def plot_timeline(tl: Timeline, out: str, max_lanes: int = 16, title: str | None = None) -> list[int]:
    """Draw ``tl`` into the PNG ``out``; returns the CPUs drawn as lanes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    lanes = choose_lanes(tl, max_lanes)
    t_start = tl.t_first or 0
    t_end = max(tl.t_last, t_start + 1)
    n = max(len(lanes), 1)
    lane_h = 0.42
    heights = [max(1.6, lane_h * n + 0.6), 1.7, 1.5, 1.5]
    fig, axes = plt.subplots(4, 1, figsize=(14, sum(heights) + 1.6), sharex=True,
                             gridspec_kw={"height_ratios": heights})
    ax_l, ax_mem, ax_cache, ax_cum = axes

    # lanes: one row per CPU, a thin direct-reclaim strip below it
    yticks, ylabels = [], []
    for row, cpu in enumerate(lanes):
        y = (n - 1 - row) * 1.0
        by_cat: dict[str, list[tuple[float, float]]] = {}
        for s, e, cat in tl.runs.get(cpu, ()):
            by_cat.setdefault(cat, []).append((s / NSEC_PER_SEC, (e - s) / NSEC_PER_SEC))
        for cat, bars in by_cat.items():
            ax_l.broken_barh(bars, (y + 0.30, 0.62), facecolors=_COLOURS[cat], linewidth=0)
        rec = [(s / NSEC_PER_SEC, (e - s) / NSEC_PER_SEC) for s, e in tl.reclaim.get(cpu, ())]
        if rec:
            ax_l.broken_barh(rec, (y + 0.05, 0.2), facecolors=RECLAIM_COLOUR, linewidth=0)
        yticks.append(y + 0.5)
        ylabels.append(f"CPU {cpu}")
    ax_l.set_yticks(yticks, ylabels)
    ax_l.set_ylim(-0.1, n + 0.1)
    ax_l.set_ylabel("CPU lanes\n(what runs; red strip:\ndirect reclaim)")
    if not lanes:
        ax_l.text(0.5, 0.5, "no sched_switch events in this trace", transform=ax_l.transAxes,
                  ha="center", va="center")
    used = {cat for cpu in lanes for _, _, cat in tl.runs.get(cpu, ())}
    missing = untraced(tl)
    wq_traced = "work" not in missing
    handles = [Patch(color=c, label=label if wq_traced or k != "kworker" else "kworker (work items not traced)")
               for k, label, c in CATEGORIES if k in used]
    if any(tl.reclaim.get(cpu) for cpu in lanes):
        handles.append(Patch(color=RECLAIM_COLOUR, label="direct reclaim (try_to_free_pages)"))
    if handles:
        ax_l.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8,
                    frameon=False)

    # free pages against the watermarks
    drew = False
    for name, label, style in (("free_pages", "free pages", dict(color="black", lw=1.2)),
                               ("wmark_high", "high watermark", dict(color="#55a868", lw=0.9, ls="--")),
                               ("wmark_low", "low watermark", dict(color="#dd8452", lw=0.9, ls="--")),
                               ("wmark_min", "min watermark", dict(color="#c44e52", lw=0.9, ls="--")),
                               ("free_pcp", "on per-CPU lists", dict(color="#8172b3", lw=0.9))):
        pts = tl.counters.get(name)
        if pts:
            xs, ys = _steps(pts, t_end)
            ax_mem.step(xs, ys, where="post", label=f"{label} (last {ys[-1]:,.0f})",
                        **style)  # type: ignore[arg-type]
            drew = True
    ax_mem.set_ylabel("pages (4 KiB)")
    ax_mem.set_title("free memory", fontsize=9, loc="left")
    if drew:
        ax_mem.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    else:
        _absent(ax_mem, "no free-page counters (tracing_mark_write C|...) in this trace")

    # kvfree_rcu page cache
    cached = _summed(tl, "kvfree_cache_cpu")
    if cached:
        xs, ys = _steps(cached, t_end)
        ax_cache.step(xs, ys, where="post", color="#dd8452", lw=1.2, label="cached pages, all CPUs")
        ax_cache.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    else:
        _absent(ax_cache, "no kvfree_cache_cpu counters (tracing_mark_write C|...) in this trace")
    ax_cache.set_ylabel("pages")
    ax_cache.set_title("kvfree_rcu page cache (krcp->nr_bkv_objs summed over CPUs)", fontsize=9, loc="left")
    ax_cache.set_ylim(bottom=0)

    # cumulative refill runs (left axis) and shrinker calls (right axis: far fewer)
    fills = str(len(tl.fill_starts)) if wq_traced else "not traced (no workqueue events)"
    xs, ys = _cumulative(tl.fill_starts, t_start, t_end)
    (l1,) = ax_cum.step(xs, ys, where="post", color="#dd8452", lw=1.2,
                        label=f"refill runs (fill_page_cache_func), left: {fills}")
    ax_cum.set_ylabel("refill runs\n(cumulative)", color="#b8602a")
    ax_cum.set_ylim(bottom=0, top=max(1.0, len(tl.fill_starts) * 1.05))
    ax_sh = ax_cum.twinx()
    shrinks = str(len(tl.shrink_ends)) if "vmscan" not in missing else "0 (or vmscan events not traced)"
    xs, ys = _cumulative(tl.shrink_ends, t_start, t_end)
    (l2,) = ax_sh.step(xs, ys, where="post", color="#c44e52", lw=1.2,
                       label=f"shrinker calls (mm_shrink_slab_end), right: {shrinks}")
    ax_sh.set_ylabel("shrinker calls\n(cumulative)", color="#c44e52")
    ax_sh.set_ylim(bottom=0, top=max(1.0, len(tl.shrink_ends) * 1.05))
    for ax in (ax_cum, ax_sh):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_cum.set_title("the cycle: shrinker calls drain the caches, refill runs fill them again",
                     fontsize=9, loc="left")
    # inside the panel: both curves start at 0 on the left, and outside it would cover the twin axis label
    ax_cum.legend(handles=[l1, l2], loc="upper left", fontsize=8, framealpha=0.85)
    ax_cum.set_xlabel("simulated time (s)")
    ax_cum.set_xlim(t_start / NSEC_PER_SEC, t_end / NSEC_PER_SEC)
    for ax in axes:
        ax.grid(axis="x", color="#dddddd", lw=0.6)
    fig.suptitle(title or "kvfree-sim trace timeline", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return lanes


__all__ = ["CATEGORIES", "LINE_RE", "Timeline", "choose_lanes", "parse_lines", "plot_timeline", "read_trace",
           "untraced"]
