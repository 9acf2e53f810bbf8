"""A demo load for newcomers: simulated players (solos and parties) queueing while a worker matches.

Ratings follow a normal distribution around 1500; some players send latencies.
Everything goes through the same store API a real backend uses.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from caroud.errors import CaroudError, PlayerBusyError
from caroud.matchmaking.models import PlayerEntry, QueueConfig
from caroud.matchmaking.store import MatchmakingStore


@dataclass
class DemoTotals:
    enqueued: int = 0
    rejected: int = 0


def random_ticket(
    queue: QueueConfig, rng: random.Random, counter: itertools.count[int]
) -> tuple[list[PlayerEntry], dict[str, float]]:
    """Players (a solo, or a party of an allowed size) with ratings and maybe latencies."""
    size = rng.choice(queue.party_sizes) if rng.random() < 0.3 else min(queue.party_sizes)
    base = rng.gauss(1500, 250)
    players = [
        PlayerEntry(f"demo-{next(counter)}", round(min(max(base + rng.gauss(0, 40), 0), 4000)))
        for _ in range(size)
    ]
    latencies: dict[str, float] = {}
    if rng.random() < 0.5:
        latencies = {r: round(rng.uniform(20, queue.max_latency_ms * 1.5)) for r in queue.regions}
        best = min(latencies, key=latencies.__getitem__)
        latencies[best] = min(latencies[best], queue.max_latency_ms - 1)
    return players, latencies


def run_load(
    store: MatchmakingStore,
    rate_per_s: float,
    stop: threading.Event,
    on_second: Callable[[DemoTotals], None] | None = None,
    seed: int = 7,
) -> DemoTotals:
    """Enqueue random tickets across all queues at ``rate_per_s`` until ``stop`` is set."""
    rng = random.Random(seed)
    counter = itertools.count(1)
    queues = list(store.queues)
    totals = DemoTotals()
    interval = 1.0 / rate_per_s
    next_at = time.monotonic()
    last_report = next_at
    while not stop.is_set():
        queue = rng.choice(queues)
        players, latencies = random_ticket(queue, rng, counter)
        try:
            store.enqueue(queue.name, players, latencies)
            totals.enqueued += 1
        except PlayerBusyError:
            totals.rejected += 1
        except CaroudError:
            totals.rejected += 1
            stop.wait(0.5)
        next_at += interval
        now = time.monotonic()
        if on_second is not None and now - last_report >= 1.0:
            on_second(totals)
            last_report = now
        if next_at > now:
            stop.wait(next_at - now)
    return totals
