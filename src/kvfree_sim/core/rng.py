"""Seeded randomness, in one place.

Every consumer of randomness asks for a named stream; a stream is a
``random.Random`` seeded from the run seed and the stream's name through
SHA-512 (``random.seed`` of a ``str``, version 2), so streams are independent
of each other, of the order in which they are created, and of the machine.
Adding a new consumer does not perturb the numbers the others draw.
"""

from __future__ import annotations

import random
from decimal import Context, Decimal

_LN = Context(prec=28)


def exponential_ns(rng: random.Random, mean_ns: float) -> int:
    """An exponentially distributed duration, in whole ns, with the given mean.

    ``-mean * ln(U)`` computed with :mod:`decimal` rather than the C library's
    ``log()``, so that every machine draws the same integers.
    """
    u = rng.getrandbits(53) + 1  # in [1, 2**53]
    x = Decimal(u) / Decimal(2**53)
    return int(-_LN.ln(x) * Decimal(repr(mean_ns)))


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
