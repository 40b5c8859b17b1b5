"""How the file is written: in memory or through a body file, sorted, atomically."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvfree_sim.trace import ftrace
from kvfree_sim.trace.ftrace import FtraceTracer

from tracekit import read_lines, traced_run


def test_streamed_and_in_memory_writes_are_the_same_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    small = tmp_path / "memory.trace"
    traced_run(small)
    monkeypatch.setattr(ftrace, "FLUSH_LINES", 16)  # every 16 lines through the body file
    streamed = tmp_path / "streamed.trace"
    traced_run(streamed)
    assert streamed.read_bytes() == small.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["memory.trace", "streamed.trace"]


@pytest.mark.parametrize("flush", [4, 8192])
def test_out_of_order_lines_are_sorted_stably(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flush: int):
    monkeypatch.setattr(ftrace, "FLUSH_LINES", flush)
    path = tmp_path / "t.trace"
    tr = FtraceTracer(str(path))
    for i, t_us in enumerate([5, 3, 3, 9, 1, 3, 7, 2, 2]):
        tr._line(t_us * 1000, 0, None, ".....", f"tracing_mark_write: C|0|n|{i}")
    tr.close()
    head, lines = read_lines(path)
    assert head[2] == "# entries-in-buffer/entries-written: 9/9   #P:0"
    assert [(ln.ts_us, ln.args) for ln in lines] == [
        (1, "C|0|n|4"), (2, "C|0|n|7"), (2, "C|0|n|8"), (3, "C|0|n|1"), (3, "C|0|n|2"), (3, "C|0|n|5"),
        (5, "C|0|n|0"), (7, "C|0|n|6"), (9, "C|0|n|3")]
    assert [p.name for p in tmp_path.iterdir()] == ["t.trace"]


def test_abort_after_streaming_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ftrace, "FLUSH_LINES", 2)
    tr = FtraceTracer(str(tmp_path / "t.trace"))
    for i in range(5):
        tr._line(i, 0, None, ".....", "tracing_mark_write: C|0|n|1")
    assert len(list(tmp_path.iterdir())) == 1  # the body file
    tr.abort()
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_replaced_only_at_close(tmp_path: Path):
    path = tmp_path / "t.trace"
    path.write_text("old\n")
    tr = FtraceTracer(str(path))
    tr._line(0, 0, None, ".....", "tracing_mark_write: C|0|n|1")
    assert path.read_text() == "old\n"
    tr.abort()
    assert path.read_text() == "old\n"
    tr = FtraceTracer(str(path))
    tr._line(0, 0, None, ".....", "tracing_mark_write: C|0|n|1")
    tr.close()
    assert path.read_text().startswith("# tracer: nop\n")
