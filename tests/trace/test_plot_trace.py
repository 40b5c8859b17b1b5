"""``kvfree-sim plot-trace``: reading a trace back and drawing it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kvfree_sim.config import ConfigError
from kvfree_sim.experiments import plot_trace
from kvfree_sim.trace.plot import choose_lanes, read_trace, untraced

from tracekit import traced_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_cmd(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    plot_trace.register(sub)
    args = parser.parse_args(["plot-trace", *argv])
    return args.func(args)


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("plot") / "tiny.trace"
    result, _ = traced_run(path)
    return result, path


def test_read_trace_back(traced):
    result, path = traced
    tl = read_trace(str(path))
    assert tl.ncpus == result.cpus
    assert tl.kfree_cpus == {0, 1}
    assert choose_lanes(tl, 16) == [0, 1]
    assert len(tl.shrink_ends) == tl.event_counts["mm_shrink_slab_end"]
    assert len(tl.fill_starts) == result.counters["fill_runs"]
    assert sum(len(v) for v in tl.reclaim.values()) == result.mm["direct_reclaims"]
    assert tl.counters["free_pages"][-1][1] == result.mm["free_pages_end"]
    # runs are ordered, do not overlap, and the refill worker's time is there
    cats = set()
    for runs in tl.runs.values():
        for (s0, e0, _), (s1, _, _) in zip(runs, runs[1:]):
            assert s0 < e0 <= s1
        cats |= {c for _, _, c in runs}
    assert {"kfree", "fill_page_cache_func", "kfree_rcu_work", "kswapd", "rcu"} <= cats
    assert tl.t_last // 1000 == result.sim_ns // 1000


def test_read_trace_window(traced):
    _, path = traced
    tl = read_trace(str(path), (5_000_000, 12_000_000))
    assert 5_000_000 <= (tl.t_first or 0) and tl.t_last < 12_000_000
    for runs in tl.runs.values():
        assert all(5_000_000 <= s and e < 12_000_000 for s, e, _ in runs)


def test_plot_trace_command(traced, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    _, path = traced
    out = tmp_path / "timeline.png"
    assert run_cmd(str(path), "--out", str(out)) == 0
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 20_000
    assert "2 CPU lane(s) [0, 1]" in capsys.readouterr().err
    out2 = tmp_path / "zoom.png"
    assert run_cmd(str(path), "--out", str(out2), "--window", "0.009:0.014", "--lanes", "1", "--title", "zoom") == 0
    assert out2.read_bytes().startswith(PNG_MAGIC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["timeline.png", "zoom.png"]


def test_plot_trace_without_sched_events(tmp_path: Path):
    path = tmp_path / "marks.trace"
    traced_run(path, events="ftrace:print,vmscan:*")
    out = tmp_path / "t.png"
    assert run_cmd(str(path), "--out", str(out)) == 0
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert untraced(read_trace(str(path))) == {"work"}


def test_panels_know_what_the_trace_left_out(traced, tmp_path: Path):
    """An empty panel must read as 'not traced', not as zero, when --trace-events left its events out."""
    assert untraced(read_trace(str(traced[1]))) == set()
    path = tmp_path / "sched.trace"
    traced_run(path, events="sched:*")
    assert untraced(read_trace(str(path))) == {"memory", "cache", "work", "vmscan"}


@pytest.mark.parametrize("argv, match", [
    (["{missing}", "--out", "{out}"], "cannot read trace"),
    (["{text}", "--out", "{out}"], "not an ftrace text file"),
    (["{trace}", "--out", "{tmp}/x.svg"], "PNG"),
    (["{trace}", "--out", "{tmp}/no/such/dir/x.png"], "does not exist"),
    (["{trace}", "--out", "{out}", "--window", "3:1"], "--window"),
    (["{trace}", "--out", "{out}", "--window", "100:"], "no trace lines"),
    (["{trace}", "--out", "{out}", "--lanes", "0"], "--lanes"),
])
def test_plot_trace_bad_input(traced, tmp_path: Path, argv: list[str], match: str):
    _, trace = traced
    text = tmp_path / "notes.txt"
    text.write_text("hello\nworld\n")
    subst = {"missing": str(tmp_path / "missing.trace"), "text": str(text), "trace": str(trace),
             "out": str(tmp_path / "o.png"), "tmp": str(tmp_path)}
    with pytest.raises(ConfigError, match=match):
        run_cmd(*[a.format(**subst) for a in argv])
    assert not (tmp_path / "o.png").exists()
