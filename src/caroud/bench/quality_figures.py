"""The figures of ``caroud bench quality`` from a simulated run: pure, no Redis.

Input: the queue, the trace (who arrived when) and the outcome (which tickets
were matched together, in which teams, when; which timed out, when). Output: a
flat dict of figures, each named for what it measures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from caroud.bench.optimum import optimum, pair_cost
from caroud.bench.population import SKILL_MEAN, SKILL_SD, Arrival, Scenario
from caroud.bench.starvation import Waiting, group_available, population_could_serve
from caroud.matchmaking.models import QueueConfig

Figures = dict[str, float | int | str]

STACK = 4
"""A party of this many or more against a team of solos is a *stack against solos*."""
STEADY_MIDDLE = (0.2, 0.8)
"""The middle of a trace, as fractions of its duration: the steady-state cost window."""
STARVATION_CHECK_S = 1.0
"""How often, over a timed-out ticket's wait, the queue is searched for a group it had."""


@dataclass(frozen=True, slots=True)
class PlayedMatch:
    """A match of the run: its teams (trace indices) and when it formed (s from the start)."""

    teams: tuple[tuple[int, ...], ...]
    at: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the run did with every ticket of the trace."""

    matches: list[PlayedMatch]
    left_at: list[float]
    """Per ticket: when it left the queue (matched, or timed out)."""
    timed_out: list[bool]


def figures(
    queue: QueueConfig, scenario: Scenario, trace: Sequence[Arrival], out: Outcome
) -> Figures:
    """Every figure of one scenario's run."""
    waits = [left - a.at for a, left in zip(trace, out.left_at, strict=True)]
    result: Figures = {
        "tickets": len(trace),
        "players": sum(a.size for a in trace),
        "matches": len(out.matches),
        "timed_out": sum(out.timed_out),
    }
    spreads = [_spread(trace, m) for m in out.matches]
    result |= _stats("rating_gap" if queue.team_size == 1 else "rating_spread", spreads)
    result |= _stats("wait_s", waits, (0.5, 0.95))
    result["wait_max_s"] = round(max(waits, default=0.0), 2)
    result |= _timeouts(queue, scenario, trace, out)
    result |= _by_band(trace, waits)
    if scenario.parties:
        result |= _by_party_size(trace, waits)
    if queue.team_size == 1 and queue.teams == 2:
        result |= _versus_optimum(queue, scenario, trace, out)
    else:
        result |= _teams(trace, out)
    return result


def _spread(trace: Sequence[Arrival], match: PlayedMatch) -> float:
    ratings = [trace[i].rating for team in match.teams for i in team]
    return max(ratings) - min(ratings)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(math.ceil(fraction * len(ordered)) - 1, 0))]


def _stats(name: str, values: Sequence[float], points: Sequence[float] = (0.95,)) -> Figures:
    out: Figures = {f"{name}_mean": round(sum(values) / len(values), 2) if values else math.nan}
    for p in points:
        out[f"{name}_p{round(p * 100)}"] = round(percentile(values, p), 2)
    return out


def _timeouts(
    queue: QueueConfig, scenario: Scenario, trace: Sequence[Arrival], out: Outcome
) -> Figures:
    """Steady-state time-outs among tickets the population could serve, and starvation.

    The tail of the trace is left out: tickets that arrived in its last ``max_wait_s``
    seconds (its second half, if it is shorter than twice that) had fewer arrivals
    after them than a queue that keeps running gives. A ticket that waited for a
    better group while one was there is only a loss if no better one came: in the
    tail, where arrivals stop, none can, so starvation there is counted apart.
    """
    tail_from = scenario.duration_s - min(queue.max_wait_s, scenario.duration_s / 2)
    servable = population_could_serve(
        queue, [a.at for a in trace], [a.rating for a in trace], [a.size for a in trace]
    )
    steady = [i for i, a in enumerate(trace) if a.at <= tail_from and servable[i]]
    steady_out = sum(1 for i in steady if out.timed_out[i])
    starved = [i for i, gone in enumerate(out.timed_out) if gone and _starved(queue, trace, out, i)]
    in_tail = sum(1 for i in starved if trace[i].at > tail_from)
    return {
        "steady_tickets": len(steady),
        "steady_timed_out": steady_out,
        "steady_timeout_pct": round(100 * steady_out / len(steady), 3) if steady else 0.0,
        "starved": len(starved) - in_tail,
        "starved_in_tail": in_tail,
    }


def _starved(queue: QueueConfig, trace: Sequence[Arrival], out: Outcome, index: int) -> bool:
    """Whether, while ``index`` waited, the queue held a group every member would accept."""
    me = trace[index]
    reach = queue.window.maximum
    near = [
        j
        for j, a in enumerate(trace)
        if j != index
        and abs(a.rating - me.rating) <= reach
        and a.at < out.left_at[index]
        and out.left_at[j] > me.at
    ]
    t = me.at
    while t < out.left_at[index]:
        others = [
            Waiting(trace[j].rating, trace[j].size, queue.window.at(t - trace[j].at))
            for j in near
            if trace[j].at <= t < out.left_at[j]
        ]
        if group_available(queue, Waiting(me.rating, me.size, queue.window.at(t - me.at)), others):
            return True
        t += STARVATION_CHECK_S
    return False


BANDS = (("centre", 0.0, 1.0), ("shoulders", 1.0, 2.0), ("tails", 2.0, math.inf))
"""Rating bands, in standard deviations of skill from the mean."""


def _by_band(trace: Sequence[Arrival], waits: Sequence[float]) -> Figures:
    out: Figures = {}
    for name, lo, hi in BANDS:
        band = [
            w
            for a, w in zip(trace, waits, strict=True)
            if lo <= abs(a.rating - SKILL_MEAN) / SKILL_SD < hi
        ]
        out[f"wait_{name}_n"] = len(band)
        out[f"wait_{name}_p50_s"] = round(percentile(band, 0.5), 2)
        out[f"wait_{name}_p95_s"] = round(percentile(band, 0.95), 2)
    return out


def _by_party_size(trace: Sequence[Arrival], waits: Sequence[float]) -> Figures:
    out: Figures = {}
    for size in sorted({a.size for a in trace}):
        of_size = [w for a, w in zip(trace, waits, strict=True) if a.size == size]
        out[f"wait_party{size}_p50_s"] = round(percentile(of_size, 0.5), 2)
        out[f"wait_party{size}_p95_s"] = round(percentile(of_size, 0.95), 2)
    return out


def _teams(trace: Sequence[Arrival], out: Outcome) -> Figures:
    """Balance of team matches: Elo win chance from team mean ratings, stacks against solos."""
    deviations, gaps, stacked = [], [], 0
    for m in out.matches:
        means = [
            sum(r for i in team for r in trace[i].ratings) / sum(trace[i].size for i in team)
            for team in m.teams
        ]
        if len(means) == 2:
            p_win = 1 / (1 + 10 ** ((means[1] - means[0]) / 400))
            deviations.append(abs(p_win - 0.5))
        gaps.append(max(means) - min(means))
        big = [any(trace[i].size >= STACK for i in team) for team in m.teams]
        solos = [all(trace[i].size == 1 for i in team) for team in m.teams]
        stacked += any(big) and any(s for s, b in zip(solos, big, strict=True) if not b)
    return {
        "pwin_deviation_mean": round(sum(deviations) / len(deviations), 4) if deviations else 0.0,
        "pwin_deviation_p95": round(percentile(deviations, 0.95), 4),
        "team_gap_mean": round(sum(gaps) / len(gaps), 2) if gaps else 0.0,
        "team_gap_p95": round(percentile(gaps, 0.95), 2),
        "stack_vs_solos_pct": round(100 * stacked / len(out.matches), 2) if out.matches else 0.0,
    }


def _versus_optimum(
    queue: QueueConfig, scenario: Scenario, trace: Sequence[Arrival], out: Outcome
) -> Figures:
    """The run's total cost and the offline optimum's on the same arrivals.

    ``cost_ratio`` prices a pair as the optimum does (gap plus ``growth`` times the
    time between the two arrivals), an unmatched ticket at the window's maximum;
    ``cost_ratio_with_waits`` prices the waits the run really imposed (both
    tickets' waits until the match formed), of which the first is the lower bound.
    ``cost_ratio_steady`` counts only the tickets that arrived in the middle of the
    trace (:data:`STEADY_MIDDLE`), each carrying half its pair's cost: at the start
    the worker does not know the density yet, and at the end arrivals stop, which
    only the optimum, knowing the future, plans for. ``optimum_wait_p95_s`` is the p95
    wait the optimum itself imposes even if every match formed the moment its later
    ticket arrived: a matcher close to the optimum's cost cannot wait much less.
    """
    growth, maximum = queue.window.growth_per_s, queue.window.maximum
    share = [maximum if gone else 0.0 for gone in out.timed_out]
    waited = maximum * sum(out.timed_out)
    for m in out.matches:
        (a,), (b,) = m.teams
        cost = pair_cost(trace[a].rating, trace[b].rating, trace[a].at, trace[b].at, growth)
        share[a] = share[b] = cost / 2
        gap = abs(trace[a].rating - trace[b].rating)
        waited += gap + growth * ((m.at - trace[a].at) + (m.at - trace[b].at))
    best = optimum([a.rating for a in trace], [a.at for a in trace], growth, maximum)
    best_share = [maximum] * len(trace)
    for i, j in best.pairs:
        best_share[i] = best_share[j] = (
            pair_cost(trace[i].rating, trace[j].rating, trace[i].at, trace[j].at, growth) / 2
        )
    # the optimum's own waits, if each match formed the moment its later ticket arrived
    least_waits = [queue.max_wait_s] * len(trace)
    for i, j in best.pairs:
        first, last = sorted((i, j), key=lambda k: trace[k].at)
        least_waits[first], least_waits[last] = trace[last].at - trace[first].at, 0.0
    lo, hi = (f * scenario.duration_s for f in STEADY_MIDDLE)
    middle = [i for i, a in enumerate(trace) if lo <= a.at <= hi]
    best_gaps = [abs(trace[i].rating - trace[j].rating) for i, j in best.pairs]
    return {
        "cost_ratio": _ratio(sum(share), best.cost),
        "cost_ratio_steady": _ratio(
            sum(share[i] for i in middle), sum(best_share[i] for i in middle)
        ),
        "cost_ratio_with_waits": _ratio(waited, best.cost),
        "optimum_rating_gap_mean": round(sum(best_gaps) / len(best_gaps), 2)
        if best_gaps
        else math.nan,
        "optimum_unmatched": len(best.unmatched),
        "optimum_wait_p95_s": round(percentile(least_waits, 0.95), 2),
    }


def _ratio(value: float, best: float) -> float:
    return round(value / best, 4) if best else math.nan
