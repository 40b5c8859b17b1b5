"""kernel/system.py: the console (printk() from a task)."""

from __future__ import annotations

from kvfree_sim.kernel.sched import SLEEP

from ktest import USEC, spawn


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
