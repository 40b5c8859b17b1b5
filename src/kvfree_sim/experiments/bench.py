"""kvfree-sim bench: how fast the simulator runs, on a fixed set of configurations.

Each configuration runs in a fresh process (so its peak RSS is its own) and
reports simulated time, wall time, the real-time factor (simulated / wall),
events processed, events per second and peak RSS.  Nothing here is asserted:
speed is measured, never tested.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import sys
import time
from dataclasses import asdict, dataclass

THREAD_BOOTARGS = ("rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=16 rcuscale.holdoff=20 "
                   "rcuscale.kfree_loops=10000 torture.disable_onoff_at_boot")


@dataclass
class BenchCase:
    name: str
    variant: str
    cpus: int
    memory: str
    bootargs: str
    seed: int = 1


CASES = [
    # seed 2: a run that completes (on seed 1 v3 runs out of memory 0.17 s in, in the boot tail)
    BenchCase("thread (64 CPUs, 512M)", "v5.11+v3", 64, "512M", THREAD_BOOTARGS, seed=2),
    BenchCase("no pressure (64 CPUs, 16G)", "v5.11+v3", 64, "16G", THREAD_BOOTARGS),
    BenchCase("128 CPUs, 64 threads", "v5.11+v3", 128, "16G",
              THREAD_BOOTARGS.replace("kfree_nthreads=16", "kfree_nthreads=64")),
    BenchCase("small (2 CPUs, 512M)", "v6.1", 2, "512M",
              "rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=2 rcuscale.kfree_loops=100"),
]


@dataclass
class BenchRow:
    name: str
    variant: str
    loops: int
    outcome: str
    sim_s: float
    wall_s: float
    rtf: float
    events: int
    events_per_s: float
    peak_rss_mb: float


def _scaled(bootargs: str, scale: float) -> tuple[str, int]:
    """Bootargs with kfree_loops scaled (at least 1), and the loops used."""
    parts = bootargs.split()
    loops = 10
    out = []
    for p in parts:
        if p.startswith("rcuscale.kfree_loops="):
            loops = max(1, int(int(p.split("=", 1)[1]) * scale))
            if loops in (2, 3):
                loops = 4  # the kernel would divide by kfree_loops / 4 == 0
            p = f"rcuscale.kfree_loops={loops}"
        out.append(p)
    return " ".join(out), loops


def _run_case(case: BenchCase, variant: str, scale: float, profile: str | None) -> BenchRow:
    """In a child process: one simulation, timed, with its peak RSS."""
    from ..config import make_config
    from ..machine import simulate

    bootargs, loops = _scaled(case.bootargs, scale)
    cfg = make_config(variant, cpus=case.cpus, memory=case.memory, bootargs=bootargs, profile=profile,
                      seed=case.seed)
    t0 = time.perf_counter()
    r = simulate(cfg)
    wall = time.perf_counter() - t0
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sim_s = r.sim_ns / 1e9
    return BenchRow(case.name, variant, loops, r.outcome, sim_s, wall, sim_s / wall if wall else 0.0,
                    r.events, r.events / wall if wall else 0.0, rss_kb / 1024)


def _fresh_process(fn, *args):  # type: ignore[no-untyped-def]
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


def format_table(rows: list[BenchRow]) -> str:
    head = (f"{'configuration':<28} {'variant':<17} {'loops':>6} {'outcome':<10} {'sim s':>8} "
            f"{'wall s':>8} {'RTF':>6} {'events':>10} {'events/s':>10} {'RSS MB':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.name:<28} {r.variant:<17} {r.loops:>6} {r.outcome:<10} {r.sim_s:>8.3f} "
                     f"{r.wall_s:>8.2f} {r.rtf:>6.2f} {r.events:>10} {r.events_per_s:>10.0f} {r.peak_rss_mb:>7.0f}")
    return "\n".join(lines)


def machine_line() -> str:
    import os

    from .. import build

    return (f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}, "
            f"{os.cpu_count()} CPUs, model build: {build()}")


def cmd_bench(args: argparse.Namespace) -> int:
    from ..config import ConfigError
    from ..kvfree_rcu.variants import VARIANTS, get_variant

    if not args.scale > 0:
        raise ConfigError(f"--scale must be positive, not {args.scale}")
    cases = CASES if not args.case else [c for c in CASES if any(k in c.name for k in args.case)]
    if not cases:
        raise ConfigError(f"no bench case matches {args.case}")
    variants: list[str] | None = None
    if args.variants == "all":
        variants = list(VARIANTS)
    elif args.variants:
        variants = args.variants.split(",")
    for v in variants or ():
        get_variant(v)
    rows: list[BenchRow] = []
    for case in cases:
        for v in variants or [case.variant]:
            row = _fresh_process(_run_case, case, v, args.scale, args.profile)
            rows.append(row)
            if not args.json:
                print(f"{row.name}: {row.variant} {row.wall_s:.1f} s wall, RTF {row.rtf:.2f}", file=sys.stderr)
    if args.json:
        print(json.dumps({"machine": machine_line(), "rows": [asdict(r) for r in rows]}, indent=1))
    else:
        print(f"# {machine_line()}")
        print(format_table(rows))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("bench", help="measure the simulator's speed on fixed configurations")
    p.add_argument("--json", action="store_true")
    p.add_argument("--scale", type=float, default=1.0,
                   help="scale every case's kfree_loops (e.g. 0.1 for a quick look; default 1)")
    p.add_argument("--variants", default=None,
                   help="comma-separated variants to run each case with, or 'all' (default: each case's own)")
    p.add_argument("--case", action="append", default=None, help="run only cases whose name contains this")
    p.add_argument("--profile", default=None)
    p.set_defaults(func=cmd_bench)
