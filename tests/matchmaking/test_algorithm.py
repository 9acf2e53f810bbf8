"""The pure matching algorithm: windows, teams with parties, regions, fairness, exactly-once."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from caroud.matchmaking.algorithm import acceptable_regions, find_matches
from caroud.matchmaking.models import PlayerEntry, QueueConfig, RatingWindow, Ticket
from caroud.matchmaking.teams import Unit, balance_teams, can_pack, team_spread

DUEL = QueueConfig("duel", 2, 1, (1,), RatingWindow(50, 10, 400), 60, ("eu", "us"), 100)
SQUAD = QueueConfig(
    "squad", 2, 5, (1, 2, 3, 4, 5), RatingWindow(100, 20, 600), 60, ("eu", "us"), 100
)
FFA = QueueConfig("ffa", 4, 1, (1,), RatingWindow(100, 0, 100), 60, ("eu",), 100)

_ids = itertools.count()


def ticket(
    rating: float | list[float], created: float = 0.0, latencies: dict[str, float] | None = None
) -> Ticket:
    ratings = rating if isinstance(rating, list) else [rating]
    n = next(_ids)
    players = tuple(PlayerEntry(f"p{n}-{i}", r) for i, r in enumerate(ratings))
    return Ticket(f"t{n}", "q", players, created, latencies or {})


def by_id(tickets: list[Ticket]) -> dict[str, Ticket]:
    return {t.id: t for t in tickets}


# -- the rating window --------------------------------------------------------------------


def test_window_widens_with_waiting_up_to_its_maximum() -> None:
    window = RatingWindow(50, 10, 400)
    assert window.at(0) == 50
    assert window.at(10) == 150
    assert window.at(1000) == 400


def test_a_gap_too_wide_now_matches_once_both_have_waited() -> None:
    a, b = ticket(1500, created=0), ticket(1620, created=0)
    assert find_matches(DUEL, [a, b], now=5) == []  # window 100 < gap 120
    [match] = find_matches(DUEL, [a, b], now=8)  # window 130 >= 120
    assert set(match.ticket_ids) == {a.id, b.id}
    assert match.spread == 120


def test_every_window_must_accept_the_spread_until_one_is_fully_open() -> None:
    old, new = ticket(1500, created=0), ticket(1620, created=20)
    # the old ticket accepts 250, the new one only 50: the newcomer vetoes
    assert find_matches(DUEL, [old, new], now=20) == []
    assert len(find_matches(DUEL, [old, new], now=27)) == 1  # new one's window is now 120


def test_a_newcomer_cannot_veto_a_ticket_whose_window_is_fully_open() -> None:
    # After 35 s the old ticket's window is the maximum (400): a brand-new ticket 390
    # points away is matched at once, though its own window is 50 (no starvation at
    # the rating extremes, where newcomers with narrow windows are all there is).
    old, new = ticket(2900, created=0), ticket(2510, created=35)
    [match] = find_matches(DUEL, [old, new], now=35)
    assert set(match.ticket_ids) == {old.id, new.id}
    too_far = ticket(2490, created=35)
    assert find_matches(DUEL, [old, too_far], now=35) == []  # 410 > the maximum


def test_closest_rating_is_preferred() -> None:
    a, far, near = ticket(1500), ticket(1540), ticket(1510)
    [match] = find_matches(DUEL, [a, far, near], now=0)
    assert set(match.ticket_ids) == {a.id, near.id}


# -- fairness -------------------------------------------------------------------------------


def test_oldest_ticket_chooses_first_and_does_not_starve() -> None:
    # The old ticket sits between two newer ones; each newer one is closer to the other
    # newer one's side, but the oldest picks its partner first.
    old = ticket(1500, created=0)
    newer = [ticket(1490, created=10), ticket(1511, created=11), ticket(1520, created=12)]
    matches = find_matches(DUEL, [*newer, old], now=12)
    partner = next(m for m in matches if old.id in m.ticket_ids)
    assert set(partner.ticket_ids) == {old.id, newer[0].id}


# -- teams and parties -------------------------------------------------------------------


def test_squad_teams_are_full_balanced_and_keep_parties_whole() -> None:
    party3 = ticket([1600, 1620, 1580])
    party2 = ticket([1500, 1520])
    solos = [ticket(r) for r in (1550, 1560, 1540, 1530, 1570)]
    tickets = [party3, party2, *solos]
    [match] = find_matches(SQUAD, tickets, now=0)
    lookup = by_id(tickets)
    sizes = [sum(lookup[t].size for t in team) for team in match.teams]
    assert sizes == [5, 5]
    assert all(len(team) == len(set(team)) for team in match.teams)
    sums = [sum(sum(p.rating for p in lookup[t].players) for t in team) for team in match.teams]
    # best split: {3-party + 2 solos} vs {2-party + 3 solos}; brute force agrees
    best = min(
        abs(sum(sum(p.rating for p in lookup[t].players) for t in combo) * 2 - sum(sums))
        for combo in _team_candidates(tickets, 5)
    )
    assert abs(sums[0] - sums[1]) == best


def _team_candidates(tickets: list[Ticket], size: int) -> list[tuple[str, ...]]:
    out = []
    for r in range(1, len(tickets) + 1):
        for combo in itertools.combinations(tickets, r):
            if sum(t.size for t in combo) == size:
                out.append(tuple(t.id for t in combo))
    return out


def test_parties_that_cannot_fill_teams_exactly_are_not_matched() -> None:
    # 4 + 4 + 2 = 10 players, but no split gives two teams of five.
    tickets = [ticket([1500] * 4), ticket([1500] * 4), ticket([1500] * 2)]
    assert find_matches(SQUAD, tickets, now=0) == []
    solos = [ticket(1500), ticket(1500)]
    [match] = find_matches(SQUAD, [*tickets, *solos], now=0)
    # the two 4-parties each take a solo; the pair would not fit and is left waiting
    assert sorted(match.ticket_ids) == sorted(
        [tickets[0].id, tickets[1].id, *(t.id for t in solos)]
    )
    assert [len(team) for team in match.teams] == [2, 2]


def test_free_for_all_makes_one_team_per_player() -> None:
    tickets = [ticket(1500 + i) for i in range(5)]
    [match] = find_matches(FFA, tickets, now=0)
    assert len(match.teams) == 4 and all(len(team) == 1 for team in match.teams)


def test_can_pack_and_balance_teams_agree_on_feasibility() -> None:
    assert can_pack((3, 2), 2, 5)
    assert not can_pack((4, 4, 2), 2, 5)
    assert not can_pack((6,), 2, 5)
    units = [Unit("a", 4, 4000), Unit("b", 4, 4000), Unit("c", 2, 2000)]
    assert balance_teams(units, 2, 5) is None


@given(
    st.lists(
        st.tuples(st.integers(1, 3), st.floats(0, 3000, allow_nan=False)), min_size=1, max_size=7
    )
)
@settings(max_examples=150, deadline=None)
def test_balance_teams_is_optimal(parties: list[tuple[int, float]]) -> None:
    team_size = 4
    units = [Unit(f"u{i}", size, rating * size) for i, (size, rating) in enumerate(parties)]
    total = sum(u.size for u in units)
    if total % team_size or not 2 <= total // team_size <= 3:
        return
    teams = total // team_size
    result = balance_teams(units, teams, team_size)
    lookup = {u.id: u for u in units}
    brute = _brute_force_spread(units, teams, team_size)
    if brute is None:
        assert result is None
        return
    assert result is not None
    groups = [[lookup[i] for i in team] for team in result]
    assert all(sum(u.size for u in g) == team_size for g in groups)
    assert sorted(i for team in result for i in team) == sorted(lookup)
    assert team_spread(groups) <= brute + 1e-6


def _brute_force_spread(units: list[Unit], teams: int, team_size: int) -> float | None:
    best: float | None = None
    for assignment in itertools.product(range(teams), repeat=len(units)):
        sizes = [0] * teams
        sums = [0.0] * teams
        for unit, t in zip(units, assignment, strict=True):
            sizes[t] += unit.size
            sums[t] += unit.rating_sum
        if all(s == team_size for s in sizes):
            spread = max(sums) - min(sums)
            best = spread if best is None else min(best, spread)
    return best


# -- regions --------------------------------------------------------------------------------


def test_region_is_one_where_every_player_is_under_the_limit() -> None:
    a = ticket(1500, latencies={"eu": 30, "us": 150})
    b = ticket(1500, latencies={"eu": 90, "us": 20})
    [match] = find_matches(DUEL, [a, b], now=0)
    assert match.region == "eu"


def test_no_shared_region_means_no_match() -> None:
    a = ticket(1500, latencies={"eu": 30, "us": 150})
    b = ticket(1500, latencies={"eu": 150, "us": 20})
    assert find_matches(DUEL, [a, b], now=0) == []


def test_region_with_lowest_worst_latency_is_chosen() -> None:
    a = ticket(1500, latencies={"eu": 80, "us": 40})
    b = ticket(1500)  # no latencies: any region
    [match] = find_matches(DUEL, [a, b], now=0)
    assert match.region == "us"


def test_tickets_without_latencies_accept_every_region() -> None:
    assert acceptable_regions(DUEL, ticket(1500)) == {"eu", "us"}
    assert acceptable_regions(DUEL, ticket(1500, latencies={"eu": 101})) == frozenset()


# -- properties of whole runs ------------------------------------------------------------


def fits(queue: QueueConfig, members: list[Ticket], now: float) -> bool:
    """The acceptance rule, written out: the spread fits every member's window, or one
    member's window is fully open and the spread fits the maximum (no adaptive start)."""
    spread = max(t.rating for t in members) - min(t.rating for t in members)
    windows = [queue.window.at(t.wait_s(now)) for t in members]
    if max(windows) >= queue.window.maximum:
        return spread <= queue.window.maximum
    return spread <= min(windows)


tickets_1v1 = st.lists(
    st.tuples(
        st.floats(0, 3000, allow_nan=False),
        st.floats(0, 60, allow_nan=False),
        st.sampled_from([None, {"eu": 50.0}, {"us": 50.0}, {"eu": 50.0, "us": 50.0}]),
    ),
    max_size=60,
)


@given(tickets_1v1, st.floats(0, 100, allow_nan=False))
@settings(max_examples=200, deadline=None)
def test_1v1_matches_are_valid_disjoint_and_maximal(
    specs: list[tuple[float, float, dict[str, float] | None]], now: float
) -> None:
    tickets = [ticket(r, created=c, latencies=lat) for r, c, lat in specs]
    lookup = by_id(tickets)
    matches = find_matches(DUEL, tickets, now=now)
    used = [t for m in matches for t in m.ticket_ids]
    assert len(used) == len(set(used)), "a ticket is in two matches"
    for m in matches:
        members = [lookup[t] for t in m.ticket_ids]
        assert fits(DUEL, members, now)
        assert all(m.region in acceptable_regions(DUEL, t) for t in members)
    left = [t for t in tickets if t.id not in set(used)]
    for a, b in itertools.combinations(left, 2):
        compatible = fits(DUEL, [a, b], now) and (
            acceptable_regions(DUEL, a) & acceptable_regions(DUEL, b)
        )
        assert not compatible, f"{a.id} and {b.id} could have been matched"


squad_tickets = st.lists(
    st.tuples(
        st.lists(st.floats(1000, 2000, allow_nan=False), min_size=1, max_size=5),
        st.floats(0, 30, allow_nan=False),
    ),
    max_size=30,
)


@given(squad_tickets)
@settings(max_examples=150, deadline=None)
def test_team_matches_are_full_valid_and_disjoint(specs: list[tuple[list[float], float]]) -> None:
    tickets = [ticket(r, created=c) for r, c in specs]
    lookup = by_id(tickets)
    now = 30.0
    matches = find_matches(SQUAD, tickets, now=now)
    used = [t for m in matches for t in m.ticket_ids]
    assert len(used) == len(set(used))
    for m in matches:
        assert len(m.teams) == 2
        assert [sum(lookup[t].size for t in team) for team in m.teams] == [5, 5]
        members = [lookup[t] for t in m.ticket_ids]
        spread = max(t.rating for t in members) - min(t.rating for t in members)
        assert abs(spread - m.spread) < 1e-6
        assert fits(SQUAD, members, now)


@given(tickets_1v1)
@settings(max_examples=100, deadline=None)
def test_algorithm_is_deterministic_and_order_independent(
    specs: list[tuple[float, float, dict[str, float] | None]],
) -> None:
    tickets = [ticket(r, created=c, latencies=lat) for r, c, lat in specs]
    first = find_matches(DUEL, tickets, now=50)
    again = find_matches(DUEL, list(reversed(tickets)), now=50)
    assert first == again
