"""Optional mypyc-compiled build of the model (``make mypyc``); metadata lives in pyproject.toml.

With ``KVFREE_SIM_MYPYC=1`` (and mypy installed, build isolation off) the
simulation core, the kernel model, kvfree_rcu and the workload are compiled
with mypyc; the CLI, experiments, reports and traces stay Python.  Without it
this is the plain pure-Python package.
"""

import os
from pathlib import Path

from setuptools import setup

#: the modules one run executes, compiled together (they call each other natively)
COMPILED = [
    "kvfree_sim/checks.py",
    "kvfree_sim/config.py",
    "kvfree_sim/machine.py",
    "kvfree_sim/core",
    "kvfree_sim/kernel",
    "kvfree_sim/kvfree_rcu",
    "kvfree_sim/workloads",
]


def ext_modules() -> list:
    if os.environ.get("KVFREE_SIM_MYPYC") != "1":
        return []
    from mypyc.build import mypycify

    src = Path(__file__).parent / "src"
    paths = []
    for entry in COMPILED:
        p = src / entry
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        paths += [str(f.relative_to(Path(__file__).parent)) for f in files if f.name != "__init__.py"]
    return mypycify(paths, opt_level="3")


setup(ext_modules=ext_modules())
