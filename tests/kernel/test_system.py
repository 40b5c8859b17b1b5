"""kernel/system.py: the console (printk() from a task)."""

from __future__ import annotations

import pytest

from kvfree_sim.kernel.sched import SLEEP
from kvfree_sim.kernel.system import boot_tail

from ktest import SEC, USEC, hog, spawn


def test_printk_from_a_task_writes_the_line_with_preemption_off_and_lines_queue(make_kernel) -> None:
    """The caller spins for the console while another CPU's line goes out, then writes its
    own ("[%5lu.%06lu] " + text + CRLF: 17 characters besides the text), preemption off;
    the line's timestamp is when printk() was called."""
    kernel = make_kernel(ncpus=2, costs={"console_char_ns": 10 * USEC})
    done: dict[str, int] = {}

    def printer(text: str):
        def body(me):
            yield from kernel.printk_from(me, text)
            done[text] = kernel.sim.now
            assert not me.preempt_off  # only for the line's burst
            yield SLEEP
        return body

    spawn(kernel, "a", printer("x" * 33), cpu=0)  # 50 characters: 500 us
    spawn(kernel, "b", printer("y" * 13), cpu=1)  # 30 characters, after a's: 800 us
    kernel.sim.run(until=2_000 * USEC)
    assert done == {"x" * 33: 500 * USEC, "y" * 13: 800 * USEC}
    assert [t for t, _ in kernel.console] == [0, 0]


def test_the_serial_console_takes_as_long_whatever_the_vcpus_speed(make_kernel) -> None:
    """The port's time is the emulator's, not guest code (host.VcpuSpeed): a line of 50
    characters takes 500 us on a vCPU running at twice or half its speed."""
    kernel = make_kernel(ncpus=2, costs={"console_char_ns": 10 * USEC})
    done: dict[str, int] = {}

    def body(me):
        yield from kernel.printk_from(me, "x" * 33)
        done[me.name] = kernel.sim.now - me.cpu.id * 1_000 * USEC

    for cpu, speed in zip(kernel.cpus, (2.0, 0.5)):
        cpu.set_speed(speed)
    spawn(kernel, "fast", body, cpu=0)
    spawn(kernel, "slow", body, cpu=1, at=1_000 * USEC)
    kernel.sim.run(until=3_000 * USEC)
    assert done == {"fast": 500 * USEC, "slow": 500 * USEC}


def test_printk_alone_costs_nothing(make_kernel) -> None:
    kernel = make_kernel(costs={"console_char_ns": 10 * USEC})
    kernel.printk("from an interrupt")
    assert kernel.console == [(0, "from an interrupt")] and kernel.console_busy_until == 0


# -- the initcalls after a built-in test's (kernel_init under kvm.sh's initcall_debug) ----------


def _tail_console(make_kernel, cmdline: dict | None = None, kvm_sh: int = 1):
    kernel = make_kernel(ncpus=3, costs={"console_char_ns": 10 * USEC}, layout={"kvm_sh_x86": kvm_sh},
                         cmdline=cmdline)
    spawn(kernel, "kfree0", hog, cpu=0)  # a pinned kfree thread on the initcall's CPU

    def kernel_init(me):
        yield from kernel.late_initcalls(me)
        yield SLEEP

    init = spawn(kernel, "kernel_init", kernel_init, cpu=None)
    kernel.sim.run(until=5 * SEC)
    return kernel, init


def test_kvm_sh_x86_guest_writes_the_later_initcalls_to_the_console(make_kernel) -> None:
    """kvm.sh's x86 command line has 'initcall_debug debug': kernel_init frames each later
    initcall with 'calling  fn @ 1' / 'initcall fn returned ...' (KERN_DEBUG, shown at
    console_loglevel 10) and writes the drivers' lines, in the data file's order, from an
    idle CPU (select_task_rq_fair() at its last wakeup), not the pinned kfree thread's."""
    kernel, init = _tail_console(make_kernel)
    tail = boot_tail()
    assert [text for _, text in kernel.console] == [text for _, _, text in tail]
    assert init.cpu is not None and init.cpu.id != 0
    # every line's characters at 10 us each, plus the initcalls' own work
    chars = sum(len(text) + 17 for _, _, text in tail)
    work = sum(body for body, _, _ in tail)
    assert kernel.console[-1][0] == pytest.approx(chars * 10 * USEC + work - (len(tail[-1][2]) + 17) * 10 * USEC,
                                                  rel=1e-3)


@pytest.mark.parametrize("cmdline, shown", [
    ({"initcall_debug": False}, "info"),   # the drivers' lines only
    ({"loglevel": 7}, "info"),             # KERN_DEBUG not shown at the default console_loglevel
    ({"loglevel": 4}, "none"),             # quiet
])
def test_the_command_line_decides_what_the_tail_writes(make_kernel, cmdline, shown) -> None:
    kernel, _ = _tail_console(make_kernel, cmdline)
    want = [text for _, level, text in boot_tail() if level < 7] if shown == "info" else []
    assert [text for _, text in kernel.console] == want


def test_a_guest_booted_without_kvm_sh_writes_no_tail(make_kernel) -> None:
    kernel, _ = _tail_console(make_kernel, kvm_sh=0)
    assert kernel.console == []


def test_the_boot_tail_data_is_well_formed() -> None:
    """Work in us (whole, not negative), level 6 or 7 (7: initcall_debug's own lines only)."""
    tail = boot_tail()
    assert len(tail) > 500
    for body, level, text in tail:
        assert body >= 0 and body % 1000 == 0 and level in (6, 7) and text
        debug = text.startswith(("calling  ", "initcall ", "probe of "))
        assert (level == 7) == debug
