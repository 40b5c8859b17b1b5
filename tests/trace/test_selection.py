"""--trace-events and --trace-window, the command line, and what is left on disk."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kvfree_sim.cli import main
from kvfree_sim.config import ConfigError
from kvfree_sim.machine import Machine
from kvfree_sim.trace.ftrace import ALL_EVENTS, open_tracer, parse_events, parse_window

from tracekit import TINY_BOOTARGS, count, read_lines, tiny_config, traced_run


def test_event_specs():
    assert parse_events(None) == frozenset(ALL_EVENTS)
    assert parse_events("sched:*") == {"sched:sched_switch", "sched:sched_wakeup"}
    assert parse_events("sched") == parse_events("sched:") == parse_events("sched:*")
    assert parse_events("sched_switch") == {"sched:sched_switch"}
    assert parse_events("*:mm_shrink_slab_*") == {"vmscan:mm_shrink_slab_start", "vmscan:mm_shrink_slab_end"}
    assert parse_events("all") == parse_events("*:*") == frozenset(ALL_EVENTS)
    assert parse_events("!ftrace:print") == frozenset(ALL_EVENTS) - {"ftrace:print"}
    assert parse_events("vmscan:*,!vmscan:mm_vmscan_kswapd_wake") == {
        "vmscan:mm_shrink_slab_start", "vmscan:mm_shrink_slab_end",
        "vmscan:mm_vmscan_direct_reclaim_begin", "vmscan:mm_vmscan_direct_reclaim_end"}


@pytest.mark.parametrize("spec", ["", "sched:,", "bogus:*", "sched:sched_switchx", "nosuchevent", ",sched"])
def test_bad_event_specs_name_the_spec(spec: str):
    with pytest.raises(ConfigError, match="--trace-events"):
        parse_events(spec)


def test_window_specs():
    assert parse_window(None) == (0, None)
    assert parse_window(":") == (0, None)
    assert parse_window("0.005:") == (5_000_000, None)
    assert parse_window(":0.01") == (0, 10_000_000)
    assert parse_window("1:2.5") == (1_000_000_000, 2_500_000_000)


@pytest.mark.parametrize("spec", ["", "5", "1:2:3", "a:1", "1:b", "2:1", "1:1", "-1:2", "nan:", ":inf"])
def test_bad_window_specs_name_the_spec(spec: str):
    with pytest.raises(ConfigError, match="--trace-window"):
        parse_window(spec)


def test_selected_events_only(tmp_path: Path):
    path = tmp_path / "t.trace"
    result, _ = traced_run(path, events="sched:*,workqueue:*,vmscan:*")
    _, lines = read_lines(path)
    assert {ln.event for ln in lines} == {
        "sched_switch", "sched_wakeup", "workqueue_queue_work", "workqueue_execute_start",
        "workqueue_execute_end", "mm_shrink_slab_start", "mm_shrink_slab_end",
        "mm_vmscan_direct_reclaim_begin", "mm_vmscan_direct_reclaim_end", "mm_vmscan_kswapd_wake"}
    assert count(lines, "workqueue_execute_start", "fill_page_cache_func") == result.counters["fill_runs"]


def test_counters_and_slices_only(tmp_path: Path):
    path = tmp_path / "t.trace"
    result, _ = traced_run(path, events="ftrace:print")
    _, lines = read_lines(path)
    assert {ln.event for ln in lines} == {"tracing_mark_write"}
    assert count(lines, "tracing_mark_write", "B|") == result.counters["fill_runs"] + result.mm["direct_reclaims"]
    assert count(lines, "tracing_mark_write", "C|") > 0


def test_window(tmp_path: Path):
    full = tmp_path / "full.trace"
    traced_run(full)
    _, all_lines = read_lines(full)
    path = tmp_path / "w.trace"
    result, _ = traced_run(path, window="0.005:0.012")
    head, lines = read_lines(path)
    assert lines and all(5_000 <= ln.ts_us < 12_000 for ln in lines)
    assert head[2].startswith(f"# entries-in-buffer/entries-written: {len(lines)}/{len(lines)} ")
    # the kernel's events in the window are exactly those of the full trace in it
    kernel = [ln.raw for ln in all_lines if 5_000 <= ln.ts_us < 12_000 and ln.event != "tracing_mark_write"]
    assert [ln.raw for ln in lines if ln.event != "tracing_mark_write"] == kernel
    # every counter is written when the window opens
    first = lines[0].ts_us
    names = {ln.args.split("|")[2] for ln in lines if ln.ts_us == first and ln.args.startswith("C|")}
    assert {"free_pages", "kvfree_cache_cpu0", "kvfree_count_cpu1"} <= names
    # and the run itself is the same
    assert result.as_dict() == Machine(tiny_config()).run().as_dict()
    # open-ended windows
    path2 = tmp_path / "w2.trace"
    traced_run(path2, window="0.015:")
    _, lines2 = read_lines(path2)
    assert lines2 and lines2[0].ts_us >= 15_000 and lines2[-1].ts_us == all_lines[-1].ts_us


def test_oom_panic_run_traces_too(tmp_path: Path):
    path = tmp_path / "t.trace"
    result, _ = traced_run(path, memory="24M")
    assert result.outcome == "oom-panic"
    _, lines = read_lines(path)
    assert any("Kernel panic - not syncing" in ln.args for ln in lines if ln.event == "console")
    assert result.as_dict() == Machine(tiny_config(memory="24M")).run().as_dict()


def test_trace_file_mode_is_what_open_would_give(tmp_path: Path):
    path = tmp_path / "t.trace"
    traced_run(path)
    ref = tmp_path / "ref"
    ref.write_text("")
    assert path.stat().st_mode == ref.stat().st_mode


def test_abort_leaves_nothing(tmp_path: Path):
    tracer = open_tracer(str(tmp_path / "t.trace"))
    tracer.abort()
    assert list(tmp_path.iterdir()) == []


def test_open_tracer_rejects_bad_specs_and_paths(tmp_path: Path):
    with pytest.raises(ConfigError, match="--trace-events 'nope'"):
        open_tracer(str(tmp_path / "t.trace"), "nope", None)
    with pytest.raises(ConfigError, match="--trace-window '3:1'"):
        open_tracer(str(tmp_path / "t.trace"), None, "3:1")
    with pytest.raises(ConfigError, match="--trace"):
        open_tracer(str(tmp_path / "no" / "such" / "dir" / "t.trace"))
    assert list(tmp_path.iterdir()) == []


def _run_args(path: Path, *extra: str) -> list[str]:
    return ["run", "--variant", "v5.11+v3", "--cpus", "2", "--memory", "48M", "--profile", "qemu-tcg-6.1",
            "--bootargs", TINY_BOOTARGS, "--trace", str(path), *extra]


def test_cli_run_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "cli.trace"
    assert main(_run_args(path, "--trace-events", "sched:*,rcu:*", "--trace-window", ":0.015")) == 0
    _, lines = read_lines(path)
    assert {"sched_switch", "sched_wakeup"} <= {ln.event for ln in lines} <= {
        "sched_switch", "sched_wakeup", "rcu_grace_period", "rcu_invoke_kfree_bulk_callback"}
    # the same lines as the full trace of the same run has there
    full = tmp_path / "full.trace"
    traced_run(full)
    _, all_lines = read_lines(full)
    want = [ln.raw for ln in all_lines if ln.ts_us < 15_000 and ln.event.startswith(("sched_", "rcu_"))]
    assert [ln.raw for ln in lines] == want
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.trace", "full.trace"]


@pytest.mark.parametrize("extra", [["--trace-events", "bogus:*"], ["--trace-window", "x:y"]])
def test_cli_bad_trace_specs(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]):
    path = tmp_path / "cli.trace"
    assert main(_run_args(path, *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("kvfree-sim: error: ") and extra[0] in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra", [["--trace-events", "sched:*"], ["--trace-window", "0:1"]])
def test_cli_trace_selection_without_a_trace_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         extra: list[str]):
    args = _run_args(tmp_path / "cli.trace", *extra)
    i = args.index("--trace")
    del args[i:i + 2]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kvfree-sim: error: ") and "--trace" in err


def test_cli_window_after_the_run_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "cli.trace"
    assert main(_run_args(path, "--trace-window", "500:")) == 0
    head, lines = read_lines(path)
    assert head[0] == "# tracer: nop" and lines == []
    assert "kvfree-sim: note: the trace window starts at 500 s, after the run ended" in capsys.readouterr().err


def test_sigterm_removes_the_partial_trace(tmp_path: Path):
    """kill(1) of a traced run: the streamed body file goes, the target never appears, status 143."""
    path = tmp_path / "big.trace"
    args = ["run", "--variant", "v5.11+v3", "--cpus", "2", "--memory", "512M", "--profile", "qemu-tcg-6.1",
            "--bootargs", "rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=16 rcuscale.kfree_loops=100000",
            "--trace", str(path)]
    proc = subprocess.Popen([sys.executable, "-m", "kvfree_sim", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(p.name.endswith(".body") for p in tmp_path.iterdir()):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the trace never started streaming"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
    assert list(tmp_path.iterdir()) == []
