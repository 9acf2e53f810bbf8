"""The game-server pool benchmark: 1,000 servers, allocations and releases from several processes.

Worker processes allocate matches in pipelined batches (:meth:`ServerPool.allocate_many`,
each allocation its own atomic script call, as the matchmaking worker places a
cycle's matches) and release their oldest matches so that capacity stays
available; the parent heartbeats every server and reaps, as a deployment would.
An allocation's latency is the round trip of the batch it was sent in.

It runs against a fresh embedded Valkey in a temporary directory unless
``CAROUD_REDIS_URL`` names a server; then it writes only the keys of its own pool
(prefix ``bench``, pool ``bench``), deletes them afterwards, and puts back any server
setting it changed.
At the end, one consistent snapshot checks that no server is over capacity and
that the slots used are exactly the matches the workers still hold.
"""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from multiprocessing.synchronize import Event
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from rich.console import Console
from rich.table import Table

from caroud.errors import CaroudError, NoCapacityError, RedisError
from caroud.keys import PoolKeys
from caroud.redis.client import Redis, connect, redis_errors
from caroud.redis.embedded import embedded_url, stop_embedded
from caroud.servers.models import Allocation, AllocationRequest, Strategy
from caroud.servers.pool import AllocateOutcome, ServerPool
from caroud.settings import Settings

SERVERS = 1000
CAPACITY = 8
REGIONS = ("eu", "us", "asia")
BENCH_PREFIX = "bench"
"""Key prefix of everything the benchmark writes (never the deployment's own prefix)."""
POOL_NAME = "bench"
PROCESSES = 2
BATCH = 32
HELD = 1000
"""Matches each worker keeps running (its oldest are released): 2,000 of 8,000 slots."""
SLOWLOG_THRESHOLD_US = 50
SLOWLOG_LEN = 4096
POLL_S = 0.1

Result = dict[str, float | int]


def _command(client: Any, *args: Any) -> Any:
    """A raw command (redis-py leaves ``execute_command`` untyped)."""
    return client.execute_command(*args)


@contextmanager
def _target(settings: Settings) -> Iterator[tuple[Settings, bool]]:
    """Settings pointing at the server under test, and whether the benchmark started it."""
    if settings.redis_url is not None:
        yield replace(settings, key_prefix=BENCH_PREFIX), False
        return
    with TemporaryDirectory(prefix="caroud-bench-pool-") as tmp:
        data_dir = Path(tmp)
        url = embedded_url(data_dir)
        try:
            yield replace(settings, redis_url=url, data_dir=data_dir, key_prefix=BENCH_PREFIX), True
        finally:
            stop_embedded(data_dir)


def _pool(settings: Settings, client: Redis | None = None) -> ServerPool:
    client = client if client is not None else connect(settings)
    return ServerPool(client, PoolKeys(settings.key_prefix, POOL_NAME), REGIONS, settings)


def _allocate(pool: ServerPool, requests: list[AllocationRequest]) -> list[AllocateOutcome]:
    if len(requests) > 1:
        return pool.allocate_many(requests)
    r = requests[0]
    try:
        return [pool.allocate(r.match_id, r.regions, strategy=r.strategy)]
    except NoCapacityError as e:
        return [e]


def _release(pool: ServerPool, match_ids: list[str]) -> int:
    if len(match_ids) > 1:
        return sum(isinstance(r, Allocation) for r in pool.release_many(match_ids))
    for match_id in match_ids:
        pool.release(match_id)
    return len(match_ids)


@dataclass(frozen=True, slots=True)
class _Job:
    """What one worker process is to do."""

    settings: Settings
    index: int
    duration_s: float
    batch: int


def _worker(job: _Job, start: Event, out: Any) -> None:
    """Allocate in batches for ``duration_s``; report counts and batch round trips."""
    settings, index, duration_s, batch = job.settings, job.index, job.duration_s, job.batch
    pool = _pool(settings)
    held: deque[str] = deque()
    rtts: list[float] = []
    allocated = released = no_capacity = 0
    serial = 0
    start.wait()
    began = time.monotonic()
    stop = began + duration_s
    while time.monotonic() < stop:
        requests = []
        for _ in range(batch):
            serial += 1
            first = REGIONS[serial % 2]
            regions = (first, REGIONS[1 - serial % 2])
            strategy = Strategy.PACKED if serial % 4 else Strategy.DISTRIBUTED
            requests.append(AllocationRequest(f"w{index}-{serial}", regions, strategy=strategy))
        sent = time.perf_counter()
        outcomes = _allocate(pool, requests)
        rtts.append(time.perf_counter() - sent)
        for outcome in outcomes:
            if isinstance(outcome, Allocation):
                allocated += 1
                held.append(outcome.match_id)
            elif isinstance(outcome, NoCapacityError):
                no_capacity += 1
        if len(held) > HELD:
            done = [held.popleft() for _ in range(len(held) - HELD)]
            released += _release(pool, done)
    ended = time.monotonic()
    out.put(
        {
            "allocated": allocated,
            "released": released,
            "no_capacity": no_capacity,
            "held": len(held),
            "began": began,
            "ended": ended,
            "rtts": rtts,
        }
    )
    pool.client.close()


class _Housekeeping:
    """The parent's background work: heartbeat every server each interval, reap, read SLOWLOG."""

    def __init__(self, pool: ServerPool, slowlog: bool) -> None:
        self.pool = pool
        self.slowlog = slowlog
        self.longest_us = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bench-housekeeping", daemon=True)

    def _run(self) -> None:
        interval = self.pool.settings.heartbeat_interval_s
        ids = [s.id for s in self.pool.list_servers()]
        per_tick = max(1, int(len(ids) * POLL_S / interval))
        position = 0
        while not self.stop.wait(POLL_S):
            for sid in ids[position : position + per_tick]:
                self.pool.heartbeat(sid, "ready", 0.5)
            position = (position + per_tick) % len(ids)
            if position < per_tick:
                self.pool.reap()
            self.read_slowlog()

    def read_slowlog(self) -> None:
        if not self.slowlog:
            return
        pipe = self.pool.client.pipeline(transaction=True)
        _command(pipe, "SLOWLOG", "GET", SLOWLOG_LEN)
        _command(pipe, "SLOWLOG", "RESET")
        rows = pipe.execute()[0] or []
        for row in rows:
            if str(row[3][0]).upper().startswith("EVAL"):
                self.longest_us = max(self.longest_us, int(row[2]))


def _configure_slowlog(client: Redis) -> dict[str, str] | None:
    """Log calls over the threshold; the settings to put back, or None if CONFIG is refused."""
    saved: dict[str, str] = {}
    try:
        with redis_errors(client):
            for name, value in (
                ("slowlog-log-slower-than", SLOWLOG_THRESHOLD_US),
                ("slowlog-max-len", SLOWLOG_LEN),
            ):
                saved[name] = str(client.config_get(name)[name])
                client.config_set(name, value)
            _command(client, "SLOWLOG", "RESET")
    except (RedisError, KeyError):  # e.g. CONFIG disabled on a managed service
        return None
    return saved


def _collect(workers: list[Any], out: Any, deadline: float) -> list[dict[str, Any]]:
    """Each worker's report; CaroudError if one dies or the run overstays its deadline."""
    reports: list[dict[str, Any]] = []
    while len(reports) < len(workers):
        try:
            reports.append(out.get(timeout=1))
        except queue.Empty:
            failed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if failed or time.monotonic() > deadline:
                raise CaroudError(
                    f"a pool benchmark worker failed (exit codes {failed}) or hung: "
                    "run it again, and check that Redis is reachable from every process"
                ) from None
    return reports


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _register_servers(pool: ServerPool) -> None:
    for i in range(SERVERS):
        sid = f"bench-{i:04d}"
        address = f"10.0.{i // 250}.{i % 250 + 1}"
        pool.register(address, 7777, REGIONS[i % 3], CAPACITY, {"build": "b1"}, server_id=sid)
        pool.heartbeat(sid)


def run_pool_benchmark(
    settings: Settings, duration_s: float, *, processes: int = PROCESSES, batch: int = BATCH
) -> Result:
    """Register 1,000 servers, allocate and release for ``duration_s``; the figures.

    ``processes`` workers each send ``batch`` allocations per round trip (1: one
    :meth:`ServerPool.allocate` call at a time).
    """
    if processes < 1 or batch < 1:
        raise CaroudError("the pool benchmark needs at least one process and a batch of one")
    with _target(settings) as (target, own):
        client = connect(target)
        pool = _pool(target, client)
        client.unlink(*pool.keys.every_key(REGIONS))
        saved: dict[str, str] | None = None
        try:
            _register_servers(pool)
            saved = _configure_slowlog(client)
            if own:
                client.config_resetstat()  # so latencystats cover the run only
            result = _measure(
                target,
                pool,
                duration_s,
                processes=processes,
                batch=batch,
                slowlog=saved is not None,
            )
            if own:
                result |= _script_percentiles(client)
        finally:
            client.unlink(*pool.keys.every_key(REGIONS))
            if saved is not None and not own:
                for name, value in saved.items():
                    client.config_set(name, value)
            client.close()
    return result


def _measure(
    settings: Settings,
    pool: ServerPool,
    duration_s: float,
    *,
    processes: int,
    batch: int,
    slowlog: bool,
) -> Result:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    out = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(_Job(settings, i, duration_s, batch), start, out))
        for i in range(processes)
    ]
    for w in workers:
        w.start()
    housekeeping = _Housekeeping(pool, slowlog)
    housekeeping.read_slowlog()  # forget the registrations
    housekeeping.thread.start()
    start.set()
    try:
        reports = _collect(workers, out, time.monotonic() + duration_s + 120)
    finally:
        housekeeping.stop.set()
        housekeeping.thread.join()
        for w in workers:
            w.join(timeout=5)
            if w.is_alive():
                w.terminate()
    housekeeping.read_slowlog()

    audit = pool.audit()
    stats = pool.stats()
    held = sum(int(r["held"]) for r in reports)
    allocated = sum(int(r["allocated"]) for r in reports)
    released = sum(int(r["released"]) for r in reports)
    elapsed = max(r["ended"] for r in reports) - min(r["began"] for r in reports)
    # each allocation waited for its batch's round trip
    latencies = sorted(rtt for r in reports for rtt in r["rtts"])
    unaccounted = abs(audit.used_slots - held) + abs(allocated - released - held)
    result: Result = {
        "servers": audit.servers,
        "processes": len(reports),
        "batch": batch,
        "duration_s": round(elapsed, 2),
        "allocations": allocated,
        "allocations_per_s": round(allocated / elapsed),
        "releases": released,
        "no_capacity": stats.no_capacity,
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 3),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 3),
        "max_ms": round((latencies[-1] if latencies else 0.0) * 1000, 3),
        "over_allocations": len(audit.over_capacity) + len(audit.unaccounted) + unaccounted,
        "slots_used": audit.used_slots,
        "lost_servers": stats.unhealthy,
    }
    if slowlog:
        result["longest_script_ms"] = round(housekeeping.longest_us / 1000, 3)
    return result


def _script_percentiles(client: Redis) -> Result:
    """Server-side p99 / p99.9 of one EVALSHA since the last CONFIG RESETSTAT (if known)."""
    with redis_errors(client):
        percentiles = client.info("latencystats").get("latency_percentiles_usec_evalsha")
    if not isinstance(percentiles, dict):
        return {}
    return {
        "script_p99_ms": round(float(percentiles.get("p99", 0)) / 1000, 3),
        "script_p999_ms": round(float(percentiles.get("p99.9", 0)) / 1000, 3),
    }


def print_pool_table(result: Result, console: Console | None = None) -> None:
    """The figures as a table."""
    table = Table(title="Game-server pool benchmark")
    table.add_column("measure")
    table.add_column("value", justify="right")
    notes = {
        "p50_ms": "per allocation (its batch's round trip)",
        "p99_ms": "per allocation (its batch's round trip)",
        "over_allocations": "must be 0",
        "longest_script_ms": f"slowest script call in SLOWLOG (> {SLOWLOG_THRESHOLD_US} µs)",
        "script_p99_ms": "server-side time of one script call (INFO latencystats)",
        "script_p999_ms": "server-side time of one script call (INFO latencystats)",
    }
    table.add_column("note")
    for name, value in result.items():
        table.add_row(
            name, f"{value:,}" if isinstance(value, int) else str(value), notes.get(name, "")
        )
    (console or Console()).print(table)
