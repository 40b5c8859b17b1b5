"""kvfree-sim calibrate: fit a machine profile's costs to measured runs.

``kvfree-sim calibrate RUNS.csv --out PROFILE.json [--name NAME] [--profile START]
[--groups per_object,slab,allocator,sched_irq,reclaim,console,steal,steal_pause,stall,stall_pause,
timer_irq] [--configs N] [--runs N] [--max-evals N]
[--grid N]``

What is fitted.  Only entries of :data:`~kvfree_sim.core.costs.COSTS` (CPU costs
that depend on the machine), never the memory layout (:data:`LAYOUT`, from boot
logs) and never the kernel's logic or constants (they are not in a profile).
To keep the fit small and well determined, costs are not fitted one by one:
each *group* of costs that a machine speeds up or slows down together gets one
scale factor applied to the starting profile's values (see :data:`GROUPS`):

- ``per_object``: the per-object fast paths of rcuscale and kvfree_rcu (plain
  CPU work: an emulator or a slower core scales them together);
- ``slab``: allocating and discarding slabs, per slab and per page of a slab;
- ``allocator``: page allocator and kvfree_rcu batch work, per page or batch;
- ``sched_irq``: context switches, wake-ups, interrupts, timers, workqueues and
  RCU's grace-period machinery (dominated by exits and timer emulation in a VM);
- ``reclaim``: shrinker, reclaim and OOM-killer work;
- ``console``: the serial console's time per character (``console_char_ns``;
  better measured from a console log's line spacing than fitted);
- ``steal``: how often the host deschedules a vCPU (``vcpu_steal_per_s``);
- ``steal_pause``: how long such a pause lasts (``vcpu_steal_ns``).  Medians
  of time cannot tell rate and length apart, but the share of runs that run
  out of memory can: a long pause holds up every grace period while the other
  vCPUs keep allocating;
- ``stall``, ``stall_pause``: the same for the rare long stalls of a nested
  host (``vcpu_stall_per_s``, ``vcpu_stall_ns``);
- ``timer_irq``: how late an emulated timer's interrupt reaches its vCPU
  (``timer_irq_latency_ns``).  Time hardly sees it; the counters do: the
  2-argument calls that fall back to the rcu_head list while a refill kick is
  on its way (``head_fallback`` per ``fill_runs``).

The law of the pause lengths (``vcpu_steal_shape``) is kept from the starting
profile (:data:`UNSCALED`): fit under each law and compare the objectives.  So
are the speed spreads (``boot_speed_sd``, ``vcpu_speed_sd``,
``vcpu_speed_tau_ns``) and the emulator's tick stalls (``tick_stall_*``, from
an event ring whose ticks carry the TSC): they are measured, not fitted.

A group whose costs are all zero in the starting profile (no steal on a
dedicated host) is left out: a factor cannot change it.

Objective (lower is better): the weighted mean, over the fitted configurations,
of the absolute relative errors of the medians (see
:mod:`kvfree_sim.experiments.validate`), each capped at :data:`ERROR_CAP` (an
undefined error, e.g. no simulated run completed where the kernel's did,
counts as the cap); for the share of runs that ran out of memory, the
difference of the shares.  Weights (:data:`WEIGHTS`): completion time 2,
batches 1, OOM share 1, and 0.2 for each of ``fill_runs``, ``fill_pages``, ``cache_hit``,
``direct_alloc``, ``head_fallback`` and ``shrink_count`` (zero where the kernel's completed
runs had zero: any call then counts as the cap): costs set time and grace-period rate
directly, while the counters check mechanisms, which a cost must not be bent to
absorb; they still steer the fit between costs that change time alike.

Optimizer: deterministic coordinate descent (pattern search) on the logarithms
of the group factors: from factor 1 for every group, try each group times and
divided by ``2**step`` in a fixed order, move to the first improvement, halve
the step when a sweep finds none; stop at ``--max-evals`` evaluations or when
the step is below 5%.  The search is local: where two costs only matter
together (a run runs out of memory when no-progress reclaim is fast *and* a
vCPU pause is long), it never leaves the valley it starts in.  ``--grid N``
first evaluates every combination of N factors per group, log-spaced from
1/:data:`GRID_SPAN` to :data:`GRID_SPAN` (N**groups evaluations, counted in
``--max-evals``), and starts the pattern search from the best of them.  Every evaluation simulates the same configurations with
the same seeds, so the objective is a deterministic function of the factors and
the fit is reproducible.

Configurations.  A simulation of the QEMU data's configurations takes seconds,
so by default only ``--configs 4`` of them are fitted: configurations whose
measured runs mostly completed (OOM share below one half), those with counters
first, then by the number of completed runs, then by memory size (largest
first); ``--configs 0`` fits all of those and also the ones whose runs mostly
ran out of memory, which add their OOM share to the objective.  ``--runs`` seeds each (default 2).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import json
import math
import os
import sys
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..config import ConfigError
from ..core.costs import COSTS, GROUPS, MachineProfile
from .realdata import ConfigKey, RealData
from .validate import (
    EXIT_OK,
    TARGET_COUNTERS,
    Comparison,
    SimPoint,
    add_data_args,
    compare_config,
    default_max_seconds,
    format_comparison,
    load_data,
    make_executor,
    resolve_profile,
    run_config,
    simulate_points,
)

#: COSTS entries no factor may touch: the law of the pause lengths is a choice
#: (0 or alpha > 1), not a cost; fit the rate and length under each law instead;
#: the boot-to-boot speed spread is read off the data's completion times, and the
#: within-run speed variation off the kernel's event rings (tools/qemu-rcuscale/ring.py
#: speed), not fitted
UNSCALED: tuple[str, ...] = ("vcpu_steal_shape", "boot_speed_sd", "vcpu_speed_sd", "vcpu_speed_tau_ns",
                             "tick_stall_per_s", "tick_stall_min_ns", "tick_stall_max_ns")
#: objective weights per metric (see the module doc)
WEIGHTS: dict[str, float] = {"time_s": 2.0, "batches": 1.0, "oom_share": 1.0, **{c: 0.2 for c in TARGET_COUNTERS},
                             "shrink_count": 0.2}
ERROR_CAP = 2.0
INITIAL_STEP = 1.0  # log2 of the first factor tried: x2 and /2
MIN_STEP = math.log2(1.05)
MAX_FACTOR = 100.0
GRID_SPAN = 16.0  # --grid covers factors 1/16 .. 16
DEFAULT_CONFIGS = 4
DEFAULT_RUNS = 2
DEFAULT_MAX_EVALS = 40


# -- the model of the fit --------------------------------------------------------------------


def scaled_profile(base: MachineProfile, factors: dict[str, float], name: str | None = None) -> MachineProfile:
    """``base`` with every cost of each group multiplied by that group's factor."""
    costs = dict(base.costs)
    for group, factor in factors.items():
        for key in GROUPS[group]:
            costs[key] = base.costs[key] * factor
    return MachineProfile(name or base.name, base.description, base.source, costs, dict(base.layout),
                          dict(base.sources))


def objective(comparisons: Sequence[Comparison]) -> float:
    """Weighted mean of capped |relative errors| over configurations and metrics."""
    total = weight = 0.0
    for c in comparisons:
        for metric, w in WEIGHTS.items():
            if c.measured.values.get(metric) is None:
                continue
            e = c.error(metric)
            total += w * (ERROR_CAP if e is None else min(abs(e), ERROR_CAP))
            weight += w
    if weight == 0:
        raise ConfigError("nothing to fit: no selected configuration has a completed measured run")
    return total / weight


def select_configs(data: RealData, count: int) -> list[ConfigKey]:
    """The configurations to fit (rule in the module doc); ``count`` 0 = all, including
    those whose runs mostly ran out of memory, which count through their OOM share."""
    ranked = []
    for key, runs in data.configurations().items():
        usable = [r for r in runs if r.usable]
        done = [r for r in usable if r.completed]
        mostly_done = bool(done) and len(done) * 2 > len(usable)
        if not mostly_done and not (count == 0 and any(r.oom for r in usable)):
            continue
        has_counters = any(r.counters for r in done)
        ranked.append(((not has_counters, -len(done), -key.mem_mb), key))
    ranked.sort(key=lambda item: (item[0], item[1].sort_key()))
    keys = [k for _, k in ranked]
    if not keys:
        raise ConfigError(f"{data.path}: no configuration whose measured runs mostly completed")
    return keys if count == 0 else keys[:count]


@dataclass
class Evaluation:
    """One point of the fit."""

    factors: dict[str, float]
    value: float
    comparisons: list[Comparison]


@dataclass
class Fit:
    """The problem: data, starting profile, configurations, seeds, and how to simulate."""

    data: RealData
    base: MachineProfile
    groups: list[str]
    keys: list[ConfigKey]
    seeds: list[int]
    max_seconds: float
    executor: Executor
    log: Callable[[str], None] = print
    history: list[Evaluation] = field(default_factory=list)
    _cache: dict[tuple, Evaluation] = field(default_factory=dict)

    def evaluate(self, log2_factors: Sequence[float]) -> Evaluation:
        """Simulate every configuration and seed at these factors (cached)."""
        cache_key = tuple(round(x, 9) for x in log2_factors)
        if cache_key in self._cache:
            return self._cache[cache_key]
        factors = {g: 2.0 ** x for g, x in zip(self.groups, log2_factors)}
        profile = scaled_profile(self.base, factors)
        points = [SimPoint(k, s, self.max_seconds) for k in self.keys for s in self.seeds]
        sims = simulate_points(points, profile, self.executor)
        errors = [r.error for r in sims if r.outcome == "error"]
        if errors:
            # a crashed simulation scores the cap: say so rather than fit around it
            self.log(f"warning: {len(errors)} of {len(sims)} simulations failed: {errors[0]}")
        configs = self.data.configurations()
        n = len(self.seeds)
        comps = [compare_config(k, configs[k], sims[i * n:(i + 1) * n], self.data.counter_names)
                 for i, k in enumerate(self.keys)]
        ev = Evaluation(factors, objective(comps), comps)
        self._cache[cache_key] = ev
        self.history.append(ev)
        best = min(e.value for e in self.history)
        shown = "  ".join(f"{g} x{f:.3g}" for g, f in factors.items())
        self.log(f"eval {len(self.history):3d}  {shown}  objective {ev.value:.4f}  (best {best:.4f})")
        return ev


def grid_points(dims: int, n: int) -> list[list[float]]:
    """Every combination of ``n`` log2 factors per dimension, log-spaced over +-log2(GRID_SPAN),
    in a fixed order (the first dimension varies slowest)."""
    if n < 2:
        raise ConfigError(f"--grid needs at least 2 points per group, not {n}")
    span = math.log2(GRID_SPAN)
    axis = [-span + 2 * span * i / (n - 1) for i in range(n)]
    return [list(p) for p in itertools.product(axis, repeat=dims)]


def coordinate_descent(f: Callable[[Sequence[float]], float], dims: int, max_evals: int,
                       evals: Callable[[], int], start: Sequence[float] | None = None) -> list[float]:
    """Pattern search on ``dims`` log2 factors from ``start`` (default 0; see the module doc);
    returns the best point."""
    x = list(start) if start is not None else [0.0] * dims
    fx = f(x)
    step = INITIAL_STEP
    bound = math.log2(MAX_FACTOR)
    while step >= MIN_STEP and evals() < max_evals:
        moved = False
        for i in range(dims):
            for sign in (1.0, -1.0):
                if evals() >= max_evals:
                    return x
                trial = list(x)
                trial[i] = max(-bound, min(bound, x[i] + sign * step))
                if trial[i] == x[i]:
                    continue
                ft = f(trial)
                if ft < fx:
                    x, fx, moved = trial, ft, True
                    break
        if not moved:
            step /= 2
    return x


def run_fit(fit: Fit, max_evals: int, grid: int = 0) -> Evaluation:
    """Fit the group factors (from the best of a ``grid``, if given); the best evaluation."""
    if max_evals < 1:
        raise ConfigError(f"--max-evals must be at least 1, not {max_evals}")
    if not fit.groups:
        return fit.evaluate([])
    f = lambda x: fit.evaluate(x).value  # noqa: E731
    start = None
    if grid:
        points = grid_points(len(fit.groups), grid)
        if len(points) > max_evals:
            raise ConfigError(f"--grid {grid} over {len(fit.groups)} groups is {len(points)} evaluations, "
                              f"more than --max-evals {max_evals}")
        fit.evaluate([0.0] * len(fit.groups))  # the starting profile, for the record
        start = min(points, key=f)  # the first of equals
    best = coordinate_descent(f, len(fit.groups), max_evals, lambda: len(fit.history), start)
    return min((fit.evaluate(best), *fit.history), key=lambda e: e.value)


# -- the profile written -------------------------------------------------------------------


def fitted_profile(fit: Fit, best: Evaluation, name: str, date: str) -> MachineProfile:
    """The base profile with the fitted costs, each saying where it came from."""
    start = fit.history[0].value
    data = str(fit.data.path) + (f" + {fit.data.counters_path.name}" if fit.data.counters_path else "")
    where = (f"kvfree-sim calibrate on {data}, {date}: objective {start:.4f} -> {best.value:.4f} "
             f"({len(fit.history)} evaluations, {len(fit.keys)} configurations x seeds "
             f"{fit.seeds[0]}-{fit.seeds[-1]})")
    prof = scaled_profile(fit.base, best.factors, name)
    for group, factor in best.factors.items():
        for key in GROUPS[group]:
            unit = "/s" if key.endswith("_per_s") else "ns"
            prof.sources[key] = (f"{group} x{factor:.4g} of '{fit.base.name}' ({fit.base.costs[key]:g} {unit}); "
                                 f"{where}")
    note = f"; costs fitted to {fit.data.path}"
    prof.description = fit.base.description if fit.base.description.endswith(note) else fit.base.description + note
    prof.source = f"costs: {where}; layout and unfitted costs: profile '{fit.base.name}'"
    return prof


def profile_document(fit: Fit, best: Evaluation, name: str, date: str) -> dict:
    """The JSON of the fitted profile, with a 'fit' section saying how it was made."""
    doc = fitted_profile(fit, best, name, date).to_json()
    doc["fit"] = {
        "data": str(fit.data.path), "counters": str(fit.data.counters_path) if fit.data.counters_path else None,
        "date": date, "base_profile": fit.base.name, "factors": best.factors,
        "objective": {"start": fit.history[0].value, "end": best.value}, "weights": WEIGHTS,
        "error_cap": ERROR_CAP, "evaluations": len(fit.history), "seeds": fit.seeds,
        "configurations": [k.as_dict() for k in fit.keys],
    }
    return doc


def write_json(path: Path, doc: dict) -> None:
    """Write through a temporary file, so that an error never leaves half a profile."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


# -- the command ----------------------------------------------------------------------------


def parse_groups(text: str | None) -> list[str]:
    """``--groups a,b``: known group names, in :data:`GROUPS` order."""
    if text is None:
        return list(GROUPS)
    names = [g.strip() for g in text.split(",") if g.strip()]
    unknown = [g for g in names if g not in GROUPS]
    if unknown:
        raise ConfigError(f"--groups: unknown group '{unknown[0]}' (known: {', '.join(GROUPS)})")
    return [g for g in GROUPS if g in names]


def check_output(out: str) -> Path:
    path = Path(out)
    if path.suffix != ".json":
        raise ConfigError(f"--out {out}: a profile file name ends in .json")
    if not path.resolve().parent.is_dir():
        raise ConfigError(f"--out {out}: directory does not exist")
    return path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the 'calibrate' subcommand."""
    p = sub.add_parser("calibrate", help="fit a machine profile's costs to measured runs of a real kernel")
    add_data_args(p)
    p.add_argument("--out", required=True, metavar="PROFILE.json", help="the fitted profile to write")
    p.add_argument("--name", default=None, help="the profile's name (default: the --out file's stem)")
    p.add_argument("--groups", default=None, help=f"cost groups to fit (default all: {','.join(GROUPS)})")
    p.add_argument("--configs", type=int, default=DEFAULT_CONFIGS,
                   help=f"configurations to fit, 0 = all (default {DEFAULT_CONFIGS}: of those whose runs mostly "
                        "completed, the ones with counters first, then those with the most completed runs)")
    p.add_argument("--runs", type=int, default=DEFAULT_RUNS, help=f"seeds per configuration (default {DEFAULT_RUNS})")
    p.add_argument("--max-evals", type=int, default=DEFAULT_MAX_EVALS,
                   help=f"objective evaluations at most (default {DEFAULT_MAX_EVALS})")
    p.add_argument("--grid", type=int, default=0, metavar="N",
                   help=f"first try N factors per group, from 1/{GRID_SPAN:g} to {GRID_SPAN:g} (N**groups "
                        "evaluations), and search on from the best (default: no grid)")
    p.set_defaults(func=cmd_calibrate)


def make_fit(args: argparse.Namespace, executor: Executor) -> Fit:
    """Validate the arguments and set up the problem (ConfigError on bad input)."""
    from ..cli import profile_set_from_args

    if args.runs < 1:
        raise ConfigError(f"--runs must be at least 1, not {args.runs}")
    if args.configs < 0:
        raise ConfigError(f"--configs must be 0 (all) or more, not {args.configs}")
    if args.max_seconds is not None and args.max_seconds <= 0:
        raise ConfigError("--max-seconds must be positive")
    data = load_data(args)
    base = resolve_profile(args.profile, args.runs_csv, profile_set_from_args(args))
    keys = select_configs(data, args.configs)
    seeds = list(range(args.seed_base, args.seed_base + args.runs))
    max_seconds = args.max_seconds or default_max_seconds(data)
    for k in keys:
        run_config(k, seeds[0], max_seconds, base.name)  # bad configurations fail before any run
    groups = [g for g in parse_groups(args.groups) if any(base.costs[k] > 0 for k in GROUPS[g])]
    return Fit(data, base, groups, keys, seeds, max_seconds, executor)


def cmd_calibrate(args: argparse.Namespace, executor: Executor | None = None) -> int:
    """``kvfree-sim calibrate``; ``executor`` replaces the process pool (tests)."""
    out = check_output(args.out)
    if args.max_evals < 1:
        raise ConfigError(f"--max-evals must be at least 1, not {args.max_evals}")
    own = executor is None
    executor = executor or make_executor(args.jobs)
    try:
        fit = make_fit(args, executor)
        _print_plan(fit)
        best = run_fit(fit, args.max_evals, args.grid)
    finally:
        if own:
            executor.shutdown(cancel_futures=True)
    name = args.name or out.stem
    write_json(out, profile_document(fit, best, name, _dt.date.today().isoformat()))
    _print_result(fit, best, out, name)
    return EXIT_OK


def _print_plan(fit: Fit) -> None:
    print(f"kvfree-sim calibrate: {fit.data.path}; start profile {fit.base.name}; "
          f"groups {', '.join(fit.groups) or '(none)'}; seeds {fit.seeds[0]}-{fit.seeds[-1]}")
    ungrouped = sorted(set(COSTS) - {k for g in fit.groups for k in GROUPS[g]})
    if ungrouped:
        print(f"not fitted (kept from {fit.base.name}): {', '.join(ungrouped)}")
    for k in fit.keys:
        print(f"fitting: {k.describe()}")
    print("objective: weighted mean |relative error|, OOM share as a difference (" +
          ", ".join(f"{m} {w:g}" for m, w in WEIGHTS.items()) + f"; each capped at {ERROR_CAP:g})")
    sys.stdout.flush()


def _print_result(fit: Fit, best: Evaluation, out: Path, name: str) -> None:
    for c in best.comparisons:
        print("\n" + "\n".join(format_comparison(c)))
    shown = ", ".join(f"{g} x{f:.4g}" for g, f in best.factors.items()) or "(nothing fitted)"
    print(f"\nbest: {shown}; objective {fit.history[0].value:.4f} -> {best.value:.4f} "
          f"in {len(fit.history)} evaluations")
    print(f"wrote profile '{name}' to {out} (use: --profile {out})")
