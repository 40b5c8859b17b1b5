"""kvfree-sim compare, end to end at a small scale (a few seconds), and its parts."""

from __future__ import annotations

import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import kvfree_sim.machine
from kvfree_sim.cli import build_parser, main
from kvfree_sim.experiments import compare
from kvfree_sim.experiments.compare import InlineExecutor, Progress, RunOutput, atomic_file, cmd_compare

SMALL = ["--cpus", "2", "--bootargs",
         "rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=2 rcuscale.kfree_loops=4 rcuscale.kfree_alloc_num=2000"]
VARIANTS = "v5.11,v5.11+v3,v5.14"
FILES = {"runs.csv", "runs.json", "completion.png", "timeline.png", "timeline.json", "summary.md"}


def _argv(out: Path, *extra: str, variants: str = VARIANTS, runs: int = 2) -> list[str]:
    return ["compare", "--variants", variants, "--runs", str(runs), "--out", str(out), *SMALL, *extra]


def _compare(out: Path, *extra: str, **kw: Any) -> int:
    """In-process (--jobs 1) unless the caller says otherwise."""
    return main(_argv(out, "--jobs", "1", *extra, **kw))


def _runs(out: Path) -> list[dict[str, Any]]:
    return json.loads((out / "runs.json").read_text())["runs"]


def test_compare_writes_every_file_and_prints_a_table(tmp_path, capsys) -> None:
    out = tmp_path / "results"
    assert _compare(out) == 0
    assert {p.name for p in out.iterdir()} == FILES  # and no temporary files left
    table = capsys.readouterr().out
    for v in VARIANTS.split(","):
        assert v in table.splitlines()[0]
    assert "cached pages drained by the shrinker" in table
    rows = list(csv.DictReader(io.StringIO((out / "runs.csv").read_text())))
    assert len(rows) == 6
    assert {"drained_pages", "refill_drained_unused", "mm_thread_direct_reclaim_ns",
            "sched_highpri_held_kfree_cpus_ns"} <= set(rows[0])
    summary = (out / "summary.md").read_text()
    assert "v5.11+v3" in summary and "Outcomes" in summary
    for png in ("completion.png", "timeline.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG")


def test_every_variant_runs_the_same_seeds(tmp_path) -> None:
    out = tmp_path / "r"
    assert _compare(out, "--seed-base", "7", runs=3) == 0
    runs = _runs(out)
    by_variant: dict[str, list[int]] = {}
    for r in runs:
        by_variant.setdefault(r["variant"], []).append(r["seed"])
    assert by_variant == {v: [7, 8, 9] for v in VARIANTS.split(",")}


def test_json_output_parses(tmp_path, capsys) -> None:
    assert _compare(tmp_path / "r", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["variant"] for s in data["stats"]] == VARIANTS.split(",")
    assert data["seeds"] == [1, 2] and data["config"]["cpus"] == 2
    assert all(s["runs"] == 2 for s in data["stats"])
    assert {"drained_pages", "fill_pages"} <= set(data["stats"][0]["counters"])


@pytest.mark.parametrize("extra, variants, message", [
    ((), "v5.11,no-such-kernel", "unknown variant 'no-such-kernel'"),
    ((), "v5.11,v5.11", "listed twice"),
    ((), " , ", "at least one variant"),
    (("rcuscale.no_such_param=1",), VARIANTS, "unknown parameter"),
    (("--jobs", "0"), VARIANTS, "--jobs"),
    (("--set", "kmalloc_ns=fast"), VARIANTS, "--set takes name=value"),
    (("--set", "no_such_cost=1"), VARIANTS, "unknown profile entry 'no_such_cost'"),
])
def test_bad_input_exits_2_and_creates_nothing(tmp_path, capsys, extra, variants, message) -> None:
    out = tmp_path / "results"
    assert main(_argv(out, *extra, variants=variants)) == 2
    assert not out.exists()
    err = capsys.readouterr().err
    assert err.startswith("kvfree-sim: error: ") and message in err and err.count("\n") == 1


def test_set_values_reach_every_run_and_are_recorded(tmp_path) -> None:
    out = tmp_path / "r"
    assert _compare(out, "--set", "kmalloc_ns=300", variants="v5.11", runs=1) == 0
    assert _compare(tmp_path / "s", variants="v5.11", runs=1) == 0
    setup = json.loads((out / "runs.json").read_text())["config"]
    assert setup["profile"] == "x86-server" and setup["profile_set"] == {"kmalloc_ns": 300.0}
    assert _runs(out)[0]["total_ns"] > 3 * _runs(tmp_path / "s")[0]["total_ns"]
    assert "512M memory, profile x86-server (set kmalloc_ns=300), boot parameters" in (out / "summary.md").read_text()
    assert "512M memory, boot parameters" in (tmp_path / "s" / "summary.md").read_text()


def test_bad_runs_and_out_that_is_a_file(tmp_path) -> None:
    assert main(_argv(tmp_path / "r", runs=0)) == 2
    f = tmp_path / "file"
    f.write_text("x")
    assert main(_argv(f)) == 2
    assert f.read_text() == "x"


def test_process_pool_gives_the_same_results_as_in_process(tmp_path) -> None:
    assert _compare(tmp_path / "inline", variants="v5.11,v5.11+v3") == 0
    assert main(_argv(tmp_path / "pool", "--jobs", "2", variants="v5.11,v5.11+v3")) == 0
    assert _runs(tmp_path / "inline") == _runs(tmp_path / "pool")


def test_the_executor_is_pluggable(tmp_path) -> None:
    args = build_parser().parse_args(_argv(tmp_path / "r", "--jobs", "3"))
    asked: list[int] = []

    def threads(jobs: int) -> ThreadPoolExecutor:
        asked.append(jobs)
        return ThreadPoolExecutor(jobs)

    assert cmd_compare(args, executor_factory=threads, progress_stream=io.StringIO()) == 0
    assert asked == [3]
    assert len(_runs(tmp_path / "r")) == 6


def test_a_crashing_run_is_reported_and_the_others_kept(tmp_path, monkeypatch, capsys) -> None:
    real = kvfree_sim.machine.simulate

    def flaky(cfg, **kw):
        if cfg.variant == "v5.11+v3" and cfg.seed == 2:
            raise RuntimeError("model bug")
        return real(cfg)

    monkeypatch.setattr(kvfree_sim.machine, "simulate", flaky)
    assert _compare(tmp_path / "r") == 1
    bad = [r for r in _runs(tmp_path / "r") if r["outcome"] == "error"]
    assert [(r["variant"], r["seed"], r["error"]) for r in bad] == [("v5.11+v3", 2, "RuntimeError: model bug")]
    assert "RuntimeError: model bug" in capsys.readouterr().err


def test_ctrl_c_leaves_no_output_directory(tmp_path, monkeypatch) -> None:
    calls = []

    def interrupted(cfg, sample_ns=None, trace=None):
        calls.append(cfg)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return compare.RunOutput(row={"variant": cfg.variant, "seed": cfg.seed, "outcome": "completed"})

    monkeypatch.setattr(compare, "run_one", interrupted)
    out = tmp_path / "r"
    assert _compare(out) == 130
    assert not out.exists()


def test_ctrl_c_keeps_an_existing_directory_and_its_files(tmp_path, monkeypatch) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / "old.txt").write_text("kept")

    def interrupted(cfg, sample_ns=None, trace=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(compare, "run_one", interrupted)
    assert _compare(out) == 130
    assert [p.name for p in out.iterdir()] == ["old.txt"]


def test_atomic_file_leaves_nothing_half_written(tmp_path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(ValueError):
        with atomic_file(target) as f:
            f.write("half")
            raise ValueError
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"] and target.read_text() == "old"
    with atomic_file(target) as f:
        f.write("new")
    assert target.read_text() == "new"


def test_the_first_seed_of_each_variant_is_sampled_when_the_model_can(tmp_path, monkeypatch) -> None:
    real = kvfree_sim.machine.simulate

    def with_sampler(cfg, tracer=None, sampler=None, sample_ns=None):
        for i in range(3 if sampler else 0):
            sampler({"t_ns": i * sample_ns, "free_pages": 100, "wmark_min": 1, "wmark_low": 2, "wmark_high": 3,
                     "cached_pages": i, "shrink_scan": i, "fill_runs": i})
        return real(cfg)

    monkeypatch.setattr(kvfree_sim.machine, "simulate", with_sampler)
    args = build_parser().parse_args(_argv(tmp_path / "r", "--jobs", "1", "--seed-base", "4", "--sample-ms", "5"))
    plan = compare.make_plan(args)
    outputs = compare.run_all(plan, InlineExecutor(), Progress(len(plan.configs), io.StringIO()))
    sampled = {(o.row["variant"], o.row["seed"]) for o in outputs if o.samples}
    assert sampled == {(v, 4) for v in VARIANTS.split(",")}
    assert [s["t_ns"] for s in outputs[0].samples] == [0, 5_000_000, 10_000_000]
    assert cmd_compare(args, progress_stream=io.StringIO()) == 0
    timeline = json.loads((tmp_path / "r" / "timeline.json").read_text())
    assert timeline["seed"] == 4 and set(timeline["samples"]) == set(VARIANTS.split(","))


def test_in_process_progress_is_live(tmp_path, monkeypatch) -> None:
    """With --jobs 1 each run is reported when it ends, not all at the end."""
    started: list[int] = []
    seen: list[int] = []
    real = compare.run_one

    def counting(cfg, sample_ns=None, trace=None):
        started.append(cfg.seed)
        return real(cfg, sample_ns, trace)

    class Recorder(Progress):
        def done(self, out: RunOutput) -> None:
            seen.append(len(started))
            super().done(out)

    monkeypatch.setattr(compare, "run_one", counting)
    plan = compare.make_plan(build_parser().parse_args(_argv(tmp_path / "r")))
    compare.run_all(plan, InlineExecutor(), Recorder(len(plan.configs), io.StringIO()))
    assert seen == [1, 2, 3, 4, 5, 6]


def test_trace_first_run_writes_one_trace_per_variant(tmp_path, capsys) -> None:
    out = tmp_path / "r"
    assert _compare(out, "--trace-first-run", "--trace-events", "sched:*,workqueue:*") == 0
    traces = sorted(p.name for p in out.glob("trace-*"))
    assert traces == sorted(f"trace-{v}-seed1.txt" for v in VARIANTS.split(","))
    text = (out / traces[0]).read_text()
    assert text.startswith("# tracer: nop") and "sched_switch" in text and "mm_shrink_slab" not in text
    wrote = next(ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("compare: wrote "))
    assert all(str(out / name) in wrote for name in traces)


@pytest.mark.parametrize("extra", [["--trace-first-run", "--trace-window", "5:1"], ["--trace-window", "0:1"],
                                   ["--trace-events", "sched:*"]])
def test_a_bad_trace_spec_is_an_error_before_anything_runs(tmp_path, capsys, extra: list[str]) -> None:
    assert main(_argv(tmp_path / "r", *extra)) == 2
    assert capsys.readouterr().err.startswith("kvfree-sim: error: ")
    assert not (tmp_path / "r").exists()


def _row(variant: str = "v5.11", seed: int = 1) -> RunOutput:
    return RunOutput(row={"variant": variant, "seed": seed, "outcome": "completed"})


def test_progress_is_a_bar_on_a_terminal() -> None:
    stream = io.StringIO()
    p = Progress(2, stream, tty=True)
    p.start(4)
    p.done(_row())
    p.done(_row(seed=2))
    text = stream.getvalue()
    assert "on 4 processes" in text
    assert "\r[" + "#" * 15 + "-" * 15 + "] 1/2" in text
    assert "\r[" + "#" * 30 + "] 2/2" in text and text.endswith("\n")


def test_progress_is_plain_lines_otherwise() -> None:
    stream = io.StringIO()
    p = Progress(2, stream, tty=False)
    p.start(1)
    p.done(_row())
    assert stream.getvalue().splitlines() == ["compare: 2 runs in-process", "compare: 1/2 v5.11 seed 1: completed"]
    assert "\r" not in stream.getvalue()
