#!/usr/bin/env python3
"""Derive kvfree-sim's boot tail (src/kvfree_sim/kernel/boot_tail_kvm_x86.tsv) from a kvm.sh
x86 console.log booted with kvm.sh's 'initcall_debug debug'.

The tail is what kernel_init writes to the serial console after a built-in test's initcall
has returned, up to the exec of /init: for each line, the preemptible time kernel_init spent
before it (the initcall's own work), its printk level, its text.  The console's time per
character is measured from the log itself: the median of (gap / characters written) over
the 'calling  fn' lines whose 'initcall fn returned 0 after N usecs' follows at once with
N <= 2 (do_one_initcall(): the gap is the 'calling' line on the wire plus the initcall).

  python3 tools/boot-tail/extract.py console.log > src/kvfree_sim/kernel/boot_tail_kvm_x86.tsv

Lines from other tasks of the log's own test (rcutorture, its NOCB toggles), the CPU
bring-up of its maxcpus=8 configuration and the W+X checks of a later defconfig are left
out, and the gap after one is taken as no work of kernel_init's (an rcuscale guest has every
CPU online before its initcalls run).
"""
from __future__ import annotations

import re
import statistics
import sys

LINE = re.compile(r"^\[\s*(\d+\.\d+)\] (.*)$")
TEST_RETURNED = re.compile(r"^initcall rcu_torture_init\+\S+ returned")
END = "    TERM=linux"
OVERHEAD = 17  # "[%5lu.%06lu] " and CRLF around each record's text
#: printed by other tasks of the log's own test (rcutorture's threads, its NOCB toggles, exiting kworkers)
OTHER_TASKS = re.compile(r"rcu-torture|torture_|rcu_torture|rcu: (De-)?[Oo]ffloading|used greatest stack depth")
#: not in the reviewer's guest: the log's CPU bring-up (maxcpus=8), and mark_readonly()'s W+X
#: checks (CONFIG_DEBUG_WX, in x86_64_defconfig only from v6.1: c0d2e63d4c61 "x86/defconfig:
#: Enable CONFIG_DEBUG_WX=y"); the gap after such a line is no work of kernel_init's
ABSENT = re.compile(r"^\s*#\d+$|^smpboot: CPU \d+ Converting|^x86/mm: Check")
#: initcall_debug's own lines (KERN_DEBUG): do_one_initcall()'s pair and really_probe_debug()'s
CALLING = re.compile(r"^calling  \S+ @ \d+$")
RETURNED = re.compile(r"^initcall \S+ returned -?\d+ after (\d+) usecs$")
PROBED = re.compile(r"^probe of \S+ returned -?\d+ after \d+ usecs$")
QUICK = re.compile(r"^initcall (\S+) returned 0 after ([012]) usecs$")
#: an initcall during which the log's guest brought CPUs online (acpi_processor_driver_init)
BRING_UP_IN_INITCALL = re.compile(r"^probe of cpu\d+ returned")


def parse(path: str) -> list[tuple[float, str]]:
    rows = []
    for raw in open(path, encoding="utf-8"):
        m = LINE.match(raw.rstrip("\n"))
        if m:
            rows.append((float(m.group(1)), m.group(2)))
    return rows


def window(rows: list[tuple[float, str]]) -> list[tuple[float, str]]:
    start = next(i for i, (_, x) in enumerate(rows) if TEST_RETURNED.match(x)) + 1
    end = next(i for i, (_, x) in enumerate(rows) if x == END and i > start)
    return rows[start:end + 1]


def char_ns(rows: list[tuple[float, str]]) -> tuple[float, int]:
    """ns per character on the wire: total gap over total characters of the lines that are
    pure console output, i.e. a 'calling  fn' followed at once by 'initcall fn returned 0
    after N usecs' with N <= 2 (less N), or such a 'returned' line followed at once by the
    next 'calling' line (do_initcalls() does nothing in between), gaps over 3 ms left out
    (another task held the CPU)."""
    gap = chars = 0.0
    n = 0
    for (t0, x0), (t1, x1) in zip(rows, rows[1:]):
        m = QUICK.match(x1)
        if m and x0.startswith(f"calling  {m.group(1)} @"):
            g = (t1 - t0) * 1e9 - int(m.group(2)) * 1000
        elif QUICK.match(x0) and CALLING.match(x1):
            g = (t1 - t0) * 1e9
        else:
            continue
        if g < 3e6:
            gap, chars, n = gap + g, chars + len(x0) + OVERHEAD, n + 1
    return gap / chars, n


def residuals(rows: list[tuple[float, str]], c: float) -> list[tuple[float, str, bool]]:
    """The lines kernel_init wrote, each with the time it worked before it: the gap since
    the previous one less the console's writing meanwhile (its own line and the other
    tasks'); 0 after a line left out (ABSENT)."""
    out: list[tuple[float, str, bool]] = []
    prev_t: float | None = None
    written = 0.0
    absent_before = False
    for t, x in rows:
        if ABSENT.match(x):
            absent_before = True
            continue
        if OTHER_TASKS.search(x):
            written += c * (len(x) + OVERHEAD)
            continue
        work = 0.0
        if prev_t is not None and not absent_before:
            work = max(0.0, (t - prev_t) * 1e9 - written)
        out.append((work, x, absent_before))
        prev_t, written, absent_before = t, c * (len(x) + OVERHEAD), False
    return out


def tail(rows: list[tuple[float, str]], c: float) -> list[tuple[int, int, str]]:
    """Work between initcalls is none (do_initcalls() only loops: a gap there is another
    task's); inside an initcall it is what do_one_initcall() measured ('after N usecs')
    less its own lines' writing, spread over its gaps as the timestamps have it (before its
    'returned' line if they show none), unless the log's CPU bring-up ran meanwhile; after
    the last initcall (free_initmem(), mark_readonly()'s W+X checks) it is the gaps'."""
    lines = residuals(rows, c)
    out: list[list] = []
    inside: list[int] = []  # indices in out of the current initcall's lines after 'calling'
    clean = True
    for work, x, absent_before in lines:
        if absent_before or BRING_UP_IN_INITCALL.match(x):
            clean = False
        if CALLING.match(x):
            out.append([0.0, x])
            inside, clean = [], True
            continue
        out.append([work, x])
        m = RETURNED.match(x)
        if m is None:
            inside.append(len(out) - 1)
            continue
        inside.append(len(out) - 1)
        if clean:
            own = sum(c * (len(out[i][1]) + OVERHEAD) for i in inside[:-1])
            total = max(0.0, int(m.group(1)) * 1000 - own)
            seen = sum(out[i][0] for i in inside)
            for i in inside:
                out[i][0] = total * out[i][0] / seen if seen else 0.0
            if not seen:
                out[inside[-1]][0] = total
        inside = []
    return [(round(w / 1000), 7 if is_debug(x) else 6, x) for w, x in out]


def is_debug(x: str) -> bool:
    return bool(CALLING.match(x) or RETURNED.match(x) or PROBED.match(x))


def main(path: str) -> None:
    rows = parse(path)
    c, n = char_ns(rows)
    lines = tail(window(rows), c)
    print(f"# kvm.sh x86 guest: what kernel_init writes after a built-in test's initcall, up to the exec of /init.")
    print(f"# From the console.log of Paul E. McKenney's kvm.sh TREE01 run (Linux 6.8.0-rc2-next-20240131, q35,")
    print(f"# 'debug_boot_weak_hash panic=-1 selinux=0 initcall_debug debug console=ttyS0 ...', 512 MB) posted to LKML")
    print(f"# 2024-02-02, <e572dedc-13cd-4202-8e31-5d851eea28ac@paulmck-laptop>, after its rcu_torture_init; derived by")
    print(f"# tools/boot-tail/extract.py (its docstrings say how).  Columns: kernel_init's preemptible work before")
    print(f"# the line (us), the line's printk level (7: initcall_debug's own KERN_DEBUG lines; 6: the rest, taken as")
    print(f"# KERN_INFO), its text.  The console wrote {c:.0f} ns a character ({n} lines of pure output).")
    print(f"# {len(lines)} lines, "
          f"{sum(len(x) + OVERHEAD for *_, x in lines)} characters on the wire, {sum(b for b, *_ in lines)} us of work.")
    for body, level, text in lines:
        print(f"{body}\t{level}\t{text}")


if __name__ == "__main__":
    main(sys.argv[1])
