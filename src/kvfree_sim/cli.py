"""The ``kvfree-sim`` command (argparse subcommands, a testable ``main(argv)``).

Bad input (an unknown variant or parameter, a malformed size, an impossible
configuration) prints one line ``kvfree-sim: error: ...`` and exits with 2;
nothing is left half-written.  Otherwise the exit status is 0 whatever the
simulated kernel did (an OOM panic is a result, not an error).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any, Sequence

from .core.costs import ProfileError, parse_set
from .config import DEFAULT_BOOTARGS, DEFAULT_MEMORY, ConfigError, RunConfig, make_config

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
EXIT_TERMINATED = 143  # 128 + SIGTERM


class UsageError(Exception):
    """argparse errors, turned into the same one-line message and exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def add_machine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cpus", type=int, default=None, help="number of CPUs (default: CONFIG_NR_CPUS, else 64)")
    p.add_argument("--memory", default=DEFAULT_MEMORY, help="guest memory, kvm.sh style: 512M, 16G (default 512M)")
    p.add_argument("--bootargs", default=DEFAULT_BOOTARGS,
                   help="kernel boot parameters as given to kvm.sh (rcuscale.*, rcutree.*, torture.*)")
    p.add_argument("--kconfig", action="append", default=None,
                   help="Kconfig options as given to kvm.sh, e.g. 'CONFIG_NR_CPUS=64 CONFIG_HZ=250'")
    p.add_argument("--profile", default=None, help="machine profile name or JSON file (default x86-server)")
    add_set_arg(p, "vcpu_steal_ns=10e6")
    p.add_argument("--max-seconds", type=float, default=600.0, help="simulated-time limit (default 600)")
    p.add_argument("params", nargs="*", metavar="module.param=value",
                   help="more boot parameters, appended to --bootargs")


def add_set_arg(p: argparse.ArgumentParser, example: str) -> None:
    """``--set NAME=VALUE`` (repeatable), read back by :func:`profile_set_from_args`."""
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="profile_set",
                   help="replace one of the profile's values (a cost or layout entry, as 'kvfree-sim profiles "
                        f"NAME' lists them), e.g. --set {example}; repeatable")


def profile_set_from_args(args: argparse.Namespace) -> tuple[tuple[str, float], ...]:
    """The ``--set`` values as (name, value) pairs; ConfigError if one is malformed."""
    try:
        return parse_set(args.profile_set)
    except ProfileError as e:
        raise ConfigError(str(e)) from None


def config_from_args(args: argparse.Namespace, variant: str, seed: int) -> RunConfig:
    bootargs = " ".join([args.bootargs, *args.params]).strip()
    return make_config(variant, cpus=args.cpus, memory=args.memory, bootargs=bootargs, kconfig=args.kconfig,
                       seed=seed, profile=args.profile, max_seconds=args.max_seconds,
                       profile_set=profile_set_from_args(args))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kvfree-sim",
                     description="Discrete-event simulator of Linux kvfree_rcu() under memory pressure.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="simulate one boot running rcuscale's kfree test")
    p.add_argument("--variant", default="v5.11", help="kernel version or patch (see 'kvfree-sim variants')")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--trace", default=None, metavar="FILE", help="write an ftrace-format trace of the run")
    p.add_argument("--trace-events", default=None, help="ftrace-style event selection, e.g. 'sched:*,vmscan:*'")
    p.add_argument("--trace-window", default=None, metavar="START:END", help="trace only this window (seconds)")
    add_machine_args(p)

    p = sub.add_parser("variants", help="list the kernel versions and patches kvfree-sim models")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("profiles", help="list the shipped machine profiles, or show one with its sources")
    p.add_argument("profile", nargs="?", default=None, help="a profile name or JSON file: show every value and its source")
    p.add_argument("--json", action="store_true")

    for mod in _experiment_modules():
        mod.register(sub)
    return parser


def _experiment_modules() -> list:  # type: ignore[type-arg]
    """Subcommands that live with their experiment: each has register(sub) and
    sets ``func`` on its parser."""
    from .experiments import bench, calibrate, compare, plot_trace, validate

    return [compare, validate, calibrate, bench, plot_trace]


def cmd_run(args: argparse.Namespace) -> int:
    from .machine import Machine
    from .report.text import run_report, timing_line

    cfg = config_from_args(args, args.variant, args.seed)
    tracer = None
    if not args.trace and (args.trace_events is not None or args.trace_window is not None):
        raise UsageError("--trace-events and --trace-window select what --trace FILE writes: give --trace")
    if args.trace:
        from .trace.ftrace import open_tracer

        tracer = open_tracer(args.trace, args.trace_events, args.trace_window)
    try:
        result = Machine(cfg, tracer=tracer).run()
    except BaseException:
        if tracer is not None:
            tracer.abort()
        raise
    if tracer is not None:
        tracer.close()
        note = tracer.window_note()
        if note:
            print(f"kvfree-sim: note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.as_dict(), sort_keys=True))
    else:
        print(run_report(result))
    print(timing_line(result), file=sys.stderr)
    return EXIT_OK


def cmd_variants(args: argparse.Namespace) -> int:
    from .kvfree_rcu.variants import VARIANTS

    rows = [{"name": v.name, "description": v.description, "source": v.source} for v in VARIANTS.values()]
    if args.json:
        print(json.dumps(rows, indent=1))
        return EXIT_OK
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['description']}")
        print(f"{'':<{width}}  source: {r['source']}")
    return EXIT_OK


def cmd_profiles(args: argparse.Namespace) -> int:
    from .core.costs import builtin_profiles, load_profile

    if args.profile is not None:
        prof = load_profile(args.profile)
        if args.json:
            print(json.dumps(prof.to_json(), indent=1))
            return EXIT_OK
        print(f"{prof.name}: {prof.description}\nsource: {prof.source}")
        for title, values in (("costs", prof.costs), ("layout", prof.layout)):
            print(f"\n{title}:")
            for k, v in values.items():
                print(f"  {k:<26} {v:>14,.6g}  {prof.sources.get(k, '')}")
        return EXIT_OK
    rows = []
    for name in builtin_profiles():
        prof = load_profile(name)
        rows.append({"name": name, "description": prof.description, "source": prof.source})
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['name']}: {r['description']}")
    return EXIT_OK


COMMANDS = {"run": cmd_run, "variants": cmd_variants, "profiles": cmd_profiles}


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM unwinds like an exception, so partial output (a trace's body file) is removed."""
    raise SystemExit(EXIT_TERMINATED)


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (``argv`` None: the process's own, and SIGTERM cleans up as Ctrl-C does)."""
    if argv is None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        func = COMMANDS.get(args.command) or args.func
        return func(args)
    except (UsageError, ConfigError, ProfileError) as e:
        print(f"kvfree-sim: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("kvfree-sim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `kvfree-sim ... | head`: the reader went away
        sys.stderr.close()
        return EXIT_OK

