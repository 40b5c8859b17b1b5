"""kvfree-sim calibrate on tiny configurations (tests/data), with a tiny budget."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from kvfree_sim.cli import main
from kvfree_sim.core.costs import COSTS, LAYOUT, load_profile
from kvfree_sim.experiments import calibrate, realdata

DATA = Path(__file__).resolve().parents[1] / "data"
TINY = DATA / "tiny" / "runs.csv"
FAST = ["--profile", "qemu-tcg-6.1", "--jobs", "1", "--runs", "1", "--configs", "2", "--max-evals", "3"]


def calibrate_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    status = main(["calibrate", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_groups_are_costs_only_and_cover_them() -> None:
    grouped = [k for keys in calibrate.GROUPS.values() for k in keys]
    assert len(grouped) == len(set(grouped)), "a cost is in two groups"
    assert set(grouped) <= set(COSTS) and not set(grouped) & set(LAYOUT)
    assert not set(grouped) & set(calibrate.UNSCALED)
    assert set(grouped) | set(calibrate.UNSCALED) == set(COSTS), "a new COSTS entry needs a group"


def test_scaled_profile_changes_only_the_group() -> None:
    base = load_profile("qemu-tcg-6.1")
    prof = calibrate.scaled_profile(base, {"allocator": 2.0})
    for key, value in base.costs.items():
        expected = value * 2.0 if key in calibrate.GROUPS["allocator"] else value
        assert prof.costs[key] == expected
    assert prof.layout == base.layout


def test_coordinate_descent_is_deterministic_and_respects_the_budget() -> None:
    calls: list[tuple[float, ...]] = []

    def f(x):  # type: ignore[no-untyped-def]
        calls.append(tuple(x))
        return (x[0] - 1.5) ** 2 + (x[1] + 0.75) ** 2

    best = calibrate.coordinate_descent(f, 2, 200, lambda: len(calls))
    assert best == pytest.approx([1.5, -0.75], abs=0.1)
    first = list(calls)
    calls.clear()
    assert calibrate.coordinate_descent(f, 2, 200, lambda: len(calls)) == best and calls == first
    calls.clear()
    calibrate.coordinate_descent(f, 2, 5, lambda: len(calls))
    assert len(calls) == 5


def test_grid_covers_the_span_and_the_search_starts_from_its_best() -> None:
    """A valley a local search from factor 1 cannot leave: f falls only where
    both factors are far from 1 together; the grid finds it, the descent refines it."""
    points = calibrate.grid_points(2, 5)
    span = math.log2(calibrate.GRID_SPAN)
    assert len(points) == 25 and points[0] == [-span, -span] and points[-1] == [span, span]
    assert [0.0, 0.0] in points

    def f(x):  # type: ignore[no-untyped-def]
        if x[0] < -2.5 and x[1] > 1.5:
            return 1.0 + (x[0] + 3.2) ** 2 + (x[1] - 2.4) ** 2
        return 10.0 + 0.01 * (x[0] ** 2 + x[1] ** 2)

    calls: list[tuple[float, ...]] = []

    def counted(x):  # type: ignore[no-untyped-def]
        calls.append(tuple(x))
        return f(x)

    local = calibrate.coordinate_descent(counted, 2, 60, lambda: len(calls))
    assert f(local) >= 10.0, "the local search alone should stay in the plateau"
    start = min(points, key=f)
    assert start == [-4.0, 2.0]
    calls.clear()
    best = calibrate.coordinate_descent(counted, 2, 60, lambda: len(calls), start)
    assert best == pytest.approx([-3.2, 2.4], abs=0.1)


def test_select_configs_prefers_counters_and_completed_runs() -> None:
    data = realdata.load(TINY)
    keys = calibrate.select_configs(data, 0)
    # with counters first, then completed runs; 32M (3 of 4 runs ran out of memory) only
    # when all are fitted, last, for its OOM share
    assert [(k.mem_mb, k.kfree_mult) for k in keys] == [(64, 64), (512, 64), (512, 1), (32, 64)]
    assert calibrate.select_configs(data, 2) == keys[:2]
    assert calibrate.select_configs(data, 4) == keys[:3]


def test_writes_a_loadable_profile_with_only_costs_changed(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "my-box.json"
    status, text, _ = calibrate_cli(capsys, str(TINY), "--out", str(out), *FAST)
    assert status == 0
    assert [line for line in text.splitlines() if line.startswith("eval ")][:1] and "objective" in text
    prof = load_profile(str(out))
    base = load_profile("qemu-tcg-6.1")
    assert prof.name == "my-box" and prof.layout == base.layout
    assert set(prof.costs) == set(base.costs)
    doc = json.loads(out.read_text())
    fitted = {k for g in doc["fit"]["factors"] for k in calibrate.GROUPS[g]}
    assert fitted and fitted <= set(COSTS)
    for key in COSTS:
        if key in fitted:
            assert "kvfree-sim calibrate on" in prof.sources[key] and str(TINY) in prof.sources[key]
            assert "objective" in prof.sources[key]
        else:
            assert prof.costs[key] == base.costs[key] and prof.sources[key] == base.sources[key]
    assert doc["fit"]["evaluations"] <= 3 and doc["fit"]["base_profile"] == "qemu-tcg-6.1"
    assert [c["mem_mb"] for c in doc["fit"]["configurations"]] == [64, 512]
    assert not list(tmp_path.glob("*.tmp"))


def test_fit_is_reproducible(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    outs = []
    for name in ("a.json", "b.json"):
        status, text, _ = calibrate_cli(capsys, str(TINY), "--out", str(tmp_path / name), "--name", "same", *FAST)
        assert status == 0
        outs.append((json.loads((tmp_path / name).read_text()), [l for l in text.splitlines() if "eval" in l]))
    (a, log_a), (b, log_b) = outs
    assert a["costs"] == b["costs"] and a["fit"]["objective"] == b["fit"]["objective"] and log_a == log_b
    assert a["name"] == "same"


def test_a_fit_recovers_a_known_factor(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """'Measurements' made by the model with per-object costs doubled: the fit finds x2."""
    from kvfree_sim.experiments import validate

    key = next(iter(realdata.load(TINY).configurations()))  # 512M, kfree_mult=1
    truth = calibrate.scaled_profile(load_profile("qemu-tcg-6.1"), {"per_object": 2.0})
    sim = validate.simulate_point(validate.SimPoint(key, 1, 60.0), truth)
    assert sim.completed
    runs = tmp_path / "runs.csv"
    header = TINY.read_text().splitlines()[0]
    runs.write_text(f"{header}\nupstream,2,512,2,4,2000,1,2,0,1,{sim.total_ns},{sim.batches},0,0,1.0,\n")
    out = tmp_path / "slow.json"
    status, _, _ = calibrate_cli(capsys, str(runs), "--out", str(out), "--profile", "qemu-tcg-6.1",
                                 "--jobs", "1", "--runs", "1", "--groups", "per_object", "--max-evals", "4")
    assert status == 0
    fit = json.loads(out.read_text())["fit"]
    assert fit["objective"]["end"] == 0.0 < fit["objective"]["start"]
    assert fit["factors"] == {"per_object": 2.0}
    assert math.isclose(load_profile(str(out)).costs["kmalloc_ns"], truth.costs["kmalloc_ns"])


@pytest.mark.parametrize(("argv", "message"), [
    (["--out", "x.txt"], "ends in .json"),
    (["--out", "/nonexistent/dir/x.json"], "directory does not exist"),
    (["--out", "OUT", "--groups", "gpu"], "unknown group 'gpu'"),
    (["--out", "OUT", "--runs", "0"], "--runs must be at least 1"),
    (["--out", "OUT", "--max-evals", "0"], "--max-evals must be at least 1"),
    (["--out", "OUT", "--configs", "-1"], "--configs must be 0"),
    (["--out", "OUT", "--grid", "1"], "--grid needs at least 2 points"),
    (["--out", "OUT", "--grid", "3", "--max-evals", "8"], "is 6561 evaluations, more than --max-evals 8"),
])
def test_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str) -> None:
    argv = [str(tmp_path / "p.json") if a == "OUT" else a for a in argv]
    status, out, err = calibrate_cli(capsys, str(TINY), *argv)
    assert status == 2 and message in err
    assert not (tmp_path / "p.json").exists()


def test_malformed_data_names_the_row(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = tmp_path / "runs.csv"
    lines = TINY.read_text().splitlines()
    runs.write_text("\n".join([lines[0], lines[1], lines[2].replace(",64,", ",x64,", 1)]) + "\n")
    status, _, err = calibrate_cli(capsys, str(runs), "--out", str(tmp_path / "p.json"), "--jobs", "1")
    assert status == 2 and "row 2 (line 3): column 'kfree_mult': 'x64' is not an integer" in err
    assert not (tmp_path / "p.json").exists()


def test_a_crashing_simulation_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that raises scores the error cap, and the log says why."""
    from kvfree_sim import machine

    def crash(*_a: object, **_k: object) -> None:
        raise KeyError("kthread_create_ns")

    monkeypatch.setattr(machine, "simulate", crash)
    status, out, _ = calibrate_cli(capsys, str(TINY), "--out", str(tmp_path / "p.json"), *FAST[:-1], "1")
    assert status == 0
    assert "warning: 2 of 2 simulations failed: KeyError: 'kthread_create_ns'" in out


def test_objective_counts_shrinker_calls_where_the_kernel_had_none() -> None:
    """The target: shrinker calls of the kernel's order, zero where its completed runs had
    zero.  A simulation that calls the shrinker there scores the cap on that metric."""
    from kvfree_sim.experiments.validate import Comparison, Stats

    key = realdata.ConfigKey("v6.1", 2, 60, 16, 100, 8000, 64, 2)
    measured = Stats(4, 4, 0, {"time_s": 15.0, "shrink_count": 0.0})

    def score(shrink_count: float) -> float:
        simulated = Stats(4, 4, 0, {"time_s": 15.0, "shrink_count": shrink_count})
        return calibrate.objective([Comparison(key, measured, simulated, [1, 2, 3, 4], 4)])

    w = calibrate.WEIGHTS
    assert score(0.0) == 0.0
    assert score(388.0) == pytest.approx(w["shrink_count"] * calibrate.ERROR_CAP / (w["time_s"] + w["shrink_count"]))
