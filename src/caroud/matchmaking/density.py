"""How busy a queue is near a rating: the recent arrivals a window's start is derived from.

Pure data and arithmetic, no I/O. The worker records every ticket that joins a
queue (its rating, party size and creation time, in the Redis clock) and hands
the algorithm an :class:`Arrivals` snapshot each cycle.

Why a window should start from the density: a lone ticket that takes the first
newcomer within ``x`` rating points sees one arrive every ``1 / (2 * x * rho)``
seconds (``rho``: tickets per rating point per second near its rating), at a gap
of ``x / 2`` on average. At the queue's own exchange rate between gap and wait
(the window grows ``growth`` points per second of waiting), the expected cost
``x / 2 + growth / (2 * x * rho)`` is least at ``x = sqrt(growth / rho)``; needing
``k`` others (a team queue), ``sqrt(growth * k / rho)``. In a busy queue that is a
few points, so a fixed start of 50 gives away quality the population offers for
free; in a quiet queue it is more than ``initial``, which stays the cap. The
queue's ``adaptive`` factor scales it (0.7 by default for one-player teams:
waiting tickets are partners too, so the best start is a little tighter than a
lone ticket's, as ``caroud bench quality`` measured).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import deque
from dataclasses import dataclass

from caroud.matchmaking.models import QueueConfig

HISTORY_S = 120.0
"""How far back arrivals count."""
HISTORY_MAX = 4096
"""At most this many recent arrivals are kept (the newest): bounds a cycle's work."""
MIN_SPAN_S = 10.0
MIN_COUNT = 20
"""History shorter than :data:`MIN_SPAN_S` seconds and with fewer arrivals than this says
too little: windows start at ``initial`` until then."""


@dataclass(frozen=True, slots=True)
class Arrivals:
    """The tickets that joined a queue in the last ``span_s`` seconds: sorted ratings, players."""

    ratings: tuple[float, ...]
    span_s: float
    players: int

    def rate_near(self, rating: float, half_width: float) -> float:
        """Tickets per rating point per second within ``half_width`` of ``rating``."""
        if self.span_s <= 0 or half_width <= 0:
            return 0.0
        lo = bisect_left(self.ratings, rating - half_width)
        hi = bisect_right(self.ratings, rating + half_width)
        return (hi - lo) / (2 * half_width * self.span_s)

    @property
    def mean_size(self) -> float:
        return self.players / len(self.ratings) if self.ratings else 1.0


def start_window(queue: QueueConfig, arrivals: Arrivals | None, rating: float) -> float:
    """Where the window of a ticket at ``rating`` starts: ``initial``, or tighter if busy.

    ``adaptive * sqrt(growth * others / rho)``, never above ``initial``; ``initial`` when
    the queue has no adaptive start, no growth, or no recent arrivals near ``rating``.
    """
    window = queue.window
    if arrivals is None or window.adaptive <= 0 or window.growth_per_s <= 0:
        return window.initial
    rho = arrivals.rate_near(rating, density_half_width(queue))
    if rho <= 0:
        return window.initial
    others = max(queue.players_per_match / arrivals.mean_size - 1.0, 1.0)
    return min(window.initial, window.adaptive * math.sqrt(window.growth_per_s * others / rho))


def density_half_width(queue: QueueConfig) -> float:
    """The rating band density is counted over: an eighth of the widest window."""
    return max(queue.window.maximum / 8.0, 1.0)


class ArrivalLog:
    """A worker's record of one queue's recent arrivals (bounded in time and count)."""

    def __init__(self) -> None:
        self._entries: deque[tuple[float, float, int]] = deque(maxlen=HISTORY_MAX)
        self._since: float | None = None
        self._sorted: tuple[tuple[float, ...], int] | None = None  # until the log changes

    def record(self, created_at: float, rating: float, size: int) -> None:
        """One ticket joined the queue (requeued tickets count too: they wait again)."""
        self._entries.append((created_at, rating, size))
        self._sorted = None
        if self._since is None:
            self._since = created_at

    def snapshot(self, now: float) -> Arrivals | None:
        """The arrivals of the last :data:`HISTORY_S` seconds; None until it covers enough."""
        cutoff = now - HISTORY_S
        while self._entries and self._entries[0][0] < cutoff:
            self._entries.popleft()
            self._sorted = None
        if not self._entries or self._since is None:
            return None
        # What the log covers: since the first record (a new worker knows only that
        # much), or since the oldest kept entry once the count bound dropped older ones.
        oldest = self._entries[0][0] if len(self._entries) == HISTORY_MAX else self._since
        span = now - max(oldest, cutoff)
        if span <= 0 or (span < MIN_SPAN_S and len(self._entries) < MIN_COUNT):
            return None
        if self._sorted is None:
            ratings = tuple(sorted(r for _, r, _ in self._entries))
            self._sorted = ratings, sum(s for _, _, s in self._entries)
        return Arrivals(self._sorted[0], span, self._sorted[1])
