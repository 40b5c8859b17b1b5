"""The mypyc-compiled build (``make mypyc``) gives the pure-Python build's results.

Runs only where both builds are installed (``make test-mypyc`` sets up both):
every variant, under reclaim and into an OOM panic, in each build, and the
``--json`` outputs must be identical.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kvfree_sim.kvfree_rcu.variants import VARIANTS

ROOT = Path(__file__).resolve().parent.parent
PURE = ROOT / ".venv" / "bin" / "python"
COMPILED = ROOT / ".venv-mypyc" / "bin" / "python"
BOOTARGS = "rcuscale.kfree_rcu_test=1 rcuscale.kfree_nthreads=4 rcuscale.kfree_loops=30"


def _build(python: Path) -> str:
    out = subprocess.run([str(python), "-c", "from kvfree_sim import build; print(build())"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _run(python: Path, variant: str, memory: str) -> dict:
    out = subprocess.run([str(python), "-m", "kvfree_sim", "run", "--variant", variant, "--cpus", "4",
                          "--memory", memory, "--bootargs", BOOTARGS, "--seed", "3", "--json"],
                         capture_output=True, text=True, check=True)
    result: dict = json.loads(out.stdout)  # wall time is not in it: the output is deterministic
    return result


@pytest.fixture(scope="module")
def builds() -> tuple[Path, Path]:
    if not (PURE.exists() and COMPILED.exists()):
        pytest.skip("needs both builds: make setup mypyc")
    if _build(PURE) != "pure Python" or _build(COMPILED) != "mypyc":
        pytest.skip(".venv must be the pure-Python build and .venv-mypyc the compiled one")
    return PURE, COMPILED


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("memory", ["80M", "64M"])
def test_compiled_build_gives_identical_results(builds: tuple[Path, Path], variant: str, memory: str) -> None:
    pure, compiled = builds
    a = _run(pure, variant, memory)
    assert a == _run(compiled, variant, memory)
