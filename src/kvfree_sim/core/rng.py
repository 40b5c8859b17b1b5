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


def _uniform53(rng: random.Random) -> int:
    """``U * 2**53`` for a uniform ``U`` in (0, 1]: ``u / 2**53`` is exact in a double."""
    return rng.getrandbits(53) + 1


def _whole_ns(v: float) -> int | None:
    """``int(v)``, unless ``v`` lies within ``_MARGIN`` of a whole ns, where libms may
    round differently and the caller must redo it in decimal (None)."""
    frac = v - math.floor(v)
    if _MARGIN * (v + 1.0) < frac < 1.0 - _MARGIN * (v + 1.0):
        return int(v)
    return None


def exponential_ns(rng: random.Random, mean_ns: float) -> int:
    """An exponentially distributed duration, in whole ns, with the given mean.

    The value is ``int(-mean * ln(U))`` computed with :mod:`decimal` at 28
    digits, so that every machine draws the same integers.  The C library's
    ``log()`` gives that integer at once unless the product lies within
    ``_MARGIN`` of a whole ns, where libms may round differently; only then is
    the (slow) decimal logarithm computed.
    """
    u = _uniform53(rng)
    n = _whole_ns(-math.log(u / 2**53) * mean_ns)
    return n if n is not None else exponential_ns_decimal(u, mean_ns)


def exponential_ns_decimal(u: int, mean_ns: float) -> int:
    """``int(-mean * ln(u / 2**53))`` in 28-digit decimal arithmetic."""
    return int(-_LN.ln(Decimal(u) / _TWO53) * Decimal(repr(mean_ns)))


def pareto_ns(rng: random.Random, mean_ns: float, alpha: float) -> int:
    """A Pareto distributed duration, in whole ns, with the given mean and tail
    index ``alpha`` > 1: ``P(X > x) = (x_m / x) ** alpha`` for ``x >= x_m``,
    ``x_m = mean * (alpha - 1) / alpha``.

    Drawn as ``x_m * U ** (-1 / alpha)`` with the same exactness rule as
    :func:`exponential_ns`: the double result stands unless it lies within
    ``_MARGIN`` of a whole ns, where it is redone in 28-digit decimal.
    """
    u = _uniform53(rng)
    x_m = mean_ns * (alpha - 1.0) / alpha
    n = _whole_ns(x_m * math.exp(-math.log(u / 2**53) / alpha))
    return n if n is not None else pareto_ns_decimal(u, mean_ns, alpha)


def pareto_ns_decimal(u: int, mean_ns: float, alpha: float) -> int:
    """``int(x_m * (u / 2**53) ** (-1 / alpha))`` in 28-digit decimal arithmetic."""
    a = Decimal(repr(alpha))
    x_m = _LN.divide(_LN.multiply(Decimal(repr(mean_ns)), a - 1), a)
    return int(_LN.multiply(x_m, _LN.exp(_LN.divide(-_LN.ln(Decimal(u) / _TWO53), a))))


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
