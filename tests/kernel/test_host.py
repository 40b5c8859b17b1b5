"""The host under the guest (src/kvfree_sim/kernel/host.py): vCPU steal and shared host cores."""

from __future__ import annotations

import math

import pytest

from kvfree_sim.config import make_config
from kvfree_sim.core.costs import load_profile
from kvfree_sim.kernel.host import HostCores
from kvfree_sim.kernel.time import HrTimer, TimerList
from kvfree_sim.machine import simulate
from kvfree_sim.trace.hooks import Tracer

from ktest import MSEC, SEC, hog, sleep_forever, spawn

HOST = {"host_cpus": 2, "host_slice_ns": 4 * MSEC}


def test_busy_vcpus_take_turns_on_fewer_host_cores(make_kernel) -> None:
    """4 busy vCPUs on 2 host cores: each runs half the time, a slice at a time,
    and no more than 2 run at once."""
    kernel = make_kernel(ncpus=4, layout=HOST)
    tasks = [spawn(kernel, f"hog{i}", hog, cpu=i) for i in range(4)]
    kernel.sim.run(until=SEC)
    for cpu, t in zip(kernel.cpus, tasks):
        assert cpu.steal_ns == pytest.approx(SEC / 2, abs=8 * MSEC)
        assert t.sum_exec == pytest.approx(SEC / 2, abs=14 * MSEC)
    assert sum(t.sum_exec for t in tasks) <= 2 * SEC


def test_idle_vcpus_leave_the_cores_to_the_busy_ones(make_kernel) -> None:
    """A halted vCPU's thread sleeps on the host: 2 busy vCPUs of 4 do not wait,
    once the third has gone to sleep.  At the first host tick it still has a task
    to run, so it waits a slice, then takes its turn from a hog: two slices lost."""
    kernel = make_kernel(ncpus=4, layout=HOST)
    tasks = [spawn(kernel, f"hog{i}", hog, cpu=i) for i in range(2)]
    spawn(kernel, "sleeper", sleep_forever, cpu=3)
    kernel.sim.run(until=SEC)
    assert sum(c.steal_ns for c in kernel.cpus) == 2 * HOST["host_slice_ns"]
    assert sum(t.sum_exec for t in tasks) >= 2 * SEC - HOST["host_slice_ns"] - 20 * MSEC


@pytest.mark.parametrize(("ncpus", "cores", "slice_ns", "needed"), [
    (4, 2, 4 * MSEC, True), (2, 2, 4 * MSEC, False), (4, 0, 4 * MSEC, False), (4, 2, 0, False)])
def test_only_an_overcommitted_host_is_modelled(ncpus: int, cores: int, slice_ns: int, needed: bool) -> None:
    """host_cpus 0 means a core per vCPU: no events, results as before."""
    assert HostCores.needed(ncpus, cores, slice_ns) is needed


def test_host_steal_is_seeded_and_pauses_the_vcpu(make_kernel) -> None:
    """Poisson pauses (vcpu_steal_per_s x vcpu_steal_ns): what a vCPU loses is what
    it is charged, and the same seed gives the same pauses."""
    costs = {"vcpu_steal_per_s": 100.0, "vcpu_steal_ns": 1 * MSEC}

    def stolen(seed: int) -> tuple[int, int]:
        kernel = make_kernel(ncpus=1, costs=costs, seed=seed)
        t = spawn(kernel, "hog", hog, cpu=0)
        kernel.sim.run(until=SEC)
        return kernel.cpus[0].steal_ns, t.sum_exec

    steal, ran = stolen(1)
    assert stolen(1) == (steal, ran) and stolen(2) != (steal, ran)
    assert 50 * MSEC < steal < 200 * MSEC  # about 100 pauses of about 1 ms
    assert SEC - steal - 10 * MSEC <= ran <= SEC - steal  # hog's CPU time is counted per 10 ms burst


def stolen_and_longest(make_kernel, costs: dict[str, float], seed: int) -> tuple[int, int]:
    """A hog on one vCPU for 2 s under these host pauses: the time stolen, and the
    longest the vCPU stayed paused from any instant (sampled every 20 us)."""
    kernel = make_kernel(ncpus=1, costs=costs, seed=seed)
    cpu = kernel.cpus[0]
    longest = [0]

    def sample(_: object) -> None:
        longest[0] = max(longest[0], cpu.paused_until - kernel.sim.now)
        kernel.sim.after(20_000, sample)

    kernel.sim.after(0, sample)
    spawn(kernel, "hog", hog, cpu=0)
    kernel.sim.run(until=2 * SEC)
    return cpu.steal_ns, longest[0]


def test_stalls_add_rare_long_pauses(make_kernel) -> None:
    """vcpu_stall_*: a second Poisson process of pauses, on its own random stream:
    frequent short preemptions alone never keep a vCPU off for a millisecond; with
    the stalls added, it is now and then off for several, and the time stolen is
    about the sum of the two shares."""
    steal = {"vcpu_steal_per_s": 1000.0, "vcpu_steal_ns": 20e3}
    stall = {"vcpu_stall_per_s": 20.0, "vcpu_stall_ns": 5 * MSEC}
    steal_ns, steal_longest = stolen_and_longest(make_kernel, steal, 4)
    both_ns, both_longest = stolen_and_longest(make_kernel, {**steal, **stall}, 4)
    assert steal_ns == pytest.approx(0.04 * SEC, rel=0.2)  # 1000/s x 20 us: 2% of 2 s
    assert both_ns - steal_ns == pytest.approx(0.2 * SEC, rel=0.35)  # 20/s x 5 ms: 10%
    assert steal_longest < 1 * MSEC < 5 * MSEC < both_longest


def test_pareto_steal_keeps_the_mean_and_has_a_heavier_tail(make_kernel) -> None:
    """vcpu_steal_shape: the same rate and mean pause, drawn Pareto instead of
    exponential: about the same time stolen, but now and then a pause many times
    the mean."""
    def run(shape: float) -> tuple[int, int]:
        costs = {"vcpu_steal_per_s": 1000.0, "vcpu_steal_ns": 100e3, "vcpu_steal_shape": shape}
        return stolen_and_longest(make_kernel, costs, 3)

    (expo_steal, expo_longest), (pareto_steal, pareto_longest) = run(0.0), run(1.5)
    assert pareto_steal == pytest.approx(expo_steal, rel=0.3)  # both about 10% of 2 s
    # of ~2000 pauses: exponential, the longest about ln(2000) = 7.6 means;
    # Pareto 1.5 (x_m = mean / 3), about 2000 ** (1 / 1.5) / 3 = 53 means
    assert expo_longest < 1.5 * MSEC < 3 * MSEC < pareto_longest


def test_timer_irq_latency_delays_each_hrtimer_by_its_own_draw(make_kernel) -> None:
    """timer_irq_latency_ns: an emulated LAPIC timer's interrupt comes after the
    expiry by an exponential delay with that mean, drawn per expiry and per CPU
    from the seed; 0 (a hardware timer) adds nothing and draws nothing."""
    def delays(mean: float, seed: int) -> list[int]:
        kernel = make_kernel(ncpus=1, costs={"timer_irq_latency_ns": mean}, seed=seed)
        cpu = kernel.cpus[0]
        fired: list[int] = []
        timer = HrTimer(cpu, lambda t: fired.append(kernel.sim.now))
        starts = [k * 10 * MSEC for k in range(1, 2001)]  # far apart: each fires before the next start
        for t0 in starts:
            kernel.sim.at(t0, lambda _: timer.start(0))
        kernel.sim.run(until=20100 * MSEC)
        return [f - t0 - 2000 for f, t0 in zip(fired, starts)]  # less the test profile's min delta

    assert delays(0.0, 1) == [0] * 2000
    d = delays(200e3, 1)
    assert d == delays(200e3, 1) and d != delays(200e3, 2)
    assert min(d) >= 0 and sum(d) / len(d) == pytest.approx(200e3, rel=0.1)
    # exponential: about e**-3 of them beyond 3 means
    assert sum(x > 600e3 for x in d) / len(d) == pytest.approx(math.exp(-3), abs=0.02)


def test_a_tick_stall_holds_every_timer_to_its_end_while_tasks_run(make_kernel) -> None:
    """Clock.stalled_until (host.start_tick_stalls()): while the emulator delivers no
    timer interrupt, no hrtimer or timer-wheel timer fires on any CPU, and each fires
    at the stall's end; the vCPUs' tasks run on meanwhile (no time stolen)."""
    kernel = make_kernel(ncpus=2)
    t0 = 10 * MSEC
    fired: list[tuple[str, int]] = []
    hr = HrTimer(kernel.cpus[1], lambda t: fired.append(("hrtimer", kernel.sim.now)))
    wheel = TimerList(kernel.cpus[0], lambda _: fired.append(("timer", kernel.sim.now)))
    kernel.sim.at(t0 - 100_000, lambda _: wheel.add(kernel.clock.jiffies + 2))  # due at 11 ms
    kernel.sim.at(t0, lambda _: setattr(kernel.clock, "stalled_until", t0 + 5 * MSEC))
    kernel.sim.at(t0 + 1 * MSEC, lambda _: hr.start(0))
    hogs = [spawn(kernel, f"hog{c}", hog, cpu=c) for c in range(2)]
    kernel.sim.run(until=t0 + 6 * MSEC)
    assert sorted(fired) == [("hrtimer", t0 + 5 * MSEC), ("timer", t0 + 5 * MSEC)]
    assert all(c.steal_ns == 0 for c in kernel.cpus)
    assert all(h.sum_exec >= 5 * MSEC for h in hogs)


def test_tick_stalls_are_seeded_poisson_with_uniform_lengths(make_kernel) -> None:
    """tick_stall_per_s starts, lengths uniform in [tick_stall_min_ns, tick_stall_max_ns],
    from the seed's own stream; a rate of 0 (x86-server) gives none."""
    def stalls(rate: float, seed: int) -> list[int]:
        costs = {"tick_stall_per_s": rate, "tick_stall_min_ns": 1 * MSEC, "tick_stall_max_ns": 3 * MSEC}
        kernel = make_kernel(ncpus=1, costs=costs, seed=seed)
        ends: list[int] = []

        def sample(_: object) -> None:
            until = kernel.clock.stalled_until
            if until > kernel.sim.now and (not ends or ends[-1] != until):
                ends.append(until)
            kernel.sim.after(50_000, sample)

        kernel.sim.after(0, sample)
        kernel.sim.run(until=10 * SEC)
        return ends

    assert stalls(0.0, 1) == []
    ends = stalls(50.0, 1)
    assert ends == stalls(50.0, 1) and ends != stalls(50.0, 2)
    assert 500 - 3 * 23 < len(ends) < 500 + 3 * 23  # Poisson(500)


def test_tick_stalls_hold_callbacks_up(make_kernel) -> None:
    """A callback waits for the ticks that start its grace period, report its CPUs'
    quiescent states and invoke it: with 4 ms stalls 30 times a second, while both
    CPUs stay busy, call_rcu() callbacks come later on average, and now and then a
    stall's length later."""
    def latencies(costs: dict[str, float]) -> list[int]:
        kernel = make_kernel(ncpus=2, costs=costs, seed=2)
        for c in range(2):
            spawn(kernel, f"hog{c}", hog, cpu=c)
        lat: list[int] = []

        def ask(_: object) -> None:
            t = kernel.sim.now
            kernel.rcu.call_rcu(kernel.cpus[0], lambda _: lat.append(kernel.sim.now - t))
            kernel.sim.after(10 * MSEC, ask)

        kernel.sim.after(0, ask)
        kernel.sim.run(until=2 * SEC)
        return lat

    plain = latencies({})
    stalled = latencies({"tick_stall_per_s": 30.0, "tick_stall_min_ns": 4 * MSEC, "tick_stall_max_ns": 4 * MSEC})
    assert sum(stalled) / len(stalled) > sum(plain) / len(plain) + 100_000
    assert max(stalled[1:]) > max(plain[1:]) + 2 * MSEC  # the first waits for the GP kthread to start


def test_late_timer_irqs_make_refill_kicks_land_late() -> None:
    """The calibration kernel's mark of a late refill kick: with the cache empty, a
    2-argument call falls back to the rcu_head list and kicks the refill, and the
    calls made until it lands fall back too (2-argument) or allocate their page
    inline (1-argument).  A kick that lands before the next call gives about one
    fallback per refill; one that lands late, about two: the next 1-argument call
    comes after a geometric run of 2-argument ones."""
    def ratios(latency_ns: float) -> tuple[float, float]:
        profile = load_profile("qemu-tcg-6.1")
        profile.costs["timer_irq_latency_ns"] = latency_ns
        cfg = make_config("v6.1", cpus=2, memory="96M", profile="qemu-tcg-6.1", seed=1,
                          bootargs="rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=4 "
                                   "rcuscale.kfree_loops=40 rcuscale.kfree_mult=64")
        r = simulate(cfg, profile)
        c = r.counters
        assert r.outcome == "completed" and c["shrink_count"] == 0 and c["fill_runs"] > 50
        return c["head_fallback"] / c["fill_runs"], c["direct_alloc"] / c["fill_runs"]

    head_now, direct_now = ratios(0.0)
    head_late, direct_late = ratios(1 * MSEC)
    assert head_now < 1.3 < 1.8 < head_late
    assert direct_now < direct_late


def test_no_kfree_rcu_work_refills_the_cache_between_a_late_kick_and_its_refill() -> None:
    """In the calibration kernel's event rings fill_page_cache_func() found the cache
    empty in all but 23 of 21,187 runs (data/qemu-tcg-here-2026-11-26): a late kick
    comes at the CPU's next tick at the latest, in hard interrupt context before that
    tick's RCU softirq, so the refill's highpri kworker runs before any kfree_rcu_work()
    (which recycles bulk pages into the cache) that softirq queues.  Counted at the
    refill's start, as the ring's KV_FILL event does."""
    class FillStart(Tracer):
        def __init__(self) -> None:
            self.cached: list[int] = []

        def workqueue_execute_start(self, worker: object, work: object) -> None:
            if getattr(work, "name", "") == "fill_page_cache_func":
                self.cached.append(work.data.nr_bkv_objs)  # type: ignore[attr-defined]

    tracer = FillStart()
    cfg = make_config("v6.1", cpus=2, memory="96M", profile="qemu-tcg-6.1", seed=1,
                      bootargs="rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=4 "
                               "rcuscale.kfree_loops=40 rcuscale.kfree_mult=64")
    r = simulate(cfg, tracer=tracer)
    assert r.outcome == "completed" and r.counters["shrink_count"] == 0
    assert len(tracer.cached) == r.counters["fill_runs"] > 50
    assert sum(1 for n in tracer.cached if n) <= len(tracer.cached) // 100


SPEED = {"vcpu_speed_sd": 0.26, "vcpu_speed_tau_ns": 0.8 * SEC}


def speeds(make_kernel, seed: int, seconds: int, costs: dict[str, float] = SPEED) -> list[list[float]]:
    """Each vCPU's speed, sampled every 10 ms of an idle machine."""
    kernel = make_kernel(ncpus=2, costs=costs, seed=seed)
    out: list[list[float]] = [[], []]

    def sample(_: object) -> None:
        for i, cpu in enumerate(kernel.cpus):
            out[i].append(cpu.speed)
        kernel.sim.at(kernel.sim.now + 10 * MSEC, sample, None)

    kernel.sim.at(5 * MSEC, sample, None)
    kernel.sim.run(until=seconds * SEC)
    return out


def test_vcpu_speed_has_the_profiles_law(make_kernel) -> None:
    """VcpuSpeed: log speed an Ornstein-Uhlenbeck process of sd vcpu_speed_sd and time
    constant vcpu_speed_tau_ns (autocorrelation 1/e one tau apart), mean speed 1, each
    vCPU its own."""
    runs = speeds(make_kernel, 1, 400)
    for s in runs:
        logs = [math.log(v) for v in s]
        mean = sum(logs) / len(logs)
        var = sum((x - mean) ** 2 for x in logs) / len(logs)
        assert math.sqrt(var) == pytest.approx(0.26, rel=0.1)
        assert sum(s) / len(s) == pytest.approx(1.0, abs=0.05)
        lag = 80  # 0.8 s in 10 ms samples
        acf = sum((logs[i] - mean) * (logs[i + lag] - mean) for i in range(len(logs) - lag)) / (len(logs) - lag) / var
        assert acf == pytest.approx(math.exp(-1), abs=0.1)
    assert runs[0] != runs[1]


def test_vcpu_speed_is_seeded_and_off_by_default(make_kernel) -> None:
    """The same seed gives the same speeds; a profile with vcpu_speed_sd 0 (hardware)
    runs every vCPU at speed 1, exactly."""
    assert speeds(make_kernel, 7, 2) == speeds(make_kernel, 7, 2) != speeds(make_kernel, 8, 2)
    assert {v for s in speeds(make_kernel, 7, 2, costs={}) for v in s} == {1.0}
