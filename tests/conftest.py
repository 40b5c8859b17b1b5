"""Shared fixtures: kernels built from a test machine profile.

Helpers that are plain functions live in ``tests/ktest.py``.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

from kvfree_sim.kernel.system import Kernel

from ktest import MiB, make_profile


@pytest.fixture
def make_kernel() -> Callable[..., Kernel]:
    """Factory: ``make_kernel(ncpus=1, memory=512 MiB, hz=1000, ...)`` returns a started Kernel.

    Costs default to zero (see ``ktest.TEST_COSTS``) and the layout to
    ``ktest.TEST_LAYOUT`` (a 512 MiB machine with 124000 managed pages).
    """

    def make(ncpus: int = 1, memory: int = 512 * MiB, hz: int = 1000, *, seed: int = 1,
             mm_version: str = "6.1", costs: dict[str, float] | None = None,
             layout: dict[str, float] | None = None, start: bool = True, tracer: Any = None,
             **kwargs: Any) -> Kernel:
        kernel = Kernel(ncpus, memory, hz, make_profile(costs, layout), seed, mm_version,
                        tracer=tracer, **kwargs)
        if start:
            kernel.start()
        return kernel

    return make


@pytest.fixture
def kernel(make_kernel: Callable[..., Kernel]) -> Kernel:
    """A started 1-CPU, 512 MiB, HZ=1000 kernel (v6.1)."""
    return make_kernel()
