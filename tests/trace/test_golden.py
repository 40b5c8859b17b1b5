"""Byte-for-byte golden trace of a tiny deterministic run.

Regenerate after an intended change of the model or of the tracer with
    KVFREE_SIM_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/trace/test_golden.py
and review the diff of tests/trace/golden/ like any other change.
"""

from __future__ import annotations

import os
from pathlib import Path

from tracekit import traced_run


GOLDEN = Path(__file__).parent / "golden" / "v5.11+v3-tiny.trace"


def test_golden_trace(tmp_path: Path):
    path = tmp_path / "t.trace"
    traced_run(path, "v5.11+v3")
    got = path.read_bytes()
    if os.environ.get("KVFREE_SIM_REGEN_GOLDEN"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_bytes(got)
    assert GOLDEN.exists(), f"{GOLDEN} missing: run with KVFREE_SIM_REGEN_GOLDEN=1 to create it"
    want = GOLDEN.read_bytes()
    if got != want:
        g, w = got.decode().splitlines(), want.decode().splitlines()
        first = next((i for i, (a, b) in enumerate(zip(g, w)) if a != b), min(len(g), len(w)))
        raise AssertionError(
            f"trace differs from {GOLDEN.name} at line {first + 1} ({len(g)} lines vs {len(w)}):\n"
            f"  got:  {g[first] if first < len(g) else '<end>'}\n  want: {w[first] if first < len(w) else '<end>'}\n"
            "(KVFREE_SIM_REGEN_GOLDEN=1 regenerates it if the change is intended)")


def test_golden_trace_is_deterministic(tmp_path: Path):
    a, b = tmp_path / "a.trace", tmp_path / "b.trace"
    traced_run(a, "v5.11+v3")
    traced_run(b, "v5.11+v3")
    assert a.read_bytes() == b.read_bytes()
