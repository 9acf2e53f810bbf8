"""A demo for newcomers: simulated players and game servers around a real worker.

Players (solos and parties, ratings around 1500, some with latencies) queue at a
steady rate; game servers register in every region, heartbeat, start the matches
they are assigned and report a result a few seconds later. Everything goes through
the same library calls a real backend uses.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from caroud.context import Context
from caroud.errors import CaroudError, PlayerBusyError
from caroud.events import EventReader
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


@dataclass
class ServerTotals:
    started: int = 0
    ended: int = 0


def run_servers(
    ctx: Context,
    stop: threading.Event,
    per_region: int = 3,
    capacity: int = 8,
    match_s: tuple[float, float] = (3.0, 8.0),
    seed: int = 11,
) -> ServerTotals:
    """Simulated game servers: register, heartbeat, start assigned matches, report results."""
    rng = random.Random(seed)
    regions = ctx.queues.all_regions()
    servers = [
        ctx.pool.register(f"10.0.{r}.{i + 1}", 7000 + i, region, capacity, {"build": "demo"})
        for r, region in enumerate(regions)
        for i in range(per_region)
    ]
    reader = EventReader(ctx.client, ctx.keys, [q.name for q in ctx.queues])
    ends: dict[str, float] = {}
    totals = ServerTotals()
    beat_every = ctx.settings.heartbeat_interval_s / 2
    next_beat = 0.0
    try:
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_beat:
                for s in servers:
                    ctx.pool.heartbeat(s.id, load=rng.random())
                next_beat = now + beat_every
            for event in reader.read(block_ms=200):
                if event.type == "assigned" and event.match_id and event.match_id not in ends:
                    _start(ctx, event.match_id, totals)
                    ends[event.match_id] = now + rng.uniform(*match_s)
            for match_id, at in list(ends.items()):
                if at <= now:
                    del ends[match_id]
                    _end(ctx, match_id, rng, totals)
    finally:
        for s in servers:
            with contextlib.suppress(CaroudError):
                ctx.pool.deregister(s.id)
    return totals


def _start(ctx: Context, match_id: str, totals: ServerTotals) -> None:
    try:
        ctx.assigner.match_started(match_id)
        totals.started += 1
    except CaroudError:
        pass  # re-assigned elsewhere or requeued meanwhile


def _end(ctx: Context, match_id: str, rng: random.Random, totals: ServerTotals) -> None:
    try:
        match = ctx.matches.get(match_id)
        winner = rng.randrange(len(match.teams)) if rng.random() > 0.1 else None
        ctx.assigner.match_ended(match_id, winner)
        totals.ended += 1
    except CaroudError:
        pass
