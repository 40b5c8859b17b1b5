"""Helpers of the trace tests: a tiny run that exercises the shrinker, and a parser of the trace."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kvfree_sim.config import RunConfig, make_config
from kvfree_sim.kernel.mm.vmscan import SHRINK_EMPTY
from kvfree_sim.machine import Machine, RunResult
from kvfree_sim.trace.ftrace import FtraceTracer, parse_events, parse_window

#: 2 CPUs, 48 MB: the shrinker runs (kswapd and the refill workers' direct reclaim), the
#: page cache is drained and refilled, two grace periods end, and the run ends in an OOM
#: panic 18 ms in (with 4 loops it completes before the first grace period ends).
TINY_BOOTARGS = ("rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=2 rcuscale.kfree_loops=8 "
                 "rcuscale.kfree_alloc_num=2000 rcuscale.kfree_mult=64")
# 50M: small enough to panic out of memory, large enough that kfree_rcu_work() runs first
TINY: dict[str, Any] = dict(cpus=2, memory="50M", bootargs=TINY_BOOTARGS, profile="qemu-tcg-6.1")

#: trace_print_context() of 6.1: "%16s-%-7d [%03d] " + 5 flag characters + " %5lu.%06lu: "
LINE_RE = re.compile(r"^(?P<comm>[ -~]{16})-(?P<pid>\d+) *\[(?P<cpu>\d{3})\] (?P<flags>[dDbX.][Nnp.][ZzHhs.][0-9a-f.][0-9a-f.])"
                     r" +(?P<secs>\d+)\.(?P<usecs>\d{6}): (?P<event>[a-z_0-9]+): (?P<args>.*)$")


def tiny_config(variant: str = "v5.11+v3", **kw: Any) -> RunConfig:
    return make_config(variant, **{**TINY, **kw})


class RecordingTracer(FtraceTracer):
    """Keeps the machine and counts the count_objects() calls that return something to scan."""

    machine: Machine
    nonzero_counts: int

    def attach(self, machine: Machine) -> None:
        super().attach(machine)
        self.machine = machine
        self.nonzero_counts = 0
        for s in machine.kernel.vmscan.shrinkers:
            orig = s.count_objects

            def count(sc: Any, orig: Any = orig) -> int:
                n = orig(sc)
                if n not in (0, SHRINK_EMPTY):
                    self.nonzero_counts += 1
                return n

            s.count_objects = count


def traced_run(path: Path, variant: str = "v5.11+v3", events: str | None = None, window: str | None = None,
               cls: type[FtraceTracer] = FtraceTracer, **kw: Any) -> tuple[RunResult, FtraceTracer]:
    tracer = cls(str(path), parse_events(events), parse_window(window))
    result = Machine(tiny_config(variant, **kw), tracer=tracer).run()
    tracer.close()
    return result, tracer


@dataclass
class Line:
    comm: str
    pid: int
    cpu: int
    flags: str
    ts_us: int
    event: str
    args: str
    raw: str

    @property
    def ts_ns(self) -> int:
        return self.ts_us * 1000

    def kv(self) -> dict[str, str]:
        return dict(re.findall(r"(\w+)=(\S+)", self.args))


def read_lines(path: Path) -> tuple[list[str], list[Line]]:
    """(header lines, event lines); every non-header line must match the kernel's layout."""
    head: list[str] = []
    lines: list[Line] = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("#"):
            assert not lines, f"header line after the events: {raw!r}"
            head.append(raw)
            continue
        m = LINE_RE.match(raw)
        assert m, f"not in the kernel's trace layout: {raw!r}"
        lines.append(Line(m["comm"].strip(), int(m["pid"]), int(m["cpu"]), m["flags"],
                          int(m["secs"]) * 1_000_000 + int(m["usecs"]), m["event"], m["args"], raw))
    return head, lines


def count(lines: list[Line], event: str, contains: str = "") -> int:
    return sum(1 for ln in lines if ln.event == event and contains in ln.args)
