"""The matching algorithm: pure, deterministic, no Redis, no clock (``now`` is passed in).

Tickets are taken oldest first. Each one, as the *anchor*, gathers the closest
tickets in rating (walking outward on both sides of a rating-sorted list) that

* keep the group's rating spread within every member's current window
  (``window.at(wait)``, widening with waiting time),
* share at least one region where each has latency under the queue's limit,
* still pack into the queue's teams with every party kept whole,

until the group has exactly ``teams x team_size`` players. The group is then
split into balanced teams (:mod:`caroud.matchmaking.teams`). An anchor that
cannot complete a group stays available to newer anchors, whose narrower
windows may still accept it. Because old tickets choose first, a ticket never
starves behind newer ones near its rating. A ticket's rating is the mean of its
players' ratings; the spread is between tickets' ratings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from caroud.matchmaking.models import ProposedMatch, QueueConfig, Ticket
from caroud.matchmaking.teams import Unit, balance_teams, can_pack

DEFAULT_MAX_SCAN = 256
"""How many candidates one anchor examines at most: bounds a cycle's work on a hostile pool."""


def acceptable_regions(queue: QueueConfig, ticket: Ticket) -> frozenset[str]:
    """The queue's regions where ``ticket`` may play: all of them if it sent no latencies."""
    if not ticket.latencies:
        return frozenset(queue.regions)
    limit = queue.max_latency_ms
    return frozenset(
        r for r in queue.regions if (ms := ticket.latencies.get(r)) is not None and ms <= limit
    )


def rank_regions(
    queue: QueueConfig, regions: frozenset[str], tickets: Sequence[Ticket]
) -> tuple[str, ...]:
    """``regions`` best first: lowest worst latency, ties in the queue's order."""
    ordered = [r for r in queue.regions if r in regions]
    if not any(t.latencies for t in tickets):
        return tuple(ordered)

    def worst(region: str) -> float:
        return max((t.latencies.get(region, 0.0) for t in tickets), default=0.0)

    return tuple(sorted(ordered, key=worst))  # sorted() is stable: ties keep queue order


def find_matches(
    queue: QueueConfig,
    tickets: Iterable[Ticket],
    now: float,
    max_scan: int = DEFAULT_MAX_SCAN,
) -> list[ProposedMatch]:
    """Propose disjoint matches from the queued ``tickets`` of ``queue`` at time ``now``."""
    pool = sorted(tickets, key=lambda t: (t.created_at, t.id))
    if not pool:
        return []
    arrays = _Pool(queue, pool, now)
    taken = [False] * len(pool)
    matches: list[ProposedMatch] = []
    for anchor in range(len(pool)):
        if taken[anchor] or not arrays.regions[anchor] or arrays.sizes[anchor] > arrays.need:
            continue
        group = arrays.gather(anchor, max_scan)
        if group is None:
            continue
        members, shared_regions = group
        units = [
            Unit(pool[i].id, pool[i].size, sum(p.rating for p in pool[i].players)) for i in members
        ]
        teams = balance_teams(units, queue.teams, queue.team_size)
        if teams is None:  # cannot happen once can_pack held for the full group
            continue
        chosen = [pool[i] for i in members]
        spread = max(arrays.ratings[i] for i in members) - min(arrays.ratings[i] for i in members)
        ranked = rank_regions(queue, shared_regions, chosen)
        matches.append(ProposedMatch(teams=teams, region=ranked[0], spread=spread, regions=ranked))
        for i in members:
            taken[i] = True
            arrays.unlink(i)
    return matches


class _Pool:
    """One cycle's tickets as parallel arrays, with a linked list over the rating order."""

    def __init__(self, queue: QueueConfig, pool: Sequence[Ticket], now: float) -> None:
        n = len(pool)
        self.teams = queue.teams
        self.team_size = queue.team_size
        self.need = queue.players_per_match
        self.ratings = [t.rating for t in pool]
        self.windows = [queue.window.at(t.wait_s(now)) for t in pool]
        self.regions = [acceptable_regions(queue, t) for t in pool]
        self.sizes = [t.size for t in pool]
        order = sorted(range(n), key=lambda i: (self.ratings[i], i))
        self.prev = [-1] * n
        self.next = [-1] * n
        for pos, i in enumerate(order):
            self.prev[i] = order[pos - 1] if pos > 0 else -1
            self.next[i] = order[pos + 1] if pos + 1 < n else -1

    def unlink(self, i: int) -> None:
        before, after = self.prev[i], self.next[i]
        if before != -1:
            self.next[before] = after
        if after != -1:
            self.prev[after] = before

    def gather(self, anchor: int, max_scan: int) -> tuple[list[int], frozenset[str]] | None:
        """The anchor's group, closest ratings first, or None if it cannot be completed now."""
        ratings, windows, sizes = self.ratings, self.windows, self.sizes
        r_a, w_a = ratings[anchor], windows[anchor]
        members = [anchor]
        total = sizes[anchor]
        lo = hi = r_a
        min_window = w_a
        shared = self.regions[anchor]
        left, right = self.prev[anchor], self.next[anchor]
        scanned = 0
        while total < self.need and scanned < max_scan:
            if left != -1 and r_a - ratings[left] > w_a:
                left = -1
            if right != -1 and ratings[right] - r_a > w_a:
                right = -1
            if left == -1 and right == -1:
                break
            if right == -1 or (left != -1 and r_a - ratings[left] <= ratings[right] - r_a):
                c, left = left, self.prev[left]
            else:
                c, right = right, self.next[right]
            scanned += 1
            r_c = ratings[c]
            new_lo, new_hi = min(lo, r_c), max(hi, r_c)
            if new_hi - new_lo > min(min_window, windows[c]):
                continue
            common = shared & self.regions[c]
            if not common or total + sizes[c] > self.need:
                continue
            if sizes[c] > 1 or any(sizes[m] > 1 for m in members):
                packed = tuple(sorted([*(sizes[m] for m in members), sizes[c]], reverse=True))
                if not can_pack(packed, self.teams, self.team_size):
                    continue
            members.append(c)
            total += sizes[c]
            lo, hi, shared = new_lo, new_hi, common
            min_window = min(min_window, windows[c])
        if total != self.need:
            return None
        return members, shared
