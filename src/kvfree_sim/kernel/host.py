"""The host under a virtual machine: when a vCPU does not run.

A guest's vCPUs are threads of the host.  Two things take a vCPU off its
host core, and nothing runs on it meanwhile (not even its tick):

* :func:`start_vcpu_steal`: the host's own work preempts each vCPU thread now
  and then (profile costs ``vcpu_steal_per_s``, ``vcpu_steal_ns``), and, where
  the host is itself a virtual machine, its hypervisor now and then stalls it
  for much longer (``vcpu_stall_per_s``, ``vcpu_stall_ns``);
* :class:`HostCores`: more busy vCPUs than host cores (QEMU's ``-smp 4`` on a
  2-core host, layout entries ``host_cpus`` and ``host_slice_ns``).  The host's
  scheduler time-slices the vCPU threads: at each host tick the busy vCPUs
  that waited longest get the cores, the others wait a slice.

A paused vCPU holds up every grace period (it reports no quiescent state)
while the vCPUs that run keep allocating.

A third, :func:`start_tick_stalls`, stops the emulated timer interrupts of every
vCPU at once while the vCPUs run on (QEMU's main-loop thread waiting for a core).

And two things change how a vCPU runs while it runs: :class:`VcpuSpeed`, how
fast (profile costs ``vcpu_speed_sd``, ``vcpu_speed_tau_ns``), and
:class:`TimerIrqLatency`, how late its timer interrupts come (profile cost
``timer_irq_latency_ns``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

from ..core.rng import exponential_ns, pareto_ns
from ..core.sim import PRIO_HARDIRQ

if TYPE_CHECKING:
    import random

    from .sched import Cpu
    from .system import Kernel


def start_host(kernel: "Kernel") -> None:
    """What the profile says the host does: steal, speed that varies, and shared cores if there are fewer."""
    start_vcpu_steal(kernel)
    start_tick_stalls(kernel)
    VcpuSpeed.start(kernel)
    layout = kernel.profile.layout
    cores, slice_ns = int(layout["host_cpus"]), int(layout["host_slice_ns"])
    if HostCores.needed(len(kernel.cpus), cores, slice_ns):
        HostCores(kernel, cores, slice_ns).start()


def start_vcpu_steal(kernel: "Kernel") -> None:
    """Two independent Poisson processes of pauses per vCPU: the host's
    preemptions, exponential or Pareto (``vcpu_steal_shape``), and the rarer,
    longer stalls of a nested host, exponential.  Each its own random stream."""
    costs = kernel.profile.costs
    for kind, rate, mean, shape in (
            ("vcpu-steal", costs["vcpu_steal_per_s"], costs["vcpu_steal_ns"], costs["vcpu_steal_shape"]),
            ("vcpu-stall", costs["vcpu_stall_per_s"], costs["vcpu_stall_ns"], 0.0)):
        if rate > 0 and mean > 0:
            for cpu in kernel.cpus:
                _next_steal(kernel, cpu, kind, rate, mean, shape)


def start_tick_stalls(kernel: "Kernel") -> None:
    """Stretches in which no timer interrupt reaches any vCPU while the vCPUs run on.

    Under QEMU TCG every vCPU's LAPIC timer is a QEMU timer of the main-loop
    thread, which raises the interrupt on the vCPU; with as many busy vCPU
    threads as host cores that thread waits for a core now and then, for a
    host tick or so (``perf sched``: scheduling delays up to 5.3 ms), and the
    periodic timer's missed periods are skipped, not queued.  Measured in the
    kernel's event ring, whose ticks carry the TSC (data/qemu-tcg-fast-2026-11-27
    NOTES.md item 9): both vCPUs' ticks stop at once for 2.5-10 ms a few times a
    second, and in about a third of those stops the kfree threads go on at full
    speed.  So no tick, timer or hrtimer runs on any CPU until the stall ends
    (:meth:`Clock.stall`), when each CPU takes one tick: grace periods and the
    krcps' monitors stop while the vCPUs allocate, and ``jiffies`` and the
    guest's clock (a jiffies clocksource under TCG) fall behind real time by the
    ticks skipped, as the kernel's ring shows (its clock 0.7-2.5% behind the
    TSC); rcuscale's times leave the stalls out as the kernel's do.  Poisson
    starts (profile ``tick_stall_per_s``), lengths uniform between
    ``tick_stall_min_ns`` and ``tick_stall_max_ns``."""
    costs = kernel.profile.costs
    rate, lo, hi = costs["tick_stall_per_s"], int(costs["tick_stall_min_ns"]), int(costs["tick_stall_max_ns"])
    if rate > 0 and hi > 0:
        _next_tick_stall(kernel, kernel.rng.stream("tick-stall"), rate, lo, hi)


def _next_tick_stall(kernel: "Kernel", rng: "random.Random", rate: float, lo: int, hi: int) -> None:
    def stall(_: object) -> None:
        kernel.clock.stall(kernel.sim.now + rng.randint(lo, hi))
        _next_tick_stall(kernel, rng, rate, lo, hi)

    kernel.sim.at(kernel.sim.now + exponential_ns(rng, 1e9 / rate), stall, None, PRIO_HARDIRQ)


def _next_steal(kernel: "Kernel", cpu: "Cpu", kind: str, rate: float, mean: float, shape: float) -> None:
    rng = kernel.rng.stream(f"{kind}/{cpu.id}")
    start = max(kernel.sim.now, cpu.paused_until) + exponential_ns(rng, 1e9 / rate)

    def pause(_: object) -> None:
        length = pareto_ns(rng, mean, shape) if shape else exponential_ns(rng, mean)
        cpu.steal(max(1, length))
        _next_steal(kernel, cpu, kind, rate, mean, shape)

    kernel.sim.at(start, pause, None, PRIO_HARDIRQ)


class HostCores:
    """``host_cpus`` host cores shared by more vCPU threads, one slice at a time.

    The host's fair scheduler (EEVDF since Linux 6.6, kernel/sched/fair.c)
    gives each runnable thread a slice of ``sysctl_sched_base_slice`` and
    checks it at the host's tick (``HRTICK`` is off by default), so with more
    runnable threads than cores they take turns a host tick at a time
    (``host_slice_ns``).  A vCPU whose guest is idle halts, which puts its
    thread to sleep: only busy vCPUs take turns.

    Left out: a vCPU that wakes from idle in the middle of a slice runs at
    once, even when every core is taken (it waits for the next host tick in
    the real host only if no core is free).
    """

    def __init__(self, kernel: "Kernel", cores: int, slice_ns: int) -> None:
        self.kernel = kernel
        self.cores = cores
        self.slice_ns = slice_ns
        self.order: list[Cpu] = list(kernel.cpus)  # longest waiting first

    @staticmethod
    def needed(ncpus: int, cores: int, slice_ns: int) -> bool:
        """Only a host with fewer cores than vCPUs (and a known slice) makes vCPUs wait."""
        return 0 < cores < ncpus and slice_ns > 0

    def start(self) -> None:
        self.kernel.sim.at(self.kernel.sim.now, self._host_tick, None, PRIO_HARDIRQ)

    def _host_tick(self, _: object) -> None:
        """Give the cores to the busy vCPUs that waited longest; the other busy ones wait a slice."""
        now = self.kernel.sim.now
        end = now + self.slice_ns
        busy = [c for c in self.order if not c.is_idle]
        running = busy[:self.cores]
        for cpu in busy[self.cores:]:
            wait = end - max(cpu.paused_until, now)
            if wait > 0:
                cpu.steal(wait)
        self.order = [c for c in self.order if c not in running] + running
        self.kernel.sim.at(end, self._host_tick, None, PRIO_HARDIRQ)


#: how often a vCPU's speed is redrawn: short against any time constant the profiles measure
SPEED_STEP_NS: Final = 10_000_000


class VcpuSpeed:
    """How fast the host runs one vCPU, varying as the run goes on.

    Under QEMU TCG a vCPU thread's guest instructions per second drift over
    tenths of a second to seconds, each vCPU on its own, even while the thread
    keeps its host core (the kernel's event rings of data/qemu-tcg-here-2026-11-26,
    NOTES item 17: allocation and kfree_rcu_work() on a vCPU speed up and slow
    down together, by a factor up to 2, where the host's scheduler shows the
    thread off its core 2-10% of the time).  The log of the speed is an
    Ornstein-Uhlenbeck process with the profile's standard deviation
    ``vcpu_speed_sd`` and time constant ``vcpu_speed_tau_ns``, normalised to a
    mean speed of 1, drawn from the vCPU's own random stream and updated every
    ``SPEED_STEP_NS`` exactly (``x' = a x + sd sqrt(1 - a^2) N(0, 1)``, ``a =
    exp(-step / tau)``).  Every cost the vCPU runs (tasks, interrupts, context
    switches) takes ``cost / speed`` ns (:meth:`Cpu.set_speed`).  A profile with
    ``vcpu_speed_sd`` 0 runs every vCPU at speed 1 (hardware).
    """

    __slots__ = ("kernel", "cpu", "rng", "sd", "a", "x")

    @staticmethod
    def start(kernel: "Kernel") -> None:
        costs = kernel.profile.costs
        sd, tau = costs["vcpu_speed_sd"], costs["vcpu_speed_tau_ns"]
        if sd > 0 and tau > 0:
            for cpu in kernel.cpus:
                VcpuSpeed(kernel, cpu, sd, tau).step(None)

    def __init__(self, kernel: "Kernel", cpu: "Cpu", sd: float, tau: float) -> None:
        self.kernel = kernel
        self.cpu = cpu
        self.rng = kernel.rng.stream(f"vcpu-speed/{cpu.id}")
        self.sd = sd
        self.a = math.exp(-SPEED_STEP_NS / tau)
        self.x = self.rng.gauss(0.0, sd)  # the stationary law from the start

    def step(self, _: object) -> None:
        """Set the vCPU's speed for the next step, and draw the one after."""
        sd = self.sd
        self.cpu.set_speed(math.exp(self.x - sd * sd / 2))
        self.x = self.a * self.x + sd * math.sqrt(1 - self.a * self.a) * self.rng.gauss(0.0, 1.0)
        self.kernel.sim.at(self.kernel.sim.now + SPEED_STEP_NS, self.step, None, PRIO_HARDIRQ)


class TimerIrqLatency:
    """How late an expired guest hrtimer's interrupt reaches its vCPU.

    An emulator without a hardware timer (QEMU TCG: ``-accel tcg``) emulates the
    LAPIC timer with a host timer of its main-loop thread, which raises the
    interrupt on the vCPU (``apic_timer()`` -> ``cpu_interrupt()``) when it gets
    to it, and the vCPU runs guest code meanwhile, though never past its next
    tick, whose ``hrtimer_interrupt()`` runs the overdue timer (``HrTimer.start()``).
    That thread is busy with work of its own (a third of a host core in the boots of
    data/qemu-tcg-here-2026-11-26, where it waited for a core 0.01 ms at the
    median).  With a hardware or KVM-delivered timer the delay is nil
    (``timer_irq_latency_ns`` 0).  The delay is drawn per expiry, exponential
    with that mean, from a per-CPU stream.
    """

    __slots__ = ("mean", "rngs")

    def __init__(self, kernel: "Kernel") -> None:
        self.mean = kernel.profile.costs["timer_irq_latency_ns"]
        self.rngs = [kernel.rng.stream(f"timer-irq-latency/{cpu.id}") for cpu in kernel.cpus] if self.mean > 0 else []

    def draw(self, cpu: int) -> int:
        """The delay of the next timer interrupt on ``cpu``, in ns."""
        return exponential_ns(self.rngs[cpu], self.mean) if self.mean > 0 else 0
