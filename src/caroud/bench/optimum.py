"""The offline optimum of a 1v1 trace: an exact minimum-cost matching over every arrival.

Pairing tickets ``i`` and ``j`` costs ``|r_i - r_j| + growth * |t_i - t_j|`` (the rating
gap, plus the earlier ticket's least possible wait priced at the queue's exchange
rate: its window grows ``growth`` points per second); leaving a ticket unmatched
costs the window's maximum. The optimum knows every arrival in advance, so no
online matcher can beat it; ``caroud bench quality`` reports how far above it
the matcher lands.

This is a minimum-weight perfect matching with a boundary (an unmatched ticket is
matched to the boundary at cost ``maximum``), which is what PyMatching solves
exactly with its sparse blossom algorithm. The graph it needs is one whose
shortest paths equal the pair costs, an L1 distance in the plane
``(rating, growth * time)``: giving it every pair is quadratic, so it gets a
*Manhattan 1-spanner* instead. Split the tickets at the median rating; put, on
that vertical line, one Steiner node per ticket at the ticket's time, joined to
the ticket by a horizontal edge and to its neighbours on the line by vertical
edges; recurse on both halves. Any two tickets on opposite sides of a split are
then joined by the path ticket → line → along the line → ticket, whose length is
exactly their L1 distance, and no path is shorter than the straight distance, so
the matching over this graph (``n log n`` nodes) is the matching over all pairs.
Edges longer than twice the maximum are left out: no optimal pair uses them
(leaving both tickets unmatched is cheaper).

PyMatching rounds weights to integers at a resolution of its largest weight / 2^23
(here about a thousandth of a rating point): the cost reported is the exact cost
of the pairs it returns. It is verified against networkx's blossom algorithm in
the tests. It is fast for a few thousand tickets and grows quickly past that when
every node is a ticket, so the benchmark's 1v1 traces are sized to stay there.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Optimum:
    """The optimal pairs (indices into the trace), their cost and the unmatched tickets."""

    pairs: list[tuple[int, int]]
    unmatched: list[int]
    cost: float


def pair_cost(r_a: float, r_b: float, t_a: float, t_b: float, growth: float) -> float:
    """What pairing two tickets costs: the gap, plus the wait between their arrivals."""
    return abs(r_a - r_b) + growth * abs(t_a - t_b)


def optimum(
    ratings: Sequence[float], created: Sequence[float], growth: float, maximum: float
) -> Optimum:
    """The minimum-cost matching of the tickets (ratings, creation times in seconds)."""
    import pymatching

    r = np.asarray(ratings, dtype=np.float64)
    s = np.asarray(created, dtype=np.float64) * growth
    n = len(r)
    if n == 0:
        return Optimum([], [], 0.0)
    graph = pymatching.Matching()
    for a, b, w in _spanner_edges(r, s, 2 * maximum, n):
        graph.add_edge(a, b, weight=w, merge_strategy="smallest-weight")
    for i in range(n):
        graph.add_boundary_edge(i, weight=float(maximum))
    defects = np.zeros(graph.num_detectors, dtype=np.uint8)
    defects[:n] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no boundary nodes": the boundary is implicit
        matched = graph.decode_to_matched_dets_array(defects)
    pairs: list[tuple[int, int]] = []
    unmatched: list[int] = []
    cost = 0.0
    for a, b in matched.tolist():
        if a < 0 or b < 0:
            unmatched.append(max(a, b))
            cost += maximum
        else:
            pairs.append((min(a, b), max(a, b)))
            cost += abs(r[a] - r[b]) + abs(s[a] - s[b])
    return Optimum(sorted(pairs), sorted(unmatched), cost)


def _spanner_edges(r: Floats, s: Floats, cap: float, n: int) -> list[tuple[int, int, float]]:
    """The Manhattan 1-spanner's edges (ticket and Steiner node ids, weights) up to ``cap``."""
    edges: list[tuple[int, int, float]] = []
    next_node = n
    stack: list[Ints] = [np.argsort(r, kind="stable").astype(np.int64)]
    while stack:
        idx = stack.pop()
        if len(idx) <= 1:
            continue
        mid = len(idx) // 2
        line = r[idx[mid]]
        near = idx[np.abs(r[idx] - line) <= cap]
        if len(near) > 1:
            on_line = near[np.argsort(s[near], kind="stable")]
            steiner = np.arange(next_node, next_node + len(on_line))
            next_node += len(on_line)
            edges += zip(
                on_line.tolist(), steiner.tolist(), np.abs(r[on_line] - line).tolist(), strict=True
            )
            steps = np.diff(s[on_line])
            keep = steps <= cap
            edges += zip(
                steiner[:-1][keep].tolist(),
                steiner[1:][keep].tolist(),
                steps[keep].tolist(),
                strict=True,
            )
        stack += [idx[:mid], idx[mid:]]
    return edges
