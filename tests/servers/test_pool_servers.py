"""Servers joining and leaving the pool: register, heartbeat, drain, deregister, reads."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from caroud.errors import ConfigError, NotFoundError, ValidationError
from caroud.keys import PoolKeys
from caroud.redis.client import Redis
from caroud.servers import AllocationState, Server, ServerPool, ServerState
from caroud.settings import Settings

T0 = 1_000_000.0


def test_register_records_the_server(pool: ServerPool) -> None:
    server = pool.register(
        "game-1.eu.internal",
        7777,
        "eu",
        3,
        {"build": "1.4.2", "maps": "arena"},
        server_id="g1",
        now=T0,
    )
    assert server == Server(
        "g1",
        "game-1.eu.internal",
        7777,
        "eu",
        3,
        {"build": "1.4.2", "maps": "arena"},
        state=ServerState.STARTING,
        registered_at=T0,
        healthy_until=T0 + 60,
    )
    assert pool.get("g1") == server
    assert pool.get("g1").last_heartbeat is None
    assert pool.stats().capacity == 3


def test_register_generates_an_id(pool: ServerPool) -> None:
    a = pool.register("10.0.0.1", 7000, "eu", 1)
    b = pool.register("10.0.0.1", 7001, "eu", 1)
    assert a.id != b.id and len(a.id) == 16
    assert {s.id for s in pool.list_servers()} == {a.id, b.id}


def test_register_uses_the_server_clock_by_default(pool: ServerPool) -> None:
    before = pool.server_time()
    server = pool.register("10.0.0.1", 7000, "eu", 1, server_id="g1")
    assert before - 0.01 <= server.registered_at <= pool.server_time() + 0.01


def test_list_servers_by_region(pool: ServerPool, add_server: Callable[..., Server]) -> None:
    add_server("b", "eu")
    add_server("a", "eu")
    add_server("c", "us")
    assert [s.id for s in pool.list_servers()] == ["a", "b", "c"]
    assert [s.id for s in pool.list_servers("eu")] == ["a", "b"]
    assert pool.list_servers("asia") == []
    with pytest.raises(ValidationError):
        pool.list_servers("mars")


def test_heartbeat_records_load_and_extends_health(
    pool: ServerPool, add_server: Callable[..., Server]
) -> None:
    add_server("g1")
    server = pool.heartbeat("g1", "ready", 0.75, now=T0 + 4)
    assert server.last_heartbeat == T0 + 4
    assert server.load == 0.75
    assert server.healthy_until == T0 + 4 + 15  # 3 missed intervals of 5 s
    assert pool.get("g1") == server


def test_get_unknown_server(pool: ServerPool) -> None:
    with pytest.raises(NotFoundError, match="'nope'"):
        pool.get("nope")


def test_drain_with_running_matches_keeps_the_server_until_they_end(
    pool: ServerPool, add_server: Callable[..., Server]
) -> None:
    add_server("g1", capacity=4)
    add_server("g2", capacity=4)
    pool.allocate("m1", "eu", selector=None, now=T0)
    pool.allocate("m2", "eu", now=T0)
    holder = pool.get_allocation("m1").server_id
    assert pool.get_allocation("m2").server_id == holder  # packed
    assert pool.drain(holder) == 2
    assert pool.get(holder).state is ServerState.DRAINING
    assert pool.get(holder).free == 0
    assert pool.stats().draining == 1

    # no new match lands on it, even with room and a packed strategy preferring it
    other = "g2" if holder == "g1" else "g1"
    assert pool.allocate("m3", "eu", now=T0 + 1).server_id == other

    assert pool.drain(holder) == 2  # idempotent
    pool.release("m1", now=T0 + 2)
    assert pool.get(holder).used == 1  # still in the pool: one match runs
    pool.release("m2", now=T0 + 3)
    with pytest.raises(NotFoundError):
        pool.get(holder)
    stats = pool.stats()
    assert (stats.servers, stats.draining, stats.capacity, stats.used) == (1, 0, 4, 1)
    assert pool.audit().ok


def test_drain_an_idle_server_removes_it_at_once(
    pool: ServerPool, add_server: Callable[..., Server], client: Redis
) -> None:
    add_server("g1")
    assert pool.drain("g1") == 0
    with pytest.raises(NotFoundError):
        pool.get("g1")
    assert pool.stats().draining == 0
    assert not client.exists(pool.keys.servers(), pool.keys.health(), pool.keys.free("eu"))


def test_heartbeat_draining_drains_and_ready_does_not_undo_it(
    pool: ServerPool, add_server: Callable[..., Server]
) -> None:
    add_server("g1")
    pool.allocate("m1", "eu", now=T0)
    server = pool.heartbeat("g1", ServerState.DRAINING, 0.2, now=T0 + 1)
    assert (server.state, server.used) == (ServerState.DRAINING, 1)
    assert pool.heartbeat("g1", "ready", now=T0 + 2).state is ServerState.DRAINING
    pool.release("m1", now=T0 + 3)
    with pytest.raises(NotFoundError):
        pool.heartbeat("g1", "draining", now=T0 + 4)


def test_heartbeat_draining_an_idle_server_reports_it_left(
    pool: ServerPool, add_server: Callable[..., Server]
) -> None:
    add_server("g1")
    server = pool.heartbeat("g1", "draining", now=T0 + 1)
    assert (server.state, server.used) == (ServerState.DRAINING, 0)
    with pytest.raises(NotFoundError):
        pool.get("g1")


def test_deregister_returns_the_allocations_it_held(
    pool: ServerPool, add_server: Callable[..., Server]
) -> None:
    add_server("g1", capacity=2)
    pool.allocate("m1", "eu", now=T0)
    pool.allocate("m2", "eu", now=T0)
    pool.confirm_started("m2", now=T0 + 1)
    held = pool.deregister("g1", now=T0 + 5)
    assert {(a.match_id, a.state) for a in held} == {
        ("m1", AllocationState.ALLOCATED),
        ("m2", AllocationState.STARTED),
    }
    with pytest.raises(NotFoundError):
        pool.get("g1")
    assert pool.get_allocation("m1").state is AllocationState.LOST
    assert pool.get_allocation("m1").ended_at == T0 + 5
    assert pool.release("m1").state is AllocationState.LOST  # a late release is a no-op
    stats = pool.stats()
    assert (stats.servers, stats.capacity, stats.used, stats.pending) == (0, 0, 0, 0)
    with pytest.raises(NotFoundError):
        pool.deregister("g1")


def test_pool_configuration_is_checked(client: Redis, settings: Settings) -> None:
    keys = PoolKeys(settings.key_prefix, "p")
    with pytest.raises(ConfigError, match="non-empty"):
        ServerPool(client, keys, [], settings)
    with pytest.raises(ConfigError, match="twice"):
        ServerPool(client, keys, ["eu", "eu"], settings)
    with pytest.raises(ConfigError, match="region"):
        ServerPool(client, keys, ["eu", "bad,region"], settings)
    with pytest.raises(ConfigError, match="pool name"):
        ServerPool(client, PoolKeys(settings.key_prefix, "a}b"), ["eu"], settings)
    with pytest.raises(ConfigError):
        ServerPool(client, keys, "eu", settings)


def test_keys_of_a_pool_share_one_hash_tag(pool: ServerPool) -> None:
    tags = {key.split("{")[1].split("}")[0] for key in pool.keys.every_key(pool.regions)}
    assert tags == {"pool:test"}
