"""Fixtures of the trace tests (helpers live in tracekit.py)."""

from __future__ import annotations

import pytest

from kvfree_sim.machine import RunResult

from tracekit import Line, RecordingTracer, read_lines, traced_run


@pytest.fixture(scope="module")
def tiny_trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, RecordingTracer, list[str], list[Line]]:
    """The v5.11+v3 tiny run, traced with every event."""
    path = tmp_path_factory.mktemp("trace") / "tiny.trace"
    result, tracer = traced_run(path, cls=RecordingTracer)
    assert isinstance(tracer, RecordingTracer)
    head, lines = read_lines(path)
    return result, tracer, head, lines
