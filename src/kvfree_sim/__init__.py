"""kvfree-sim: a discrete-event simulator of Linux kvfree_rcu() under memory pressure."""

__version__ = "0.1.0"


def build() -> str:
    """Which build of the model runs: "mypyc" (``make mypyc``) or "pure Python"."""
    from .core import sim

    return "pure Python" if sim.__file__.endswith(".py") else "mypyc"
