"""kvfree-sim validate and the real-data readers, on tiny configurations (tests/data)."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kvfree_sim.cli import build_parser, main
from kvfree_sim.config import ConfigError
from kvfree_sim.experiments import realdata, validate
from kvfree_sim.experiments.validate import SimPoint, SimRun

DATA = Path(__file__).resolve().parents[1] / "data"
TINY = DATA / "tiny" / "runs.csv"
VARIANTS = DATA / "tiny-variants" / "runs.csv"
PROFILE = ["--profile", "qemu-tcg-6.1"]
HEADER = TINY.read_text().splitlines()[0]
GOOD_ROW = "upstream,2,512,2,4,2000,64,2,1,1,22000000,10,0,0,1.60,"


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def write_runs(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "runs.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


# -- reading and joining -----------------------------------------------------------------


def test_runs_are_grouped_into_configurations() -> None:
    data = realdata.load(TINY)
    configs = data.configurations()
    mems = [(k.mem_mb, k.kfree_mult, len(v)) for k, v in configs.items()]
    assert mems == [(512, 1, 1), (512, 64, 2), (64, 64, 4), (32, 64, 4), (24, 64, 1)]
    key = next(iter(configs))
    assert (key.variant, key.label, key.smp, key.nthreads, key.loops, key.alloc_num, key.holdoff) == \
        ("v6.1", "upstream", 2, 2, 4, 2000, 2)
    assert [r.row for r in data.excluded()] == [12]
    oom = [r for r in configs[list(configs)[3]] if r.oom]
    assert all(r.total_ns is None and r.batches is None for r in oom)


def test_counters_join_to_the_session_that_measured_them() -> None:
    """Run numbers restart per session: counters go to the boot that matches outcome and timing."""
    data = realdata.load(TINY)
    joined = {r.counters_row: r.row for r in data.runs if r.counters_row is not None}
    # counters row -> runs row: 512 r1 (unique); 32 r1/r2 OOM -> second session (rows 10, 11);
    # 64 r1/r2 -> second session (rows 8, 9), not the first one (rows 4, 5) with the same run numbers
    assert joined == {1: 2, 2: 10, 3: 11, 4: 8, 5: 9}
    assert data.counter_names == list(realdata.CALIBRATION_COUNTERS)
    row8 = next(r for r in data.runs if r.row == 8)
    assert row8.counters is not None and row8.counters["fill_pages"] == 10
    oom_row = next(r for r in data.runs if r.row == 10)
    assert oom_row.counters is None  # died before its first dump: empty counters
    assert "joined 5 counters rows" in data.join_notes[0]


def test_no_counters_file_is_fine() -> None:
    data = realdata.load(VARIANTS)
    assert data.counters_path is None and data.counter_names == []
    assert {k.variant for k in data.configurations()} == {"v6.1", "v6.1-nodrain", "v6.1-v3"}


def test_variant_map_overrides_and_extends() -> None:
    mapping = realdata.parse_variant_map("upstream=v5.14, mine=v6.1-v3")
    assert mapping["upstream"] == "v5.14" and mapping["mine"] == "v6.1-v3" and mapping["v3"] == "v6.1-v3"
    data = realdata.load(VARIANTS, mapping)
    assert {k.variant for k in data.configurations()} == {"v5.14", "v6.1-nodrain", "v6.1-v3"}
    with pytest.raises(ConfigError, match="unknown variant 'nope'"):
        realdata.parse_variant_map("upstream=nope")
    with pytest.raises(ConfigError, match="malformed entry 'upstream'"):
        realdata.parse_variant_map("upstream")


def test_kvfree_sim_variant_names_are_accepted(tmp_path: Path) -> None:
    path = write_runs(tmp_path, GOOD_ROW.replace("upstream", "v6.1-nodrain", 1))
    assert realdata.load(path).runs[0].key.variant == "v6.1-nodrain"


@pytest.mark.parametrize(("rows", "header", "message"), [
    ([GOOD_ROW, "upstream,2,64,2,4,2000,64,2,1,1,22000000"], HEADER, "row 2 (line 3): missing value for column"),
    ([GOOD_ROW, GOOD_ROW.replace(",512,", ",lots,")], HEADER, "row 2 (line 3): column 'mem_mb': 'lots' is not"),
    ([GOOD_ROW.replace("upstream", "mainline")], HEADER, "row 1 (line 2): unknown variant 'mainline'"),
    ([GOOD_ROW, GOOD_ROW + ",extra"], HEADER, "row 2 (line 3): 17 fields, the header has 16"),
    (["upstream,2,512,2,4,2000,64,2,1,2,22000000,10,0,0,1.6,"], HEADER, "column 'completed': '2' is not 0 or 1"),
    (["upstream,2,512,2,4,2000,64,2,1,1,,10,0,0,1.6,"], HEADER, "row 1 (line 2): a completed run needs total_ns"),
    (["upstream,0,512,2,4,2000,64,2,1,1,1,10,0,0,1.6,"], HEADER, "column 'smp': 0 is less than 1"),
    (["upstream,2,512,2,4,2000,64,2,1,1,22000000,10,0,0,fast,"], HEADER, "column 'wall_s': 'fast' is not a number"),
    ([GOOD_ROW], HEADER.replace("kfree_mult,", ""), "missing column(s) kfree_mult"),
    ([], HEADER, "no runs"),
])
def test_malformed_runs_are_errors_naming_the_row(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  rows: list[str], header: str, message: str) -> None:
    path = write_runs(tmp_path, *rows, header=header)
    status, out, err = run_cli(capsys, "validate", str(path), "--jobs", "1")
    assert status == 2 and out == ""
    assert err.startswith("kvfree-sim: error: ") and str(path) in err and message in err
    assert len(err.strip().splitlines()) == 1


def _with_counters(tmp_path: Path, counters: str) -> Path:
    shutil.copy(TINY, tmp_path / "runs.csv")
    (tmp_path / "counters.csv").write_text(counters)
    return tmp_path / "runs.csv"


def test_counters_without_a_matching_run_name_the_row(tmp_path: Path) -> None:
    head = (DATA / "tiny" / "counters.csv").read_text().splitlines()[0]
    path = _with_counters(tmp_path, f"{head}\nupstream,2,512,1,1,0,,1,0.5,0,0,0,3,15,0,3,0,30,8,0,5,0\n"
                                    f"upstream,2,96,1,1,0,,1,0.5,0,0,0,3,15,0,3,0,30,8,0,5,0\n")
    with pytest.raises(ConfigError, match=r"counters.csv: row 2: no run in runs.csv matches .*mem_mb=96"):
        realdata.load(path)


def test_malformed_counter_value(tmp_path: Path) -> None:
    head = (DATA / "tiny" / "counters.csv").read_text().splitlines()[0]
    path = _with_counters(tmp_path, f"{head}\nupstream,2,512,1,1,0,,1,0.5,0,0,0,three,15,0,3,0,30,8,0,5,0\n")
    with pytest.raises(ConfigError, match=r"counters.csv: row 1 \(line 2\): column 'fill_runs': 'three'"):
        realdata.load(path)


def test_too_many_counters_rows_for_a_run(tmp_path: Path) -> None:
    head = (DATA / "tiny" / "counters.csv").read_text().splitlines()[0]
    row = "upstream,2,512,1,1,0,,1,0.5,0,0,0,3,15,0,3,0,30,8,0,5,0"
    path = _with_counters(tmp_path, f"{head}\n{row}\n{row}\n")
    with pytest.raises(ConfigError, match="2 counters rows for .* but only 1 matching runs"):
        realdata.load(path)


def test_explicit_counters_file_must_exist(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    status, _, err = run_cli(capsys, "validate", str(TINY), "--counters", str(tmp_path / "nope.csv"))
    assert status == 2 and "cannot read" in err


# -- the command --------------------------------------------------------------------------


def test_text_report(capsys: pytest.CaptureFixture) -> None:
    status, out, _ = run_cli(capsys, "validate", str(TINY), *PROFILE, "--jobs", "1")
    assert status == 0
    assert "profile: qemu-tcg-6.1" in out
    assert "excluded: row 12" in out
    for mem, mult in ((512, 1), (512, 64), (64, 64), (32, 64)):
        assert f"== upstream (v6.1) smp=2 mem={mem}M nthreads=2 loops=4 alloc_num=2000 kfree_mult={mult}" in out
    assert "mem=24M" not in out.split("excluded:")[-1].split("\n", 1)[1]  # no usable run: not simulated
    table = out.split("== upstream (v6.1) smp=2 mem=64M")[1]
    for label in ("time (s)", "batches (GPs)", "OOM share", "fill_runs", "head_fallback", "inline_kvfree"):
        assert label in table
    assert "measured: 4 runs (4 completed, 0 OOM), counters from 2; simulated: 4 runs (seeds 1-4)" in table
    assert "Summary over 4 configurations" in out
    assert "median <= 15%, worst <= 30%" in out
    assert "Memory edge" in out and "Variant order: not checked (only one variant in the data)" in out


def test_set_values_change_the_profile_and_its_name(capsys: pytest.CaptureFixture) -> None:
    status, out, _ = run_cli(capsys, "validate", str(TINY), *PROFILE, "--jobs", "1", "--set", "tick_stall_per_s=3")
    assert status == 0 and "profile: qemu-tcg-6.1 (set tick_stall_per_s=3)" in out
    profile = validate.resolve_profile("qemu-tcg-6.1", TINY, [("tick_stall_per_s", 3.0)])
    assert profile.costs["tick_stall_per_s"] == 3.0
    status, _, err = run_cli(capsys, "validate", str(TINY), "--set", "tick_stall_per_s")
    assert status == 2 and "--set takes name=value" in err


def _json(capsys: pytest.CaptureFixture, *argv: str) -> dict:
    status, out, _ = run_cli(capsys, "validate", *argv, "--json")
    assert status == 0
    return json.loads(out)


def test_json_report_shape(capsys: pytest.CaptureFixture) -> None:
    doc = _json(capsys, str(TINY), *PROFILE, "--jobs", "1")
    assert doc["profile"] == "qemu-tcg-6.1" and doc["counters_csv"].endswith("counters.csv")
    assert [e["row"] for e in doc["excluded"]] == [12]
    configs = doc["configurations"]
    assert [c["configuration"]["mem_mb"] for c in configs] == [512, 512, 64, 32]
    for c in configs:
        assert len(c["seeds"]) == c["measured"]["runs"]  # default --runs: as many as the data has
        assert set(c["measured"]) == set(c["simulated"])
        assert set(c["error"]) == set(c["measured"]) - {"runs", "completed", "oom"}
    assert configs[3]["measured"]["oom_share"] == 0.75
    assert configs[2]["measured"]["fill_pages"] == 11.0  # median of the two joined counters rows
    metrics = [s["metric"] for s in doc["summary"]]
    assert metrics[:3] == ["time_s", "batches", "oom_share"] and "cache_hit" in metrics
    assert doc["memory_edge"][1]["measured_mb"] == 32 and doc["memory_edge"][1]["grid_mb"] == [32, 64, 512]
    assert doc["variant_order"]["checked"] is False


def test_runs_and_seed_base(capsys: pytest.CaptureFixture) -> None:
    doc = _json(capsys, str(TINY), *PROFILE, "--jobs", "1", "--runs", "1", "--seed-base", "7")
    assert all(c["seeds"] == [7] for c in doc["configurations"])


def test_results_do_not_depend_on_the_executor() -> None:
    args = build_parser().parse_args(["validate", str(TINY), *PROFILE, "--runs", "2"])
    data = realdata.load(TINY)
    profile = validate.resolve_profile("qemu-tcg-6.1", TINY)
    serial = validate.run_validation(data, profile, validate.SerialExecutor(), runs=2)
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = validate.run_validation(realdata.load(TINY), profile, pool, runs=2)
    assert serial.as_dict() == threaded.as_dict()
    assert args.func is validate.cmd_validate


def test_process_pool(capsys: pytest.CaptureFixture) -> None:
    serial = _json(capsys, str(TINY), *PROFILE, "--jobs", "1", "--runs", "1")
    pooled = _json(capsys, str(TINY), *PROFILE, "--jobs", "2", "--runs", "1")
    assert serial == pooled


def test_variant_order_with_several_variants(capsys: pytest.CaptureFixture) -> None:
    doc = _json(capsys, str(VARIANTS), *PROFILE, "--jobs", "1")
    order = doc["variant_order"]
    assert len(order["pairs"]) == 2 * 3 * 2  # 2 memory sizes x 3 pairs of variants x 2 metrics
    first = order["pairs"][0]
    assert set(first) == {"configuration", "variants", "metric", "measured", "simulated", "agree"}
    time_64 = {tuple(p["variants"]): p["measured"] for p in order["pairs"]
               if p["metric"] == "time" and p["configuration"] == "mem=64M"}
    assert time_64 == {("v6.1", "v6.1-nodrain"): "=", ("v6.1", "v6.1-v3"): "<", ("v6.1-nodrain", "v6.1-v3"): "<"}


def test_plot(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    png = tmp_path / "validate.png"
    status, _, err = run_cli(capsys, "validate", str(TINY), *PROFILE, "--jobs", "1", "--runs", "1",
                             "--plot", str(png))
    assert status == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_options(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    for argv, message in (
        (["--runs", "0"], "--runs must be at least 1"),
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--profile", "no-such-machine"], "unknown profile 'no-such-machine'"),
        (["--variant-map", "upstream=v9"], "unknown variant 'v9'"),
        (["--plot", str(tmp_path / "missing" / "x.png")], "--plot: directory"),
    ):
        status, out, err = run_cli(capsys, "validate", str(TINY), *argv)
        assert status == 2 and message in err, (argv, err)


def test_simulation_error_is_reported(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import kvfree_sim.machine

    def broken(cfg, profile=None):  # type: ignore[no-untyped-def]
        raise RuntimeError("model bug")

    monkeypatch.setattr(kvfree_sim.machine, "simulate", broken)
    status, out, _ = run_cli(capsys, "validate", str(TINY), *PROFILE, "--jobs", "1", "--runs", "1")
    assert status == validate.EXIT_RUN_ERROR
    assert "simulation error: upstream (v6.1) smp=2 mem=512M" in out and "RuntimeError: model bug" in out


def test_default_profile_follows_the_data_directory(tmp_path: Path) -> None:
    qemu = tmp_path / "linux-6.1-qemu-tcg"
    qemu.mkdir()
    assert validate.default_profile_for(qemu / "runs.csv") == "qemu-tcg-6.1"
    assert validate.default_profile_for(TINY) == "x86-server"


# -- the statistics, on made-up simulated runs (no simulation) ------------------------------


def _fake(data: realdata.RealData, outcomes: dict[int, list[tuple[str, int | None]]]) -> validate.Validation:
    """Validation with simulated runs given per memory size as (outcome, total_ns)."""
    points, sims = [], []
    for key in data.configurations():
        for seed, (outcome, total) in enumerate(outcomes.get(key.mem_mb, []), start=1):
            points.append(SimPoint(key, seed, 60.0))
            done = outcome == "completed"
            sims.append(SimRun(seed, outcome, total, 10 if done else None,
                               {"fill_pages": 11, "shrink_count": 0} if done else {}))
    return validate.build_validation(data, "test", points, sims)


def test_errors_edges_and_summary_from_made_up_runs() -> None:
    data = realdata.load(VARIANTS)
    v = _fake(data, {64: [("completed", 30_000_000), ("completed", 30_000_000)],
                     28: [("oom-panic", None), ("enomem", None)]})
    by = {(c.key.variant, c.key.mem_mb): c for c in v.comparisons}
    c = by[("v6.1", 64)]
    assert c.error("time_s") == pytest.approx(30 / 22.5 - 1)
    assert c.error("oom_share") == 0.0
    nodrain_28 = by[("v6.1-nodrain", 28)]
    assert nodrain_28.simulated.values["oom_share"] == 1.0 and nodrain_28.missing("time_s")
    time_summary = v.summary[0]
    assert time_summary.metric == "time_s" and time_summary.missing == 2 and time_summary.verdict == "FAIL"
    edges = {e["sweep"].split(" ")[0]: e for e in v.edges}
    assert edges["nodrain"]["measured_mb"] is None and edges["nodrain"]["simulated_mb"] == 28
    assert edges["nodrain"]["within_one_step"]  # 'none' is one step below the grid's 28M
    assert edges["upstream"]["steps"] == 0


def test_relative_error_and_same_order() -> None:
    assert validate.relative_error(10, 12) == pytest.approx(0.2)
    assert validate.relative_error(0, 0) == 0.0
    assert validate.relative_error(0, 3) is None and validate.relative_error(None, 3) is None
    assert validate.same_order(0, 0) and not validate.same_order(0, 1)
    assert validate.same_order(100, 999) and not validate.same_order(100, 1001)


def test_timeouts_are_neither_completed_nor_oom() -> None:
    data = realdata.load(VARIANTS)
    v = _fake(data, {64: [("completed", 30_000_000), ("timeout", None)]})
    c = next(c for c in v.comparisons if c.key.mem_mb == 64)
    assert c.simulated.n == 1 and c.outcomes == {"completed": 1, "timeout": 1}
    assert "1 completed, 0 OOM, 1 timeout" in "\n".join(validate.format_comparison(c))


def test_large_groups_of_same_key_rows_are_joined_greedily() -> None:
    """9 counters rows for 9 boots with the same key: too many permutations, matched by timing."""
    key = next(iter(realdata.load(TINY).configurations()))
    runs = [realdata.RealRun(row=i, key=key, run=1, completed=True, oom=False, total_ns=(i + 1) * 10**9,
                             batches=5, wall_s=i + 3.0) for i in range(9)]
    rows = [realdata.CounterRow(row=j, variant=key.variant, smp=key.smp, mem_mb=key.mem_mb, run=1, completed=True,
                                oom=False, values={"fill_runs": j}, first_oom_t=None, last_dump_t=j + 1.5)
            for j in (8, 3, 0, 5, 1, 7, 2, 6, 4)]
    rows.append(realdata.CounterRow(row=99, variant=key.variant, smp=key.smp, mem_mb=512, run=7, completed=True,
                                    oom=False, values={"fill_runs": 1}, first_oom_t=None, last_dump_t=1.5))
    runs.append(realdata.RealRun(row=98, key=key, run=7, completed=True, oom=False, total_ns=10**9, batches=5))
    realdata.join_counters(runs, rows, ["fill_runs"], Path("counters.csv"))
    assert all(r.counters == {"fill_runs": r.row} for r in runs[:9])  # lag 0.5 s for every true pair


def test_counters_that_fit_two_configurations_without_a_time_are_an_error(tmp_path: Path) -> None:
    write_runs(tmp_path, GOOD_ROW, GOOD_ROW.replace(",64,2,1,", ",16,2,1,"))
    (tmp_path / "counters.csv").write_text("variant,smp,mem_mb,run,completed,oom,fill_runs\n"
                                           "upstream,2,512,1,1,0,3\n")
    with pytest.raises(ConfigError, match="row 1: .* matches runs of 2 configurations and has no time stamp"):
        realdata.load(tmp_path / "runs.csv")
