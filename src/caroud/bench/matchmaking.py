"""The matchmaking benchmark behind ``caroud bench matchmaking``.

Phases, each on its own 1v1 queue (window 100 widening 50/s to 400, so nearly
every ticket is matchable), all under the key prefix ``bench``:

1. **enqueue** — one process calls :meth:`MatchmakingStore.enqueue` back to back
   for ``duration_s``: ``enqueue_per_s``.
2. **pool** — two processes enqueue 100,000 tickets (ratings ~N(1500, 300)) with
   no worker running; INFO ``used_memory`` before and after gives
   ``bytes_per_ticket`` (ticket hash, player key, queue entry, stream entry),
   and again after ``XTRIM MAXLEN 0`` of the queue's stream
   ``bytes_per_ticket_excluding_events``.
3. **drain** — ``workers`` worker processes match that pool: ``matched_per_s``
   is tickets matched over the wall time from the first cycle's start to the
   end of the last cycle that matched anything. One queue has one lease, so
   one worker matches at a time; the others stand by.
4. **latency** — one worker (default tick) while two paced loaders offer
   5,000 tickets/s for ``duration_s``: enqueue-to-matched latency of every
   matched ticket, from its ``created_at`` to the id of its "matched" stream
   entry (both the Redis clock, in ms).

Throughout, the slow log (threshold 100 µs) is drained in the background for
the longest single Redis call; at the end every match hash is audited for
tickets matched twice. With ``profile_dir``, each worker writes a cProfile dump
there and each phase the delta of INFO commandstats.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from caroud.bench._procs import (
    HELD_CYCLES,
    MATCHED_TICKETS,
    SPAWN,
    BenchmarkError,
    Children,
    LoadPlan,
    LoadResult,
    Progress,
    WorkerPlan,
    WorkerResult,
    enqueue_main,
    new_progress,
    paced_main,
    random_rating,
    worker_main,
)
from caroud.bench._server import (
    SlowlogWatch,
    Target,
    bench_target,
    delete_own_keys,
    latency_monitor_max,
    memory_usage,
    queues_toml,
    server_version,
    used_memory,
)
from caroud.context import Context
from caroud.errors import ConfigError
from caroud.matchmaking.audit import audit_matches
from caroud.matchmaking.models import TicketStatus
from caroud.matchmaking.store import MatchmakingStore
from caroud.redis.client import Redis, connect, redact_url, redis_errors
from caroud.settings import Settings

Result = dict[str, float | int | str]

QUEUE_SPEC: dict[str, Any] = {
    "teams": 2,
    "team_size": 1,
    "party_sizes": [1],
    "window": {"initial": 100, "growth_per_s": 50, "max": 400},
    "max_wait_s": 3600,
}
ENQUEUE_QUEUE = "bench-enqueue"
POOL_QUEUE = "bench-drain"
LATENCY_QUEUE = "bench-latency"
POOL_TICKETS = 100_000
LOADERS = 2
OFFERED_PER_S = 5000.0
POLL_S = 0.05
IDLE_CYCLES = 3
"""A phase's matching is over once this many cycles in a row matched nothing."""
DRAIN_TIMEOUT_S = 120.0
EVENTS_PER_READ = 2000

TARGETS: dict[str, tuple[str, float]] = {
    "enqueue_per_s": (">=", 10_000),
    "matched_per_s": (">=", 20_000),
    "p99_ms": ("<=", 250),
    "bytes_per_ticket": ("<=", 300),
    "max_redis_call_ms": ("<=", 5),
    "double_matches": ("<=", 0),
}
"""Targets on the reference 2-core machine (shown by :func:`print_table`)."""


def run_benchmark(
    settings: Settings,
    duration_s: float = 5.0,
    workers: int = 1,
    *,
    pool_tickets: int = POOL_TICKETS,
    profile_dir: Path | None = None,
) -> Result:
    """Run every phase against the configured Redis (or a fresh embedded Valkey); the figures."""
    if duration_s <= 0 or workers < 1 or pool_tickets < 2:
        raise ConfigError("bench: duration must be > 0, workers >= 1 and pool_tickets >= 2")
    if profile_dir is not None:
        profile_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    names = (ENQUEUE_QUEUE, POOL_QUEUE, LATENCY_QUEUE)
    with bench_target(settings, queues_toml(names, QUEUE_SPEC)) as target:
        ctx = Context.build(target.settings)
        with redis_errors(ctx.client):
            result = _run(
                ctx,
                target,
                duration_s=duration_s,
                workers=workers,
                pool_tickets=pool_tickets,
                profile_dir=profile_dir,
            )
    result["host_load_1m_at_end"] = round(
        os.getloadavg()[0], 2
    )  # ours adds ~2: >3 means others ran
    result["bench_wall_s"] = round(time.monotonic() - started, 1)
    return result


def _run(
    ctx: Context,
    target: Target,
    *,
    duration_s: float,
    workers: int,
    pool_tickets: int,
    profile_dir: Path | None,
) -> Result:
    client = ctx.client
    if not target.own_server:
        delete_own_keys(client, ctx.keys)  # what a crashed earlier run may have left
    result: Result = {
        "workers": workers,
        "duration_s": duration_s,
        "machine": _machine(),
        "host_load_1m_at_start": round(os.getloadavg()[0], 2),
        "server": server_version(client),
        "redis": "own embedded Valkey (temporary)"
        if target.own_server
        else redact_url(target.settings.redis_url or ""),
    }
    watch = SlowlogWatch(connect(target.settings), restore=not target.own_server)
    watch.start()
    try:
        with _phase_stats(client, profile_dir, "enqueue"):
            result |= _enqueue_phase(ctx.matchmaking, duration_s)
        with _phase_stats(client, profile_dir, "pool"):
            result |= _pool_phase(ctx, target.settings, pool_tickets, watch)
        with _phase_stats(client, profile_dir, "drain"):
            result |= _drain_phase(ctx, target.settings, workers, profile_dir)
        with _phase_stats(client, profile_dir, "latency"):
            result |= _latency_phase(ctx, target.settings, duration_s, profile_dir, watch)
    finally:
        watch.stop()
    result |= _slow_calls(watch, client)
    audit = audit_matches(client, ctx.keys)
    result |= {
        "double_matches": len(audit.double_matched) + len(audit.disagreeing),
        "matches_audited": audit.matches,
        "tickets_audited": audit.tickets,
    }
    if not target.own_server:
        delete_own_keys(client, ctx.keys)
    return result


# -- phases ------------------------------------------------------------------------------


def _enqueue_phase(store: MatchmakingStore, duration_s: float) -> Result:
    rng = random.Random(1)
    sent = 0
    started = time.monotonic()
    end = started + duration_s
    while time.monotonic() < end:
        store.enqueue(ENQUEUE_QUEUE, [(f"e{sent}", random_rating(rng))])
        sent += 1
    elapsed = time.monotonic() - started
    return {
        "enqueue_per_s": round(sent / elapsed),
        "enqueue_tickets": sent,
        "ping_per_s": _ping_rate(store, min(duration_s, 2.0)),
    }


def _ping_rate(store: MatchmakingStore, duration_s: float) -> int:
    """Sequential PINGs from this process: the ceiling for one round trip per call."""
    pings = 0
    started = time.monotonic()
    end = started + duration_s
    while time.monotonic() < end:
        store.client.ping()
        pings += 1
    return round(pings / (time.monotonic() - started))


def _pool_phase(ctx: Context, settings: Settings, tickets: int, watch: SlowlogWatch) -> Result:
    client = ctx.client
    before = used_memory(client)
    with Children() as kids:
        for i in range(LOADERS):
            share = tickets // LOADERS + (1 if i < tickets % LOADERS else 0)
            kids.start(enqueue_main, LoadPlan(settings, POOL_QUEUE, f"d{i}-", 100 + i, count=share))
        loads: list[LoadResult] = kids.results(timeout_s=900)
    queued = sum(load.sent for load in loads)
    after = used_memory(client)
    sample = ctx.matchmaking.list_queued(POOL_QUEUE, limit=100)
    with watch.excluded():  # trimming 100k entries is one long call of ours, not the engine's
        client.xtrim(ctx.keys.events(POOL_QUEUE), maxlen=0, approximate=False)
    trimmed = used_memory(client)
    return {
        "pool_tickets": queued,
        "pool_enqueue_per_s": round(queued / max(load.elapsed_s for load in loads)),
        "bytes_per_ticket": round((after - before) / queued, 1),
        "bytes_per_ticket_excluding_events": round((trimmed - before) / queued, 1),
        "ticket_hash_bytes": _mean(memory_usage(client, ctx.keys.ticket(t.id)) for t in sample),
        "player_key_bytes": _mean(
            memory_usage(client, ctx.keys.player(t.player_ids[0])) for t in sample
        ),
    }


def _drain_phase(
    ctx: Context, settings: Settings, workers: int, profile_dir: Path | None
) -> Result:
    store = ctx.matchmaking
    queued = store.count(POOL_QUEUE)
    stop = SPAWN.Event()
    progress = [new_progress() for _ in range(workers)]
    with Children() as kids:
        for i in range(workers):
            plan = WorkerPlan(settings, POOL_QUEUE, _profile_path(profile_dir, f"drain-worker{i}"))
            kids.start(worker_main, plan, stop, progress[i])
        _wait_until_drained(store, POOL_QUEUE, progress, timeout_s=DRAIN_TIMEOUT_S)
        stop.set()
        results: list[WorkerResult] = kids.results(timeout_s=120)
    return {"drain_queued": queued} | _drain_figures(
        results, store.count(POOL_QUEUE), settings.lease_ttl_s
    )


def _drain_figures(results: list[WorkerResult], left: int, lease_ttl_s: float) -> Result:
    cycles = sorted((c for r in results for c in r.cycles), key=lambda c: c.started)
    productive = [c for c in cycles if c.matched_tickets]
    lease_trouble: Result = {
        "drain_cycles_over_lease_ttl": sum(1 for c in cycles if c.ended - c.started > lease_ttl_s),
        "drain_cycles_lease_lost": sum(1 for c in cycles if c.lease_lost),
        "drain_worker_errors": sum(r.errors for r in results),
    }
    if not productive:
        return {"matched_per_s": 0, "unmatched_left": left} | lease_trouble
    matched = sum(c.matched_tickets for c in productive)
    wall = max(c.ended for c in productive) - cycles[0].started
    return {
        "matched_per_s": round(matched / wall),
        "matched_tickets": matched,
        "unmatched_left": left,
        "drain_s": round(wall, 3),
        "drain_first_cycle_s": round(cycles[0].ended - cycles[0].started, 3),
        "drain_first_cycle_matched": cycles[0].matched_tickets,
        "drain_cycles": len(cycles),
        "drain_workers_matching": sum(
            1 for r in results if any(c.matched_tickets for c in r.cycles)
        ),
        **lease_trouble,
        "drain_note": "one queue has one lease: one worker matches at a time, others stand by",
    }


def _latency_phase(
    ctx: Context,
    settings: Settings,
    duration_s: float,
    profile_dir: Path | None,
    watch: SlowlogWatch,
) -> Result:
    store = ctx.matchmaking
    stop = SPAWN.Event()
    progress = new_progress()
    with Children() as worker:
        plan = WorkerPlan(settings, LATENCY_QUEUE, _profile_path(profile_dir, "latency-worker"))
        worker.start(worker_main, plan, stop, progress)
        _wait_for_lease(ctx, LATENCY_QUEUE, timeout_s=60)
        loads = _offer_load(settings, duration_s)
        _wait_until_drained(store, LATENCY_QUEUE, [progress], timeout_s=10)
        stop.set()
        [result] = worker.results(timeout_s=60)
    with watch.excluded():  # reading the whole stream back is ours, not the engine's
        latencies = _latencies_ms(store, LATENCY_QUEUE)
    sent = sum(load.sent for load in loads)
    cycle_ms = sorted((c.ended - c.started) * 1000 for c in result.cycles if c.matched_tickets)
    return {
        "offered_per_s": round(sent / max(load.elapsed_s for load in loads)),
        "latency_tickets": sent,
        "latency_matched": len(latencies),
        "latency_unmatched": store.count(LATENCY_QUEUE),
        "loader_max_lag_ms": round(max(load.max_lag_s for load in loads) * 1000, 1),
        "p50_ms": _percentile(latencies, 0.50),
        "p99_ms": _percentile(latencies, 0.99),
        "p999_ms": _percentile(latencies, 0.999),
        "latency_max_ms": latencies[-1] if latencies else -1,
        "cycle_p50_ms": round(_percentile(cycle_ms, 0.50), 1),
        "cycle_max_ms": round(cycle_ms[-1], 1) if cycle_ms else -1,
        "worker_tick_ms": round(settings.worker_tick_s * 1000, 1),
    }


def _offer_load(settings: Settings, duration_s: float) -> list[LoadResult]:
    """Offer :data:`OFFERED_PER_S` to the latency queue from :data:`LOADERS` paced processes."""
    start = SPAWN.Barrier(LOADERS)
    with Children() as loaders:
        for i in range(LOADERS):
            plan = LoadPlan(
                settings,
                LATENCY_QUEUE,
                f"l{i}-",
                200 + i,
                rate_per_s=OFFERED_PER_S / LOADERS,
                duration_s=duration_s,
                phase=i / LOADERS,
            )
            loaders.start(paced_main, plan, start)
        loads: list[LoadResult] = loaders.results(timeout_s=duration_s + 300)
    return loads


def _slow_calls(watch: SlowlogWatch, client: Redis) -> Result:
    spike_ms, event = latency_monitor_max(client)
    return {
        "max_redis_call_ms": round(watch.max_us / 1000, 3) if not watch.error else -1,
        "max_redis_call_cmd": watch.max_cmd or watch.error,
        "calls_over_100us": watch.entries,
        "slowlog_full_reads": watch.full_reads,
        "latency_monitor_max_ms": spike_ms,
        "latency_monitor_event": event,
    }


# -- helpers -----------------------------------------------------------------------------


def _wait_until_drained(
    store: MatchmakingStore, queue_name: str, progress: list[Progress], timeout_s: float
) -> None:
    """Wait until the queue is empty, or :data:`IDLE_CYCLES` cycles that held it matched nothing.

    Counting the workers' cycles (not seconds) keeps a long first cycle from
    looking like the end, however long it takes.
    """
    deadline = time.monotonic() + timeout_s
    seen_matched, cycles_then = -1, 0
    while time.monotonic() < deadline:
        time.sleep(POLL_S)
        cycles = sum(p[HELD_CYCLES] for p in progress)
        matched = sum(p[MATCHED_TICKETS] for p in progress)
        if matched != seen_matched:
            seen_matched, cycles_then = matched, cycles
        if cycles - cycles_then >= IDLE_CYCLES or store.count(queue_name) == 0:
            return


def _wait_for_lease(ctx: Context, queue_name: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ctx.client.exists(ctx.keys.lease(queue_name)):
        if time.monotonic() > deadline:
            raise BenchmarkError(f"no worker took the lease of {queue_name!r} in {timeout_s} s")
        time.sleep(POLL_S)


def _latencies_ms(store: MatchmakingStore, queue_name: str) -> list[int]:
    """Enqueue-to-matched latency (ms) of every matched ticket of the queue, sorted."""
    matched_ms: dict[str, int] = {}
    cursor = "0-0"
    while True:
        events, _ = store.events_after(queue_name, cursor, EVENTS_PER_READ)
        for event in events:
            if event.type == TicketStatus.MATCHED:
                matched_ms[event.ticket_id] = int(event.id.partition("-")[0])
        if len(events) < EVENTS_PER_READ:
            break
        cursor = events[-1].id
    tickets = store.get_many(list(matched_ms))
    return sorted(matched_ms[t] - round(ticket.created_at * 1000) for t, ticket in tickets.items())


def _percentile(values: list[int] | list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted ``values``; -1 if there are none."""
    if not values:
        return -1
    return values[min(len(values) - 1, max(math.ceil(fraction * len(values)) - 1, 0))]


def _mean(values: Iterable[int]) -> float:
    found = list(values)
    return round(sum(found) / len(found), 1) if found else -1


def _machine() -> str:
    return f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}"


def _profile_path(profile_dir: Path | None, name: str) -> str | None:
    return str(profile_dir / f"{name}.prof") if profile_dir is not None else None


def _commandstats(client: Redis) -> dict[str, tuple[int, int]]:
    info = client.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): (int(stat["calls"]), int(stat["usec"]))
        for name, stat in info.items()
        if isinstance(stat, dict)
    }


@contextmanager
def _phase_stats(client: Redis, profile_dir: Path | None, phase: str) -> Iterator[None]:
    """With ``profile_dir``: write the phase's INFO commandstats delta (calls, usec) there."""
    if profile_dir is None:
        yield
        return
    before = _commandstats(client)
    yield
    delta = {
        name: {
            "calls": calls - before.get(name, (0, 0))[0],
            "usec": usec - before.get(name, (0, 0))[1],
        }
        for name, (calls, usec) in _commandstats(client).items()
    }
    ranked = dict(sorted(delta.items(), key=lambda kv: -kv[1]["usec"]))
    (profile_dir / f"commandstats-{phase}.json").write_text(json.dumps(ranked, indent=2))


# -- output ------------------------------------------------------------------------------


def _verdict(key: str, value: float | int | str) -> str:
    if key not in TARGETS or isinstance(value, str):
        return ""
    op, bound = TARGETS[key]
    ok = value >= bound if op == ">=" else 0 <= value <= bound
    return f"{'[green]ok' if ok else '[red]miss'}[/] ({op} {bound:g})"


def _show(value: float | int | str) -> str:
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int) or value.is_integer():
        return f"{int(value):,}"
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def print_table(result: Result) -> None:
    """The figures as a table, with the targets they are held to."""
    table = Table(title="caroud bench matchmaking")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target")
    for key, value in result.items():
        table.add_row(key, _show(value), _verdict(key, value))
    Console().print(table)
