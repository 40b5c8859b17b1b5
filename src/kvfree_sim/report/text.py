"""Plain-text reports: a run as the kernel would print it, then a summary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from ..core.costs import DEFAULT_PROFILE

if TYPE_CHECKING:
    from ..machine import RunResult


def timestamp(ns: int) -> str:
    """printk's ``[%5lu.%06lu]``."""
    return f"[{ns // 1_000_000_000:5d}.{(ns // 1000) % 1_000_000:06d}]"


def ms(ns: int | float) -> str:
    return f"{ns / 1e6:.1f} ms"


def timing_line(r: "RunResult") -> str:
    """Wall time is not deterministic: it goes to stderr, never into the report."""
    rtf = (r.sim_ns / 1e9) / r.wall_s if r.wall_s > 0 else 0.0
    return f"kvfree-sim: {r.events} events in {r.wall_s:.2f} s wall, {rtf:.2f}x real time"


def mb(pages: int) -> str:
    return f"{pages / 256:.1f} MB"


def _number(v: float) -> str:
    return str(int(v)) if v.is_integer() else f"{v:g}"


def set_text(values: Mapping[str, float]) -> str:
    """' (set a=1, b=2)' for the ``--set`` values, '' without any."""
    return " (set " + ", ".join(f"{k}={_number(v)}" for k, v in values.items()) + ")" if values else ""


def profile_phrase(name: str, values: Mapping[str, float]) -> str:
    """'profile NAME (set a=1, b=2)', or '' for the default profile as shipped."""
    if not values and name in ("", DEFAULT_PROFILE):
        return ""
    return f"profile {name or DEFAULT_PROFILE}{set_text(values)}"


def run_report(r: "RunResult") -> str:
    """The console lines of the run, then what kvfree-sim measured (deterministic)."""
    c = r.counters
    mm = r.mm
    lines = [f"{timestamp(t)} {text}" for t, text in r.console]
    lines.append("")
    lines.append(f"--- kvfree-sim: {r.variant}, {r.cpus} CPUs, {r.memory_mb}M, seed {r.seed}"
                 + (f", {p}" if (p := profile_phrase(r.profile, r.profile_set)) else ""))
    lines.append(f"outcome: {r.outcome}    simulated time: {r.sim_ns / 1e9:.6f} s")
    if r.violation:
        lines.append(f"INVARIANT VIOLATION: {r.violation}")
    if r.kernel_early_frees:
        lines.append(f"kernel bug reproduced: {r.kernel_early_frees} objects freed after an older grace period "
                     f"than their kvfree_rcu() (use-after-free fixed by 5da7cb193db3)")
    inline_alloc = c["direct_alloc"] + c["direct_alloc_fail"]
    lines.append(f"kvfree_rcu() calls: {c['calls']} (bulk page {c['calls_bulk']}, rcu_head list {c['calls_list']}, "
                 f"inline page allocations {inline_alloc} ({c['direct_alloc_fail']} failed), "
                 f"synchronize_rcu() {c['inline_kvfree']})")
    lines.append(f"bulk pages: allocated {c['pages_alloc']}, freed {c['pages_free']}, recycled {c['recycled_pages']}; "
                 f"cache hits {c['cache_hit']}, misses {c['head_fallback'] + c['direct_alloc'] + c['direct_alloc_fail']}")
    lines.append(f"refill worker: runs {c['fill_runs']}, pages {c['fill_pages']}, failed {c['fill_fail']}; "
                 f"kicked by hrtimer {c['worker_hrtimer']}, as delayed work {c['worker_delayed']}")
    lines.append(f"shrinker: count {c['shrink_count']} ({mm['shrink_slab_counted']} found objects: one "
                 f"mm_shrink_slab_start/_end pair each), scan {c['shrink_scan']}, scan reported {c['scan_freed']}, "
                 f"drained pages {c['drained_pages']} ({c['refill_drained_unused']} refilled and drained unused)")
    lines.append(f"memory: free {mb(mm['free_pages_min'])} at the lowest (low watermark {mb(mm['wmark_low_pages'])}), "
                 f"{mb(mm['free_pages_end'])} at the end (+{mb(mm['pcp_pages_end'])} on per-CPU lists), "
                 f"of {mb(mm['managed_pages'])} managed")
    lines.append(f"reclaim: direct {mm['direct_reclaims']} ({ms(mm['direct_reclaim_ns'])}; kfree threads "
                 f"{ms(mm['thread_direct_reclaim_ns'])}), kswapd runs {mm['kswapd_runs']} "
                 f"(failures {mm['kswapd_failures']}), per-CPU list drains {mm['pcp_drains']}, OOM invocations {mm['oom']}, allocation failures {mm['alloc_fail']}")
    lines.append(f"highpri kworkers held kfree threads' CPUs: {ms(r.sched['highpri_held_kfree_cpus_ns'])}")
    lines.append(f"grace periods: {r.gps} (mean {ms(r.sched['gp_mean_ns'])})")
    w = r.wait
    lines.append(f"a queued object waited on average {ms(w['krcp_ns'])} in its CPU's krcp, "
                 f"{ms(w['gp_ns'])} detached (grace period, then a kworker), "
                 f"{ms(w['freeing_ns'])} in kfree_rcu_work()")
    lines.append(f"simulation: {r.events} events")
    for n in r.notes:
        lines.append(f"note: {n}")
    return "\n".join(lines)
