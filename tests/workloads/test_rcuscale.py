"""rcuscale's kfree test (kernel/rcu/rcuscale.c kfree_scale_thread())."""

from __future__ import annotations

import random

from kvfree_sim.config import make_config
from kvfree_sim.machine import Machine, simulate
from kvfree_sim.workloads.rcuscale import compute_real, doubles_before_single

from kvfree_sim.trace.hooks import Tracer

from ktest import MSEC, make_profile, needs_pure_python

SMALL = "rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=2 rcuscale.kfree_loops=4 rcuscale.kfree_alloc_num=1000"


def run(variant: str = "v5.11", bootargs: str = SMALL, **kw):
    cfg = make_config(variant, cpus=kw.pop("cpus", 2), bootargs=bootargs, **kw)
    return simulate(cfg, profile=make_profile({"kmalloc_ns": 20.0, "kvfree_call_rcu_ns": 20.0,
                                               "context_switch_ns": 1000.0}))


def test_compute_real():
    """-1 means num_online_cpus(); -N means that many fewer, at least one."""
    assert compute_real(16, 64) == 16
    assert compute_real(-1, 64) == 64
    assert compute_real(-3, 2) == 1


def test_doubles_before_single_is_geometric_with_half():
    """torture_random() & 0x800: each call is the 1-argument form with probability 1/2."""
    rng = random.Random(7)
    draws = [doubles_before_single(rng.getrandbits) for _ in range(20000)]
    mean = sum(draws) / len(draws)
    assert 0.95 < mean < 1.05  # E = (1-p)/p = 1
    assert abs(draws.count(0) / len(draws) - 0.5) < 0.02


def test_every_object_is_queued_and_freed_and_the_result_line_is_the_kernels():
    r = run()
    assert r.outcome == "completed"
    assert r.counters["calls"] == 2 * 4 * 1000
    assert r.result_line == (f"Total time taken by all kfree'ers: {r.total_ns} ns, loops: 4, "
                             f"batches: {r.batches}, memory footprint: {r.footprint_mb}MB")
    assert any(text == "kfree object size=24" for _, text in r.console)


def test_v5_11_test_uses_only_the_two_argument_form():
    r = run("v5.11")
    assert r.counters["direct_alloc"] == 0 and r.counters["inline_kvfree"] == 0


def test_v5_13_mixes_forms_unless_one_is_chosen():
    r = run("v5.13")
    assert r.counters["direct_alloc"] > 0  # 1-argument calls found an empty cache
    r = run("v5.13", bootargs=SMALL + " rcuscale.kfree_rcu_test_double=1")
    assert r.counters["direct_alloc"] == 0


def test_object_size_follows_kfree_mult():
    r = run(bootargs=SMALL + " rcuscale.kfree_mult=64")
    assert any(text == "kfree object size=1536" for _, text in r.console)


@needs_pure_python
def test_footprint_is_rcuscales_formula(monkeypatch):
    """mem_begin at loop 0; mem_during = (mem_during + si_mem_available()) / 2 every
    kfree_loops/4 loops; footprint = (mem_begin - mem_during) >> (20 - PAGE_SHIFT)."""
    from kvfree_sim.kernel.mm import page_alloc

    samples = iter([100_000, 90_000, 80_000, 70_000, 60_000, 50_000, 40_000, 30_000, 20_000])
    monkeypatch.setattr(page_alloc.PageAllocator, "si_mem_available", lambda self: next(samples))
    r = run(bootargs="rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=1 rcuscale.kfree_loops=8 "
                     "rcuscale.kfree_alloc_num=100", cpus=1)
    # one thread, loops 0..7, samples at loop 0 then 2, 4, 6
    m0, m1, m2, m3 = 100_000, 90_000, 80_000, 70_000
    during = m0
    for m in (m1, m2, m3):
        during = (during + m) // 2
    assert r.footprint_mb == (m0 - during) >> 8


def test_batches_count_grace_periods_between_start_and_end():
    """batches = rcu_seq_diff(gp_seq at the end, gp_seq when the last thread started)."""
    r = simulate(make_config("v6.1", cpus=2, bootargs="rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=2 "
                                                      "rcuscale.kfree_loops=20"))
    assert r.outcome == "completed"
    assert r.gps > 0 and r.batches in (r.gps, r.gps + 1)


def _gp_durations(kmalloc_ns: float, kvfree_call_rcu_ns: float, variant: str = "v5.11") -> list[int]:
    cfg = make_config(variant, cpus=2, bootargs="rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=2 "
                      "rcuscale.kfree_loops=200 rcuscale.kfree_alloc_num=1000"
                      + (" rcuscale.kfree_rcu_test_double=1" if variant != "v5.11" else ""))
    m = Machine(cfg, make_profile({"kmalloc_ns": kmalloc_ns, "kvfree_call_rcu_ns": kvfree_call_rcu_ns}))
    assert m.run().outcome == "completed"
    return m.rcu.gp_durations


def test_a_tick_inside_kvfree_call_rcus_locked_section_reports_no_quiescent_state_from_v5_13():
    """kvfree_call_rcu() holds the krcp lock with interrupts off (krc_this_cpu_lock()), so a
    tick that comes then is taken at krc_this_cpu_unlock().  From v5.13 that is
    raw_spin_unlock_irqrestore(), whose local_irq_restore() comes before preempt_enable():
    rcu_flavor_sched_clock_irq() finds preemption disabled and reports no quiescent state.
    In these runs (one kfree thread per CPU, 2-argument calls only, no context switch between
    most ticks) every grace period takes two ticks when the calls' time is nearly all kmalloc(),
    and a tick more when it is nearly all kvfree_call_rcu(): the second tick finds the lock
    held.  v5.11's unlock is raw_spin_unlock() then local_irq_restore(): the held-off tick comes
    with preemption enabled and reports, so the lock costs no tick there."""
    assert set(_gp_durations(489.1, 10.3, "v5.13")) == {2 * MSEC}
    assert set(_gp_durations(10.3, 489.1, "v5.13")) == {3 * MSEC}
    assert set(_gp_durations(489.1, 10.3)) == set(_gp_durations(10.3, 489.1)) == {2 * MSEC}


def _creations(verbose: int = 1, **costs: float) -> tuple[list[tuple[int, str]], list[int]]:
    """A 4-thread run: its console, and when each thread was created (its first wakeup)."""
    starts: dict[int, int] = {}

    class Starts(Tracer):
        def attach(self, machine):  # type: ignore[no-untyped-def]
            self.sim = machine.kernel.sim

        def sched_wakeup(self, cpu, task):  # type: ignore[no-untyped-def]
            if task.name == "kfree_scale_thread":
                starts.setdefault(task.pid, self.sim.now)

    cfg = make_config("v5.11", cpus=4, bootargs="rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=4 "
                      f"rcuscale.kfree_loops=1 rcuscale.kfree_alloc_num=10 rcuscale.verbose={verbose}")
    profile = make_profile({"kmalloc_ns": 20.0, "kvfree_call_rcu_ns": 20.0, **costs})
    m = Machine(cfg, profile=profile, tracer=Starts())
    assert m.run().outcome == "completed"
    return m.kernel.console, sorted(starts.values())


def test_kfree_scale_init_creates_the_threads_one_after_the_other():
    """torture_create_kthread() in a loop: kernel_init sleeps in kthread_create() while
    kthreadd creates each thread (kthread_create_ns on kthreadd's CPU), then switches back
    in (context_switch_ns) and wakes it: thread k wakes k * (500 + 1) us after the first,
    so the per-CPU monitors do not all fire in the same jiffy."""
    _, starts = _creations(context_switch_ns=1000.0, kthread_create_ns=500_000.0)
    assert [t - starts[0] for t in starts] == [k * 501_000 for k in range(4)]


def test_verbose_threads_start_a_console_line_pair_apart():
    """kfree_scale_init() prints "Creating ..." per thread (torture_create_kthread()) and each
    thread "... task started" before its start time, both through the serial console: on a
    slow console the threads start about two lines' time apart, as in the calibration logs
    (4.6-4.9 ms under QEMU TCG)."""
    console, starts = _creations(1, console_char_ns=10_000.0)
    texts = [t for _, t in console]
    assert texts[0] == "kfree object size=24"
    assert texts.count("rcu-torture: Creating kfree_scale_thread task") == 4
    assert texts.count("rcu-scale: kfree_scale_thread task started") == 4
    pair_ns = (45 + 17 + 42 + 17) * 10_000  # both lines with timestamp and CRLF
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # the first thread's line may queue behind the second "Creating"; then a pair apart
    assert gaps[1:] == [pair_ns] * 2 and pair_ns // 2 <= gaps[0] <= pair_ns, gaps


def test_quiet_threads_start_together():
    """rcuscale.verbose=0: no line per thread, so nothing spaces their starts but the creation."""
    console, starts = _creations(0, console_char_ns=10_000.0)
    assert [t for _, t in console][:1] == ["kfree object size=24"]
    assert not any("kfree_scale_thread" in t for _, t in console[:-1])
    assert starts[-1] - starts[0] < 100_000


def test_thread_starts_span_what_the_calibration_logs_show():
    """With the calibration machine's profile, the 16 threads' console lines span about what
    ../shared/calibration/linux-6.1-qemu-tcg/logs/ shows: 73.0 and 78.0 ms from the first
    "Creating kfree_scale_thread task" to the last "kfree_scale_thread task started"."""
    cfg = make_config("v6.1", cpus=2, memory="80M", profile="qemu-tcg-6.1", max_seconds=0.2,
                      bootargs="rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=16 rcuscale.kfree_loops=100 "
                               "rcuscale.kfree_alloc_num=8000 rcuscale.kfree_mult=64 rcuscale.holdoff=2")
    m = Machine(cfg)
    m.run()
    times = [t for t, text in m.kernel.console if "kfree_scale_thread task" in text]
    assert len(times) == 32
    assert 0.8 * 73.0e6 <= times[-1] - times[0] <= 1.25 * 78.0e6
