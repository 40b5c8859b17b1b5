"""Readers for measurements of real kernels: ``runs.csv`` and ``counters.csv``.

The format is that of ``../shared/calibration/linux-6.1-qemu-tcg/``:

``runs.csv``, one row per boot of a kernel running rcuscale's kfree test:
  required columns ``variant, smp, mem_mb, nthreads, loops, alloc_num, kfree_mult,
  run, completed, total_ns, batches, oom``; optional ``holdoff`` (the rcuscale
  default when absent), ``footprint_mb``, ``wall_s`` (host seconds from QEMU start
  to the result line or to QEMU's exit) and ``note``.  ``total_ns`` and
  ``batches`` must be numbers when ``completed`` is 1; they may be empty otherwise.

``counters.csv`` (optional, read when it lies beside ``runs.csv``), one row per
run of an instrumented build: ``variant, smp, mem_mb, run, completed, oom``,
any of the counters of :data:`~kvfree_sim.kvfree_rcu.tree.CALIBRATION_COUNTERS`
(empty when the run died before its first dump) and optionally
``first_oom_t`` / ``last_dump_t`` (seconds since boot).

Join rule.  Run numbers restart with every measurement session, so
``(variant, smp, mem_mb, run)`` names several boots in both files (in the QEMU
data, upstream 60 MB run 1 is five boots of ``runs.csv`` and two rows of
``counters.csv``), and ``counters.csv`` has no rcuscale parameters.  A counters
row is therefore joined to exactly one runs row that

1. has the same ``variant, smp, mem_mb, run`` and the same outcome
   (``completed``, ``oom``),
2. is consistent in time: when both are known, the counters' time stamp
   (``last_dump_t``, else ``first_oom_t``, guest seconds since boot) is not later
   than the run's ``wall_s`` (host seconds since QEMU started), and
3. among the one-to-one assignments of the rows sharing that key, minimises the
   timing mismatch ``|lag - typical lag|``.  For a completed run the counters
   are dumped when the test ends, so ``lag = last_dump_t - total_ns`` is the time
   from boot to the start of the test; for an OOM run ``lag = wall_s -
   first_oom_t``.  The typical lag (per outcome) is the median over the
   counters rows that have a single candidate.

A counters row with no candidate, or whose candidates belong to different
configurations and cannot be told apart, is an error.  A row with several
candidates of the same configuration is counted as *ambiguous* in
:attr:`RealData.join_notes`: validate and calibrate only use per-configuration
medians, which do not depend on which of those boots the counters belong to.

Rows with ``completed=0`` and ``oom=0`` (no result for another reason, e.g. a
guest too small to boot) are kept but excluded from comparisons.
"""

from __future__ import annotations

import csv
import itertools
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from ..config import ConfigError
from ..kvfree_rcu.tree import CALIBRATION_COUNTERS

#: variant labels of the calibration data -> kvfree-sim variants
DEFAULT_VARIANT_MAP: dict[str, str] = {"upstream": "v6.1", "nodrain": "v6.1-nodrain", "v3": "v6.1-v3"}

RUN_REQUIRED = ("variant", "smp", "mem_mb", "nthreads", "loops", "alloc_num", "kfree_mult",
                "run", "completed", "total_ns", "batches", "oom")
COUNTERS_REQUIRED = ("variant", "smp", "mem_mb", "run", "completed", "oom")
COUNTERS_FILE = "counters.csv"
#: largest group of same-key rows for which every one-to-one assignment is tried
_MAX_PERMUTATIONS = 50_000


@dataclass(frozen=True)
class ConfigKey:
    """One measured configuration: everything a run's outcome depends on but the seed."""

    variant: str  # kvfree-sim variant
    smp: int
    mem_mb: int
    nthreads: int
    loops: int
    alloc_num: int
    kfree_mult: int
    holdoff: int | None
    label: str = ""  # the variant's name in the data

    def sort_key(self) -> tuple:
        """Sweeps together, each from the largest memory size down."""
        return (*self.family()[:-1], -1 if self.holdoff is None else self.holdoff, -self.mem_mb)

    def family(self) -> tuple:
        """The configuration without its memory size (a memory sweep)."""
        return (self.variant, self.smp, self.nthreads, self.loops, self.alloc_num, self.kfree_mult, self.holdoff)

    def without_variant(self) -> tuple:
        """The configuration without its variant (to compare variants)."""
        return (self.smp, self.mem_mb, self.nthreads, self.loops, self.alloc_num, self.kfree_mult, self.holdoff)

    def describe(self, variant: bool = True, memory: bool = True) -> str:
        """``upstream (v6.1) smp=2 mem=64M nthreads=16 ...``, optionally without variant or memory."""
        name = f"{self.label} ({self.variant})" if self.label and self.label != self.variant else self.variant
        parts = [name] if variant else []
        parts += [f"smp={self.smp}"] + ([f"mem={self.mem_mb}M"] if memory else [])
        parts += [f"nthreads={self.nthreads}", f"loops={self.loops}", f"alloc_num={self.alloc_num}",
                  f"kfree_mult={self.kfree_mult}"]
        if self.holdoff is not None:
            parts.append(f"holdoff={self.holdoff}")
        return " ".join(parts)

    def as_dict(self) -> dict:
        return {"variant": self.variant, "label": self.label, "smp": self.smp, "mem_mb": self.mem_mb,
                "nthreads": self.nthreads, "loops": self.loops, "alloc_num": self.alloc_num,
                "kfree_mult": self.kfree_mult, "holdoff": self.holdoff}


@dataclass
class RealRun:
    """One boot of ``runs.csv``, with its counters when ``counters.csv`` has them."""

    row: int  # data row, 1 = first row after the header
    key: ConfigKey
    run: int
    completed: bool
    oom: bool
    total_ns: int | None
    batches: int | None
    wall_s: float | None = None
    note: str = ""
    counters: dict[str, int] | None = None
    counters_row: int | None = None

    @property
    def usable(self) -> bool:
        """A run that either completed or ran out of memory (others say nothing about the model)."""
        return self.completed or self.oom


@dataclass
class CounterRow:
    """One row of ``counters.csv``."""

    row: int
    variant: str
    smp: int
    mem_mb: int
    run: int
    completed: bool
    oom: bool
    values: dict[str, int | None]
    first_oom_t: float | None
    last_dump_t: float | None

    def join_key(self) -> tuple:
        return (self.variant, self.smp, self.mem_mb, self.run, self.completed, self.oom)


@dataclass
class RealData:
    """The runs of one ``runs.csv``, joined with ``counters.csv`` when present."""

    path: Path
    runs: list[RealRun]
    counters_path: Path | None = None
    counter_names: list[str] = field(default_factory=list)
    join_notes: list[str] = field(default_factory=list)

    def configurations(self) -> dict[ConfigKey, list[RealRun]]:
        """Runs grouped by configuration, in sorted order of the configurations."""
        groups: dict[ConfigKey, list[RealRun]] = {}
        for r in self.runs:
            groups.setdefault(r.key, []).append(r)
        return dict(sorted(groups.items(), key=lambda item: item[0].sort_key()))

    def excluded(self) -> list[RealRun]:
        """Runs that neither completed nor ran out of memory."""
        return [r for r in self.runs if not r.usable]

    def variants(self) -> list[str]:
        return sorted({r.key.variant for r in self.runs})


# -- variant names --------------------------------------------------------------------


def parse_variant_map(text: str | None) -> dict[str, str]:
    """The default map updated by ``--variant-map a=b,c=d`` (targets must be kvfree-sim variants)."""
    from ..kvfree_rcu.variants import get_variant

    mapping = dict(DEFAULT_VARIANT_MAP)
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        label, eq, target = item.partition("=")
        if not eq or not label.strip() or not target.strip():
            raise ConfigError(f"--variant-map: malformed entry '{item}' (expected NAME=VARIANT)")
        mapping[label.strip()] = get_variant(target.strip()).name
    return mapping


# -- CSV parsing ------------------------------------------------------------------------


class _Row:
    """A CSV row with typed getters whose errors name the file and the row."""

    def __init__(self, path: Path, index: int, line: int, values: dict[str | None, str | None]) -> None:
        self.path, self.index, self.line, self.values = path, index, line, values

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: row {self.index} (line {self.line}): {message}")

    def text(self, name: str) -> str:
        value = self.values.get(name)
        if value is None:
            raise self.error(f"missing value for column '{name}'")
        return value.strip()

    def integer(self, name: str, minimum: int | None = None) -> int:
        raw = self.text(name)
        try:
            value = int(raw)
        except ValueError:
            raise self.error(f"column '{name}': '{raw}' is not an integer") from None
        if minimum is not None and value < minimum:
            raise self.error(f"column '{name}': {value} is less than {minimum}")
        return value

    def optional_integer(self, name: str) -> int | None:
        if name not in self.values or not (self.values[name] or "").strip():
            return None
        return self.integer(name, 0)

    def optional_float(self, name: str) -> float | None:
        raw = (self.values.get(name) or "").strip()
        if not raw:
            return None
        try:
            return float(raw)
        except ValueError:
            raise self.error(f"column '{name}': '{raw}' is not a number") from None

    def flag(self, name: str) -> bool:
        raw = self.text(name)
        if raw not in ("0", "1"):
            raise self.error(f"column '{name}': '{raw}' is not 0 or 1")
        return raw == "1"

    def variant(self, mapping: dict[str, str]) -> tuple[str, str]:
        label = self.text("variant")
        if label in mapping:
            return mapping[label], label
        from ..kvfree_rcu.variants import VARIANTS

        if label in VARIANTS:
            return label, label
        raise self.error(f"unknown variant '{label}' (known: {', '.join(sorted(mapping))}, "
                         f"kvfree-sim's own names, or --variant-map {label}=VARIANT)")


def _read_rows(path: Path, required: Iterable[str]) -> Iterator[_Row]:
    """The rows of a CSV file whose header has the ``required`` columns."""
    try:
        handle = path.open(newline="")
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise ConfigError(f"{path}: missing column(s) {', '.join(missing)} in the header")
        for index, values in enumerate(reader, start=1):
            row = _Row(path, index, reader.line_num, values)
            if None in values:
                raise row.error(f"{len(header) + len(values[None] or [])} fields, the header has {len(header)}")
            yield row


def _parse_run(row: _Row, mapping: dict[str, str]) -> RealRun:
    variant, label = row.variant(mapping)
    key = ConfigKey(
        variant=variant, label=label, smp=row.integer("smp", 1), mem_mb=row.integer("mem_mb", 1),
        nthreads=row.integer("nthreads", 1), loops=row.integer("loops", 1),
        alloc_num=row.integer("alloc_num", 1), kfree_mult=row.integer("kfree_mult", 1),
        holdoff=row.optional_integer("holdoff"),
    )
    completed, oom = row.flag("completed"), row.flag("oom")
    total_ns, batches = row.optional_integer("total_ns"), row.optional_integer("batches")
    if completed and (total_ns is None or batches is None):
        raise row.error("a completed run needs total_ns and batches")
    if not completed:
        total_ns = batches = None
    return RealRun(row=row.index, key=key, run=row.integer("run", 0), completed=completed, oom=oom,
                   total_ns=total_ns, batches=batches, wall_s=row.optional_float("wall_s"),
                   note=(row.values.get("note") or "").strip())


def _parse_counters(row: _Row, mapping: dict[str, str], names: list[str]) -> CounterRow:
    variant, _ = row.variant(mapping)
    return CounterRow(
        row=row.index, variant=variant, smp=row.integer("smp", 1), mem_mb=row.integer("mem_mb", 1),
        run=row.integer("run", 0), completed=row.flag("completed"), oom=row.flag("oom"),
        values={n: row.optional_integer(n) for n in names},
        first_oom_t=row.optional_float("first_oom_t"), last_dump_t=row.optional_float("last_dump_t"),
    )


def read_runs(path: str | Path, variant_map: dict[str, str] | None = None) -> list[RealRun]:
    """Parse ``runs.csv`` (ConfigError naming the file and row on malformed input)."""
    mapping = variant_map if variant_map is not None else dict(DEFAULT_VARIANT_MAP)
    runs = [_parse_run(row, mapping) for row in _read_rows(Path(path), RUN_REQUIRED)]
    if not runs:
        raise ConfigError(f"{path}: no runs")
    return runs


def read_counters(path: str | Path, variant_map: dict[str, str] | None = None) -> tuple[list[CounterRow], list[str]]:
    """Parse ``counters.csv``: its rows and the calibration counters its header has."""
    path = Path(path)
    mapping = variant_map if variant_map is not None else dict(DEFAULT_VARIANT_MAP)
    rows = _read_rows(path, COUNTERS_REQUIRED)
    first = next(rows, None)
    if first is None:
        return [], []
    names = [n for n in CALIBRATION_COUNTERS if n in first.values]
    if not names:
        raise ConfigError(f"{path}: no counter columns (expected some of {', '.join(CALIBRATION_COUNTERS)})")
    parsed = [_parse_counters(r, mapping, names) for r in itertools.chain([first], rows)]
    return parsed, names


# -- the join ---------------------------------------------------------------------------


def _time(c: CounterRow) -> float | None:
    return c.last_dump_t if c.last_dump_t is not None else c.first_oom_t


def _feasible(c: CounterRow, r: RealRun) -> bool:
    t = _time(c)
    return t is None or r.wall_s is None or t <= r.wall_s


def _lag(c: CounterRow, r: RealRun) -> float | None:
    """Seconds that should be about the same for every true pair (see the module doc)."""
    if c.completed and c.last_dump_t is not None and r.total_ns is not None:
        return c.last_dump_t - r.total_ns / 1e9
    if not c.completed and c.first_oom_t is not None and r.wall_s is not None:
        return r.wall_s - c.first_oom_t
    return None


def _typical_lags(cands: dict[int, list[RealRun]], rows: list[CounterRow]) -> dict[bool, float]:
    """Median lag per outcome over the counters rows with a single candidate."""
    lags: dict[bool, list[float]] = {True: [], False: []}
    for c in rows:
        if len(cands[c.row]) == 1:
            lag = _lag(c, cands[c.row][0])
            if lag is not None:
                lags[c.completed].append(lag)
    return {k: statistics.median(v) for k, v in lags.items() if v}


def _cost(c: CounterRow, r: RealRun, typical: dict[bool, float]) -> float:
    lag = _lag(c, r)
    if lag is None or c.completed not in typical:
        return 0.0
    return abs(lag - typical[c.completed])


def _assign(group: list[CounterRow], cands: list[RealRun], typical: dict[bool, float],
            path: Path) -> list[RealRun]:
    """The one-to-one assignment of ``group`` to ``cands`` with the least timing mismatch."""
    if len(group) > len(cands):
        raise ConfigError(f"{path}: row {group[-1].row}: {len(group)} counters rows for "
                          f"{_describe_key(group[0])} but only {len(cands)} matching runs in runs.csv")
    if math.perm(len(cands), len(group)) > _MAX_PERMUTATIONS:
        return _assign_greedy(group, cands, typical, path)
    best: tuple[float, tuple[RealRun, ...]] | None = None
    for perm in itertools.permutations(cands, len(group)):
        if not all(_feasible(c, r) for c, r in zip(group, perm)):
            continue
        cost = sum(_cost(c, r, typical) for c, r in zip(group, perm))
        if best is None or cost < best[0]:
            best = (cost, perm)
    if best is None:
        raise ConfigError(f"{path}: row {group[0].row}: no consistent assignment of the counters rows for "
                          f"{_describe_key(group[0])} to runs (times later than the runs' wall_s)")
    return list(best[1])


def _assign_greedy(group: list[CounterRow], cands: list[RealRun], typical: dict[bool, float],
                   path: Path) -> list[RealRun]:
    """For large groups: each row in file order takes its best free candidate."""
    free = list(cands)
    chosen: list[RealRun] = []
    for c in group:
        options = [r for r in free if _feasible(c, r)]
        if not options:
            raise ConfigError(f"{path}: row {c.row}: no run left in runs.csv for {_describe_key(c)}")
        best = min(options, key=lambda r: _cost(c, r, typical))
        free.remove(best)
        chosen.append(best)
    return chosen


def _describe_key(c: CounterRow) -> str:
    outcome = "completed" if c.completed else ("oom" if c.oom else "no result")
    return f"variant {c.variant} smp={c.smp} mem_mb={c.mem_mb} run={c.run} ({outcome})"


def join_counters(runs: list[RealRun], rows: list[CounterRow], names: list[str], path: Path) -> list[str]:
    """Attach each counters row to one run (rule in the module doc); returns notes."""
    by_key: dict[tuple, list[RealRun]] = {}
    for r in runs:
        by_key.setdefault((r.key.variant, r.key.smp, r.key.mem_mb, r.run, r.completed, r.oom), []).append(r)
    cands: dict[int, list[RealRun]] = {}
    for c in rows:
        cands[c.row] = [r for r in by_key.get(c.join_key(), []) if _feasible(c, r)]
        if not cands[c.row]:
            raise ConfigError(f"{path}: row {c.row}: no run in runs.csv matches {_describe_key(c)}")
        configs = {r.key for r in cands[c.row]}
        if len(configs) > 1 and _time(c) is None:
            raise ConfigError(f"{path}: row {c.row}: {_describe_key(c)} matches runs of "
                              f"{len(configs)} configurations and has no time stamp to tell them apart")
    typical = _typical_lags(cands, rows)
    groups: dict[tuple, list[CounterRow]] = {}
    for c in rows:
        groups.setdefault(c.join_key(), []).append(c)
    for key, group in groups.items():
        for c, r in zip(group, _assign(group, by_key[key], typical, path)):
            r.counters = {n: v for n, v in c.values.items() if v is not None} or None
            r.counters_row = c.row
    ambiguous = sum(1 for c in rows if len(cands[c.row]) > 1)
    return [f"joined {len(rows)} counters rows to runs ({ambiguous} with several candidate boots of the same "
            f"configuration, told apart by timing; per-configuration medians do not depend on it)"]


def load(path: str | Path, variant_map: dict[str, str] | None = None,
         counters: str | Path | None = None) -> RealData:
    """Read ``runs.csv`` and, if present beside it (or given), ``counters.csv``."""
    path = Path(path)
    runs = read_runs(path, variant_map)
    cpath = Path(counters) if counters is not None else path.with_name(COUNTERS_FILE)
    data = RealData(path=path, runs=runs)
    if counters is None and (not cpath.is_file() or cpath.resolve() == path.resolve()):
        return data
    rows, names = read_counters(cpath, variant_map)
    data.counters_path, data.counter_names = cpath, names
    if rows:
        data.join_notes = join_counters(runs, rows, names, cpath)
    return data
