"""Did a ticket time out although it could have played? The benchmark's independent checks.

Pure. :func:`group_available` says whether, at some moment, the queue held a
group with a given ticket that *every member's own window* accepts — the
configured window, which is never narrower than the matcher's adaptive one, so
the check is the strict one. A ticket that timed out while such a group was
there starved. :func:`population_could_serve` says whether enough players near a
ticket's rating queued around its time to fill a match at all: only such tickets
count in the time-out target.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from caroud.matchmaking.models import QueueConfig
from caroud.matchmaking.teams import can_pack


@dataclass(frozen=True, slots=True)
class Waiting:
    """A queued ticket at one moment: its rating, party size and window then."""

    rating: float
    size: int
    window: float


def group_available(queue: QueueConfig, ticket: Waiting, others: Sequence[Waiting]) -> bool:
    """Whether ``ticket`` and some of ``others`` form a group every member's window accepts.

    Every member's window must cover the group's spread, so for each candidate for
    the narrowest window ``m`` only tickets with a window of ``m`` or more, inside
    an interval of length ``m`` around ``ticket``, may join; then some of them must
    bring the players that, with ``ticket``'s party, fill the teams exactly.
    """
    need = queue.players_per_match - ticket.size
    near = [
        o
        for o in others
        if abs(o.rating - ticket.rating) <= min(ticket.window, o.window) and o.size <= need
    ]
    if need == 0:
        return can_pack((ticket.size,), queue.teams, queue.team_size)
    for m in sorted({ticket.window, *(o.window for o in near)}, reverse=True):
        if m > ticket.window:
            continue
        fits = [o for o in near if o.window >= m]
        # every interval of length m around the ticket holds the same tickets as one
        # whose low end or high end is at a ticket's rating
        r = ticket.rating
        starts = {r - m, r}
        starts |= {o.rating for o in fits if r - m <= o.rating <= r}
        starts |= {o.rating - m for o in fits if r <= o.rating <= r + m}
        for lo in starts:
            sizes = [o.size for o in fits if lo <= o.rating <= lo + m]
            if _fills(queue, ticket.size, sizes, need):
                return True
    return False


def _fills(queue: QueueConfig, own: int, sizes: Sequence[int], need: int) -> bool:
    """Whether some of the parties ``sizes`` bring exactly ``need`` players that pack."""
    if sum(sizes) < need:
        return False
    counts = [sizes.count(k) for k in range(1, queue.team_size + 1)]
    ranges = [range(min(c, need // k) + 1) for k, c in enumerate(counts, start=1)]
    for picks in itertools.product(*ranges):
        if sum(k * p for k, p in enumerate(picks, start=1)) != need:
            continue
        chosen = [own, *(k for k, p in enumerate(picks, start=1) for _ in range(p))]
        if can_pack(tuple(sorted(chosen, reverse=True)), queue.teams, queue.team_size):
            return True
    return False


def population_could_serve(
    queue: QueueConfig,
    arrived: Sequence[float],
    ratings: Sequence[float],
    sizes: Sequence[int],
) -> list[bool]:
    """For each ticket: did enough players queue within the maximum window of its rating,
    less than ``max_wait_s`` apart from it, to fill a match with it?

    Counted on a grid of 1 s x 10 rating points (inner cells only, so a ticket is
    never called servable on players outside the band).
    """
    if not arrived:
        return []
    t = np.asarray(arrived, dtype=np.float64)
    r = np.asarray(ratings, dtype=np.float64)
    w = np.asarray(sizes, dtype=np.int64)
    t_bins = np.arange(0.0, t.max() + 2.0, 1.0)
    r_lo, r_hi = r.min() - 10.0, r.max() + 20.0
    r_bins = np.arange(r_lo, r_hi, 10.0)
    grid, _, _ = np.histogram2d(t, r, bins=(t_bins, r_bins), weights=w)
    cum = np.zeros((grid.shape[0] + 1, grid.shape[1] + 1))
    cum[1:, 1:] = grid.cumsum(axis=0).cumsum(axis=1)
    wait, band = queue.max_wait_s, queue.window.maximum
    # inner cells: those wholly inside [t - wait, t + wait] x [r - band, r + band]
    t0 = np.clip(np.ceil(t - wait).astype(np.int64), 0, grid.shape[0])
    t1 = np.clip(np.floor(t + wait).astype(np.int64), 0, grid.shape[0])
    r0 = np.clip(np.ceil((r - band - r_lo) / 10.0).astype(np.int64), 0, grid.shape[1])
    r1 = np.clip(np.floor((r + band - r_lo) / 10.0).astype(np.int64), 0, grid.shape[1])
    t1, r1 = np.maximum(t1, t0), np.maximum(r1, r0)
    players = cum[t1, r1] - cum[t0, r1] - cum[t1, r0] + cum[t0, r0]
    # the ticket itself is in its own band: it does not count as company
    others = players - w * ((t0 <= np.floor(t)) & (np.floor(t) < t1))
    enough = others >= queue.players_per_match - w
    return [bool(x) for x in enough]
