"""The offline optimum of ``caroud bench quality`` against networkx's blossom algorithm."""

from __future__ import annotations

import random

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caroud.bench.optimum import optimum, pair_cost

GROWTH, MAXIMUM = 10.0, 400.0


def blossom_cost(ratings: list[float], created: list[float]) -> float:
    """The same problem solved over every pair by networkx (slow: small traces only)."""
    graph = nx.Graph()
    n = len(ratings)
    for i in range(n):
        for j in range(i + 1, n):
            cost = pair_cost(ratings[i], ratings[j], created[i], created[j], GROWTH)
            if cost < 2 * MAXIMUM:  # else leaving both unmatched is cheaper
                graph.add_edge(i, j, weight=2 * MAXIMUM - cost)
    pairs = nx.max_weight_matching(graph)
    paired = sum(
        pair_cost(ratings[a], ratings[b], created[a], created[b], GROWTH) for a, b in pairs
    )
    return paired + MAXIMUM * (n - 2 * len(pairs))


@given(
    st.lists(
        st.tuples(st.floats(500, 2500, allow_nan=False), st.floats(0, 120, allow_nan=False)),
        max_size=40,
    )
)
@settings(max_examples=100, deadline=None)
def test_optimum_equals_blossom_on_small_traces(tickets: list[tuple[float, float]]) -> None:
    ratings = [r for r, _ in tickets]
    created = [t for _, t in tickets]
    best = optimum(ratings, created, GROWTH, MAXIMUM)
    assert best.cost == pytest.approx(blossom_cost(ratings, created), abs=1e-3)
    seen = [i for pair in best.pairs for i in pair] + best.unmatched
    assert sorted(seen) == list(range(len(tickets)))  # every ticket exactly once


@pytest.mark.parametrize("rate", [2.0, 20.0, 200.0])
def test_optimum_equals_blossom_on_poisson_traces(rate: float) -> None:
    rng = random.Random(int(rate))
    created, t = [], 0.0
    for _ in range(300):
        t += rng.expovariate(rate)
        created.append(t)
    ratings = [rng.gauss(1500, 300) for _ in created]
    best = optimum(ratings, created, GROWTH, MAXIMUM)
    assert best.cost == pytest.approx(blossom_cost(ratings, created), rel=1e-6)
    recomputed = sum(
        pair_cost(ratings[a], ratings[b], created[a], created[b], GROWTH) for a, b in best.pairs
    ) + MAXIMUM * len(best.unmatched)
    assert best.cost == pytest.approx(recomputed)


def test_far_apart_tickets_stay_unmatched() -> None:
    best = optimum([1000, 1900], [0, 0], GROWTH, MAXIMUM)  # 900 > 2 x 400
    assert best.pairs == [] and best.unmatched == [0, 1] and best.cost == 800
    close = optimum([1000, 1010, 3000], [0, 1, 0], GROWTH, MAXIMUM)
    assert close.pairs == [(0, 1)] and close.unmatched == [2] and close.cost == 420
