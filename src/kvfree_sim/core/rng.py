"""Seeded randomness, in one place.

Every consumer of randomness asks for a named stream; a stream is a
``random.Random`` seeded from the run seed and the stream's name through
SHA-512 (``random.seed`` of a ``str``, version 2), so streams are independent
of each other, of the order in which they are created, and of the machine.
Adding a new consumer does not perturb the numbers the others draw.
"""

from __future__ import annotations

import random


class Rng:
    """Factory of independent, named, deterministic random streams."""

    __slots__ = ("seed", "_streams")

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._streams: dict[str, random.Random] = {}

    def stream(self, name: str) -> random.Random:
        """The stream called ``name`` (created on first use)."""
        s = self._streams.get(name)
        if s is None:
            s = random.Random(f"kvfree-sim/{self.seed}/{name}")
            self._streams[name] = s
        return s
