"""Jiffies, the timer wheel and hrtimers (src/kvfree_sim/kernel/time.py).

Expected values are computed here by hand from the kernel's formulas, never by
calling the function under test.
"""

from __future__ import annotations

import pytest

from kvfree_sim.core.sim import PRIO_SOFTIRQ, Simulator
from kvfree_sim.kernel.time import Clock, HrTimer, TimerList, wheel_expiry

from ktest import MSEC, USEC, at, hog, spawn


# -- jiffies --------------------------------------------------------------------------


@pytest.mark.parametrize("hz, tick_nsec", [(100, 10_000_000), (250, 4_000_000), (300, 3_333_333), (1000, 1_000_000)])
def test_tick_length_is_tick_nsec(hz: int, tick_nsec: int) -> None:
    """include/vdso/jiffies.h (v6.1): TICK_NSEC = (NSEC_PER_SEC + HZ/2) / HZ.
    HZ=300: (1000000000 + 150) / 300 = 3333333 (integer division)."""
    sim = Simulator()
    clock = Clock(sim, hz)
    assert clock.tick_ns == tick_nsec
    sim.at(1_000_000_000, lambda _: None)
    sim.run(until=1_000_000_000)
    # jiffies count ticks: at 1 s, 1e9 // TICK_NSEC of them (HZ=300: 300 * 3333333 = 999999900)
    assert clock.jiffies == 1_000_000_000 // tick_nsec
    assert clock.jiffies == hz
    assert clock.jiffy_time(7) == 7 * tick_nsec
    assert clock.next_tick(0) == tick_nsec
    assert clock.next_tick(tick_nsec) == 2 * tick_nsec  # strictly after


@pytest.mark.parametrize("hz, ms, expected", [
    (1000, 1, 1), (1000, 20, 20),
    (250, 1, 1), (250, 5, 2), (250, 20, 5),   # (m + 4 - 1) / 4
    (100, 1, 1), (100, 15, 2), (100, 20, 2),  # (m + 10 - 1) / 10
    (300, 1, 1), (300, 5, 2), (300, 20, 6),   # rounds m*300/1000 up
])
def test_msecs_to_jiffies_rounds_up(hz: int, ms: int, expected: int) -> None:
    """include/linux/jiffies.h _msecs_to_jiffies() (v6.1): HZ dividing 1000 gives
    (m + MSEC_PER_SEC/HZ - 1) / (MSEC_PER_SEC/HZ); other HZ round m*HZ/1000 up."""
    assert Clock(Simulator(), hz).msecs_to_jiffies(ms) == expected


# -- the timer wheel --------------------------------------------------------------------


def bucket(expires: int, clk: int, depth: int = 9) -> int:
    """calc_wheel_index()/calc_index() (kernel/time/timer.c v6.1), by hand:
    level from delta = expires - clk against LVL_START(n) = 63 << 3(n-1);
    bucket_expiry = ((expires >> 3*lvl) + 1) << 3*lvl."""
    starts = [63 << (3 * (n - 1)) for n in range(1, depth + 1)]  # LVL_START(1..depth)
    delta = expires - clk
    lvl = 0
    while lvl < depth - 1 and delta >= starts[lvl]:
        lvl += 1
    if lvl == depth - 1 and delta >= starts[depth - 1]:
        expires = clk + starts[depth - 1] - (1 << (3 * (depth - 1)))  # WHEEL_TIMEOUT_MAX
    shift = 3 * lvl
    return ((expires >> shift) + 1) << shift


# (delay in jiffies, firing jiffy) for a timer armed at base->clk == 0, worked out by hand:
# delay < 63 is level 0 (granularity 1): fires at expires + 1;
# 63 and 64 are level 1 (granularity 8): ((63 >> 3) + 1) << 3 = 64, ((64 >> 3) + 1) << 3 = 72;
# 1000 is level 2 (granularity 64): ((1000 >> 6) + 1) << 6 = 16 * 64 = 1024;
# 5000 is level 3 (granularity 512): ((5000 >> 9) + 1) << 9 = 10 * 512 = 5120.
WHEEL_AT_0 = [(0, 1), (1, 2), (3, 4), (20, 21), (63, 64), (64, 72), (1000, 1024), (5000, 5120)]
# The same delays armed at base->clk == 1000:
# 1000+63=1063 -> (132 + 1) * 8 = 1064; 1064 -> (133 + 1) * 8 = 1072;
# 2000 -> (31 + 1) * 64 = 2048; 6000 -> (11 + 1) * 512 = 6144.
WHEEL_AT_1000 = [(0, 1001), (1, 1002), (3, 1004), (20, 1021), (63, 1064), (64, 1072), (1000, 2048), (5000, 6144)]


@pytest.mark.parametrize("hz", [1000, 250])
@pytest.mark.parametrize("clk, table", [(0, WHEEL_AT_0), (1000, WHEEL_AT_1000)])
def test_wheel_expiry_rounds_up_like_calc_wheel_index(hz: int, clk: int, table: list[tuple[int, int]]) -> None:
    """kernel/time/timer.c calc_wheel_index()/calc_index() (v5.11 and v6.1: the same
    buckets): a timer never fires early, and fires later the farther out it is.
    LVL_DEPTH is 9 for both HZ=1000 and HZ=250 (HZ > 100)."""
    for delay, fires in table:
        assert wheel_expiry(clk + delay, clk, hz) == fires, f"delay {delay} at clk {clk}"
        assert bucket(clk + delay, clk) == fires  # the hand table agrees with the formula


def test_wheel_expiry_caps_very_long_timeouts_at_wheel_timeout_max() -> None:
    """calc_wheel_index() (v6.1): delta >= WHEEL_TIMEOUT_CUTOFF -> expires = clk +
    WHEEL_TIMEOUT_MAX, WHEEL_TIMEOUT_MAX = LVL_START(LVL_DEPTH) - LVL_GRAN(LVL_DEPTH-1).
    HZ=100 has LVL_DEPTH 8: cutoff 63 << 21 = 132120576, max = 132120576 - 2097152 =
    130023424.  Armed at clk = 2^20: expires = 131072000, level 7 (shift 21):
    ((131072000 >> 21) + 1) << 21 = (62 + 1) << 21 = 132120576."""
    clk = 1 << 20
    assert wheel_expiry(clk + 10**9, clk, 100) == 132120576
    assert bucket(clk + 10**9, clk, depth=8) == 132120576


def test_timer_list_fires_in_softirq_at_the_wheel_jiffy(make_kernel) -> None:
    """add_timer()/mod_timer() at jiffy 10 with expires = 10 + 20: level 0, the
    TIMER softirq runs it at the tick of jiffy 31 (kernel/time/timer.c
    __run_timers() -> expire_timers()); mod_timer() re-arms, del_timer() drops."""
    kernel = make_kernel()
    cpu = kernel.cpus[0]
    fired: list[tuple[int, str, object]] = []
    timer = TimerList(cpu, lambda arg: fired.append((kernel.sim.now, cpu.context, arg)), "arg")
    dropped = TimerList(cpu, lambda arg: fired.append((kernel.sim.now, "dropped", arg)))

    def arm() -> None:
        timer.add(kernel.clock.jiffies + 20)
        dropped.add(kernel.clock.jiffies + 5)
        assert timer.pending() and dropped.pending()

    at(kernel, 10 * MSEC + 300 * USEC, arm)
    at(kernel, 12 * MSEC, lambda: dropped.delete())
    kernel.sim.run(until=100 * MSEC)
    assert fired == [(31 * MSEC, "softirq", "arg")]
    assert not timer.pending()

    at(kernel, 140 * MSEC + 500 * USEC, lambda: timer.add(kernel.clock.jiffies + 100))
    at(kernel, 141 * MSEC + 500 * USEC, lambda: timer.add(kernel.clock.jiffies + 3))  # mod_timer()
    kernel.sim.run(until=300 * MSEC)
    assert fired[1:] == [(145 * MSEC, "softirq", "arg")]


# -- hrtimers -------------------------------------------------------------------------------


@pytest.mark.parametrize("delay, expected", [(0, 2000), (1500, 2000), (2000, 2000), (5000, 5000), (3 * MSEC, 3 * MSEC)])
def test_hrtimer_fires_exactly_after_max_of_delay_and_min_delta(make_kernel, delay: int, expected: int) -> None:
    """hrtimer_start() (kernel/time/hrtimer.c) fires at the exact expiry, in hard
    interrupt context on the CPU that armed it; an expiry closer than the clock
    event device can be programmed is pushed to now + min_delta_ns
    (clockevents_program_event(): delta = max(delta, dev->min_delta_ns))."""
    kernel = make_kernel(ncpus=2)  # min delta 2000 ns in the test profile
    cpu = kernel.cpus[1]
    spawn(kernel, "busy", hog, cpu=1)
    fired: list[tuple[int, str, int]] = []
    timer = HrTimer(cpu, lambda t: fired.append((kernel.sim.now, cpu.context, t.cpu.id)))
    t0 = 5 * MSEC + 123
    at(kernel, t0, timer.start, delay)
    kernel.sim.run(until=t0 + 10 * MSEC)
    assert fired == [(t0 + expected, "hardirq", 1)]


def test_hrtimer_restart_replaces_and_cancel_drops(make_kernel) -> None:
    """hrtimer_start() on a queued timer removes it first (remove_hrtimer()), so it
    fires once, at the new time; hrtimer_cancel() returns 1 if it was queued."""
    kernel = make_kernel()
    cpu = kernel.cpus[0]
    fired: list[int] = []
    timer = HrTimer(cpu, lambda t: fired.append(kernel.sim.now))
    at(kernel, 1 * MSEC, timer.start, 5 * MSEC)
    at(kernel, 2 * MSEC, timer.start, 1 * MSEC)
    kernel.sim.run(until=20 * MSEC)
    assert fired == [3 * MSEC]
    results: list[bool] = []
    at(kernel, 30 * MSEC, timer.start, 1 * MSEC)
    at(kernel, 30 * MSEC + 10, lambda: results.append(timer.cancel()))
    at(kernel, 40 * MSEC, lambda: results.append(timer.cancel()))
    kernel.sim.run(until=50 * MSEC)
    assert fired == [3 * MSEC]
    assert results == [True, False]


def test_hrtimer_interrupt_takes_its_time_from_the_running_task(make_kernel) -> None:
    """A hard interrupt runs on the interrupted CPU (irq_enter()/irq_exit(),
    kernel/softirq.c): the task's 1 ms of work ends later by the handler's time."""
    kernel = make_kernel(costs={"hardirq_ns": 7000})
    done: list[int] = []

    def work(me):
        yield 1 * MSEC
        done.append(kernel.sim.now)

    spawn(kernel, "work", work, cpu=0, at=10 * MSEC)
    timer = HrTimer(kernel.cpus[0], lambda t: None)
    at(kernel, 10 * MSEC + 200 * USEC, timer.start, 100 * USEC)
    kernel.sim.run(until=20 * MSEC)
    assert done == [11 * MSEC + 7000]


def test_a_late_timer_interrupt_comes_at_the_cpus_next_tick_at_the_latest(make_kernel) -> None:
    """An emulated LAPIC timer's interrupt may come late (timer_irq_latency_ns), but the
    CPU's tick keeps its time, and its hrtimer_interrupt() runs every hrtimer expired by
    then (kernel/time/hrtimer.c): a kick whose interrupt would come after the tick runs
    at the tick, before that tick's TIMER softirq; one due earlier comes at its own time.
    The calibration kernel's ticks keep their time (data NOTES item 14)."""
    def run(seed: int) -> tuple[list[tuple[str, int, str]], int]:
        kernel = make_kernel(ncpus=1, costs={"timer_irq_latency_ns": 1 * MSEC}, seed=seed)
        cpu = kernel.cpus[0]
        spawn(kernel, "hog", hog, cpu=0)
        fired: list[tuple[str, int, str]] = []
        kick = HrTimer(cpu, lambda t: fired.append(("kick", kernel.sim.now, cpu.context)))
        wheel = TimerList(cpu, lambda name: fired.append((name, kernel.sim.now, cpu.context)), "wheel")
        t0 = 10 * MSEC + 600 * USEC
        at(kernel, t0, lambda: (kick.start(0), wheel.add(kernel.clock.jiffies)))
        kernel.sim.run(until=20 * MSEC)
        return fired, t0

    outcomes = {}
    for seed in range(1, 40):
        fired, t0 = run(seed)
        kick_t = fired[[f[0] for f in fired].index("kick")][1]
        outcomes["at the tick" if kick_t == 11 * MSEC else "before it"] = fired
        assert t0 + 2000 <= kick_t <= 11 * MSEC  # never past the tick (2 us: the min delta)
        assert ("wheel", 11 * MSEC, "softirq") in fired  # the tick keeps its time
    assert outcomes["at the tick"] == [("kick", 11 * MSEC, "hardirq"), ("wheel", 11 * MSEC, "softirq")]
    assert outcomes["before it"][0][1] < 11 * MSEC


def test_a_cpu_whose_tick_comes_later_runs_its_wheel_timers_then(make_kernel) -> None:
    """vcpu_tick_phase_ns: CPU i ticks i x that after the jiffy grid (modulo the tick), and
    the TIMER softirq of its tick runs the timers due: a timer due at jiffy 11 fires at
    11 ms on CPU 0 and at 11.7 ms on CPU 1 (0.7 ms phase)."""
    kernel = make_kernel(ncpus=2, layout={"vcpu_tick_phase_ns": 700 * USEC})
    fired: list[tuple[str, int]] = []
    timers = [TimerList(c, lambda name: fired.append((name, kernel.sim.now)), f"cpu{c.id}") for c in kernel.cpus]
    at(kernel, 10 * MSEC + 100 * USEC, lambda: [t.add(kernel.clock.jiffies) for t in timers])
    kernel.sim.run(until=20 * MSEC)
    assert fired == [("cpu0", 11 * MSEC), ("cpu1", 11 * MSEC + 700 * USEC)]
    assert [c.tick_offset for c in kernel.cpus] == [0, 700 * USEC]
    assert kernel.cpus[1].next_tick(11 * MSEC + 700 * USEC) == 12 * MSEC + 700 * USEC


def test_a_stall_freezes_jiffies_and_skips_the_ticks_due_in_it(make_kernel) -> None:
    """Clock.stall(): the emulator delivers no tick from 10.5 to 15.2 ms; the ticks due
    at 11-15 ms come as one at 15.2 ms, so jiffies stands at 10 through the stall, is 11
    at its end and 12 at the 16 ms tick (not 16): four ticks skipped, and the guest's
    clock (ktime) 4 ms behind real time from then on."""
    kernel = make_kernel(ncpus=1)
    clock = kernel.clock
    seen: dict[int, tuple[int, int]] = {}

    def look(_: object) -> None:
        seen[kernel.sim.now] = (clock.jiffies, clock.ktime_ns())

    kernel.sim.at(10_500_000, lambda _: clock.stall(15_200_000))
    for t in (10_400_000, 12_000_000, 15_200_000, 16_000_000, 20_000_000):
        kernel.sim.at(t, look, None, PRIO_SOFTIRQ)
    kernel.sim.run(until=21 * MSEC)
    assert seen[10_400_000] == (10, 10_400_000)
    assert seen[12_000_000][0] == 10 and seen[12_000_000][1] == 10_500_000  # frozen
    assert seen[15_200_000][0] == 11
    assert seen[16_000_000] == (12, 12_000_000)
    assert seen[20_000_000] == (16, 16_000_000)


def test_a_timer_due_after_a_stall_waits_for_its_jiffy(make_kernel) -> None:
    """A timer for jiffy 14 armed before a stall that skips four ticks fires when
    jiffies reaches 14 (at 18 ms of real time, wheel rounding included), not at 14 or 15 ms."""
    kernel = make_kernel(ncpus=1)
    clock = kernel.clock
    fired: list[tuple[int, int]] = []
    timer = TimerList(kernel.cpus[0], lambda _: fired.append((kernel.sim.now, clock.jiffies)))
    kernel.sim.at(9_500_000, lambda _: timer.add(13))  # level 0 fires one jiffy after: 14
    kernel.sim.at(10_500_000, lambda _: clock.stall(15_200_000))
    kernel.sim.run(until=30 * MSEC)
    assert fired == [(18_000_000, 14)]


def test_a_timer_armed_in_a_stall_fires_after_it(make_kernel) -> None:
    """Armed while a stall holds jiffies at 10 (at 13.5 ms of real time), a timer for
    jiffy 11 (level 0: fires at 12) waits for the stall's end and then for jiffies 12."""
    kernel = make_kernel(ncpus=1)
    clock = kernel.clock
    fired: list[tuple[int, int]] = []
    timer = TimerList(kernel.cpus[0], lambda _: fired.append((kernel.sim.now, clock.jiffies)))
    kernel.sim.at(10_500_000, lambda _: clock.stall(15_200_000))
    kernel.sim.at(13_500_000, lambda _: timer.add(clock.jiffies + 1))
    kernel.sim.run(until=30 * MSEC)
    assert fired == [(16_000_000, 12)]
