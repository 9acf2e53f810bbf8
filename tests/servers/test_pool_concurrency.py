"""Eight processes allocating and releasing at once: no server overfilled, every slot accounted."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from multiprocessing.synchronize import Event
from typing import Any

import pytest

from caroud.errors import NoCapacityError
from caroud.keys import PoolKeys
from caroud.redis.client import Redis, connect
from caroud.servers import AllocationState, ServerPool
from caroud.servers.models import decode_allocation
from caroud.settings import Settings

T0 = 1_000_000.0
PROCESSES = 8
SERVERS = 100
CAPACITY = 3
ATTEMPTS = 60
SHARED = 20
"""Match ids every process allocates: they race for one slot each."""
REGIONS = ("eu", "us", "asia")


def _pool(redis_url: str) -> ServerPool:
    settings = Settings.from_mapping({"CAROUD_REDIS_URL": redis_url})
    return ServerPool(connect(settings), PoolKeys(settings.key_prefix, "test"), REGIONS, settings)


def _worker(redis_url: str, index: int, start: Event, results: Any) -> None:
    pool = _pool(redis_url)
    got: dict[str, str] = {}
    released: list[str] = []
    no_capacity = 0
    start.wait()
    for n in range(ATTEMPTS):
        match_id = f"shared-{n}" if n < SHARED else f"w{index}-{n}"
        strategy = "packed" if n % 2 else "distributed"
        try:
            allocation = pool.allocate(match_id, ["eu", "us"], strategy=strategy, now=T0)
        except NoCapacityError:
            no_capacity += 1
            continue
        got[match_id] = allocation.server_id
        if n % 5 == 0 and not match_id.startswith("shared"):
            pool.release(match_id, now=T0)
            released.append(match_id)
    results.put((index, got, released, no_capacity))
    pool.client.close()


@pytest.mark.slow
def test_concurrent_allocations_never_overfill(redis_url: str, client: Redis) -> None:
    pool = _pool(redis_url)
    for i in range(SERVERS):
        region = REGIONS[i % 3]
        pool.register("10.0.0.1", 7000 + i, region, CAPACITY, server_id=f"g{i:03d}", now=T0)
        pool.heartbeat(f"g{i:03d}", now=T0)
    eligible = sum(1 for i in range(SERVERS) if REGIONS[i % 3] != "asia") * CAPACITY

    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(redis_url, i, start, results)) for i in range(PROCESSES)
    ]
    for w in workers:
        w.start()
    start.set()
    reports = [results.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0

    servers = {s.id: s for s in pool.list_servers()}
    assert all(s.used <= s.capacity for s in servers.values())
    assert all(s.used == 0 for s in servers.values() if s.region == "asia")

    # every process that got a shared match got the same server
    shared: dict[str, set[str]] = {}
    for _, got, _, _ in reports:
        for match_id, server_id in got.items():
            if match_id.startswith("shared"):
                shared.setdefault(match_id, set()).add(server_id)
    assert all(len(holders) == 1 for holders in shared.values())

    held: dict[str, str] = {}
    for _, got, released, _ in reports:
        held.update({m: s for m, s in got.items() if m not in released})
    records = {
        m: decode_allocation(m, v) for m, v in client.hgetall(pool.keys.allocations()).items()
    }
    running = {m: a.server_id for m, a in records.items() if a.running}
    assert running == held  # the pool records exactly the slots the processes hold
    per_server = Counter(running.values())
    assert all(servers[sid].used == per_server.get(sid, 0) for sid in servers)
    assert sum(s.used for s in servers.values()) == len(running) == eligible  # all taken
    assert all(
        records[m].state is AllocationState.RELEASED for _, _, rel, _ in reports for m in rel
    )
    stats = pool.stats()
    assert stats.no_capacity == sum(r[3] for r in reports)
    assert stats.used == len(running)
    assert pool.audit().ok
