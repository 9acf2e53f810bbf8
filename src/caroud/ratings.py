"""Elo ratings: pure functions over plain numbers (no database, no clock).

A player's expected score against an opponent rated ``Rb`` is
``1 / (1 + 10 ** ((Rb - Ra) / 400))``; after a game the rating moves by
``K * (score - expected)``, with score 1 for a win, 0.5 for a draw, 0 for a loss.
``K`` is 40 for a player's first 30 games (ratings settle fast), 20 after.

In a team game each player is rated against the average rating of the players on
the other team(s) — so a strong player carried by a weak team loses less when
it loses, and a weak player gains more when its team wins. With two teams this is
exactly "each player against the other team's average"; a free-for-all of N
teams uses the average of everyone else, and only the winning team scores 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PROVISIONAL_GAMES = 30
"""Games below which a player's rating moves with :data:`K_PROVISIONAL`."""
K_PROVISIONAL = 40
K_ESTABLISHED = 20
WIN, DRAW, LOSS = 1.0, 0.5, 0.0


@dataclass(frozen=True, slots=True)
class Rated:
    """A player as the rating update sees them: the current rating and games played so far."""

    rating: float
    games_played: int


def expected_score(rating: float, opponent: float) -> float:
    """The probability-like score ``rating`` is expected to take against ``opponent``."""
    return 1.0 / (1.0 + math.pow(10.0, (opponent - rating) / 400.0))


def k_factor(games_played: int) -> int:
    """How far one game can move a rating: 40 below 30 games played, 20 after."""
    return K_PROVISIONAL if games_played < PROVISIONAL_GAMES else K_ESTABLISHED


def rating_delta(rating: float, opponent: float, score: float, games_played: int) -> float:
    """The change of ``rating`` after scoring ``score`` (1, 0.5, 0) against ``opponent``."""
    return k_factor(games_played) * (score - expected_score(rating, opponent))


def team_scores(teams: int, winner: int | None) -> list[float]:
    """Each team's score: 1 for the winner and 0 for the others, or 0.5 each for a draw."""
    if winner is None:
        return [DRAW] * teams
    if not 0 <= winner < teams:
        raise ValueError(f"winner {winner} is not a team index of {teams} teams")
    return [WIN if i == winner else LOSS for i in range(teams)]


def team_deltas(teams: Sequence[Sequence[Rated]], winner: int | None) -> list[list[float]]:
    """The rating change of every player, by team, rating each against the others' average.

    ``winner`` is the index of the winning team, or None for a draw. Every team must
    have at least one player.
    """
    if len(teams) < 2 or any(len(team) == 0 for team in teams):
        raise ValueError("a rated game needs at least two teams of at least one player each")
    scores = team_scores(len(teams), winner)
    total = sum(p.rating for team in teams for p in team)
    count = sum(len(team) for team in teams)
    out: list[list[float]] = []
    for team, score in zip(teams, scores, strict=True):
        others = (total - sum(p.rating for p in team)) / (count - len(team))
        out.append([rating_delta(p.rating, others, score, p.games_played) for p in team])
    return out
