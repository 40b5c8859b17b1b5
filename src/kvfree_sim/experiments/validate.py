"""kvfree-sim validate: how well the model agrees with measurements of a real kernel.

``kvfree-sim validate RUNS.csv [--runs N] [--jobs N] [--profile P] [--json] [--plot FILE]``

reads real runs (:mod:`kvfree_sim.experiments.realdata`: ``runs.csv`` and the
``counters.csv`` beside it), simulates every configuration that has a usable run
with the matching variant, ``--runs`` seeds each (``--seed-base`` ..; default: as
many seeds as the configuration has usable measured runs), and prints per
configuration the measured and simulated medians side by side with their
relative errors, then:

- a summary line per metric: median and worst relative error over the
  configurations, and the target of issue 5 where there is one;
- per memory sweep, the *memory edge*: the largest size at which some run ran
  out of memory, measured and simulated, and whether they are within one step
  of the measured grid;
- the variant order check (only when the data has several variants).

Definitions.  Completion time, batches and counters are medians over the
*completed* runs (the counters of runs that died are not dumped).  A run "ran
out of memory" when the data says ``oom=1``; a simulated run when its outcome
is ``oom-panic``, ``oom-killed`` or ``enomem``.  The OOM share is over the
runs that completed or ran out of memory (measured rows with neither are
listed as excluded).  Relative error = (simulated - measured) / measured; it is
undefined when the measured value is 0 (then 0 if the simulated one is 0 too).
Two variants differ in completion time when the ranges of their completed
runs' times do not overlap (at least two completed runs each), and in OOM share
when the shares differ by more than twice the standard error of the
difference.

Simulations go to a :class:`concurrent.futures.Executor` (a process pool of
``--jobs`` workers, in-process with ``--jobs 1``); results do not depend on it.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import math
import os
import statistics
import sys
import time
import traceback
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..config import ConfigError, RunConfig, make_config
from ..core.costs import MachineProfile, ProfileError, load_profile_set
from ..report.text import set_text
from .realdata import ConfigKey, RealData, RealRun, load, parse_variant_map

EXIT_OK = 0
EXIT_RUN_ERROR = 1  # a simulation raised: a bug in the model, not in the input

#: simulated outcomes that count as "ran out of memory"
OOM_OUTCOMES = frozenset({"oom-panic", "oom-killed", "enomem"})
#: the counters of issue 5's targets (and of calibrate's objective)
TARGET_COUNTERS = ("fill_runs", "fill_pages", "cache_hit", "direct_alloc", "head_fallback")
#: counters that should be "of the same order" (within 10x, zero where measured zero)
ORDER_COUNTERS = ("shrink_count", "shrink_scan")
#: metric -> (largest median |relative error|, largest worst |relative error|)
TARGETS: dict[str, tuple[float, float | None]] = {
    "time_s": (0.15, 0.30), "batches": (0.30, None), **{c: (0.30, None) for c in TARGET_COUNTERS},
}
OOM_SHARE_TOLERANCE = 0.20  # absolute, per configuration
#: data directories whose machine has a shipped profile (else the default profile)
DATA_PROFILES = {"linux-6.1-qemu-tcg": "qemu-tcg-6.1"}
DEFAULT_PROFILE = "x86-server"
METRIC_LABELS = {"time_s": "time (s)", "batches": "batches (GPs)", "oom_share": "OOM share"}
BASE_METRICS = tuple(METRIC_LABELS)


# -- one simulated run ------------------------------------------------------------------


def bootargs_for(key: ConfigKey) -> str:
    """The kernel command line of a measured configuration, as kvm.sh would pass it."""
    parts = ["rcuscale.kfree_rcu_test=1", f"rcuscale.kfree_nthreads={key.nthreads}",
             f"rcuscale.kfree_loops={key.loops}", f"rcuscale.kfree_alloc_num={key.alloc_num}",
             f"rcuscale.kfree_mult={key.kfree_mult}"]
    if key.holdoff is not None:
        parts.append(f"rcuscale.holdoff={key.holdoff}")
    parts.append("torture.disable_onoff_at_boot")
    return " ".join(parts)


def run_config(key: ConfigKey, seed: int, max_seconds: float, profile_name: str) -> RunConfig:
    """The RunConfig of a measured configuration (ConfigError names the configuration)."""
    try:
        cfg = make_config(key.variant, cpus=key.smp, memory=f"{key.mem_mb}M", bootargs=bootargs_for(key),
                          seed=seed, max_seconds=max_seconds)
    except ConfigError as e:
        raise ConfigError(f"configuration {key.describe()}: {e}") from None
    cfg.profile = profile_name
    return cfg


@dataclass(frozen=True)
class SimPoint:
    """One simulation to run: a configuration and a seed."""

    key: ConfigKey
    seed: int
    max_seconds: float


@dataclass
class SimRun:
    """What validate and calibrate keep of a simulated run."""

    seed: int
    outcome: str
    total_ns: int | None = None
    batches: int | None = None
    counters: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0
    error: str | None = None

    @property
    def completed(self) -> bool:
        return self.outcome == "completed"

    @property
    def oom(self) -> bool:
        return self.outcome in OOM_OUTCOMES

    @property
    def usable(self) -> bool:
        return self.completed or self.oom


def simulate_point(point: SimPoint, profile: MachineProfile) -> SimRun:
    """Run one simulation (in a worker process); an exception becomes outcome 'error'."""
    from ..machine import simulate
    from ..kvfree_rcu.tree import CALIBRATION_COUNTERS

    t0 = time.perf_counter()
    try:
        r = simulate(run_config(point.key, point.seed, point.max_seconds, profile.name), profile)
    except Exception:  # noqa: BLE001 - reported, not hidden: see Validation.errors
        return SimRun(point.seed, "error", error=traceback.format_exc(limit=3).strip().splitlines()[-1])
    counters = {n: r.counters[n] for n in CALIBRATION_COUNTERS if n in r.counters}
    done = r.outcome == "completed"
    return SimRun(point.seed, r.outcome, r.total_ns if done else None, r.batches if done else None,
                  counters, time.perf_counter() - t0)


class SerialExecutor(Executor):
    """Runs each submitted call at once, in this process (``--jobs 1`` and tests)."""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        fut: Future = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - handed to the caller through the future
            fut.set_exception(e)
        return fut


def make_executor(jobs: int | None) -> Executor:
    """A process pool of ``jobs`` workers (default: the CPUs), or serial for 1."""
    jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, not {jobs}")
    return SerialExecutor() if jobs == 1 else ProcessPoolExecutor(max_workers=jobs)


def simulate_points(points: Sequence[SimPoint], profile: MachineProfile, executor: Executor) -> list[SimRun]:
    """All points on the executor; results in the order of ``points``."""
    futures = [executor.submit(simulate_point, p, profile) for p in points]
    return [f.result() for f in futures]


# -- statistics ---------------------------------------------------------------------------


def _median(values: Iterable[float | int | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


@dataclass
class Stats:
    """Medians of one side (measured or simulated) of one configuration."""

    n: int  # runs that completed or ran out of memory
    completed: int
    oom: int
    values: dict[str, float | None]  # metric -> median (oom_share: the share)

    def as_dict(self) -> dict:
        return {"runs": self.n, "completed": self.completed, "oom": self.oom, **self.values}


def _stats(runs: Sequence[RealRun | SimRun], names: Sequence[str]) -> Stats:
    usable = [r for r in runs if r.usable]
    done = [r for r in usable if r.completed]
    noom = sum(1 for r in usable if r.oom)
    values: dict[str, float | None] = {
        "time_s": _median(r.total_ns / 1e9 for r in done if r.total_ns is not None),
        "batches": _median(r.batches for r in done),
        "oom_share": noom / len(usable) if usable else None,
    }
    for name in names:
        values[name] = _median((r.counters or {}).get(name) for r in done)
    return Stats(len(usable), len(done), noom, values)


def relative_error(measured: float | None, simulated: float | None) -> float | None:
    """(simulated - measured) / measured; None when undefined."""
    if measured is None or simulated is None:
        return None
    if measured == 0:
        return 0.0 if simulated == 0 else None
    return (simulated - measured) / measured


@dataclass
class Comparison:
    """One configuration: measured and simulated side by side."""

    key: ConfigKey
    measured: Stats
    simulated: Stats
    seeds: list[int]
    counters_runs: int  # measured completed runs with counters
    outcomes: dict[str, int] = field(default_factory=dict)  # simulated outcome -> runs

    def metrics(self) -> list[str]:
        return list(self.measured.values)

    def error(self, metric: str) -> float | None:
        """Relative error; for the OOM share the difference of the shares."""
        m, s = self.measured.values[metric], self.simulated.values[metric]
        if metric == "oom_share":
            return None if m is None or s is None else s - m
        return relative_error(m, s)

    def missing(self, metric: str) -> bool:
        """Measured has a value, the simulation none (e.g. no simulated run completed)."""
        return self.measured.values[metric] is not None and self.simulated.values[metric] is None

    def as_dict(self) -> dict:
        return {"configuration": self.key.as_dict(), "seeds": self.seeds, "counters_runs": self.counters_runs,
                "simulated_outcomes": self.outcomes,
                "measured": self.measured.as_dict(), "simulated": self.simulated.as_dict(),
                "error": {m: self.error(m) for m in self.metrics()}}


def compare_config(key: ConfigKey, runs: Sequence[RealRun], sims: Sequence[SimRun],
                   names: Sequence[str]) -> Comparison:
    """Measured against simulated medians of one configuration."""
    with_counters = sum(1 for r in runs if r.completed and r.counters)
    outcomes = dict(sorted(collections.Counter(s.outcome for s in sims).items()))
    return Comparison(key, _stats(runs, names), _stats(sims, names), [s.seed for s in sims], with_counters,
                      outcomes)


# -- summaries ----------------------------------------------------------------------------


@dataclass
class MetricSummary:
    """One metric over all configurations."""

    metric: str
    configs: int
    median: float | None
    worst: float | None
    worst_config: str | None
    missing: int
    verdict: str  # "ok", "FAIL", or "" when the metric has no target

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _verdict(metric: str, med: float | None, worst: float | None, missing: int) -> str:
    if metric == "oom_share":
        return "" if worst is None else ("ok" if worst <= OOM_SHARE_TOLERANCE and not missing else "FAIL")
    if metric not in TARGETS or med is None:
        return ""
    max_med, max_worst = TARGETS[metric]
    good = med <= max_med and (max_worst is None or (worst is not None and worst <= max_worst))
    return "ok" if good and not missing else "FAIL"


def summarize(comparisons: Sequence[Comparison]) -> list[MetricSummary]:
    """Median and worst |error| per metric over the configurations."""
    out = []
    metrics = comparisons[0].metrics() if comparisons else []
    names = short_names([c.key for c in comparisons])
    for metric in metrics:
        errs = [(abs(e), c) for c in comparisons if (e := c.error(metric)) is not None]
        missing = sum(1 for c in comparisons if c.missing(metric))
        med = statistics.median(e for e, _ in errs) if errs else None
        worst = max(errs, key=lambda ec: ec[0]) if errs else None
        out.append(MetricSummary(metric, len(errs), med, worst[0] if worst else None,
                                 names[worst[1].key] if worst else None, missing,
                                 _verdict(metric, med, worst[0] if worst else None, missing)))
    return out


def same_order(measured: float | None, simulated: float | None) -> bool | None:
    """Within a factor of 10, and zero exactly where the measurement is zero."""
    if measured is None or simulated is None:
        return None
    if measured == 0 or simulated == 0:
        return measured == simulated
    return 0.1 <= simulated / measured <= 10


def order_checks(comparisons: Sequence[Comparison]) -> list[dict]:
    """Shrinker calls: of the same order as measured, in every configuration with counters."""
    out = []
    names = short_names([c.key for c in comparisons])
    for c in comparisons:
        for name in ORDER_COUNTERS:
            if name in c.measured.values:
                ok = same_order(c.measured.values[name], c.simulated.values[name])
                if ok is not None:
                    out.append({"configuration": names[c.key], "counter": name, "same_order": ok,
                                "measured": c.measured.values[name], "simulated": c.simulated.values[name]})
    return out


def _edge(points: Sequence[tuple[int, float | None]]) -> int | None:
    """The largest memory size at which some run ran out of memory."""
    failing = [mem for mem, share in points if share]
    return max(failing) if failing else None


def memory_edges(comparisons: Sequence[Comparison]) -> list[dict]:
    """Per memory sweep: measured and simulated edge, and their distance on the measured grid."""
    families: dict[tuple, list[Comparison]] = {}
    for c in comparisons:
        families.setdefault(c.key.family(), []).append(c)
    out = []
    for fam in families.values():
        grid = sorted(c.key.mem_mb for c in fam)
        measured = _edge([(c.key.mem_mb, c.measured.values["oom_share"]) for c in fam])
        simulated = _edge([(c.key.mem_mb, c.simulated.values["oom_share"]) for c in fam])
        steps = abs(_grid_index(grid, measured) - _grid_index(grid, simulated))
        key = fam[0].key
        out.append({"sweep": key.describe(memory=False), "grid_mb": grid,
                    "measured_mb": measured, "simulated_mb": simulated, "steps": steps,
                    "within_one_step": steps <= 1})
    return out


def _grid_index(grid: list[int], mem: int | None) -> int:
    """Position on the grid; -1 when no size failed (below the grid)."""
    return -1 if mem is None else grid.index(mem)


def _times(runs: Sequence[RealRun | SimRun]) -> list[float]:
    return [r.total_ns / 1e9 for r in runs if r.completed and r.total_ns is not None]


def _time_order(a: Sequence[RealRun | SimRun], b: Sequence[RealRun | SimRun]) -> str | None:
    """'<', '>' or '=' (ranges overlap); None with fewer than two completed runs each."""
    ta, tb = _times(a), _times(b)
    if len(ta) < 2 or len(tb) < 2:
        return None
    if max(ta) < min(tb):
        return "<"
    if max(tb) < min(ta):
        return ">"
    return "="


def _oom_order(a: Sequence[RealRun | SimRun], b: Sequence[RealRun | SimRun]) -> str | None:
    """'<', '>' or '=' (within twice the standard error of the difference)."""
    ua, ub = [r for r in a if r.usable], [r for r in b if r.usable]
    if not ua or not ub:
        return None
    pa, pb = sum(r.oom for r in ua) / len(ua), sum(r.oom for r in ub) / len(ub)
    se = math.sqrt(pa * (1 - pa) / len(ua) + pb * (1 - pb) / len(ub))
    if abs(pa - pb) <= 2 * se:
        return "="
    return "<" if pa < pb else ">"


def variant_order(groups: dict[ConfigKey, tuple[list[RealRun], list[SimRun]]]) -> dict:
    """Issue 5's variant-order check over the configurations that several variants share."""
    by_config: dict[tuple, list[ConfigKey]] = {}
    for key in groups:
        by_config.setdefault(key.without_variant(), []).append(key)
    pairs = []
    names = short_names(list(groups), variant=False)
    for keys in by_config.values():
        keys = sorted(keys, key=lambda k: k.variant)
        for i, a in enumerate(keys):
            for b in keys[i + 1:]:
                pairs += _order_pairs(a, b, groups, names[a])
    variants = sorted({k.variant for k in groups})
    if len(variants) < 2:
        return {"checked": False, "reason": "only one variant in the data", "pairs": []}
    agree = [p["agree"] for p in pairs if p["agree"] is not None]
    return {"checked": bool(agree), "pairs": pairs, "agree": sum(agree), "compared": len(agree)}


def _order_pairs(a: ConfigKey, b: ConfigKey, groups: dict, name: str) -> list[dict]:
    (ma, sa), (mb, sb) = groups[a], groups[b]
    out = []
    for metric, fn in (("time", _time_order), ("oom_share", _oom_order)):
        m, s = fn(ma, mb), fn(sa, sb)
        out.append({"configuration": name, "variants": [a.variant, b.variant], "metric": metric,
                    "measured": m, "simulated": s, "agree": None if m is None or s is None else m == s})
    return out


# -- the whole validation -------------------------------------------------------------------


@dataclass
class Validation:
    """Everything validate prints."""

    data: RealData
    profile: str
    comparisons: list[Comparison]
    summary: list[MetricSummary]
    edges: list[dict]
    order: dict
    shrinker: list[dict]
    errors: list[str]

    def as_dict(self) -> dict:
        d = self.data
        return {
            "runs_csv": str(d.path), "counters_csv": str(d.counters_path) if d.counters_path else None,
            "profile": self.profile, "join": d.join_notes,
            "excluded": [{"row": r.row, "configuration": r.key.describe(), "run": r.run, "note": r.note}
                         for r in d.excluded()],
            "configurations": [c.as_dict() for c in self.comparisons],
            "summary": [s.as_dict() for s in self.summary],
            "memory_edge": self.edges, "shrinker_order": self.shrinker, "variant_order": self.order,
            "errors": self.errors,
        }


def plan_points(data: RealData, runs: int | None, seed_base: int, max_seconds: float) -> list[SimPoint]:
    """Every configuration with a usable run, ``runs`` seeds each (default: its usable runs)."""
    points = []
    for key, real in data.configurations().items():
        usable = sum(1 for r in real if r.usable)
        if not usable:
            continue
        n = runs if runs is not None else usable
        points += [SimPoint(key, seed_base + i, max_seconds) for i in range(n)]
    return points


def default_max_seconds(data: RealData) -> float:
    """Four times the longest measured run, at least 60 simulated seconds."""
    longest = max((r.total_ns for r in data.runs if r.total_ns), default=0) / 1e9
    return max(60.0, 4 * longest)


def run_validation(data: RealData, profile: MachineProfile, executor: Executor, runs: int | None = None,
                   seed_base: int = 1, max_seconds: float | None = None) -> Validation:
    """Simulate every configuration of ``data`` and compare."""
    if runs is not None and runs < 1:
        raise ConfigError(f"--runs must be at least 1, not {runs}")
    points = plan_points(data, runs, seed_base, max_seconds or default_max_seconds(data))
    for p in {p.key: p for p in points}.values():
        run_config(p.key, p.seed, p.max_seconds, profile.name)  # bad configurations fail before any run
    sims = simulate_points(points, profile, executor)
    return build_validation(data, profile.name, points, sims)


def build_validation(data: RealData, profile_name: str, points: Sequence[SimPoint],
                     sims: Sequence[SimRun]) -> Validation:
    """Compare ``sims`` (one per point) with the data."""
    by_key: dict[ConfigKey, list[SimRun]] = {}
    for p, s in zip(points, sims):
        by_key.setdefault(p.key, []).append(s)
    configs = data.configurations()
    comps = [compare_config(k, configs[k], by_key[k], data.counter_names) for k in configs if k in by_key]
    groups = {k: (configs[k], by_key[k]) for k in by_key}
    errors = [f"{p.key.describe()} seed {p.seed}: {s.error}" for p, s in zip(points, sims) if s.error]
    return Validation(data, profile_name, comps, summarize(comps), memory_edges(comps), variant_order(groups),
                      order_checks(comps), errors)


# -- text ---------------------------------------------------------------------------------


def short_names(keys: Sequence[ConfigKey], variant: bool = True, memory: bool = True) -> dict[ConfigKey, str]:
    """Each configuration named by the fields that differ between ``keys`` only."""
    fields = [("variant", "{}")] if variant else []
    fields += [("smp", "smp={}")] + ([("mem_mb", "mem={}M")] if memory else [])
    fields += [("nthreads", "nthreads={}"), ("loops", "loops={}"), ("alloc_num", "alloc_num={}"),
               ("kfree_mult", "kfree_mult={}"), ("holdoff", "holdoff={}")]
    varying = [(f, fmt) for f, fmt in fields if len({getattr(k, f) for k in keys}) > 1]
    varying = varying or [("mem_mb", "mem={}M")]
    return {k: " ".join(fmt.format(getattr(k, f)) for f, fmt in varying) for k in keys}


def _fmt(metric: str, v: float | None) -> str:
    if v is None:
        return "-"
    if metric == "oom_share":
        return f"{v:.0%}"
    if metric == "time_s":
        return f"{v:.4g}"
    return f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.1f}"


def _fmt_err(metric: str, e: float | None) -> str:
    if e is None:
        return "n/a"
    if metric == "oom_share":
        return f"{e * 100:+.0f} pp"
    return f"{e:+.1%}"


def _label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def _other(c: Comparison) -> str:
    """Simulated runs that neither completed nor ran out of memory, by outcome."""
    other = {o: n for o, n in c.outcomes.items() if o != "completed" and o not in OOM_OUTCOMES}
    return "".join(f", {n} {o}" for o, n in other.items())


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def format_comparison(c: Comparison) -> list[str]:
    """The side-by-side table of one configuration."""
    m, s = c.measured, c.simulated
    seeds = (f"seed {c.seeds[0]}" if len(c.seeds) == 1 else f"seeds {c.seeds[0]}-{c.seeds[-1]}") if c.seeds \
        else "no seeds"
    lines = [f"== {c.key.describe()}",
             f"   measured: {_runs(m.n)} ({m.completed} completed, {m.oom} OOM), counters from {c.counters_runs}; "
             f"simulated: {_runs(len(c.seeds))} ({seeds}): {s.completed} completed, {s.oom} OOM{_other(c)}",
             f"   {'metric':<18} {'measured':>12} {'simulated':>12} {'error':>9}"]
    for metric in c.metrics():
        if metric not in BASE_METRICS and m.values[metric] is None:
            continue  # a counter the data does not have for this configuration
        lines.append(f"   {_label(metric):<18} {_fmt(metric, m.values[metric]):>12} "
                     f"{_fmt(metric, s.values[metric]):>12} {_fmt_err(metric, c.error(metric)):>9}")
    return lines


def _target_text(metric: str) -> str:
    if metric == "oom_share":
        return f"each <= {OOM_SHARE_TOLERANCE * 100:.0f} pp"
    if metric not in TARGETS:
        return ""
    med, worst = TARGETS[metric]
    return f"median <= {med:.0%}" + (f", worst <= {worst:.0%}" if worst is not None else "")


def format_summary(summary: Sequence[MetricSummary]) -> list[str]:
    """One line per metric: median and worst |error| over the configurations."""
    lines = [f"   {'metric':<18} {'configs':>7} {'median':>9} {'worst':>9}  {'target':<33} worst configuration"]
    for s in summary:
        med = "-" if s.median is None else _fmt_err(s.metric, s.median).lstrip("+")
        worst = "-" if s.worst is None else _fmt_err(s.metric, s.worst).lstrip("+")
        target = f"{_target_text(s.metric)} {s.verdict}".strip()
        miss = f" ({s.missing} without a simulated value)" if s.missing else ""
        lines.append(f"   {_label(s.metric):<18} {s.configs:>7} {med:>9} {worst:>9}  {target:<33} "
                     f"{s.worst_config or ''}{miss}")
    return lines


def _edge_text(mb: int | None) -> str:
    return "none" if mb is None else f"{mb}M"


def format_validation(v: Validation) -> str:
    """The text report."""
    d = v.data
    lines = [f"kvfree-sim validate: {d.path}" + (f" + {d.counters_path}" if d.counters_path else ""),
             f"profile: {v.profile}", *[f"note: {n}" for n in d.join_notes]]
    for r in d.excluded():
        lines.append(f"excluded: row {r.row} ({r.key.describe()} run {r.run}): neither completed nor ran out "
                     f"of memory{': ' + r.note if r.note else ''}")
    for c in v.comparisons:
        lines += ["", *format_comparison(c)]
    lines += ["", f"Summary over {len(v.comparisons)} configurations (|error|: relative; OOM share: points):",
              *format_summary(v.summary)]
    lines += ["", "Memory edge (largest size at which some run ran out of memory):"]
    for e in v.edges:
        verdict = "within one step" if e["within_one_step"] else f"{e['steps']} steps apart"
        if len(e["grid_mb"]) == 1:
            verdict += " (one size measured: says little)"
        lines.append(f"   {e['sweep']}: measured {_edge_text(e['measured_mb'])}, simulated "
                     f"{_edge_text(e['simulated_mb'])} on {','.join(map(str, e['grid_mb']))}: {verdict}")
    lines += _format_shrinker(v.shrinker) + _format_order(v.order)
    lines += [f"simulation error: {e}" for e in v.errors]
    return "\n".join(lines)


def _format_shrinker(checks: Sequence[dict]) -> list[str]:
    if not checks:
        return []
    bad = [c for c in checks if not c["same_order"]]
    lines = ["", f"Shrinker calls of the same order as measured: {len(checks) - len(bad)} of {len(checks)}"]
    lines += [f"   not: {c['counter']} measured {_fmt('', c['measured'])}, simulated {_fmt('', c['simulated'])} "
              f"({c['configuration']})" for c in bad]
    return lines


def _format_order(order: dict) -> list[str]:
    if not order["pairs"]:
        return ["", f"Variant order: not checked ({order.get('reason', 'no configuration has two variants')})"]
    lines = ["", f"Variant order: {order['agree']} of {order['compared']} comparisons agree"]
    for p in order["pairs"]:
        a, b = p["variants"]
        verdict = "n/a" if p["agree"] is None else ("agree" if p["agree"] else "DISAGREE")
        lines.append(f"   {p['metric']:<9} {a} vs {b} ({p['configuration']}): measured {p['measured'] or '?'}, "
                     f"simulated {p['simulated'] or '?'}: {verdict}")
    return lines


# -- the plot -----------------------------------------------------------------------------


PLOT_UNITS = {"time_s": "median completion time (s)", "batches": "median batches (grace periods)",
              "oom_share": "share of runs out of memory"}


def plot_validation(v: Validation, path: str | Path) -> None:
    """Simulated against measured, one panel per metric, with the identity line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in (v.comparisons[0].metrics() if v.comparisons else [])
               if any(c.measured.values[m] is not None for c in v.comparisons)]
    ncols = min(4, max(1, len(metrics)))
    nrows = max(1, math.ceil(len(metrics) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.9 * nrows), squeeze=False)
    sweeps = _sweep_names(v.comparisons)
    for ax, metric in zip(axes.flat, metrics):
        _plot_metric(ax, v.comparisons, metric, sweeps)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(f"kvfree-sim validate: {v.data.path}, profile {v.profile} (each point: one configuration)")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    fig.savefig(tmp, dpi=100, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    os.replace(tmp, path)


def _sweep_names(comparisons: Sequence[Comparison]) -> dict[tuple, str]:
    """Memory sweeps (configuration families) named by what differs between them."""
    first: dict[tuple, ConfigKey] = {}
    for c in comparisons:
        first.setdefault(c.key.family(), c.key)
    names = short_names(list(first.values()), memory=False)
    return {fam: (names[k] if len(first) > 1 else "configurations") for fam, k in first.items()}


def _plot_metric(ax: Any, comparisons: Sequence[Comparison], metric: str, sweeps: dict[tuple, str]) -> None:
    unit = PLOT_UNITS.get(metric, f"median {metric} (count per run)")
    ax.set_xlabel(f"measured {unit}", fontsize=8)
    ax.set_ylabel(f"simulated {unit}", fontsize=8)
    ax.set_title(_label(metric))
    groups: dict[str, list[tuple[float, float]]] = {}
    for c in comparisons:
        m, s = c.measured.values[metric], c.simulated.values[metric]
        if m is not None and s is not None:
            groups.setdefault(sweeps[c.key.family()], []).append((m, s))
    values = [x for pts in groups.values() for pt in pts for x in pt]
    if not values:
        ax.text(0.5, 0.5, "no values to compare", ha="center", va="center", transform=ax.transAxes)
        return
    log = metric != "oom_share" and min(values) > 0 and max(values) / min(values) > 20
    hi = 1.0 if metric == "oom_share" else (max(values) * (1.5 if log else 1.08) or 1.0)
    lo = min(values) / 1.5 if log else 0.0
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, label="simulated = measured")
    for i, (name, pts) in enumerate(groups.items()):
        ax.scatter([m for m, _ in pts], [s for _, s in pts], s=20, zorder=3, label=name,
                   marker="osD^v<>"[i % 7], color=f"C{i % 10}")
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    pad = 0 if log else 0.04 * (hi - lo)  # points on an axis stay visible
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.legend(fontsize=6, loc="best")  # away from the points: a miss can sit in any corner


# -- the command ----------------------------------------------------------------------------


def default_profile_for(path: str | Path) -> str:
    """The shipped profile of the machine the data was measured on, if known."""
    return DATA_PROFILES.get(Path(path).resolve().parent.name, DEFAULT_PROFILE)


def resolve_profile(name: str | None, data_path: str | Path,
                    values: Sequence[tuple[str, float]] = ()) -> MachineProfile:
    """``--profile`` (name or file), else the data's default, with the ``--set`` values;
    ConfigError if unusable."""
    try:
        profile = load_profile_set(name or default_profile_for(data_path), values)
    except ProfileError as e:
        raise ConfigError(str(e)) from None
    # the reports name the profile: say what was changed in it
    return dataclasses.replace(profile, name=profile.name + set_text(dict(values))) if values else profile


def add_data_args(p: argparse.ArgumentParser) -> None:
    """Arguments shared by validate and calibrate."""
    from ..cli import add_set_arg

    p.add_argument("runs_csv", metavar="RUNS.csv", help="real runs (format of ../shared/calibration/*/runs.csv)")
    p.add_argument("--counters", default=None, metavar="FILE",
                   help="per-run counters (default: counters.csv beside RUNS.csv, if present)")
    p.add_argument("--variant-map", default=None, metavar="A=B,C=D",
                   help="map the data's variant names to kvfree-sim variants "
                        "(default upstream=v6.1,nodrain=v6.1-nodrain,v3=v6.1-v3)")
    p.add_argument("--profile", default=None,
                   help="machine profile name or JSON file (default: the data's machine if known "
                        f"({', '.join(f'{k} -> {v}' for k, v in DATA_PROFILES.items())}), else {DEFAULT_PROFILE})")
    add_set_arg(p, "tick_stall_per_s=2.8")
    p.add_argument("--seed-base", type=int, default=1, help="first seed (default 1)")
    p.add_argument("--jobs", type=int, default=None, help="parallel simulations (default: the CPUs)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="simulated-time limit per run (default: 4x the longest measured run, at least 60)")


def load_data(args: argparse.Namespace) -> RealData:
    return load(args.runs_csv, parse_variant_map(args.variant_map), args.counters)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the 'validate' subcommand."""
    p = sub.add_parser("validate", help="compare the model with measured runs of a real kernel")
    add_data_args(p)
    p.add_argument("--runs", type=int, default=None,
                   help="seeds per configuration (default: as many as the data has usable runs)")
    p.add_argument("--json", action="store_true", help="print the validation as one JSON object")
    p.add_argument("--plot", default=None, metavar="FILE", help="draw simulated against measured (PNG)")
    p.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace, executor: Executor | None = None) -> int:
    """``kvfree-sim validate``; ``executor`` replaces the process pool (tests)."""
    from ..cli import profile_set_from_args

    data = load_data(args)
    profile = resolve_profile(args.profile, args.runs_csv, profile_set_from_args(args))
    if args.max_seconds is not None and args.max_seconds <= 0:
        raise ConfigError("--max-seconds must be positive")
    if args.plot and Path(args.plot).parent and not Path(args.plot).resolve().parent.is_dir():
        raise ConfigError(f"--plot: directory of {args.plot} does not exist")
    own = executor is None
    executor = executor or make_executor(args.jobs)
    try:
        v = run_validation(data, profile, executor, args.runs, args.seed_base, args.max_seconds)
    finally:
        if own:
            executor.shutdown(cancel_futures=True)
    if args.json:
        print(json.dumps(v.as_dict(), indent=1))
    else:
        print(format_validation(v))
    if args.plot:
        plot_validation(v, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)
    return EXIT_RUN_ERROR if v.errors else EXIT_OK
