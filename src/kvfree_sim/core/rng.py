"""Seeded randomness, in one place.

Every consumer of randomness asks for a named stream; a stream is a
``random.Random`` seeded from the run seed and the stream's name through
SHA-512 (``random.seed`` of a ``str``, version 2), so streams are independent
of each other, of the order in which they are created, and of the machine.
Adding a new consumer does not perturb the numbers the others draw.
"""

from __future__ import annotations

import math
import random
from decimal import Context, Decimal

_LN = Context(prec=28)
_TWO53 = Decimal(2**53)
#: math.log() is within a few ulps of exact on every libm; a double product
#: that lands closer than this (relative) to a whole ns is redone in decimal
_MARGIN = 1e-9


def exponential_ns(rng: random.Random, mean_ns: float) -> int:
    """An exponentially distributed duration, in whole ns, with the given mean.

    The value is ``int(-mean * ln(U))`` computed with :mod:`decimal` at 28
    digits, so that every machine draws the same integers.  The C library's
    ``log()`` gives that integer at once unless the product lies within
    ``_MARGIN`` of a whole ns, where libms may round differently; only then is
    the (slow) decimal logarithm computed.
    """
    u = rng.getrandbits(53) + 1  # in [1, 2**53]
    v = -math.log(u / 2**53) * mean_ns  # u / 2**53 is exact in a double
    frac = v - math.floor(v)
    if _MARGIN * (v + 1.0) < frac < 1.0 - _MARGIN * (v + 1.0):
        return int(v)
    return exponential_ns_decimal(u, mean_ns)


def exponential_ns_decimal(u: int, mean_ns: float) -> int:
    """``int(-mean * ln(u / 2**53))`` in 28-digit decimal arithmetic."""
    return int(-_LN.ln(Decimal(u) / _TWO53) * Decimal(repr(mean_ns)))


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
