"""Allocation: strategies, fallback regions, selectors, idempotency, no capacity, release."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from caroud.errors import AllocationStateError, NoCapacityError, NotFoundError
from caroud.keys import PoolKeys
from caroud.redis.client import Redis
from caroud.servers import (
    Allocation,
    AllocationRequest,
    AllocationState,
    Server,
    ServerPool,
    Strategy,
)
from caroud.settings import Settings

T0 = 1_000_000.0

Keyspace = dict[str, tuple[str, Any]]


def fill(pool: ServerPool, server_id: str, n: int, prefix: str = "pre") -> None:
    """Put ``n`` matches on one server (it carries a label naming itself)."""
    for i in range(n):
        allocation = pool.allocate(
            f"{prefix}-{server_id}-{i}",
            pool.get(server_id).region,
            selector={"sid": server_id},
            now=T0,
        )
        assert allocation.server_id == server_id


@pytest.fixture
def three(add_server: Callable[..., Server], pool: ServerPool) -> ServerPool:
    """eu servers a (2 of 4 used), b (1 of 4), c (0 of 4)."""
    for sid in "abc":
        add_server(sid, "eu", 4, {"sid": sid})
    fill(pool, "a", 2)
    fill(pool, "b", 1)
    return pool


def test_allocation_record(pool: ServerPool, add_server: Callable[..., Server]) -> None:
    add_server("g1", "us", 2)
    allocation = pool.allocate("m1", "us", now=T0 + 1)
    assert allocation == Allocation(
        "m1", "g1", "us", "10.0.0.1", 7777, AllocationState.ALLOCATED, T0 + 1, T0 + 31
    )
    assert pool.get_allocation("m1") == allocation
    assert pool.get("g1").used == 1
    assert pool.allocations_of("g1") == [allocation]
    stats = pool.stats()
    assert (stats.used, stats.pending, stats.allocations) == (1, 1, 1)


def test_packed_takes_the_fullest_server(three: ServerPool) -> None:
    assert three.allocate("m1", "eu", strategy="packed", now=T0).server_id == "a"
    assert three.allocate("m2", "eu", strategy=Strategy.PACKED, now=T0).server_id == "a"
    # a is full now: the next fullest
    assert three.allocate("m3", "eu", now=T0).server_id == "b"


def test_distributed_takes_the_emptiest_server(three: ServerPool) -> None:
    assert three.allocate("m1", "eu", strategy="distributed", now=T0).server_id == "c"
    # c and b are both at 1/4 now: ties go to the smaller id
    assert three.allocate("m2", "eu", strategy="distributed", now=T0).server_id == "b"
    assert three.allocate("m3", "eu", strategy="distributed", now=T0).server_id == "c"


def test_strategies_rank_by_fraction_used(
    pool: ServerPool, add_server: Callable[..., Server]
) -> None:
    add_server("big", "eu", 10, {"sid": "big"})
    add_server("small", "eu", 2, {"sid": "small"})
    fill(pool, "big", 4)  # 40 %
    fill(pool, "small", 1)  # 50 %, though fewer slots used
    assert pool.allocate("p", "eu", strategy="packed", now=T0).server_id == "small"
    pool.release("p", now=T0)
    assert pool.allocate("d", "eu", strategy="distributed", now=T0).server_id == "big"


def test_ties_packed_takes_the_greater_id(
    pool: ServerPool, add_server: Callable[..., Server]
) -> None:
    for sid in ("s1", "s3", "s2"):
        add_server(sid, "eu", 2)
    assert pool.allocate("m1", "eu", now=T0).server_id == "s3"


def test_region_fallback_in_order(pool: ServerPool, add_server: Callable[..., Server]) -> None:
    add_server("eu1", "eu", 1)
    add_server("us1", "us", 1)
    add_server("as1", "asia", 1)
    assert pool.allocate("m1", ["us", "eu"], now=T0).server_id == "us1"
    assert pool.allocate("m2", ["us", "eu"], now=T0).server_id == "eu1"
    assert pool.allocate("m3", ["us", "eu", "asia"], now=T0).server_id == "as1"
    assert pool.allocate("m3", ["us", "eu", "asia"], now=T0).region == "asia"
    with pytest.raises(NoCapacityError, match="us, eu, asia"):
        pool.allocate("m4", ["us", "eu", "asia"], now=T0)


def test_selector_requires_every_label(pool: ServerPool, add_server: Callable[..., Server]) -> None:
    add_server("old", "eu", 4, {"build": "1", "maps": "classic"})
    add_server("new", "eu", 4, {"build": "12", "maps": "classic"})
    add_server("odd", "eu", 4, {"build": "2", "maps": "new"})
    assert pool.allocate("m1", "eu", selector={"build": "1"}, now=T0).server_id == "old"
    assert pool.allocate("m2", "eu", selector={"build": "12"}, now=T0).server_id == "new"
    picked = pool.allocate("m3", "eu", selector={"maps": "classic", "build": "12"}, now=T0)
    assert picked.server_id == "new"
    with pytest.raises(NoCapacityError, match="labels"):
        pool.allocate("m4", "eu", selector={"build": "2", "maps": "classic"}, now=T0)
    with pytest.raises(NoCapacityError):
        pool.allocate("m5", "eu", selector={"region": "eu"}, now=T0)


def test_retry_returns_the_same_allocation_and_takes_one_slot(
    pool: ServerPool, add_server: Callable[..., Server]
) -> None:
    add_server("g1", "eu", 4)
    add_server("g2", "us", 4)
    first = pool.allocate("m1", "eu", now=T0)
    again = pool.allocate("m1", "eu", now=T0 + 1)
    elsewhere = pool.allocate("m1", ["us"], strategy="distributed", now=T0 + 2)
    assert first == again == elsewhere
    assert pool.get("g1").used == 1 and pool.get("g2").used == 0
    stats = pool.stats()
    assert (stats.used, stats.allocations) == (1, 1)
    pool.confirm_started("m1", now=T0 + 3)
    assert pool.allocate("m1", "eu", now=T0 + 4).state is AllocationState.STARTED


def test_no_capacity_raises_and_counts(
    pool: ServerPool, add_server: Callable[..., Server], keyspace: Callable[[], Keyspace]
) -> None:
    add_server("g1", "eu", 1)
    pool.allocate("m1", "eu", now=T0)
    before = keyspace()
    for n in (1, 2):
        with pytest.raises(NoCapacityError) as caught:
            pool.allocate(f"x{n}", ["eu", "us"], now=T0)
        assert caught.value.regions == ("eu", "us")
        assert pool.stats().no_capacity == n
    after = keyspace()
    stats_key = pool.keys.stats()
    assert {k: v for k, v in after.items() if k != stats_key} == {
        k: v for k, v in before.items() if k != stats_key
    }
    with pytest.raises(NotFoundError):
        pool.get_allocation("x1")


def test_empty_pool_has_no_capacity(pool: ServerPool) -> None:
    with pytest.raises(NoCapacityError):
        pool.allocate("m1", "eu", now=T0)
    assert pool.stats().no_capacity == 1


def test_release_frees_the_slot_and_is_idempotent(
    pool: ServerPool, add_server: Callable[..., Server]
) -> None:
    add_server("g1", "eu", 1)
    pool.allocate("m1", "eu", now=T0)
    released = pool.release("m1", now=T0 + 9)
    assert (released.state, released.ended_at) == (AllocationState.RELEASED, T0 + 9)
    assert pool.get("g1").used == 0
    assert pool.release("m1", now=T0 + 10) == released
    assert pool.get("g1").used == 0
    assert pool.allocate("m2", "eu", now=T0 + 11).server_id == "g1"  # the slot is back
    with pytest.raises(AllocationStateError, match="released"):
        pool.allocate("m1", "eu", now=T0 + 12)  # a very late retry takes no slot
    assert pool.stats().used == 1
    assert pool.audit().ok


def test_release_of_a_full_server_makes_it_a_candidate_again(
    pool: ServerPool, add_server: Callable[..., Server], client: Redis
) -> None:
    add_server("g1", "eu", 1)
    pool.allocate("m1", "eu", now=T0)
    assert client.zcard(pool.keys.free("eu")) == 0
    pool.release("m1", now=T0)
    assert client.zscore(pool.keys.free("eu"), "g1") == 0


def test_confirm_started(pool: ServerPool, add_server: Callable[..., Server]) -> None:
    add_server("g1", "eu", 2)
    pool.allocate("m1", "eu", now=T0)
    started = pool.confirm_started("m1", now=T0 + 2)
    assert (started.state, started.started_at) == (AllocationState.STARTED, T0 + 2)
    assert pool.confirm_started("m1", now=T0 + 3) == started
    assert pool.stats().pending == 0
    pool.release("m1", now=T0 + 4)
    with pytest.raises(AllocationStateError, match="released"):
        pool.confirm_started("m1", now=T0 + 5)


def test_allocate_many(pool: ServerPool, add_server: Callable[..., Server]) -> None:
    add_server("g1", "eu", 2)
    pool.allocate("done", "eu", now=T0)
    pool.release("done", now=T0)
    outcomes = pool.allocate_many(
        [
            AllocationRequest("m1", ("eu",)),
            AllocationRequest("m1", ("eu",)),
            AllocationRequest("m2", ("us", "eu"), strategy=Strategy.DISTRIBUTED),
            AllocationRequest("m3", ("eu",)),
            AllocationRequest("done", ("eu",)),
        ],
        now=T0,
    )
    assert isinstance(outcomes[0], Allocation) and outcomes[0] == outcomes[1]
    assert isinstance(outcomes[2], Allocation) and outcomes[2].server_id == "g1"
    assert isinstance(outcomes[3], NoCapacityError)
    assert isinstance(outcomes[4], AllocationStateError)
    assert pool.allocate_many([]) == []
    assert pool.get("g1").used == 2


def test_release_many(pool: ServerPool, add_server: Callable[..., Server]) -> None:
    add_server("g1", "eu", 2)
    pool.allocate("m1", "eu", now=T0)
    outcomes = pool.release_many(["m1", "ghost", "m1"], now=T0 + 1)
    assert isinstance(outcomes[0], Allocation) and outcomes[0].state is AllocationState.RELEASED
    assert isinstance(outcomes[1], NotFoundError)
    assert outcomes[2] == outcomes[0]
    assert pool.get("g1").used == 0


def test_scan_limit_bounds_the_search(
    client: Redis, settings: Settings, add_server: Callable[..., Server]
) -> None:
    narrow = ServerPool(
        client, PoolKeys(settings.key_prefix, "test"), ["eu", "us", "asia"], settings, scan_limit=2
    )
    for sid in ("s1", "s2", "s3"):
        add_server(sid, "eu", 1, {"build": "old" if sid != "s1" else "new"})
    # packed looks at s3, s2 (ties: greater id first) and stops before s1
    with pytest.raises(NoCapacityError):
        narrow.allocate("m1", "eu", selector={"build": "new"}, now=T0)
    wide = ServerPool(
        client, PoolKeys(settings.key_prefix, "test"), ["eu", "us", "asia"], settings, scan_limit=3
    )
    assert wide.allocate("m1", "eu", selector={"build": "new"}, now=T0).server_id == "s1"


def test_server_clock_by_default(pool: ServerPool) -> None:
    pool.register("10.0.0.1", 7777, "eu", 1, server_id="g1")
    pool.heartbeat("g1")
    allocation = pool.allocate("m1", "eu")
    now = pool.server_time()
    assert now - 1 <= allocation.allocated_at <= now
    assert allocation.start_deadline == pytest.approx(allocation.allocated_at + 30)


def test_a_full_or_draining_server_in_a_free_set_is_skipped_and_dropped(
    pool: ServerPool, add_server: Callable[..., Server], client: Redis
) -> None:
    add_server("full", "eu", 1)
    add_server("idle", "eu", 1)
    pool.allocate("m1", "eu", selector=None, now=T0)  # packed tie: "idle" (greater id)
    pool.allocate("m2", "eu", now=T0)  # then "full"
    add_server("spare", "eu", 1)
    # a corrupted free set naming the full servers first must not overfill them
    client.zadd(pool.keys.free("eu"), {"full": 0.99, "idle": 0.98})
    assert pool.allocate("m3", "eu", now=T0).server_id == "spare"
    assert client.zrange(pool.keys.free("eu"), 0, -1) == []
    assert pool.audit().ok
