"""Elo: the formula, K by games played, team games against the other team's average."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caroud.ratings import (
    Rated,
    expected_score,
    k_factor,
    rating_delta,
    team_deltas,
    team_scores,
)

ratings = st.floats(min_value=0, max_value=4000, allow_nan=False)
games = st.integers(min_value=0, max_value=500)
players = st.builds(Rated, ratings, games)
results = st.sampled_from([0, 1, None])


def test_expected_score_formula() -> None:
    assert expected_score(1500, 1500) == 0.5
    assert expected_score(1900, 1500) == pytest.approx(1 / (1 + 10 ** (-1)))
    assert expected_score(1500, 1900) == pytest.approx(1 / (1 + 10**1))


def test_k_is_40_below_30_games_then_20() -> None:
    assert [k_factor(g) for g in (0, 29, 30, 31, 1000)] == [40, 40, 20, 20, 20]
    assert rating_delta(1500, 1500, 1.0, 29) == 20.0
    assert rating_delta(1500, 1500, 1.0, 30) == 10.0


def test_team_game_rates_each_player_against_the_other_teams_average() -> None:
    strong, weak = Rated(1800, 50), Rated(1200, 50)
    opponents = [Rated(1500, 50), Rated(1500, 50)]
    [[d_strong, d_weak], [d_a, d_b]] = team_deltas([[strong, weak], opponents], winner=1)
    assert d_strong == pytest.approx(20 * (0 - expected_score(1800, 1500)))
    assert d_weak == pytest.approx(20 * (0 - expected_score(1200, 1500)))
    # the opponents face the average of 1800 and 1200: an even game
    assert d_a == d_b == pytest.approx(20 * (1 - 0.5))
    assert d_strong < d_weak < 0  # the strong player was expected to win more


def test_free_for_all_uses_everyone_elses_average() -> None:
    field = [[Rated(1500, 0)], [Rated(1600, 0)], [Rated(1400, 0)]]
    deltas = team_deltas(field, winner=0)
    assert deltas[0][0] == pytest.approx(40 * (1 - expected_score(1500, 1500)))
    assert deltas[1][0] == pytest.approx(40 * (0 - expected_score(1600, 1450)))
    assert deltas[2][0] == pytest.approx(40 * (0 - expected_score(1400, 1550)))


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="two teams"):
        team_deltas([[Rated(1500, 0)]], None)
    with pytest.raises(ValueError, match="two teams"):
        team_deltas([[Rated(1500, 0)], []], None)
    with pytest.raises(ValueError, match="not a team index"):
        team_scores(2, 2)


@given(ratings, ratings, games, results)
def test_one_v_one_is_zero_sum_for_equal_k(a: float, b: float, g: int, winner: int | None) -> None:
    [[da], [db]] = team_deltas([[Rated(a, g)], [Rated(b, g)]], winner)
    assert da + db == pytest.approx(0, abs=1e-9)


@given(ratings, ratings, games, st.integers(min_value=1, max_value=5), results)
def test_even_teams_of_equal_players_are_zero_sum(
    a: float, b: float, g: int, size: int, winner: int | None
) -> None:
    teams = [[Rated(a, g)] * size, [Rated(b, g)] * size]
    deltas = team_deltas(teams, winner)
    assert sum(deltas[0]) + sum(deltas[1]) == pytest.approx(0, abs=1e-9)


@given(players, players, results)
def test_symmetric_swapping_the_players_swaps_the_changes(
    a: Rated, b: Rated, winner: int | None
) -> None:
    swapped = None if winner is None else 1 - winner
    [[da], [db]] = team_deltas([[a], [b]], winner)
    [[db2], [da2]] = team_deltas([[b], [a]], swapped)
    assert (da, db) == (pytest.approx(da2), pytest.approx(db2))


@given(st.lists(st.lists(players, min_size=1, max_size=5), min_size=2, max_size=8), results)
def test_bounded_by_k_and_in_the_direction_of_the_result(
    teams: list[list[Rated]], winner: int | None
) -> None:
    deltas = team_deltas(teams, winner)
    for i, (team, changes) in enumerate(zip(teams, deltas, strict=True)):
        for player, change in zip(team, changes, strict=True):
            assert math.isfinite(change)
            assert abs(change) <= k_factor(player.games_played)
            if winner == i:
                assert change >= 0
            elif winner is not None:
                assert change <= 0


@given(ratings, ratings, games)
def test_a_draw_moves_ratings_toward_each_other(a: float, b: float, g: int) -> None:
    [[da], [db]] = team_deltas([[Rated(a, g)], [Rated(b, g)]], None)
    if a < b:
        assert da >= 0 >= db
    elif a > b:
        assert da <= 0 <= db
    else:
        assert da == db == 0
