"""kvfree-sim compare: run several variants on the same seeds and say how they differ.

``kvfree-sim compare --variants v5.11,v5.11+v3 --runs 10 [machine args] --out results/``
runs every variant ``--runs`` times with seeds ``--seed-base .. --seed-base+runs-1``
(the same seeds for every variant, so a difference comes from the variant and
not from luck), prints a table per variant and writes to ``--out``:

- ``runs.csv``, ``runs.json``: one row per run (see :mod:`kvfree_sim.report.tables`);
- ``completion.png``: every run's completion time, per variant and per seed;
- ``timeline.png``: one run per variant (the first seed) over time, and its
  data in ``timeline.json`` when the model recorded samples;
- ``summary.md``: what the runs show, generated from the numbers.

The runs go to a :class:`concurrent.futures.Executor`: a process pool over the
local cores by default, in-process with ``--jobs 1``, and anything else that
implements ``submit()`` (see :func:`run_all`).  Everything is validated before
the first run; the output directory is created only then, and every file is
written to a temporary name and renamed, so an error or Ctrl-C never leaves a
half-written file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import uuid
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Sequence, TextIO

from ..config import ConfigError, RunConfig
from ..report.text import profile_phrase

EXIT_OK = 0
EXIT_RUN_ERROR = 1  # a simulation raised (a bug in the model, not in the input)

DEFAULT_RUNS = 5
DEFAULT_SAMPLE_MS = 10.0
NSEC_PER_MSEC = 1_000_000

Samples = list[dict[str, Any]]


# -- the plan: everything validated before anything runs ----------------------------------------


@dataclass
class Plan:
    """The validated comparison: which configs to run and where to write."""

    variants: list[str]  # canonical names, in the order given
    seeds: list[int]
    configs: list[RunConfig]  # variant-major: all seeds of variants[0], then variants[1]...
    out: Path
    jobs: int
    sample_ns: int
    memory: str  # as given, for the summary
    trace: bool = False  # --trace-first-run
    trace_events: str | None = None
    trace_window: str | None = None

    def sampled(self, cfg: RunConfig) -> bool:
        """The runs the timeline shows: the first seed of every variant."""
        return cfg.seed == self.seeds[0]

    def trace_path(self, cfg: RunConfig) -> str | None:
        """Where ``--trace-first-run`` writes the first run of a variant."""
        if not (self.trace and self.sampled(cfg)):
            return None
        return str(self.out / f"trace-{cfg.variant}-seed{cfg.seed}.txt")


def _split_variants(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    if not names:
        raise ConfigError("--variants needs at least one variant (see 'kvfree-sim variants')")
    return names


def _check_counts(args: argparse.Namespace) -> None:
    if args.runs < 1:
        raise ConfigError(f"--runs must be at least 1, not {args.runs}")
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, not {args.jobs}")
    if args.sample_ms <= 0:
        raise ConfigError(f"--sample-ms must be positive, not {args.sample_ms}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")


def make_plan(args: argparse.Namespace) -> Plan:
    """Validate the arguments and build every run's config (raises ConfigError)."""
    from ..cli import config_from_args

    _check_counts(args)
    seeds = list(range(args.seed_base, args.seed_base + args.runs))
    variants: list[str] = []
    configs: list[RunConfig] = []
    for name in _split_variants(args.variants):
        cfgs = [config_from_args(args, name, seed) for seed in seeds]
        if cfgs[0].variant in variants:
            raise ConfigError(f"variant '{name}' is listed twice in --variants")
        variants.append(cfgs[0].variant)
        configs += cfgs
    jobs = args.jobs if args.jobs is not None else (os.cpu_count() or 1)
    if not args.trace_first_run and (args.trace_events is not None or args.trace_window is not None):
        raise ConfigError("--trace-events and --trace-window select what --trace-first-run writes: "
                          "give --trace-first-run")
    if args.trace_first_run:
        from ..trace.ftrace import parse_events, parse_window

        parse_events(args.trace_events)
        parse_window(args.trace_window)
    return Plan(variants=variants, seeds=seeds, configs=configs, out=Path(args.out),
                jobs=min(jobs, len(configs)), sample_ns=int(args.sample_ms * NSEC_PER_MSEC), memory=args.memory,
                trace=args.trace_first_run, trace_events=args.trace_events, trace_window=args.trace_window)


# -- running: one run, and all of them on an executor ----------------------------------------------


@dataclass
class RunOutput:
    """What comes back from a worker: the run's row, its samples, and an error if it raised."""

    row: dict[str, Any]
    samples: Samples | None = None
    error: str | None = None


def run_one(cfg: RunConfig, sample_ns: int | None = None, trace: tuple[str, str | None, str | None] | None = None
            ) -> RunOutput:
    """Simulate one config (in a worker process or in-process); sample it, and
    trace it to ``trace = (path, events, window)``, if asked.

    An exception from the model is caught and returned, so that one crashing
    run does not throw away the others.
    """
    from ..machine import simulate
    from ..report.tables import error_row, run_row
    from ..trace.ftrace import open_tracer

    samples: Samples | None = [] if sample_ns else None
    tracer = open_tracer(*trace) if trace else None
    try:
        result = simulate(cfg, tracer=tracer, sampler=samples.append if samples is not None else None,
                          sample_ns=sample_ns or int(DEFAULT_SAMPLE_MS * NSEC_PER_MSEC))
    except Exception as e:  # noqa: BLE001 - reported, see run_all
        if tracer is not None:
            tracer.abort()
        tb = traceback.format_exc(limit=-3)
        return RunOutput(row=error_row(cfg.variant, cfg.seed, f"{type(e).__name__}: {e}"), error=tb)
    if tracer is not None:
        tracer.close()
    return RunOutput(row=run_row(result), samples=samples)


class InlineExecutor(Executor):
    """Runs each submitted call at once, in this process (``--jobs 1`` and tests)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> "Future[Any]":
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - handed back through the future, as a pool would
            fut.set_exception(e)
        return fut


def make_executor(jobs: int) -> Executor:
    """A process pool of ``jobs`` workers, or in-process for one job."""
    return InlineExecutor() if jobs <= 1 else ProcessPoolExecutor(max_workers=jobs)


def run_all(plan: Plan, executor: Executor, progress: "Progress") -> list[RunOutput]:
    """Run every config of the plan on the executor; outputs in the plan's order.

    On an exception or Ctrl-C the runs not started yet are cancelled and the
    exception goes on up.
    """
    outputs: list[RunOutput | None] = [None] * len(plan.configs)
    pending: dict[Future[RunOutput], int] = {}

    def collect(fut: Future[RunOutput], i: int) -> None:
        outputs[i] = fut.result()
        progress.done(outputs[i])  # type: ignore[arg-type]

    try:
        for i, cfg in enumerate(plan.configs):
            path = plan.trace_path(cfg)
            trace = (path, plan.trace_events, plan.trace_window) if path else None
            fut = executor.submit(run_one, cfg, plan.sample_ns if plan.sampled(cfg) else None, trace)
            if fut.done():  # an in-process executor ran it already: report it now, not at the end
                collect(fut, i)
            else:
                pending[fut] = i
        for fut in as_completed(pending):
            collect(fut, pending[fut])
    except BaseException:
        stop_executor(executor)
        raise
    return [o for o in outputs if o is not None]


def stop_executor(executor: Executor) -> None:
    """Cancel the runs not started and end the running ones: Ctrl-C must not wait for them.

    A process pool's workers are terminated (through its private process
    table, the only way before Python 3.14's terminate_workers()); other
    executors are shut down without waiting.
    """
    terminate = getattr(executor, "terminate_workers", None)
    if callable(terminate):
        terminate()
        return
    procs = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        proc.terminate()


# -- progress ------------------------------------------------------------------------------------


class Progress:
    """A progress bar on a terminal (one line, redrawn with \\r), plain lines otherwise."""

    WIDTH = 30

    def __init__(self, total: int, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.total = total
        self.count = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.t0 = time.monotonic()

    def start(self, jobs: int) -> None:
        where = "in-process" if jobs <= 1 else f"on {jobs} processes"
        self._write(f"compare: {self.total} runs {where}\n")
        if self.tty:
            self._bar("")

    def done(self, out: RunOutput) -> None:
        """One run finished."""
        self.count += 1
        row = out.row
        what = f"{row['variant']} seed {row['seed']}: {row['outcome']}"
        if self.tty:
            self._bar(what)
            if self.count == self.total:
                self._write("\n")
        else:
            self._write(f"compare: {self.count}/{self.total} {what}\n")
        if out.error:
            self._write(("\n" if self.tty else "") + out.error)

    def _bar(self, what: str) -> None:
        filled = self.WIDTH * self.count // max(self.total, 1)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        elapsed = time.monotonic() - self.t0
        self._write(f"\r[{bar}] {self.count}/{self.total} {elapsed:5.0f} s  {what[:40]:<40}")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


# -- output files ---------------------------------------------------------------------------------


@contextmanager
def atomic_file(path: Path, binary: bool = False) -> Iterator[IO[Any]]:
    """Write ``path`` through a temporary file in the same directory, renamed when complete.

    The temporary file is made with the usual mode (0666 less the umask), not
    mkstemp's 0600, so the result reads like any file the user writes.
    """
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        f: IO[Any] = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")
        with f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


@contextmanager
def output_dir(path: Path) -> Iterator[Path]:
    """Create the output directory; remove it again if we created it and the block fails leaving it empty."""
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"cannot create --out {path}: {e.strerror}") from None
    try:
        yield path
    except BaseException:
        if created and not any(path.iterdir()):
            path.rmdir()
        raise


def _title(plan: Plan, runs: str | None = None) -> str:
    cfg = plan.configs[0]
    runs = runs or f"{len(plan.seeds)} runs per variant"
    machine = profile_phrase(cfg.profile, dict(cfg.profile_set))
    return f"{cfg.cpus} CPUs, {plan.memory}, {runs}{', ' + machine if machine else ''}: {cfg.bootargs}"


def _timeline_why() -> str:
    return "(the sampled runs recorded no samples)"


def write_outputs(plan: Plan, outputs: Sequence[RunOutput], report: dict[str, Any], summary: str) -> list[Path]:
    """Write every file into plan.out, each atomically; returns the paths written."""
    from ..report.plots import completion_plot, timeline_plot
    from ..report.tables import rows_csv

    rows = [o.row for o in outputs]
    samples = {v: next((o.samples for o in outputs if o.row["variant"] == v and o.samples), None)
               for v in plan.variants}
    writers: dict[str, Callable[[IO[Any]], Any]] = {
        "runs.csv": lambda f: f.write(rows_csv(rows)),
        "runs.json": lambda f: json.dump({**report, "runs": rows}, f, indent=1, sort_keys=False),
        "summary.md": lambda f: f.write(summary),
        "completion.png": lambda f: completion_plot(rows, plan.variants, f, title=_title(plan)),
        "timeline.png": lambda f: timeline_plot(samples, f, title=_title(plan, f"seed {plan.seeds[0]} of each variant"), why_empty=_timeline_why()),
    }
    if any(samples.values()):
        writers["timeline.json"] = lambda f: json.dump({"seed": plan.seeds[0], "samples": samples}, f)
    written = []
    for name, write in writers.items():
        path = plan.out / name
        with atomic_file(path, binary=name.endswith(".png")) as f:
            write(f)
        written.append(path)
    return written


# -- the command ----------------------------------------------------------------------------------


def report_data(plan: Plan, outputs: Sequence[RunOutput]) -> dict[str, Any]:
    """What --json prints (and runs.json holds besides the rows): the setup and per-variant stats."""
    from ..report.tables import all_stats

    cfg = plan.configs[0]
    stats = all_stats([o.row for o in outputs], plan.variants)
    return {
        "variants": plan.variants, "seeds": plan.seeds,
        "config": {"cpus": cfg.cpus, "memory": plan.memory, "memory_mb": cfg.memory_mb,
                   "bootargs": cfg.bootargs, "profile": cfg.profile, "profile_set": dict(cfg.profile_set),
                   "max_seconds": cfg.max_seconds},
        "stats": [s.as_dict() for s in stats],
        "errors": sum(o.error is not None for o in outputs),
    }


def _summary(plan: Plan, outputs: Sequence[RunOutput]) -> str:
    from ..report.summary import Context, summary_markdown
    from ..report.tables import all_stats

    rows = [o.row for o in outputs]
    cfg = plan.configs[0]
    ctx = Context(cpus=cfg.cpus, memory=plan.memory, bootargs=cfg.bootargs, runs=len(plan.seeds), seeds=plan.seeds,
                  machine=profile_phrase(cfg.profile, dict(cfg.profile_set)))
    return summary_markdown(rows, all_stats(rows, plan.variants), ctx)


def cmd_compare(args: argparse.Namespace, executor_factory: Callable[[int], Executor] = make_executor,
                progress_stream: TextIO | None = None) -> int:
    """The 'compare' subcommand: validate, run, print the table, write the files."""
    from ..report.tables import all_stats, format_table

    plan = make_plan(args)
    progress = Progress(len(plan.configs), progress_stream)
    with output_dir(plan.out):
        try:
            progress.start(plan.jobs)
            executor = executor_factory(plan.jobs)
            try:
                outputs = run_all(plan, executor, progress)
            finally:
                executor.shutdown(wait=True)
        except KeyboardInterrupt:
            print("\nkvfree-sim: compare interrupted; nothing written", file=progress.stream)
            raise
        report = report_data(plan, outputs)
        written = write_outputs(plan, outputs, report, _summary(plan, outputs))
        written += [Path(p) for p in map(plan.trace_path, plan.configs) if p and os.path.exists(p)]
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_table(all_stats([o.row for o in outputs], plan.variants)))
    print("compare: wrote " + ", ".join(str(p) for p in written), file=progress.stream)
    return EXIT_RUN_ERROR if report["errors"] else EXIT_OK


def _run(args: argparse.Namespace) -> int:
    """The parser's func: Ctrl-C ends with 130 and no traceback."""
    from ..cli import EXIT_INTERRUPTED

    try:
        return cmd_compare(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the 'compare' subcommand."""
    from ..cli import add_machine_args

    p = sub.add_parser("compare", help="run several variants on the same seeds and compare them",
                       description="Run each variant --runs times on the same seeds, print a table per "
                                   "variant and write runs.csv, runs.json, completion.png, timeline.png "
                                   "and summary.md to --out.")
    p.add_argument("--variants", required=True, help="comma-separated variants (see 'kvfree-sim variants')")
    p.add_argument("--runs", type=int, default=DEFAULT_RUNS, help=f"runs per variant (default {DEFAULT_RUNS})")
    p.add_argument("--seed-base", type=int, default=1, help="seeds are seed-base .. seed-base+runs-1 (default 1)")
    p.add_argument("--out", default="results", help="directory for the result files (default results)")
    p.add_argument("--jobs", type=int, default=None,
                   help="parallel runs (default: the number of CPUs; 1 runs in-process)")
    p.add_argument("--sample-ms", type=float, default=DEFAULT_SAMPLE_MS,
                   help=f"timeline sampling interval in simulated ms (default {DEFAULT_SAMPLE_MS:g})")
    p.add_argument("--json", action="store_true", help="print the per-variant statistics as JSON")
    p.add_argument("--trace-first-run", action="store_true",
                   help="write an ftrace file of the first run of each variant into --out "
                        "(large: about 0.25 MB per simulated ms at 64 CPUs; use --trace-window)")
    p.add_argument("--trace-events", default=None, help="ftrace-style event selection for --trace-first-run")
    p.add_argument("--trace-window", default=None, metavar="START:END",
                   help="trace only this window, in seconds, for --trace-first-run")
    add_machine_args(p)
    p.set_defaults(func=_run)
