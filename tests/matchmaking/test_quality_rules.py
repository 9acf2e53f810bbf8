"""Match quality rules of the pure algorithm: adaptive window starts, fair and balanced teams."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caroud.matchmaking.algorithm import acceptable, find_matches, ticket_windows
from caroud.matchmaking.density import (
    HISTORY_S,
    MIN_COUNT,
    ArrivalLog,
    Arrivals,
    density_half_width,
    start_window,
)
from caroud.matchmaking.models import PlayerEntry, QueueConfig, RatingWindow, Ticket
from caroud.matchmaking.teams import Unit, balance_teams, can_pack_fairly, is_fair

DUEL = QueueConfig("duel", 2, 1, (1,), RatingWindow(50, 10, 400, adaptive=0.7), 300, ("eu",), 100)
FIVES = QueueConfig(
    "fives",
    2,
    5,
    (1, 2, 3, 4, 5),
    RatingWindow(50, 10, 400),
    300,
    ("eu",),
    100,
    stack_size=4,
    team_balance=0.25,
)

_ids = itertools.count()


def ticket(rating: float | list[float], created: float = 0.0) -> Ticket:
    ratings = rating if isinstance(rating, list) else [rating]
    n = next(_ids)
    players = tuple(PlayerEntry(f"p{n}-{i}", r) for i, r in enumerate(ratings))
    return Ticket(f"t{n:05d}", "q", players, created)


def uniform(rate_per_point_s: float, lo: float = 1000, hi: float = 2000) -> Arrivals:
    """Arrivals spread evenly over [lo, hi] at ``rate_per_point_s`` for 100 s."""
    span = 100.0
    count = round(rate_per_point_s * (hi - lo) * span)
    step = (hi - lo) / count
    return Arrivals(tuple(lo + step * (i + 0.5) for i in range(count)), span, count)


# -- where windows start -------------------------------------------------------------------


def test_density_counts_tickets_per_point_per_second_near_a_rating() -> None:
    arrivals = Arrivals((1490.0, 1500.0, 1510.0, 1700.0), 10.0, 4)
    assert arrivals.rate_near(1500, 50) == pytest.approx(3 / (100 * 10))
    assert arrivals.rate_near(3000, 50) == 0
    assert Arrivals((), 10.0, 0).rate_near(1500, 50) == 0


def test_a_busy_queue_starts_windows_at_the_gap_worth_waiting_for() -> None:
    busy = uniform(0.25)
    rho = busy.rate_near(1500, density_half_width(DUEL))
    assert rho == pytest.approx(0.25, rel=0.01)
    # adaptive * sqrt(growth * others / rho): 0.7 * sqrt(10 * 1 / 0.25)
    assert start_window(DUEL, busy, 1500) == pytest.approx(0.7 * math.sqrt(10 / rho))
    assert start_window(DUEL, busy, 1500) < 5


def test_a_quiet_queue_starts_at_initial_and_never_wider() -> None:
    assert start_window(DUEL, uniform(0.001), 1500) == 50  # sqrt(10 / 0.001) * 0.7 = 70
    assert start_window(DUEL, None, 1500) == 50
    assert start_window(DUEL, uniform(0.25), 2900) == 50  # nobody arrives up there
    off = QueueConfig("off", 2, 1, (1,), RatingWindow(50, 10, 400), 300, ("eu",), 100)
    assert start_window(off, uniform(0.25), 1500) == 50
    still = QueueConfig("still", 2, 1, (1,), RatingWindow(50, 0, 50, 0.7), 300, ("eu",), 100)
    assert start_window(still, uniform(0.25), 1500) == 50  # no growth: no patience to trade


def test_team_queues_scale_the_start_by_the_tickets_still_needed() -> None:
    team = QueueConfig("team", 2, 5, (1,), RatingWindow(50, 10, 400, 0.7), 300, ("eu",), 100)
    busy = uniform(0.25)
    assert start_window(team, busy, 1500) == pytest.approx(
        start_window(DUEL, busy, 1500) * 3,
        rel=0.01,  # 9 others: sqrt(9) = 3 times
    )


def test_in_a_busy_queue_a_newcomer_waits_for_a_closer_partner() -> None:
    a, b = ticket(1500, created=10), ticket(1520, created=10)
    assert len(find_matches(DUEL, [a, b], now=10)) == 1  # no density known: 50 accepts 20
    assert find_matches(DUEL, [a, b], now=10, arrivals=uniform(0.25)) == []
    # ... until waiting has widened both windows past the gap (start ~4, +10 per s)
    assert len(find_matches(DUEL, [a, b], now=12, arrivals=uniform(0.25))) == 1


def test_arrival_log_needs_enough_history_and_forgets_old_arrivals() -> None:
    log = ArrivalLog()
    assert log.snapshot(0) is None
    for i in range(MIN_COUNT - 1):
        log.record(i * 0.001, 1500 + i, 1)
    assert log.snapshot(0.5) is None  # too few, too short
    log.record(0.49, 1400, 2)
    snap = log.snapshot(0.5)
    assert snap is not None and len(snap.ratings) == MIN_COUNT
    assert snap.span_s == pytest.approx(0.5)
    assert snap.ratings == tuple(sorted(snap.ratings))
    assert snap.mean_size == pytest.approx((MIN_COUNT + 1) / MIN_COUNT)
    later = log.snapshot(HISTORY_S + 0.0105)  # the first 11 arrivals are too old now
    assert later is not None and len(later.ratings) == MIN_COUNT - 11
    assert later.span_s == pytest.approx(HISTORY_S)
    log.record(HISTORY_S + 0.02, 1000, 1)  # a change is seen by the next snapshot
    newest = log.snapshot(HISTORY_S + 0.03)
    assert newest is not None and newest.ratings[0] == 1000


# -- fair teams ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sizes", "fair"),
    [
        ((5, 1, 1, 1, 1, 1), False),  # the stack can only face five solos
        ((5, 2, 1, 1, 1), True),
        ((4, 1, 1, 1, 1, 1, 1), False),  # 4+1 against five solos
        ((4, 2, 1, 1, 1, 1), True),
        ((5, 5), True),
        ((4, 4, 1, 1), True),
        ((3, 1, 1, 1, 1, 1, 1, 1), True),  # 3 is under the stack size
    ],
)
def test_can_pack_fairly(sizes: tuple[int, ...], fair: bool) -> None:
    assert can_pack_fairly(sizes, 2, 5, 4) is fair
    assert can_pack_fairly(sizes, 2, 5, 0)  # no stack rule: packing is all that counts


def test_balance_prefers_a_fair_split_over_a_closer_one() -> None:
    stack = Unit("stack", 4, 4 * 1500)
    units = [stack, Unit("duo", 2, 2 * 1400), *(Unit(f"s{i}", 1, 1550) for i in range(4))]
    teams = balance_teams(units, 2, 5, stack=4)
    assert teams is not None
    lookup = {u.id: u for u in units}
    groups = [[lookup[i] for i in team] for team in teams]
    assert is_fair(groups, 4)
    assert not any(all(u.size == 1 for u in g) for g in groups)


def test_a_stack_waits_for_a_party_rather_than_face_five_solos() -> None:
    stack = ticket([1500] * 5, created=0)
    solos = [ticket(1500 + i, created=0) for i in range(5)]
    assert find_matches(FIVES, [stack, *solos], now=1) == []
    duo = ticket([1502, 1502], created=1)
    [match] = find_matches(FIVES, [stack, *solos, duo], now=1)
    teams = [set(team) for team in match.teams]
    assert {stack.id} in teams
    assert duo.id in next(t for t in teams if stack.id not in t)


def test_a_stack_that_waited_until_its_window_opened_may_face_solos() -> None:
    stack = ticket([1500] * 5, created=0)
    solos = [ticket(1500 + i, created=35) for i in range(5)]
    [match] = find_matches(FIVES, [stack, *solos], now=35)
    assert set(match.ticket_ids) == {stack.id, *(s.id for s in solos)}


# -- balanced teams --------------------------------------------------------------------------


def _means(match_teams: tuple[tuple[str, ...], ...], lookup: dict[str, Ticket]) -> list[float]:
    return [sum(p.rating for t in team for p in lookup[t].players) / 5 for team in match_teams]


def test_a_member_is_swapped_for_a_ticket_that_balances_the_teams() -> None:
    # A stack at 1500 and a quartet at 1480 split 5 | 4+1: the solo decides the other
    # team's average. The solo closest to the anchor (1490) leaves the teams 18 apart;
    # swapping it for the one at 1580 makes them even.
    anchor = ticket([1500] * 5, created=0)
    quartet = ticket([1480] * 4, created=0)
    near = ticket(1490, created=0)
    far = ticket(1580, created=0)
    lookup = {t.id: t for t in (anchor, quartet, near, far)}
    [match] = find_matches(FIVES, [anchor, quartet, near, far], now=30)
    assert far.id in match.ticket_ids and near.id not in match.ticket_ids
    means = _means(match.teams, lookup)
    assert means[0] == pytest.approx(means[1])


def test_teams_too_far_apart_for_the_window_wait() -> None:
    # Two quintets 100 apart: teams 100 apart, over a quarter of a 250 window, waits;
    # once the window is fully open (400: a quarter is 100) the match forms.
    a, b = ticket([1500] * 5, created=0), ticket([1600] * 5, created=0)
    assert find_matches(FIVES, [a, b], now=20) == []
    assert len(find_matches(FIVES, [a, b], now=35)) == 1


def test_balance_is_never_asked_finer_than_a_quarter_of_the_maximum_window() -> None:
    # Quintets 20 apart, windows 50 + 2: a quarter of the window would be 13, but the
    # window counts as at least 100 (a quarter of 400), so 25 apart is balanced enough.
    a, b = ticket([1500] * 5, created=0), ticket([1520] * 5, created=0)
    assert len(find_matches(FIVES, [a, b], now=0.2)) == 1
    c, d = ticket([1500] * 5, created=0), ticket([1530] * 5, created=0)
    assert find_matches(FIVES, [c, d], now=0.2) == []


def test_a_last_resort_ticket_needs_only_fit_the_windows() -> None:
    # Half the maximum wait gone: fairness and balance yield (no starving on preferences).
    stack = ticket([1500] * 5, created=0)
    solos = [ticket(1700 + i, created=150) for i in range(5)]
    [match] = find_matches(FIVES, [stack, *solos], now=150)
    assert set(match.ticket_ids) == {stack.id, *(s.id for s in solos)}


# -- properties ------------------------------------------------------------------------------

party_tickets = st.lists(
    st.tuples(
        st.lists(st.floats(1200, 1800, allow_nan=False), min_size=1, max_size=5),
        st.floats(0, 60, allow_nan=False),
    ),
    max_size=24,
)


@given(party_tickets, st.sampled_from([None, 0.02, 0.3]))
@settings(max_examples=300, deadline=None)
def test_team_matches_fit_windows_pack_parties_fairly_and_stay_balanced(
    specs: list[tuple[list[float], float]], density: float | None
) -> None:
    queue = QueueConfig(
        "fives",
        2,
        5,
        (1, 2, 3, 4, 5),
        RatingWindow(50, 10, 400, adaptive=0.7),
        300,
        ("eu",),
        100,
        stack_size=4,
        team_balance=0.25,
    )
    now = 60.0
    arrivals = uniform(density) if density else None
    tickets = [ticket(r, created=c) for r, c in specs]
    lookup = {t.id: t for t in tickets}
    windows = dict(
        zip((t.id for t in tickets), ticket_windows(queue, tickets, now, arrivals), strict=True)
    )
    matches = find_matches(queue, tickets, now, arrivals)
    used = [t for m in matches for t in m.ticket_ids]
    assert len(used) == len(set(used)), "a ticket is in two matches"
    for m in matches:
        members = [lookup[t] for t in m.ticket_ids]
        ws = [windows[t.id] for t in members]
        assert acceptable(400, [t.rating for t in members], ws)
        # parties whole, teams full
        assert [sum(lookup[t].size for t in team) for team in m.teams] == [5, 5]
        units = [[Unit(t, lookup[t].size, 0) for t in team] for team in m.teams]
        big_open = any(t.size >= 4 and windows[t.id] >= 400 for t in members)
        assert big_open or is_fair(units, 4), "a stack faces solos though it could wait"
        means = _means(m.teams, lookup)
        limit = 400 if max(ws) >= 400 else min(ws)
        # judged against a window of at least a quarter of the maximum
        assert abs(means[0] - means[1]) <= 0.25 * max(limit, 100) + 1e-9
    assert find_matches(queue, list(reversed(tickets)), now, arrivals) == matches
