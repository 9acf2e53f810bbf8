"""``caroud bench quality``'s machinery: the simulation through the real store and worker,
its figures, and the independent starvation checks."""

from __future__ import annotations

import itertools

from caroud.bench.population import Scenario, make_trace
from caroud.bench.quality import (
    BEFORE_WAIT_P95_S,
    compare_with_before,
    run_scenario,
    simulate,
    verdicts,
)
from caroud.bench.starvation import Waiting, group_available, population_could_serve
from caroud.context import Context
from caroud.matchmaking.models import QueueConfig, RatingWindow

DUEL_20 = Scenario("t-duel", "duel", 20.0, 20.0, False, "test")
SQUAD_20 = Scenario("t-squad", "squad", 20.0, 20.0, True, "test")


def test_traces_are_deterministic_per_seed() -> None:
    assert make_trace(SQUAD_20, 1) == make_trace(SQUAD_20, 1)
    assert make_trace(SQUAD_20, 1) != make_trace(SQUAD_20, 2)
    trace = make_trace(SQUAD_20, 1)
    assert all(1 <= a.size <= 5 for a in trace) and any(a.size > 1 for a in trace)
    assert all(b.at >= a.at for a, b in itertools.pairwise(trace))
    assert 300 <= len(trace) <= 500  # about 20/s for 20 s


def test_a_simulated_duel_queue_drains_and_cannot_beat_the_optimum(ctx: Context) -> None:
    figures = run_scenario(ctx, DUEL_20, 1, ctx.settings)
    trace = make_trace(DUEL_20, 1)
    assert figures["tickets"] == len(trace)
    assert 2 * int(figures["matches"]) + int(figures["timed_out"]) == len(trace)
    assert float(figures["cost_ratio"]) >= 1 - 1e-9  # the optimum knows the future
    assert float(figures["cost_ratio_with_waits"]) >= float(figures["cost_ratio"])
    assert float(figures["rating_gap_mean"]) >= float(figures["optimum_rating_gap_mean"]) * 0.5
    assert figures["starved"] == 0
    assert float(figures["wait_s_p95"]) >= float(figures["wait_s_p50"]) >= 0


def test_a_simulated_team_queue_is_the_same_every_run(ctx: Context) -> None:
    queue = ctx.queues.get("squad")
    trace = make_trace(SQUAD_20, 3)
    first = simulate(ctx.matchmaking, queue, SQUAD_20, trace, 3, 0.05)
    again = simulate(ctx.matchmaking, queue, SQUAD_20, trace, 4, 0.05)  # other ids
    assert [m.teams for m in first.matches] == [m.teams for m in again.matches]
    assert first.timed_out == again.timed_out
    players = sum(trace[i].size for m in first.matches for team in m.teams for i in team)
    assert players == 10 * len(first.matches)
    figures = run_scenario(ctx, SQUAD_20, 5, ctx.settings)
    assert 0 <= float(figures["pwin_deviation_mean"]) < 0.5
    assert "wait_party5_p95_s" in figures and "cost_ratio" not in figures


def test_verdicts_hold_figures_to_the_targets() -> None:
    scenarios = {
        "1v1-low": {"cost_ratio": 1.3, "starved": 0, "wait_s_p95": 10.0},
        "x": {"pwin_deviation_mean": 0.01, "stack_vs_solos_pct": 2.0},
    }
    assert verdicts(scenarios) == {  # type: ignore[arg-type]
        "1v1-low": {"cost_ratio": False, "starved": True},
        "x": {"pwin_deviation_mean": True, "stack_vs_solos_pct": False},
    }
    before = compare_with_before("1v1-low", scenarios["1v1-low"], seed=1)  # type: ignore[arg-type]
    assert before["wait_p95_vs_before"] == round(10.0 / BEFORE_WAIT_P95_S["1v1-low"], 3)
    assert verdicts({"1v1-low": before}) == {"1v1-low": {"wait_p95_vs_before": True}}
    assert compare_with_before("1v1-low", scenarios["1v1-low"], seed=2) == {}  # type: ignore[arg-type]


FIVES = QueueConfig("fives", 2, 5, (1, 2, 3, 4, 5), RatingWindow(50, 10, 400), 300, ("eu",), 1)


def test_group_available_needs_every_members_window_to_cover_the_spread() -> None:
    me = Waiting(1500, 5, 100)
    assert group_available(FIVES, me, [Waiting(1550, 5, 60)])
    assert not group_available(FIVES, me, [Waiting(1550, 5, 40)])  # its window is too narrow
    assert not group_available(FIVES, me, [Waiting(1650, 5, 400)])  # mine is
    solos = [Waiting(1500 + i, 1, 50) for i in range(4)]
    assert not group_available(FIVES, me, solos)  # 4 players short of 5
    assert group_available(FIVES, me, [*solos, Waiting(1520, 1, 50)])
    assert not group_available(FIVES, Waiting(1500, 4, 100), [Waiting(1500, 4, 100), *solos[:1]])
    # 4 + 4 + 1 + 1 fills two teams of five: 4+1 | 4+1
    assert group_available(FIVES, Waiting(1500, 4, 100), [Waiting(1500, 4, 100), *solos[:2]])


def test_population_could_serve_counts_players_near_in_rating_and_time() -> None:
    arrived = [0.0, 10.0, 20.0, 1000.0]
    ratings = [1500.0, 1600.0, 2500.0, 1500.0]
    duel = QueueConfig("duel", 2, 1, (1,), RatingWindow(50, 10, 400), 300, ("eu",), 1)
    assert population_could_serve(duel, arrived, ratings, [1, 1, 1, 1]) == [
        True,  # 1600 came 10 s later
        True,
        False,  # nobody within 400 points
        False,  # nobody within 300 s
    ]
    assert population_could_serve(FIVES, arrived, ratings, [5, 5, 1, 1]) == [
        True,
        True,
        False,
        False,
    ]


def test_population_could_serve_does_not_count_the_ticket_itself() -> None:
    duel = QueueConfig("duel", 2, 1, (1,), RatingWindow(50, 10, 400), 300, ("eu",), 1)
    assert population_could_serve(duel, [5.0], [1500.0], [1]) == [False]
    assert population_could_serve(FIVES, [5.0, 6.0], [1500.0, 1500.0], [5, 5]) == [True, True]
