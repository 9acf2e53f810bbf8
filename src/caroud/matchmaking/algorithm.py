"""The matching algorithm: pure, deterministic, no Redis, no clock (``now`` is passed in).

Every ticket has a window: the rating spread it accepts, widening with its wait
from a *start* up to the queue's maximum. The start is the queue's ``initial``,
or tighter where the queue is busy near the ticket's rating (``window.adaptive``,
:mod:`caroud.matchmaking.density`): in a busy queue a close partner is a moment
away, so matching the first one inside a fixed 50 points gives quality away.

A group is **acceptable** when its rating spread fits every member's window, or
when one member has waited until its window is fully open (the maximum) and the
spread fits the maximum. The second clause is what keeps old tickets at the
rating extremes from starving: newcomers, whose windows are still narrow, can
no longer veto a group the old ticket has waited for.

Tickets are taken oldest first. Each one, as the *anchor*, gathers the closest
tickets in rating within its own window (walking outward on both sides of a
rating-sorted list) that

* keep the group acceptable,
* share at least one region where each has latency under the queue's limit,
* still pack into the queue's teams with every party kept whole, and with
  ``stack_size`` set, fairly: a big party is not put against a team of solos
  unless that party's window is fully open (it has waited long enough),

until the group has exactly ``teams x team_size`` players. The group is then
split into balanced teams (:mod:`caroud.matchmaking.teams`); with two teams,
members are swapped for unused tickets of the same size while that brings the
team averages closer, and the group waits if they still differ by more than
``team_balance`` of its window. Fairness and balance are preferences: a group with
a ticket that has waited half the queue's maximum wait needs only fit the windows.
An anchor that cannot complete a group stays available to newer anchors. Because
old tickets choose first, a ticket never starves behind newer ones near its
rating. A ticket's rating is the mean of its players' ratings; the spread is
between tickets' ratings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from caroud.matchmaking.density import Arrivals, start_window
from caroud.matchmaking.models import ProposedMatch, QueueConfig, Ticket
from caroud.matchmaking.teams import Unit, balance_teams, can_pack, can_pack_fairly, is_fair
from caroud.ratings import expected_score

DEFAULT_MAX_SCAN = 256
"""How many candidates one anchor examines at most: bounds a cycle's work on a hostile pool."""
REBALANCE_CANDIDATES = 128
"""Unused tickets nearest the anchor that a two-team group may swap a member for."""
REBALANCE_SWAPS = 8
"""At most this many swaps improve one group's balance."""
BALANCED_WITHIN = 2.0
"""Team averages this close (rating points) need no swap."""
LAST_RESORT = 0.5
"""A group with a ticket that has waited this fraction of the queue's maximum wait needs only
fit the windows: fair and balanced teams are preferences, and they yield before a time-out."""
BALANCE_FLOOR = 0.25
"""Team balance is judged against a window of at least this fraction of the maximum: in a
busy queue windows are tight, and demanding team averages within a fraction of a few
points is asking more than ratings know (their noise is larger), at the cost of waits."""


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


def ticket_windows(
    queue: QueueConfig, tickets: Sequence[Ticket], now: float, arrivals: Arrivals | None = None
) -> list[float]:
    """Each ticket's window at ``now``: from its start (see :func:`start_window`), widened.

    Starts are computed once per whole rating point (a start varies slowly with the
    rating), which keeps a cycle over a large pool cheap.
    """
    window = queue.window
    growth, maximum = window.growth_per_s, window.maximum
    starts: dict[int, float] = {}
    out = []
    for t in tickets:  # window.at(), inlined: this runs for every ticket every cycle
        if arrivals is None:
            start = window.initial
        else:
            point = round(t.rating)
            start = starts.get(point, -1.0)
            if start < 0:
                start = starts[point] = start_window(queue, arrivals, point)
        width = start + growth * max(now - t.created_at, 0.0)
        out.append(width if width < maximum else maximum)
    return out


def acceptable(maximum: float, ratings: Sequence[float], windows: Sequence[float]) -> bool:
    """Whether tickets with these ratings and windows may form a match (``maximum``: the
    queue's widest window): the spread fits every window, or a window is fully open
    and the spread fits the maximum."""
    spread = max(ratings) - min(ratings)
    if max(windows) >= maximum:
        return spread <= maximum
    return spread <= min(windows)


def find_matches(
    queue: QueueConfig,
    tickets: Iterable[Ticket],
    now: float,
    arrivals: Arrivals | None = None,
    max_scan: int = DEFAULT_MAX_SCAN,
) -> list[ProposedMatch]:
    """Propose disjoint matches from the queued ``tickets`` of ``queue`` at time ``now``.

    ``arrivals`` (the queue's recent arrivals) lets windows start from the density.
    """
    pool = sorted(tickets, key=lambda t: (t.created_at, t.id))
    if not pool:
        return []
    arrays = _Pool(queue, pool, now, arrivals)
    taken = [False] * len(pool)
    matches: list[ProposedMatch] = []
    for anchor in range(len(pool)):
        if taken[anchor] or not arrays.regions[anchor] or arrays.sizes[anchor] > arrays.need:
            continue
        group = arrays.gather(anchor, max_scan)
        if group is None:
            continue
        members, shared_regions = group
        split = arrays.split(members)
        if split is None:  # cannot happen once can_pack held for the full group
            continue
        if queue.teams == 2 and queue.team_size > 1:
            members, split, shared_regions = arrays.rebalance(anchor, members, split)
        if not arrays.balanced(members, split, queue.team_balance):
            continue
        teams = tuple(tuple(pool[i].id for i in team) for team in split)
        chosen = [pool[i] for i in members]
        spread = max(arrays.ratings[i] for i in members) - min(arrays.ratings[i] for i in members)
        ranked = rank_regions(queue, shared_regions, chosen)
        matches.append(ProposedMatch(teams, ranked[0], spread, ranked, arrays.imbalance(split)))
        for i in members:
            taken[i] = True
            arrays.unlink(i)
    return matches


class _Pool:
    """One cycle's tickets as parallel arrays, with a linked list over the rating order."""

    def __init__(
        self, queue: QueueConfig, pool: Sequence[Ticket], now: float, arrivals: Arrivals | None
    ) -> None:
        n = len(pool)
        self.teams = queue.teams
        self.team_size = queue.team_size
        self.need = queue.players_per_match
        self.stack = queue.stack_size
        self.maximum = queue.window.maximum
        self.ids = [t.id for t in pool]
        self.ratings = [t.rating for t in pool]
        self.sums = [sum(p.rating for p in t.players) for t in pool]
        self.windows = ticket_windows(queue, pool, now, arrivals)
        self.last_resort = [t.wait_s(now) >= queue.max_wait_s * LAST_RESORT for t in pool]
        # Fairness yields to a big party whose window is fully open, or to a last resort.
        self.unfair_ok = (
            [
                (w >= self.maximum and t.size >= self.stack) or late
                for t, w, late in zip(pool, self.windows, self.last_resort, strict=True)
            ]
            if self.stack > 0
            else [True] * n
        )
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
        ratings, windows, sizes, maximum = self.ratings, self.windows, self.sizes, self.maximum
        r_a, reach = ratings[anchor], windows[anchor]
        members = [anchor]
        total = sizes[anchor]
        lo = hi = r_a
        limit = reach  # the group's acceptable spread so far
        opened = reach >= maximum  # a member's window is fully open
        unfair_ok = self.unfair_ok
        stack_open = unfair_ok[anchor]
        shared = self.regions[anchor]
        left, right = self.prev[anchor], self.next[anchor]
        scanned = 0
        while total < self.need and scanned < max_scan:
            if left != -1 and r_a - ratings[left] > reach:
                left = -1
            if right != -1 and ratings[right] - r_a > reach:
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
            w_c = windows[c]
            new_opened = opened or w_c >= maximum
            new_stack_open = stack_open or unfair_ok[c]
            new_limit = maximum if new_opened else min(limit, w_c)
            if new_hi - new_lo > new_limit:
                continue
            common = shared & self.regions[c]
            if not common or total + sizes[c] > self.need:
                continue
            if (sizes[c] > 1 or any(sizes[m] > 1 for m in members)) and not self._packs(
                [*(sizes[m] for m in members), sizes[c]], new_stack_open
            ):
                continue
            members.append(c)
            total += sizes[c]
            lo, hi, shared, limit = new_lo, new_hi, common, new_limit
            opened, stack_open = new_opened, new_stack_open
        if total != self.need:
            return None
        return members, shared

    def split(self, members: Sequence[int]) -> list[list[int]] | None:
        """The group's balanced teams (indices), or None if it cannot fill them."""
        if self.team_size == 1:  # one ticket per team, strongest first (as balance_teams)
            ordered = sorted(members, key=lambda i: (-self.sums[i], self.ids[i]))
            return [[i] for i in ordered] if len(ordered) == self.teams else None
        by_id = {self.ids[i]: i for i in members}
        units = [Unit(self.ids[i], self.sizes[i], self.sums[i]) for i in members]
        teams = balance_teams(units, self.teams, self.team_size, self.stack)
        return None if teams is None else [[by_id[t] for t in team] for team in teams]

    def rebalance(
        self, anchor: int, members: list[int], split: list[list[int]]
    ) -> tuple[list[int], list[list[int]], frozenset[str]]:
        """Swap members for unused tickets of the same size while team averages get closer.

        Two teams only. A swap keeps the group acceptable, its regions shared and its
        party sizes (so its packing and fairness) unchanged; the anchor stays.
        """
        imbalance = self._imbalance(split)
        if abs(imbalance) <= BALANCED_WITHIN * self.team_size:
            return members, split, self._shared(members)
        pool = self._neighbours(anchor, set(members))
        for _ in range(REBALANCE_SWAPS):
            swap = self._best_swap(anchor, members, split, pool, imbalance)
            if swap is None:
                break
            out, into = swap
            trial = [into if m == out else m for m in members]
            trial_split = self.split(trial)
            if (
                trial_split is None
                or abs(self._imbalance(trial_split)) >= abs(imbalance)
                or not self._fair_or_exempt(trial, trial_split)
            ):
                break
            members, split, imbalance = trial, trial_split, self._imbalance(trial_split)
            pool = [into_ if into_ != into else out for into_ in pool]
            if abs(imbalance) <= BALANCED_WITHIN * self.team_size:
                break
        return members, split, self._shared(members)

    def balanced(self, members: Sequence[int], split: list[list[int]], fraction: float) -> bool:
        """Whether team averages differ by at most ``fraction`` of the group's window.

        The group's window: the narrowest member's, the maximum once a member's is
        fully open, and never below :data:`BALANCE_FLOOR` of the maximum. A group
        with a last-resort ticket is exempt.
        """
        if fraction >= 1.0 or self.team_size == 1 or any(self.last_resort[m] for m in members):
            return True
        means = [sum(self.sums[i] for i in team) / self.team_size for team in split]
        windows = [self.windows[i] for i in members]
        window = self.maximum if max(windows) >= self.maximum else min(windows)
        window = max(window, BALANCE_FLOOR * self.maximum)
        return max(means) - min(means) <= fraction * window

    def _fair_or_exempt(self, members: Sequence[int], split: list[list[int]]) -> bool:
        """Whether the split is fair, or the group may be unfair (see :meth:`_packs`)."""
        if any(self.unfair_ok[m] for m in members):
            return True
        units = [[Unit(self.ids[i], self.sizes[i], 0.0) for i in team] for team in split]
        return is_fair(units, self.stack)

    def imbalance(self, split: list[list[int]]) -> float:
        """``|P(win) - 0.5|`` of the strongest team against the weakest (Elo, team means)."""
        means = [sum(self.sums[i] for i in team) / self.team_size for team in split]
        return abs(expected_score(max(means), min(means)) - 0.5)

    def _imbalance(self, split: list[list[int]]) -> float:
        return sum(self.sums[i] for i in split[0]) - sum(self.sums[i] for i in split[1])

    def _shared(self, members: Sequence[int]) -> frozenset[str]:
        shared = self.regions[members[0]]
        for m in members[1:]:
            shared &= self.regions[m]
        return shared

    def _neighbours(self, anchor: int, exclude: set[int]) -> list[int]:
        """Untaken tickets within the anchor's window, nearest first (at most a few dozen)."""
        out: list[int] = []
        r_a, reach = self.ratings[anchor], self.windows[anchor]
        left, right = self.prev[anchor], self.next[anchor]
        while len(out) < REBALANCE_CANDIDATES:
            if left != -1 and r_a - self.ratings[left] > reach:
                left = -1
            if right != -1 and self.ratings[right] - r_a > reach:
                right = -1
            if left == -1 and right == -1:
                break
            if right == -1 or (
                left != -1 and r_a - self.ratings[left] <= self.ratings[right] - r_a
            ):
                c, left = left, self.prev[left]
            else:
                c, right = right, self.next[right]
            if c not in exclude:
                out.append(c)
        return out

    def _best_swap(
        self,
        anchor: int,
        members: list[int],
        split: list[list[int]],
        pool: list[int],
        imbalance: float,
    ) -> tuple[int, int] | None:
        """The (member, candidate) swap that best narrows the imbalance, split kept."""
        best: tuple[float, int, int] | None = None
        side = {i: (1.0 if k == 0 else -1.0) for k, team in enumerate(split) for i in team}
        for out in members:
            if out == anchor:
                continue
            rest = [m for m in members if m != out]
            for into in pool:
                if self.sizes[into] != self.sizes[out]:
                    continue
                after = abs(imbalance + side[out] * (self.sums[into] - self.sums[out]))
                if (best is not None and after >= best[0]) or after >= abs(imbalance):
                    continue
                if self._acceptable([*rest, into]) and self._shared([*rest, into]):
                    best = (after, out, into)
        return None if best is None else (best[1], best[2])

    def _acceptable(self, members: Sequence[int]) -> bool:
        return acceptable(
            self.maximum,
            [self.ratings[i] for i in members],
            [self.windows[i] for i in members],
        )

    def _packs(self, group_sizes: list[int], opened: bool) -> bool:
        """Whether a (partial) group can still fill the teams: fairly, unless ``opened``.

        ``opened``: a big party in the group has waited until its window is fully
        open; from then on it may face solos rather than wait on.
        """
        packed = tuple(sorted(group_sizes, reverse=True))
        if not can_pack(packed, self.teams, self.team_size):
            return False
        if self.stack <= 0 or opened or packed[0] < self.stack:
            return True
        free = self.need - sum(packed)
        if free == 0:
            return can_pack_fairly(packed, self.teams, self.team_size, self.stack)
        # Room must stay for the party that would face the big one, unless one is in.
        return free >= 2 or any(1 < s < self.stack for s in packed) or packed.count(packed[0]) > 1
