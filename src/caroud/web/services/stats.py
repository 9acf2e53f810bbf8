"""Per-queue waiting figures for ``GET /api/v1/queues``.

The wait percentiles are over the tickets waiting **now** (how long each has waited
so far), and exact over the whole queue at bounded cost: a queue is a sorted set
scored by creation time, so the ticket at the p-th percentile of waiting time is
the one at a known rank — two O(log n) reads per percentile, however long the queue.
They describe the current backlog, not the eventual wait of matched tickets.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from caroud.context import Context
from caroud.matchmaking.models import QueueConfig
from caroud.matchmaking.store import RecentQuality


def quantile_index(count: int, q: float) -> int:
    """The oldest-first index of the q-quantile of waiting time among ``count`` tickets.

    Nearest rank: the smallest wait that at least ``q`` of the tickets do not exceed.
    Waits grow with age, so ascending rank r (1-based) is oldest-first index count - r.
    """
    if count < 1 or not 0 < q <= 1:
        raise ValueError(f"need count >= 1 and 0 < q <= 1, got {count}, {q}")
    return count - max(math.ceil(q * count), 1)


def queue_json(
    ctx: Context, queue: QueueConfig, now: float, quality: RecentQuality
) -> dict[str, Any]:
    """One queue's shape, waiting figures and the quality of its newest matches."""
    waiting = ctx.matchmaking.count(queue.name)
    oldest = ctx.matchmaking.oldest_created(queue.name)
    p50 = p95 = None
    if waiting:
        p50, p95 = (
            round(max(now - created, 0.0), 3) if created is not None else None
            for created in ctx.matchmaking.created_at_ranks(
                [(queue.name, quantile_index(waiting, q)) for q in (0.50, 0.95)]
            )
        )
    return {
        "name": queue.name,
        "teams": queue.teams,
        "team_size": queue.team_size,
        "party_sizes": list(queue.party_sizes),
        "regions": list(queue.regions),
        "waiting": waiting,
        "oldest_wait_seconds": round(max(now - oldest, 0.0), 3) if oldest is not None else None,
        "p50_wait_seconds": p50,
        "p95_wait_seconds": p95,
        "recent_matches": dataclasses.asdict(quality),
    }


def queue_stats(ctx: Context) -> list[dict[str, Any]]:
    """Every configured queue, by name."""
    now = ctx.matchmaking.server_time()
    queues = sorted(ctx.queues, key=lambda q: q.name)
    quality = ctx.matchmaking.recent_quality([q.name for q in queues])
    return [queue_json(ctx, q, now, quality[q.name]) for q in queues]
