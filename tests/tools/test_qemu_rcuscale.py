"""tools/qemu-rcuscale: the ring's format and its summary, and run.py's symbol lookup."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

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
