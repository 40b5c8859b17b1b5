"""Jiffies, hrtimers and the timer wheel (kernel/time/{jiffies,hrtimer,timer}.c).

Time is integer nanoseconds from the start of the run.  ``jiffies`` advance at
each tick, every ``TICK_NSEC = (NSEC_PER_SEC + HZ/2) / HZ`` ns
(include/linux/jiffies.h).  Every CPU's tick is on that jiffy grid
(``sched_skew_tick`` defaults to 0, kernel/time/tick-sched.c), except where the
profile says a CPU's tick comes later in the jiffy (layout ``vcpu_tick_phase_ns``,
``Cpu.tick_offset``: the vCPUs of an emulator need not tick in phase).

* :class:`HrTimer` fires at an exact time, in hard-interrupt context on the
  CPU that armed it (kernel/time/hrtimer.c).  A timer armed in the past (the
  0-ns kick of ``run_page_cache_worker()``) fires after the clock-event
  device's minimum delta, the profile's ``hrtimer_min_delta_ns``; on an
  emulated timer its interrupt comes later still (:class:`~.host.TimerIrqLatency`),
  but no later than the CPU's next tick, whose ``hrtimer_interrupt()`` runs every
  hrtimer expired by then.
* :class:`TimerList` is a ``struct timer_list`` on the timer wheel; it fires in
  the TIMER softirq at the tick of the jiffy the wheel puts it in, which for
  long delays is later than asked: ``calc_wheel_index()`` rounds the expiry up
  past ``expires`` to the granularity of the wheel level the delay falls in
  (kernel/time/timer.c, v5.11 and v6.1 alike): a 3-jiffy timeout fires 4 ticks
  later, a ``HZ`` delay up to 64 jiffies late, a 5 s delay up to 512.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Final

from ..core.sim import PRIO_HARDIRQ, PRIO_SOFTIRQ, Event, Simulator

if TYPE_CHECKING:
    from .sched import Cpu

NSEC_PER_SEC: Final = 1_000_000_000
NSEC_PER_MSEC: Final = 1_000_000

# kernel/time/timer.c
LVL_CLK_SHIFT: Final = 3
LVL_BITS: Final = 6
LVL_SIZE: Final = 1 << LVL_BITS


def lvl_depth(hz: int) -> int:
    """LVL_DEPTH: 9 levels for HZ > 100, 8 otherwise (kernel/time/timer.c)."""
    return 9 if hz > 100 else 8


def lvl_shift(n: int) -> int:
    return n * LVL_CLK_SHIFT


def lvl_gran(n: int) -> int:
    return 1 << lvl_shift(n)


def lvl_start(n: int) -> int:
    """First delta that lands in level ``n``: ``(LVL_SIZE - 1) << ((n-1) * LVL_CLK_SHIFT)``."""
    return (LVL_SIZE - 1) << ((n - 1) * LVL_CLK_SHIFT)


def wheel_expiry(expires: int, base_clk: int, hz: int) -> int:
    """The jiffy at which a timer for ``expires`` really fires.

    ``calc_wheel_index()``/``calc_index()`` (v5.11-v6.1) pick the level from
    ``expires - base->clk`` and round the expiry up past it with that level's
    granularity, so that a timer never fires early: the bucket expires at
    ``((expires + LVL_GRAN(lvl)) >> LVL_SHIFT(lvl)) << LVL_SHIFT(lvl)``.  Even
    level 0 fires one jiffy after ``expires``.  Deltas beyond the wheel are
    capped at ``WHEEL_TIMEOUT_MAX``.
    """
    delta = expires - base_clk
    if delta < 0:
        expires = base_clk
        delta = 0
    depth = lvl_depth(hz)
    lvl = 0
    while lvl < depth - 1 and delta >= lvl_start(lvl + 1):
        lvl += 1
    if lvl == depth - 1 and delta >= lvl_start(depth):
        # WHEEL_TIMEOUT_MAX = WHEEL_TIMEOUT_CUTOFF - LVL_GRAN(LVL_DEPTH - 1)
        expires = base_clk + lvl_start(depth) - lvl_gran(depth - 1)
    shift = lvl_shift(lvl)
    return ((expires + lvl_gran(lvl)) >> shift) << shift


class Clock:
    """HZ, the tick length and jiffies of one simulated machine.

    The ticks fall on a grid of real time.  Where the emulator stops delivering
    them for a while (:meth:`stall`, host.start_tick_stalls()), the ticks due
    meanwhile come as one at the stall's end: ``jiffies``, which only ticks
    advance, stands still through the stall and then falls behind real time by
    the ticks skipped, and so does the guest's clock (:meth:`ktime_ns`: under
    QEMU TCG the clocksource is jiffies)."""

    __slots__ = ("sim", "hz", "tick_ns", "stalled_until", "stalled_from", "skipped", "_skipping")

    def __init__(self, sim: Simulator, hz: int) -> None:
        self.sim = sim
        #: no timer interrupt reaches any CPU before this instant (host.start_tick_stalls())
        self.stalled_until = 0
        self.stalled_from = 0
        self.skipped = 0  # ticks skipped by the stalls that have ended
        self._skipping = 0  # ... and by the current one, from its end
        self.hz = hz
        self.tick_ns = (NSEC_PER_SEC + hz // 2) // hz  # TICK_NSEC

    def stall(self, until: int) -> None:
        """No tick reaches any CPU before ``until`` (from now, or extending the stall on)."""
        self._settle()
        now = self.sim.now
        if now >= self.stalled_until:
            self.stalled_from = now
        self.stalled_until = max(self.stalled_until, until)
        due = self.stalled_until // self.tick_ns - self.stalled_from // self.tick_ns
        self._skipping = max(due - 1, 0)  # all but the one taken at the end

    def after_stall(self, fn: Callable[[Any], None], arg: Any, prio: int) -> Event | None:
        """If a stall holds the timer interrupts now, run ``fn(arg)`` at its end instead
        and return that event (the caller keeps it as its pending one); else None."""
        if self.stalled_until > self.sim.now:
            return self.sim.at(self.stalled_until, fn, arg, prio)
        return None

    def _settle(self) -> None:
        if self._skipping and self.sim.now >= self.stalled_until:
            self.skipped += self._skipping
            self._skipping = 0

    def _guest_now(self) -> int:
        """Real time as the guest's ticks have counted it: frozen in a stall."""
        self._settle()
        now = self.sim.now
        return self.stalled_from if now < self.stalled_until else now

    @property
    def jiffies(self) -> int:
        return self._guest_now() // self.tick_ns - self.skipped

    def ktime_ns(self) -> int:
        """ktime_get(): the guest's monotonic clock, behind real time by the skipped ticks."""
        return self._guest_now() - self.skipped * self.tick_ns

    def jiffy_time(self, j: int) -> int:
        """The instant of the tick that makes ``jiffies == j`` (no stall meanwhile)."""
        self._settle()
        return (j + self.skipped) * self.tick_ns

    def next_tick(self, t: int) -> int:
        """The first tick strictly after ``t``."""
        return (t // self.tick_ns + 1) * self.tick_ns

    def msecs_to_jiffies(self, ms: int) -> int:
        """include/linux/jiffies.h: rounds up."""
        return (ms * self.hz + 999) // 1000


class HrTimer:
    """``struct hrtimer`` (CLOCK_MONOTONIC, HRTIMER_MODE_REL, hard context)."""

    __slots__ = ("cpu", "function", "_ev", "name", "_expire_cb")

    def __init__(self, cpu: "Cpu", function: Callable[["HrTimer"], None], name: str = "hrtimer") -> None:
        self.cpu = cpu
        self.function = function
        self._ev: Event | None = None
        self.name = name
        self._expire_cb: Callable[[object], None] = self._expire  # bound once, not per start

    def active(self) -> bool:
        return Simulator.pending(self._ev)

    def start(self, delay_ns: int) -> None:
        """hrtimer_start(): (re)arm to fire ``delay_ns`` from now, at least min-delta later."""
        cpu = self.cpu
        Simulator.cancel(self._ev)
        kernel = cpu.kernel
        delay = max(delay_ns, kernel.costs_hrtimer_min_delta)
        if cpu.tracer is not None:
            if self._ev is not None:  # remove_hrtimer() of a queued timer
                cpu.tracer.hrtimer_cancel(cpu, self)
            cpu.tracer.hrtimer_start(cpu, self, cpu.sim.now + delay)
        # the expiry the kernel programs; its interrupt may come later still, but the
        # CPU's next tick runs it (hrtimer_interrupt() runs every expired hrtimer): the
        # calibration kernel's ticks keep their time (data NOTES item 14)
        expiry = cpu.sim.now + delay
        late = kernel.timer_irq_latency.draw(cpu.id)
        if late:
            late = min(late, cpu.next_tick(expiry) - expiry)
        self._ev = cpu.sim.at(expiry + late, self._expire_cb, None, PRIO_HARDIRQ)

    def cancel(self, by: "Cpu | None" = None) -> bool:
        """hrtimer_cancel() called on ``by`` (default: the timer's CPU): True if the timer was queued."""
        was = self.active()
        Simulator.cancel(self._ev)
        self._ev = None
        if was and self.cpu.tracer is not None:
            self.cpu.tracer.hrtimer_cancel(by or self.cpu, self)
        return was

    def _expire(self, _: object) -> None:
        cpu = self.cpu
        self._ev = cpu.kernel.clock.after_stall(self._expire_cb, None, PRIO_HARDIRQ)
        if self._ev is not None:  # the interrupt comes when the emulator delivers it
            return
        if cpu.tracer is not None:
            # __run_hrtimer(): debug_deactivate() traces hrtimer_cancel before the expiry
            cpu.tracer.hrtimer_cancel(cpu, self, expiring=True)
            cpu.tracer.hrtimer_expire(cpu, self)
        cpu.hardirq(self.function, self)


class TimerList:
    """``struct timer_list`` on one CPU's timer wheel; runs in TIMER softirq."""

    __slots__ = ("cpu", "function", "arg", "_ev", "expires", "_fire_j")

    def __init__(self, cpu: "Cpu", function: Callable[[object], None], arg: object = None) -> None:
        self.cpu = cpu
        self.function = function
        self.arg = arg
        self._ev: Event | None = None
        self.expires = 0
        self._fire_j = 0

    def pending(self) -> bool:
        """timer_pending()."""
        return Simulator.pending(self._ev)

    def add(self, expires: int, cpu: "Cpu | None" = None) -> None:
        """add_timer_on()/mod_timer(): fire at jiffy ``expires`` (wheel-rounded)."""
        if cpu is not None:
            self.cpu = cpu
        clock = self.cpu.kernel.clock
        Simulator.cancel(self._ev)
        now_j = clock.jiffies
        fire = wheel_expiry(expires, now_j, clock.hz)
        self.expires = expires
        self._fire_j = fire
        # the TIMER softirq of this CPU's tick for that jiffy (Cpu.tick_offset); armed in a
        # stall, whose jiffies stand still, that instant may be past: _fire() waits on
        t = clock.jiffy_time(fire) + self.cpu.tick_offset
        self._ev = clock.sim.at(max(t, clock.sim.now), self._fire, None, PRIO_SOFTIRQ)

    def delete(self) -> bool:
        """del_timer(): True if it was pending."""
        was = self.pending()
        Simulator.cancel(self._ev)
        self._ev = None
        return was

    def _fire(self, _: object) -> None:
        clock = self.cpu.kernel.clock
        self._ev = clock.after_stall(self._fire, None, PRIO_SOFTIRQ)
        if self._ev is not None:  # no tick, no TIMER softirq, until the stall ends
            return
        if clock.jiffies < self._fire_j:  # a stall skipped ticks since: jiffies gets there later
            t = clock.jiffy_time(self._fire_j) + self.cpu.tick_offset
            self._ev = self.cpu.sim.at(max(t, self.cpu.sim.now), self._fire, None, PRIO_SOFTIRQ)
            return
        self._ev = None
        self.cpu.kernel.rcu.tick_from_idle(self.cpu)  # a stopped tick restarts for the timer
        self.cpu.softirq(self.function, self.arg)
