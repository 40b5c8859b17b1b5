"""One simulated boot: a kernel, a kvfree_rcu variant and rcuscale's kfree test.

:func:`simulate` builds the machine a :class:`~kvfree_sim.config.RunConfig`
describes, runs it until the test prints its result, the machine panics, or
the time limit, checks the invariants and returns a :class:`RunResult`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Callable

from .checks import InvariantViolation, Invariants
from .config import RunConfig
from .core.costs import MachineProfile, load_profile_set
from .core.sim import StopSimulation
from .kernel.mm.page_alloc import WMARK_HIGH, WMARK_LOW, WMARK_MIN
from .kernel.system import Kernel
from .kvfree_rcu.tree import CALIBRATION_COUNTERS
from .kvfree_rcu.variants import get_variant
from .workloads.rcuscale import KfreeScaleTest

if TYPE_CHECKING:
    from .core.sim import Simulator
    from .kernel.sched import Cpu, Task
    from .kernel.mm.page_alloc import PageAllocator
    from .kernel.rcu import Rcu
    from .trace.hooks import Tracer

NSEC_PER_SEC = 1_000_000_000

#: called with one sample (a dict of ints, see Machine.sample) every sample_ns of simulated time
Sampler = Callable[[dict[str, int]], None]
DEFAULT_SAMPLE_NS = 10_000_000


@dataclass
class RunResult:
    """Everything a run reports, as plain data (``--json`` prints it)."""

    variant: str
    seed: int
    cpus: int
    memory_mb: int
    outcome: str  # completed | oom-panic | oom-killed | timeout | invariant-violation | enomem
    sim_ns: int
    total_ns: int | None
    batches: int | None
    footprint_mb: int | None
    result_line: str | None
    gps: int
    counters: dict[str, int]
    mm: dict[str, Any]
    sched: dict[str, Any]
    oom_report: list[str]
    console: list[tuple[int, str]]
    events: int
    wall_s: float
    violation: str | None = None
    kernel_early_frees: int = 0
    notes: list[str] = field(default_factory=list)
    #: mean wait of a queued object, per stage (kvfree_rcu.tree.WaitClock): krcp_ns, gp_ns, freeing_ns
    wait: dict[str, int] = field(default_factory=dict)
    #: the machine profile, and the entries ``--set`` replaced in it
    profile: str = ""
    profile_set: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain data; wall time left out so that it is deterministic."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "wall_s"}
        d["console"] = [[t, text] for t, text in self.console]
        return d


class Machine:
    """The simulated guest of one run."""

    def __init__(self, cfg: RunConfig, profile: MachineProfile | None = None,
                 tracer: "Tracer | None" = None, sampler: Sampler | None = None,
                 sample_ns: int = DEFAULT_SAMPLE_NS) -> None:
        self.cfg = cfg
        self.sampler = sampler
        self.sample_ns = sample_ns
        self._next_sample = 0
        self.profile = (profile or load_profile_set(cfg.profile, cfg.profile_set)).for_boot(cfg.seed)
        variant = get_variant(cfg.variant)
        rt = cfg.rcutree
        self.kernel = Kernel(
            ncpus=cfg.cpus, memory_bytes=cfg.memory, hz=cfg.hz, profile=self.profile, seed=cfg.seed,
            mm_version=variant.mm_version, tracer=tracer,
            jiffies_till_first_fqs=rt.get("jiffies_till_first_fqs"),
            jiffies_till_next_fqs=rt.get("jiffies_till_next_fqs"), cmdline=cfg.kernel_params,
        )
        self.checks = Invariants(self)
        self.kvfree = variant(self.kernel, rt, self.checks)
        self.test = KfreeScaleTest(self.kernel, self.kvfree, cfg.rcuscale, variant.rcuscale_version)
        self.highpri_ns = 0
        self.kernel.switch_hook = self._on_switch
        if tracer is not None:
            tracer.attach(self)

    # the checks reach the kernel through the machine
    @property
    def sim(self) -> Simulator:
        return self.kernel.sim

    @property
    def rcu(self) -> Rcu:
        return self.kernel.rcu

    @property
    def mm(self) -> PageAllocator:
        return self.kernel.mm

    def _on_switch(self, cpu: Cpu, prev: Task, ran_ns: int) -> None:
        """Time a highpri kworker held a CPU while a kfree thread waited on it."""
        if prev.nice < 0 and prev.wq_worker:
            for t in cpu.rq:
                if t.name == "kfree_scale_thread":
                    self.highpri_ns += ran_ns
                    break

    def run(self) -> RunResult:
        k = self.kernel
        wall0 = time.perf_counter()
        violation: str | None = None
        k.start()
        self.test.start()
        limit = int(self.cfg.max_seconds * NSEC_PER_SEC)
        step = NSEC_PER_SEC // 10
        try:
            t = 0
            while not self.test.done and k.panicked is None and k.sim.now < limit:
                t = min(t + step, limit)
                self._advance(t)
                if k.sim.peek() is None:
                    break
                self.checks.check_pages()
            if k.panicked is None:
                self.checks.check_pages()
                self.checks.check_objects(self.kvfree.objects_queued_now())
        except InvariantViolation as e:
            violation = str(e)
        except StopSimulation as e:  # pragma: no cover - models stop only through panic/stop
            violation = str(e)
        wall = time.perf_counter() - wall0
        return self._result(violation, wall)

    def _advance(self, until: int) -> None:
        """``sim.run(until)``, pausing at every sample instant on the way to call the sampler.

        Splitting sim.run() at instants runs the same events in the same order,
        so a sampled run's result equals the unsampled one's.  The end of the
        test and a panic stop the simulator (sim.stop()): sim.run() must not
        be called again after either, as run() would not have been.
        """
        k = self.kernel
        while self.sampler is not None and self._next_sample <= until:
            k.sim.run(until=self._next_sample)
            if self.test.done or k.panicked is not None:
                return
            self.sampler(self.sample(self._next_sample))
            self._next_sample += self.sample_ns
        k.sim.run(until=until)

    def sample(self, t_ns: int) -> dict[str, int]:
        """What the timeline plots, read at ``t_ns`` (after every event up to then)."""
        mm, c = self.kernel.mm, self.kvfree.c
        return {
            "t_ns": t_ns,
            "free_pages": mm.nr_free_pages(),
            "wmark_min": sum(z.wmark(WMARK_MIN) for z in mm.zones),
            "wmark_low": sum(z.wmark(WMARK_LOW) for z in mm.zones),
            "wmark_high": sum(z.wmark(WMARK_HIGH) for z in mm.zones),
            "cached_pages": sum(krcp.nr_bkv_objs for krcp in self.kvfree.krc),
            "shrink_count": c["shrink_count"],
            "shrink_scan": c["shrink_scan"],
            "drained_pages": c["drained_pages"],
            "fill_runs": c["fill_runs"],
            "fill_pages": c["fill_pages"],
            "kswapd_runs": self.kernel.vmscan.stats["kswapd_runs"],
            "direct_reclaims": self.kernel.vmscan.stats["direct_reclaims"],
        }

    def _outcome(self, violation: str | None) -> str:
        k = self.kernel
        if violation is not None:
            return "invariant-violation"
        if k.panicked is not None:
            return "oom-panic"
        if self.test.done:
            return "oom-killed" if k.oom.kills else "completed"
        if self.test.enomem:
            return "enomem"
        return "timeout"

    def _result(self, violation: str | None, wall: float) -> RunResult:
        k = self.kernel
        r = self.test.result
        kv = self.kvfree
        mm = k.mm
        counters = kv.c.as_dict()
        slab_pages = sum(c.pages for c in mm.caches.values())
        mmstats: dict[str, Any] = dict(mm.stats)
        mmstats.update(k.vmscan.stats)
        mmstats.update({
            "managed_pages": mm.managed_pages, "free_pages_end": mm.nr_free_pages(),
            "pcp_pages_end": mm.nr_pcp_pages(),
            "free_pages_min": mm.free_pages_min, "wmark_low_pages": sum(z.wmark(WMARK_LOW) for z in mm.zones),
            "min_free_kbytes": mm.min_free_kbytes, "slab_pages_end": slab_pages,
            "kswapd_failures": k.vmscan.kswapd_failures,
            "watermarks": {z.name: list(z.watermark) for z in mm.zones},
            "thread_direct_reclaim_ns": sum(k.vmscan.direct_ns_by_task.get(t.pid, 0) for t in self.test.threads),
        })
        sched = {"highpri_held_kfree_cpus_ns": self.highpri_ns,
                 "gp_mean_ns": (sum(k.rcu.gp_durations) // len(k.rcu.gp_durations)) if k.rcu.gp_durations else 0}
        return RunResult(
            variant=self.cfg.variant, seed=self.cfg.seed, cpus=self.cfg.cpus, memory_mb=self.cfg.memory_mb,
            outcome=self._outcome(violation), sim_ns=k.sim.now, total_ns=r.total_ns, batches=r.batches,
            footprint_mb=r.footprint_mb, result_line=r.line, gps=k.rcu.gp_count, counters=counters,
            mm=mmstats, sched=sched, oom_report=list(k.oom.report), console=list(k.console),
            events=k.sim.events, wall_s=wall, violation=violation,
            kernel_early_frees=self.checks.kernel_early_frees, notes=list(self.cfg.notices),
            wait=kv.wait.mean_ns(), profile=self.cfg.profile, profile_set=dict(self.cfg.profile_set),
        )


def simulate(cfg: RunConfig, profile: MachineProfile | None = None, tracer: "Tracer | None" = None,
             sampler: Sampler | None = None, sample_ns: int = DEFAULT_SAMPLE_NS) -> RunResult:
    """Run one configuration to its outcome; ``sampler`` gets a sample every ``sample_ns``."""
    return Machine(cfg, profile, tracer, sampler, sample_ns).run()


__all__ = ["Machine", "RunResult", "simulate", "CALIBRATION_COUNTERS"]
