"""Simulated players for ``caroud bench quality``: who arrives, when, with what rating.

Pure and deterministic per seed. True skill ~ N(1500, 300); a player's rating is
their skill plus N(0, 50) (ratings are estimates). Tickets arrive as a Poisson
process at the scenario's rate. In team queues a ticket is a solo or a party of
2-5 friends (:data:`PARTY_MIX`): friends are alike, so a party draws one skill
~ N(1500, 300) and each member differs from it by N(0, 100).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SKILL_MEAN = 1500.0
SKILL_SD = 300.0
RATING_NOISE_SD = 50.0
PARTY_SPREAD_SD = 100.0

PARTY_MIX: dict[int, float] = {1: 0.55, 2: 0.20, 3: 0.10, 4: 0.05, 5: 0.10}
"""Share of tickets by party size in team queues."""


@dataclass(frozen=True, slots=True)
class Scenario:
    """One simulated population: a built-in queue, an arrival rate, a duration."""

    name: str
    queue: str
    rate_per_s: float
    duration_s: float
    parties: bool
    about: str


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("1v1-low", "ranked-1v1", 2.0, 3000.0, False, "a quiet 1v1 queue"),
        Scenario("1v1-medium", "ranked-1v1", 20.0, 150.0, False, "a steady 1v1 queue"),
        Scenario("1v1-high", "ranked-1v1", 200.0, 15.0, False, "a busy 1v1 queue"),
        Scenario("5v5-low", "ranked-5v5", 2.0, 1500.0, True, "a quiet 5v5 queue, parties"),
        Scenario("5v5-medium", "ranked-5v5", 20.0, 600.0, True, "a steady 5v5 queue"),
        Scenario("5v5-high", "ranked-5v5", 200.0, 90.0, True, "a busy 5v5 queue"),
    )
}
"""The 1v1 traces hold about 3,000 tickets each, so the exact optimum stays quick."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """A ticket of the trace: when it arrives (s from the start) and its players' ratings."""

    index: int
    at: float
    ratings: tuple[float, ...]

    @property
    def rating(self) -> float:
        """The ticket's rating, as the matcher sees it: its players' mean."""
        return sum(self.ratings) / len(self.ratings)

    @property
    def size(self) -> int:
        return len(self.ratings)


def make_trace(scenario: Scenario, seed: int) -> list[Arrival]:
    """The scenario's arrivals, the same for the same seed (times rounded to the ms)."""
    rng = random.Random(f"{scenario.name}:{seed}")
    sizes = list(PARTY_MIX)
    weights = [PARTY_MIX[s] for s in sizes]
    out: list[Arrival] = []
    t = 0.0
    while True:
        t += rng.expovariate(scenario.rate_per_s)
        if t > scenario.duration_s:
            return out
        size = rng.choices(sizes, weights)[0] if scenario.parties else 1
        base = rng.gauss(SKILL_MEAN, SKILL_SD)
        skills = (
            [base] if size == 1 else [base + rng.gauss(0, PARTY_SPREAD_SD) for _ in range(size)]
        )
        ratings = tuple(round(s + rng.gauss(0, RATING_NOISE_SD), 1) for s in skills)
        out.append(Arrival(len(out), round(t, 3), ratings))
