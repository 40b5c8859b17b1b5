"""Seeded randomness in one place (src/kvfree_sim/core/rng.py): issue 2 item 2."""

from __future__ import annotations

import os
import subprocess
import sys

import random

import pytest

from kvfree_sim.core.rng import Rng, exponential_ns, exponential_ns_decimal, pareto_ns, pareto_ns_decimal


def draws(rng: Rng, name: str, n: int = 5) -> list[float]:
    s = rng.stream(name)
    return [s.random() for _ in range(n)]


def test_a_stream_is_reproducible_for_a_seed_and_name() -> None:
    assert draws(Rng(42), "kfree") == draws(Rng(42), "kfree")


def test_streams_do_not_depend_on_creation_order() -> None:
    a = Rng(3)
    a_first = draws(a, "alpha")
    a_second = draws(a, "beta")
    b = Rng(3)
    b_second = draws(b, "beta")
    b_first = draws(b, "alpha")
    assert a_first == b_first
    assert a_second == b_second


def test_a_new_consumer_does_not_perturb_the_others() -> None:
    """Drawing from another stream in between leaves a stream's numbers unchanged."""
    alone = Rng(5)
    expected = draws(alone, "thread0", 10)
    mixed = Rng(5)
    s0 = mixed.stream("thread0")
    other = mixed.stream("thread1")
    got = []
    for _ in range(10):
        other.random()
        got.append(s0.random())
        other.random()
    assert got == expected


def test_streams_differ_by_name_and_by_seed() -> None:
    assert draws(Rng(1), "a") != draws(Rng(1), "b")
    assert draws(Rng(1), "a") != draws(Rng(2), "a")


def test_the_same_name_returns_the_same_stream_object() -> None:
    rng = Rng(9)
    s = rng.stream("x")
    s.random()
    assert rng.stream("x") is s


def test_streams_do_not_depend_on_the_process_hash_seed() -> None:
    """The numbers are the same in another interpreter with another PYTHONHASHSEED."""
    code = "from kvfree_sim.core.rng import Rng; s = Rng(11).stream('w'); print([s.random() for _ in range(3)])"
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(draws(Rng(11), "w", 3))


@pytest.mark.parametrize("mean_ns", [1.0, 20e3, 5e6, 1e9 / 100, 1e9 / 7, 3.3e10])
def test_exponential_draws_are_the_decimal_values(mean_ns: float) -> None:
    """The fast path returns exactly what the 28-digit decimal logarithm gives."""
    rng = random.Random(f"exp/{mean_ns}")
    check = random.Random(f"exp/{mean_ns}")
    for _ in range(20000):
        u = check.getrandbits(53) + 1
        assert exponential_ns(rng, mean_ns) == exponential_ns_decimal(u, mean_ns)


def test_a_draw_next_to_a_whole_ns_takes_the_decimal_path() -> None:
    """u = 2**52 gives ln 2 * mean; with mean = 1 / ln 2 the product is 1 ns up to rounding."""

    class Fixed(random.Random):
        def getrandbits(self, k: int) -> int:
            return 2**52 - 1

    mean = 1 / 0.6931471805599453
    assert exponential_ns(Fixed(), mean) == exponential_ns_decimal(2**52, mean)


def test_exponential_draws_have_the_mean() -> None:
    rng = random.Random("mean")
    n = 50000
    assert abs(sum(exponential_ns(rng, 1e6) for _ in range(n)) / n - 1e6) < 0.02e6


@pytest.mark.parametrize("mean_ns, alpha", [(20e3, 1.5), (460e3, 1.7), (4.6e6, 2.0), (1e9 / 7, 3.0)])
def test_pareto_draws_are_the_decimal_values(mean_ns: float, alpha: float) -> None:
    """The fast path returns exactly what 28-digit decimal arithmetic gives."""
    rng = random.Random(f"pareto/{mean_ns}/{alpha}")
    check = random.Random(f"pareto/{mean_ns}/{alpha}")
    for _ in range(20000):
        u = check.getrandbits(53) + 1
        assert pareto_ns(rng, mean_ns, alpha) == pareto_ns_decimal(u, mean_ns, alpha)


def test_pareto_draws_have_the_law_asked_for() -> None:
    """Never below x_m = mean (alpha - 1) / alpha; the tail P(X > x) = (x_m / x) ** alpha;
    the sample mean near the mean (alpha 3: a finite variance)."""
    rng = random.Random("pareto-law")
    mean, alpha = 300e3, 3.0
    x_m = mean * (alpha - 1) / alpha
    xs = [pareto_ns(rng, mean, alpha) for _ in range(200000)]
    assert min(xs) >= int(x_m)
    for k in (2, 4):
        share = sum(x > k * x_m for x in xs) / len(xs)
        assert share == pytest.approx(k ** -alpha, rel=0.05)
    assert sum(xs) / len(xs) == pytest.approx(mean, rel=0.02)
