"""tools/qemu-rcuscale: the ring's format and its summary, and run.py's symbol lookup."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
from ktest import needs_pure_python

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "qemu-rcuscale"


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(f"qemu_rcuscale_{name}", TOOLS / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


ring = load_tool("ring")
run = load_tool("run")

MS = 1_000_000


def synthetic() -> list[tuple[int, int, int, int, int]]:
    """Two batches on CPU 0 and one on CPU 1, a grace period, a reclaim round, a boost."""
    return [
        (0 * MS, ring.DETACH, 0, 0, 1000),
        (0 * MS, ring.GP_START, 1, 0, 4),
        (1 * MS, ring.DETACH, 1, 1, 3000),
        (2 * MS, ring.GP_END, 1, 0, 4),
        (3 * MS, ring.WORK_START, 0, 0, 2560),  # 10 MB free
        (3 * MS, ring.RECLAIM_START, 1, 1, 200),
        (3 * MS, ring.BOOST, 1, 1, 200),
        (4 * MS, ring.WORK_END, 0, 0, 2816),
        (5 * MS, ring.RECLAIM_END, 1, 1, 0),
        (5 * MS, ring.WORK_START, 1, 1, 2816),
        (6 * MS, ring.WORK_END, 1, 1, 3072),
        (7 * MS, ring.DETACH, 0, 0, 500),
    ]


def test_ring_round_trip_keeps_the_logged_order(tmp_path: Path) -> None:
    events = synthetic()
    path = tmp_path / "x.ring"
    ring.save(path, events)
    assert ring.load(path) == events
    assert path.stat().st_size == ring.HEADER + ring.ENTRY.size * len(events)


def test_metrics_pair_batches_and_rounds() -> None:
    m = ring.metrics(synthetic())
    assert m["objects per batch"] == [1000, 3000, 500]
    assert m["grace period (ms)"] == [2.0]
    # CPU 0's batch detached at 0 ms ran at 3 ms; CPU 1's detached at 1 ms ran at 5 ms
    assert m["detach -> kfree_rcu_work (ms)"] == [3.0, 4.0]
    assert m["kfree_rcu_work (ms)"] == [1.0, 1.0]
    assert m["detach interval per CPU (ms)"] == [7.0]
    assert m["direct reclaim round (ms)"] == [2.0]
    assert m["free at kfree_rcu_work (MB)"] == [10.0, 11.0]
    assert m["watermark boosts"] == [1] and m["out-of-memory calls"] == [0]
    assert m["test (s)"] == [0.007]


def test_symbols_are_physical_and_missing_ones_named(tmp_path: Path) -> None:
    smap = tmp_path / "System.map"
    smap.write_text("ffffffff81a07980 D jiffies_64\nffffffff81cc3390 B kvsim_idx\n")
    assert run.symbols(smap, "kvsim_idx") == {"kvsim_idx": 0x1CC3390}
    with pytest.raises(SystemExit, match="vm_zone_stat"):
        run.symbols(smap, "jiffies_64", "vm_zone_stat")


def census_block_arg(block: int, mt: int, free: int, top: int | None, movable: int, reserved: int,
                     slab: int) -> int:
    """Event 19's packing, as kvsim_census() in kvsim-ring.patch does it."""
    return (block | mt << 12 | free << 15 | (15 if top is None else top) << 26 | movable << 30
            | reserved << 41 | slab << 52)


def synthetic_census() -> list[tuple[int, int, int, int, int]]:
    """A census at the test's start, then one at an order-3 UNMOVABLE steal of an order-8 block from
    MOVABLE block 5 (pfn 5 << 10 | 256), with an event of the other CPU in between."""
    head_start = 1  # why 1, zone 0
    head_steal = 2 | 1 << 8 | 0 << 11 | (5 << 10 | 256) << 16  # from MOVABLE, for UNMOVABLE
    steal = 3 | 8 << 4 | 0b101 << 8 | 2000 << 24  # order 3 from order 8; UNMOVABLE free at orders 0 and 2
    extra = 7 | 4 << 12 | 1 << 23 | 12 << 34  # block 7: 4 unbuddied free pages, a page table, 12 on UNMOVABLE lists
    return [
        (0, ring.CENSUS_HEAD, 0, 0, head_start),
        (0, ring.CENSUS_BLOCK, 0, 0, census_block_arg(5, 1, 1024, 10, 0, 0, 0)),
        (0, ring.DETACH, 1, 1, 100),
        (0, ring.CENSUS_BLOCK, 0, 0, census_block_arg(7, 0, 12, 2, 3, 256, 700)),
        (0, ring.CENSUS_EXTRA, 0, 0, extra),
        (5 * MS, ring.STEAL, 1, 1, steal),
        (5 * MS, ring.CENSUS_HEAD, 1, 0, head_steal),
        (5 * MS, ring.CENSUS_BLOCK, 1, 0, census_block_arg(5, 1, 508, 8, 0, 513, 0)),
        (5 * MS, ring.CENSUS_BLOCK, 1, 0, census_block_arg(7, 0, 0, None, 3, 256, 765)),
        (6 * MS, ring.CENSUS_HEAD, 1, 0, 1 << 8 | 3),  # an OOM call, order 1
        (6 * MS, ring.CENSUS_BLOCK, 1, 0, census_block_arg(5, 0, 400, 7, 0, 513, 100)),
    ]


def test_census_decodes_blocks_steals_and_types(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cs = ring.censuses(synthetic_census())
    assert [c["why"] for c in cs] == [1, 2, 3]
    start, steal, oom = cs
    assert start["blocks"][7] == dict(block=7, mt=0, free=12, top=2, movable=3, reserved=256, slab=700,
                                      other=1024 - 12 - 3 - 256 - 700, unbuddied=4, pagetable=1,
                                      on_unmovable=12, on_reclaimable=0)
    assert start["blocks"][5]["top"] == 10 and steal["blocks"][7]["top"] is None
    assert steal["steal"] == dict(order=3, stolen=8, mask=0b101, zone_free=2000)
    assert (steal["from_mt"], steal["for_mt"], steal["pfn"] >> ring.PAGEBLOCK_ORDER) == (1, 0, 5)
    assert oom["order"] == 1 and oom["steal"] is None
    by = ring.census_by_type(start)
    assert by[1]["wholly_free"] == 1 and by[1]["partly"] == 0
    assert by[0]["partly"] == 1 and by[0]["reserved"] == 256 and by[0]["other"] == 53
    assert dict(by[0]["top"]) == {2: 1} and dict(by[0]["free_by_top"]) == {2: 12}
    by = ring.census_by_type(steal)
    assert by[1]["partly"] == 1 and by[1]["reserved"] == 513 and by[1]["other"] == 3
    assert by[0]["full"] == 1 and dict(by[0]["top"]) == {None: 1}
    path = tmp_path / "c.ring"
    ring.save(path, synthetic_census())
    ring.print_census(path)
    out = capsys.readouterr().out
    assert "3 censuses (1 at steals, 1 at OOM calls)" in out
    assert "steal +0.005 s: order 3 for UNMOVABLE from an order-8 block on the MOVABLE list" in out
    assert "UNMOVABLE free orders: 0,2; zone free 7.8 MB" in out
    assert "from block 5 MOVABLE: free 508 (largest order 8" in out and "at the next census UNMOVABLE" in out


def model_ring(tmp_path: Path, memory: str, loops: int) -> list[ring.Event]:
    """The events ``ring.py model`` records for v6.1 on qemu-tcg-6.1 at 2 CPUs, seed 1."""
    import argparse

    out = tmp_path / "m.ring"
    ring.record_model(argparse.Namespace(
        variant="v6.1", cpus=2, memory=memory, profile="qemu-tcg-6.1", seed=1, out=out,
        bootargs=f"rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=16 rcuscale.kfree_loops={loops} "
                 "rcuscale.kfree_mult=64"))
    return ring.load(out)


@needs_pure_python
def test_the_models_census_accounts_for_every_page_and_logs_each_steal(tmp_path: Path) -> None:
    """``ring.py model`` with the buddy model: a census at the start whose blocks' free pages
    are the zone's, then each steal's event 15 followed by a census of the same steal."""
    events = model_ring(tmp_path, "56M", loops=1)
    cs = ring.censuses(events)
    start, steals = cs[0], cs[1:]
    assert start["why"] == 1 and len(start["blocks"]) == 14
    # the stock kernel's, from its census (NOTES.md item 9): about 10,589
    assert sum(b["free"] for b in start["blocks"].values()) == 10586
    assert all(0 <= b["other"] and b["free"] + b["reserved"] + b["slab"] + b["other"] == 1024
               for c in cs for b in c["blocks"].values())
    assert steals and all(c["why"] == 2 and c["steal"] is not None for c in steals)
    assert sum(e[1] == ring.STEAL for e in events) == len(steals)
    assert steals[0]["steal"]["stolen"] == 10 and steals[0]["for_mt"] == 0


@needs_pure_python
def test_the_models_batch_events_carry_the_cpu_that_ran_them(tmp_path: Path) -> None:
    """``ring.py model`` logs each detach on the CPU whose monitor detached it (its krcp's: no
    shrinker runs here), each kfree_rcu_work() on the worker's CPU (the krcp's: the rcu_work
    is queued where the callback ran) and the GP events on the GP kthread's, as the kernel's
    ring does; and both CPUs detach."""
    events = model_ring(tmp_path, "80M", loops=4)
    detach = [e for e in events if e[1] == ring.DETACH]
    work = [e for e in events if e[1] in (ring.WORK_START, ring.WORK_END)]
    assert detach and work
    assert all(e[2] == e[3] for e in detach + work)
    assert {e[2] for e in detach} == {0, 1}


def test_reclaimable_requests_decode_with_stack_slab_and_steal(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Events 22-27 as kvsim-ring.patch packs them: a RECLAIMABLE order-0 slab request on CPU 1 whose
    fallback steals an order-9 UNMOVABLE block (and boosts), an event of CPU 0 in between, the slab
    (radix_tree_node, 192 B) and its name in two parts; a census at the test's start before it."""
    stext = 0xFFFFFFFF81000000
    smap = tmp_path / "System.map"
    smap.write_text("ffffffff81000000 T _stext\nffffffff81001000 T __alloc_pages\nffffffff81002000 t allocate_slab\n"
                    "ffffffff81003000 T kmem_cache_alloc\nffffffff81004000 T idr_alloc_cyclic\n"
                    "ffffffff81005000 t __kernfs_new_node\nffffffff81006000 t pty_init\n"
                    "ffffffff81007000 T do_one_initcall\nffffffff81a00000 D jiffies_64\n")
    frames = [0x2010, 0x3020, 0x4030, 0x5040, 0x6050, 0x7060, 0x7070]  # allocate_slab+0x10 ... do_one_initcall+0x70
    gfp = 0x12A30
    name = int.from_bytes(b"radix_tree_node"[:8], "little"), int.from_bytes(b"radix_tree_node"[8:], "little")
    pfn = 8 << 10 | 5
    events = [
        (0, ring.CENSUS_HEAD, 0, 0, 1),
        (0, ring.CENSUS_BLOCK, 0, 0, census_block_arg(8, 0, 600, 9, 0, 0, 300)),
        (4 * MS, ring.RECL_REQ, 1, 1, 0 | 0x2010 << 4 | gfp << 36),
    ] + [(4 * MS, ring.RECL_STACK, 1, 1, frames[i] | (frames[i + 1] if i + 1 < len(frames) else 0) << 32)
         for i in range(0, len(frames), 2)] + [
        (4 * MS, ring.DETACH, 0, 0, 100),
        (5 * MS, ring.STEAL, 1, 1, 0 | 9 << 4 | 0 << 8 | 3000 << 24),
        (5 * MS, ring.CENSUS_HEAD, 1, 0, 2 | 0 << 8 | 2 << 11 | (8 << 10 | 512) << 16),
        (5 * MS, ring.CENSUS_BLOCK, 1, 0, census_block_arg(8, 0, 600, 9, 0, 0, 300)),
        (5 * MS, ring.BOOST, 1, 1, 3000),
        (5 * MS, ring.RECL_GOT, 1, 1, pfn << 4),
        (5 * MS, ring.RECL_SLAB, 1, 1, 0 | 0 << 4 | 192 << 8 | 1 << 27 | pfn << 28),
        (5 * MS, ring.RECL_NAME0, 1, 1, name[0]),
        (5 * MS, ring.RECL_NAME1, 1, 1, name[1]),
        (6 * MS, ring.RECL_REQ, 0, 0, 1 | 0x2010 << 4 | gfp << 36),  # order 1, failed
        (6 * MS, ring.RECL_GOT, 0, 0, 1),
    ]
    reqs, steals = ring.reclaimables(events)
    assert len(reqs) == 2 and len(steals) == 1
    r, failed = reqs
    assert (r["order"], r["caller"], r["gfp"], r["cpu"], r["pfn"]) == (0, 0x2010, gfp, 1, pfn)
    assert r["stack"] == frames
    assert r["slab"] == dict(order=0, preferred=0, object_size=192, reclaim_account=1, pfn=pfn,
                             cache="radix_tree_node")
    assert r["steals"] == steals and steals[0]["boosted"] and steals[0]["steal"]["stolen"] == 9
    assert (steals[0]["from_mt"], steals[0]["for_mt"]) == (0, 2)
    assert failed["pfn"] is None and failed["done"] and failed["slab"] is None and failed["stack"] == []
    syms = ring.text_symbols(smap)
    assert syms[2] == stext and ring.resolve(syms, 0x5040) == "__kernfs_new_node+0x40"
    assert ring.callers(syms, frames, 3) == ["idr_alloc_cyclic", "__kernfs_new_node", "pty_init"]
    path = tmp_path / "r.ring"
    ring.save(path, events)
    ring.print_reclaimable(path, smap)
    out = capsys.readouterr().out
    assert "2 RECLAIMABLE requests, 1 pages got (1 failed)" in out
    assert "radix_tree_node: idr_alloc_cyclic < __kernfs_new_node < pty_init" in out
    assert ("+0.005 s cpu 1: order 0 from an order-9 block on the UNMOVABLE list (block 8, zone free 11.7 MB; "
            "boosted") in out
    assert "RECLAIMABLE blocks []: slab 0" in out


def test_speed_series_are_log_rates_per_vcpu_window() -> None:
    """speed_series(): per krcp, log(objects detached per ms) in 50 ms windows, from 0.75 s
    in to 0.5 s before the first vCPU's last detach."""
    events = [(t * MS, ring.DETACH, 0, cpu, (1000 if cpu == 0 else 4000))
              for t in range(0, 3000, 10) for cpu in (0, 1)]
    series = ring.speed_series(events)
    assert len(series) == 2 and len(series[0]) == (2490 - 750) // 50
    assert {round(v, 9) for v in series[0]} == {round(math.log(5 * 1000 / 50), 9)}
    assert {round(v, 9) for v in series[1]} == {round(math.log(5 * 4000 / 50), 9)}


def test_speed_stats_recover_a_known_law() -> None:
    """The estimator on simulated series: a long Ornstein-Uhlenbeck series gives back its
    sd and its autocorrelation exp(-lag / tau)."""
    series = ring.simulate_speed(0.3, 0.5, [20000], 0.0, seed=1)
    sd, acf = ring.speed_stats(series, lags=(10,))
    assert sd == pytest.approx(0.3, rel=0.05)
    assert acf[0] == pytest.approx(math.exp(-0.5 / 0.5), abs=0.05)


host_pauses = load_tool("host_pauses")

TIMEHIST = """\
           time    cpu  task name                       wait time  sch delay   run time
                        [tid/pid]                          (msec)     (msec)     (msec)
--------------- ------  ------------------------------  ---------  ---------  ---------
      10.000000 [0000]  qemu-system-x86[11/10]              0.000      0.000    900.000
      10.000000 [0001]  qemu-system-x86[12/10]              0.000      0.000    800.000
      12.000000 [0000]  qemu-system-x86[11/10]              0.040      0.000    500.000
      12.100000 [0000]  qemu-system-x86[11/10]              0.000      4.000    500.000
      12.200000 [0001]  qemu-system-x86[12/10]              3.900      0.020    700.000
      12.300000 [0001]  qemu-system-x86[10/10]              0.000      0.000      1.000
      12.400000 [0001]  bash[99]                            0.000      0.000      1.000
"""


def test_host_pauses_tell_preemption_from_sleep() -> None:
    pauses, ran = host_pauses.parse_timehist(TIMEHIST)
    assert set(ran) == {"11/10", "12/10", "10/10"}  # only QEMU's threads
    assert ran["11/10"] == pytest.approx(1.9)
    lines = host_pauses.report_lines("t.perf", pauses, ran, start=1.5)
    assert len(lines) == 2  # the two vCPU threads, the main loop left out
    v0, v1 = lines
    assert v0.startswith("t.perf: vCPU thread 11/10: ran 1.90 s; off core 0.004 s in 2 pauses; > 1 ms 1")
    assert "| preempted (sch delay) 0.004 s in 1 pauses; > 1 ms 1, > 4.5 ms 0" in v0
    assert "| asleep (wait) 0.000 s in 1 pauses; > 1 ms 0" in v0
    assert "| preempted (sch delay) 0.000 s in 1 pauses; > 1 ms 0" in v1  # 20 us
    assert "| asleep (wait) 0.004 s in 1 pauses; > 1 ms 1" in v1  # an idle halt to the next tick
    assert host_pauses.report_lines("t.perf", {}, {}) == ["t.perf: no QEMU thread in the trace"]
