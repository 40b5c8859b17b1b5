"""Fixtures of the report tests."""

from __future__ import annotations

from typing import Any

import pytest

from report_rows import sample_rows


@pytest.fixture
def rows() -> list[dict[str, Any]]:
    """'base' steady at 10-10.2 s; 'patched' slower, spread out, draining, one OOM panic."""
    return sample_rows()
