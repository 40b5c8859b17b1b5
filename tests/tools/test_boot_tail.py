"""tools/boot-tail/extract.py: the shipped boot tail is what it derives from the stored log."""

from __future__ import annotations

import contextlib
import importlib.util
import io
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOG = ROOT / "data" / "kvm-x86-tree01-2024-02-02" / "console.log"
SHIPPED = ROOT / "src" / "kvfree_sim" / "kernel" / "boot_tail_kvm_x86.tsv"

spec = importlib.util.spec_from_file_location("boot_tail_extract", ROOT / "tools" / "boot-tail" / "extract.py")
assert spec and spec.loader
extract = importlib.util.module_from_spec(spec)
spec.loader.exec_module(extract)


def test_the_shipped_tail_is_derived_from_the_stored_log() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        extract.main(str(LOG))
    assert out.getvalue() == SHIPPED.read_text()


def test_char_ns_comes_from_pure_console_lines() -> None:
    """A 'calling' line then its 'returned 0 after 1 usecs' 1.041 ms later: (1041 - 1) us
    over the 'calling' line's 40 + 17 characters; gaps over 3 ms are another task's."""
    rows = [(1.0, "calling  foo_init+0x0/0x10 @ 1"),
            (1.001041, "initcall foo_init+0x0/0x10 returned 0 after 1 usecs"),
            (1.010, "calling  bar_init+0x0/0x10 @ 1")]
    c, n = extract.char_ns(rows)
    assert n == 1 and abs(c - 1_040_000 / (len(rows[0][1]) + 17)) < 1e-6


def test_work_inside_an_initcall_is_what_it_measured_less_its_own_lines() -> None:
    """At 1 us a character: 'calling  foo_init' (30 + 17 characters) goes out by 1.000047,
    when do_one_initcall() takes calltime; 100 us of work, a line of its own (33 + 17), 300 us
    more: it measures 450 us.  Its work is 450 - 50 = 400 us, before the two lines as the
    timestamps have it; nothing between initcalls."""
    rows = [(0.0, "initcall rcu_torture_init+0x0/0x10 returned 0 after 9 usecs"),
            (1.0, "calling  foo_init+0x0/0x10 @ 1"),
            (1.000147, "foo: a line the initcall printed."),
            (1.000497, "initcall foo_init+0x0/0x10 returned 0 after 450 usecs"),
            (1.0007, "    TERM=linux")]
    tail = extract.tail(extract.window(rows), 1000.0)
    assert [t[0] for t in tail] == [0, 100, 300, 133]  # after the last initcall: the gap less the line
    assert [t[1] for t in tail] == [7, 6, 7, 6]
