"""Splitting a group of tickets into teams: parties stay together, team ratings stay close.

Pure functions over small inputs (one match's tickets). Exhaustive search where
it is cheap, a greedy split with improving swaps where it is not.

*Fair* splits: with a ``stack`` size set, a team holding a party of ``stack`` or
more players should not face a team made only of solos (a premade against
strangers loses the average-rating balance to coordination). A split that does
is *unfair*; balancing prefers fair splits and :func:`can_pack_fairly` says
whether one exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

# Exhaustive search bounds: C(16, 8) / 2 = 6,435 splits for two teams is cheap;
# with more teams the count grows as k^n, so stay small.
_EXHAUSTIVE_TWO_TEAMS = 16
_EXHAUSTIVE_MANY_TEAMS = 9


@dataclass(frozen=True, slots=True)
class Unit:
    """A ticket as team balancing sees it: its size and the sum of its players' ratings."""

    id: str
    size: int
    rating_sum: float


@lru_cache(maxsize=8192)
def can_pack(sizes: tuple[int, ...], teams: int, team_size: int) -> bool:
    """Whether parties of ``sizes`` (largest first) fit in ``teams`` teams of ``team_size``."""
    if sum(sizes) > teams * team_size or (sizes and sizes[0] > team_size):
        return False
    if all(s == 1 for s in sizes):
        return True
    free = [team_size] * teams

    def place(i: int) -> bool:
        if i == len(sizes):
            return True
        tried: set[int] = set()
        for t in range(teams):
            if free[t] >= sizes[i] and free[t] not in tried:
                tried.add(free[t])
                free[t] -= sizes[i]
                if place(i + 1):
                    return True
                free[t] += sizes[i]
        return False

    return place(0)


@lru_cache(maxsize=8192)
def can_pack_fairly(sizes: tuple[int, ...], teams: int, team_size: int, stack: int) -> bool:
    """Whether parties of ``sizes`` (largest first) fill the teams exactly with a fair split."""
    if sum(sizes) != teams * team_size or (sizes and sizes[0] > team_size):
        return False
    if stack <= 0 or not sizes or sizes[0] < stack:
        return can_pack(sizes, teams, team_size)
    free = [team_size] * teams
    biggest = [0] * teams
    solos_only = [True] * teams

    def place(i: int) -> bool:
        if i == len(sizes):
            return not _unfair(biggest, solos_only, stack)
        tried: set[tuple[int, int, bool]] = set()
        for t in range(teams):
            state = (free[t], biggest[t], solos_only[t])
            if free[t] < sizes[i] or state in tried:
                continue
            tried.add(state)
            free[t] -= sizes[i]
            old = biggest[t], solos_only[t]
            biggest[t] = max(biggest[t], sizes[i])
            solos_only[t] = solos_only[t] and sizes[i] == 1
            if place(i + 1):
                return True
            free[t] += sizes[i]
            biggest[t], solos_only[t] = old
        return False

    return place(0)


def _unfair(biggest: Sequence[int], solos_only: Sequence[bool], stack: int) -> bool:
    """A team with a party of ``stack`` or more players faces a team of solos."""
    return any(b >= stack for b in biggest) and any(
        solo and b < stack for solo, b in zip(solos_only, biggest, strict=True)
    )


def is_fair(teams: Sequence[Sequence[Unit]], stack: int) -> bool:
    """Whether no team with a party of ``stack`` or more faces a team of solos."""
    if stack <= 0:
        return True
    biggest = [max((u.size for u in team), default=0) for team in teams]
    solos_only = [all(u.size == 1 for u in team) for team in teams]
    return not _unfair(biggest, solos_only, stack)


def team_spread(teams: Sequence[Sequence[Unit]]) -> float:
    """The gap between the strongest and the weakest team's rating sum."""
    sums = [sum(u.rating_sum for u in team) for team in teams]
    return max(sums) - min(sums)


def balance_teams(
    units: Sequence[Unit], teams: int, team_size: int, stack: int = 0
) -> tuple[tuple[str, ...], ...] | None:
    """Split ``units`` into ``teams`` full teams minimising :func:`team_spread`; None if impossible.

    Teams of equal size are compared by rating sums, which orders them as their
    averages do. With ``stack`` set, the best *fair* split wins over any unfair one
    (an unfair split is returned only when no fair one exists). Ticket ids within a
    team, and teams, come out in a stable order.
    """
    if sum(u.size for u in units) != teams * team_size:
        return None
    if team_size == 1:
        ordered = sorted(units, key=lambda u: (-u.rating_sum, u.id))
        return tuple((u.id,) for u in ordered)
    ordered = sorted(units, key=lambda u: (-u.size, -u.rating_sum, u.id))
    limit = _EXHAUSTIVE_TWO_TEAMS if teams == 2 else _EXHAUSTIVE_MANY_TEAMS
    if len(ordered) <= limit:
        best = _exhaustive(ordered, teams, team_size, stack)
    else:
        best = _greedy(ordered, teams, team_size)
    if best is None:
        return None
    return tuple(tuple(u.id for u in team) for team in best)


def _exhaustive(
    units: list[Unit], teams: int, team_size: int, stack: int
) -> list[list[Unit]] | None:
    groups: list[list[Unit]] = [[] for _ in range(teams)]
    free = [team_size] * teams
    sums = [0.0] * teams
    best: list[list[Unit]] | None = None
    best_spread = float("inf")
    best_fair = stack <= 0  # whether ``best`` is fair (always, with no stack rule)

    def place(i: int) -> None:
        nonlocal best, best_spread, best_fair
        if i == len(units):
            spread = max(sums) - min(sums)
            fair = best_fair if stack <= 0 else is_fair(groups, stack)
            if (fair, -spread) > (best_fair, -best_spread) or best is None:
                best_spread, best_fair = spread, fair
                best = [list(g) for g in groups]
            return
        unit = units[i]
        seen_empty = False
        for t in range(teams):
            if free[t] < unit.size:
                continue
            if free[t] == team_size:  # empty teams are interchangeable: try one
                if seen_empty:
                    continue
                seen_empty = True
            groups[t].append(unit)
            free[t] -= unit.size
            sums[t] += unit.rating_sum
            place(i + 1)
            groups[t].pop()
            free[t] += unit.size
            sums[t] -= unit.rating_sum
            if best_spread == 0.0 and best_fair:
                return

    place(0)
    return best


def _greedy(units: list[Unit], teams: int, team_size: int) -> list[list[Unit]] | None:
    groups: list[list[Unit]] = [[] for _ in range(teams)]
    free = [team_size] * teams
    for unit in units:  # largest parties first, into the weakest team with room
        options = [t for t in range(teams) if free[t] >= unit.size]
        if not options:
            return None
        t = min(options, key=lambda k: (sum(u.rating_sum for u in groups[k]), -free[k]))
        groups[t].append(unit)
        free[t] -= unit.size
    if any(free):
        return None
    while _improve_once(groups):  # swap equal-sized units while that narrows the spread
        pass
    return groups


def _improve_once(groups: list[list[Unit]]) -> bool:
    """Make the first swap of two equal-sized units that narrows the spread; False if none."""
    current = team_spread(groups)
    for a, team_a in enumerate(groups):
        for team_b in groups[a + 1 :]:
            for i, ua in enumerate(team_a):
                for j, ub in enumerate(team_b):
                    if ua.size != ub.size or ua.rating_sum == ub.rating_sum:
                        continue
                    team_a[i], team_b[j] = ub, ua
                    if team_spread(groups) < current - 1e-9:
                        return True
                    team_a[i], team_b[j] = ua, ub
    return False
