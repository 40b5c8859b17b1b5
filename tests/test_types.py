"""The model's type hints hold: mypy finds no error in the package.

The mypyc build (``make mypyc``) compiles the hints into native code, so a
wrong one is a crash or a wrong result there, not only a style issue.
"""

from __future__ import annotations

from pathlib import Path

from mypy import api

SRC = Path(__file__).resolve().parent.parent / "src" / "kvfree_sim"


def test_mypy_finds_no_error(tmp_path: Path) -> None:
    out, err, status = api.run([str(SRC), "--cache-dir", str(tmp_path), "--no-error-summary"])
    assert status == 0, out + err
