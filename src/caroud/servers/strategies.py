"""How a region's candidate servers are ranked: the reference for ``pool_allocate.lua``.

The choice itself runs in Redis, where it is atomic: each region's ready servers
with a free slot sit in a sorted set scored by :func:`fill`, and the script walks
it from one end or the other. These pure functions say the same in Python, so the
tests can hold the script to them and callers can predict a choice.

``packed``
    The fullest first (highest used/capacity; ties: the greater id first). New
    matches land where matches already run, so fewer servers are busy and idle
    ones can be scaled in.
``distributed``
    The emptiest first (lowest used/capacity; ties: the smaller id first). Load is
    spread, so one crashing server takes fewer matches with it.

Health, labels and the servers a match must avoid are filters, not ranks: a stale,
non-matching or avoided server is skipped and the next one tried, up to the pool's
scan limit per region. Servers that are not ``ready`` (starting, benched, draining)
are not in the sorted sets at all.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from caroud.servers.models import Strategy


@dataclass(frozen=True, slots=True)
class Candidate:
    """What ranking looks at: a server's id and its slots."""

    id: str
    used: int
    capacity: int


def fill(used: int, capacity: int) -> Fraction:
    """How full a server is: its rank in its region (exact; the script scores the same double)."""
    return Fraction(used, capacity)


def rank(candidates: Iterable[Candidate], strategy: Strategy) -> list[str]:
    """Ids of the candidates with a free slot, best first for ``strategy``."""
    open_ = [c for c in candidates if c.used < c.capacity]
    order = sorted(open_, key=lambda c: (fill(c.used, c.capacity), c.id))
    if strategy is Strategy.PACKED:
        order.reverse()
    return [c.id for c in order]


def choose(candidates: Iterable[Candidate], strategy: Strategy) -> str | None:
    """The id ``strategy`` picks among ``candidates``, or None if none has a free slot."""
    ranked = rank(candidates, strategy)
    return ranked[0] if ranked else None
