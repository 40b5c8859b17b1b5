"""v5.11: the base design as released (kvfree_sim.kvfree_rcu.tree is this version)."""

from __future__ import annotations

from ..tree import KvfreeRcu


class V5_11(KvfreeRcu):
    """Linux v5.11: the shrinker counts pending objects and kicks the monitor only."""
