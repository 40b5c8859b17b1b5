"""kvfree-sim: a discrete-event simulator of Linux kvfree_rcu() under memory pressure."""

__version__ = "0.1.0"
