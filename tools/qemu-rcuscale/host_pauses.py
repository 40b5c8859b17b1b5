#!/usr/bin/env python3
"""How long QEMU's vCPU threads were off their host cores, from ``run.py --perf``.

``perf sched timehist`` prints, for every time a thread gets a core, how long
it slept before (``wait time``) and how long it then waited to run once
runnable (``sch delay``, after a wakeup or after being preempted).  While the
guest is busy, a vCPU thread's time off its core in either form is time its
guest CPU did not run, but only the scheduling delay is the host's doing (the
pauses the model's ``vcpu_steal_*``/``vcpu_stall_*`` stand for): a wait is a
sleep, the guest's idle halt until its next tick or QEMU's lock.  Both are
reported, apart and summed.  The two busiest QEMU threads are the vCPUs (TCG,
thread=multi); the main loop, which also delivers the guest's timer
interrupts, is the thread named after the process.

Usage: host_pauses.py [--window START:END] TAG.perf [...]
  --window: seconds after QEMU's first event (default 1.5: boot and SMP
  bring-up skipped; END: the trace's end).  A completed run idles 5 s after
  its result line: give END to leave that out.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict

SKIP_S = 1.5  # SeaBIOS, early boot and SMP bring-up: the vCPU threads start and stop


#: a switch-in: host time (s), asleep before (s), runnable but off its core before (s)
Switch = tuple[float, float, float]


def parse_timehist(out: str) -> tuple[dict[str, list[Switch]], dict[str, float]]:
    """Per QEMU thread 'tid/pid': its switch-ins, and its run time (s), from timehist text."""
    pauses: dict[str, list[Switch]] = defaultdict(list)
    ran: dict[str, float] = defaultdict(float)
    for line in out.splitlines():
        f = line.split()
        if len(f) < 6 or not f[2].startswith("qemu-system"):
            continue
        tid = f[2].split("[", 1)[1].rstrip("]")
        try:
            t, wait, delay, run = float(f[0]), float(f[3]), float(f[4]), float(f[5])
        except ValueError:
            continue
        pauses[tid].append((t, wait / 1e3, delay / 1e3))
        ran[tid] += run / 1e3
    return pauses, ran


def off_core(perf: str) -> tuple[dict[str, list[Switch]], dict[str, float]]:
    """parse_timehist() of ``perf sched timehist -i perf``."""
    done = subprocess.run(["perf", "sched", "timehist", "-i", perf], capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"host_pauses.py: perf cannot read {perf}: {done.stderr.strip().splitlines()[-1:]}")
    return parse_timehist(done.stdout)


def describe(xs: list[float]) -> str:
    """Total, count and tail of a thread's pauses (s)."""
    xs = sorted(x for x in xs if x > 0)
    return (f"{sum(xs):.3f} s in {len(xs)} pauses; > 1 ms {sum(x > 1e-3 for x in xs)}, "
            f"> 4.5 ms {sum(x > 4.5e-3 for x in xs)}, > 10 ms {sum(x > 1e-2 for x in xs)}; "
            f"longest {1e3 * (xs[-1] if xs else 0):.2f} ms")


def report_lines(perf: str, pauses: dict[str, list[Switch]], ran: dict[str, float],
                 start: float = SKIP_S, end: float = float("inf")) -> list[str]:
    """One line per vCPU thread (the two that ran longest): off core, preempted, asleep."""
    if not ran:
        return [f"{perf}: no QEMU thread in the trace"]
    first = min(t for p in pauses.values() for t, _, _ in p)
    lines = []
    for tid in sorted(ran, key=lambda k: ran[k], reverse=True)[:2]:
        sw = [(w, d) for t, w, d in pauses[tid] if first + start <= t <= first + end]
        lines.append(f"{perf}: vCPU thread {tid}: ran {ran[tid]:.2f} s; off core {describe([w + d for w, d in sw])}"
                     f" | preempted (sch delay) {describe([d for _, d in sw])}"
                     f" | asleep (wait) {describe([w for w, _ in sw])}")
    return lines


if __name__ == "__main__":
    argv = sys.argv[1:]
    window = (SKIP_S, float("inf"))
    if argv[:1] == ["--window"] and len(argv) > 1:
        a, _, b = argv[1].partition(":")
        window = (float(a or SKIP_S), float(b) if b else float("inf"))
        argv = argv[2:]
    if not argv:
        sys.exit(__doc__)
    for path in argv:
        print("\n".join(report_lines(path, *off_core(path), *window)))
