"""Fixtures of the game-server pool tests: a pool on the clean test database, a fake clock."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from caroud.keys import PoolKeys
from caroud.redis.client import Redis
from caroud.servers import Server, ServerPool
from caroud.settings import Settings

REGIONS = ("eu", "us", "asia")
T0 = 1_000_000.0
"""The tests' clock (seconds): every time-dependent call is given ``now`` from here."""

Keyspace = dict[str, tuple[str, Any]]


@pytest.fixture
def pool(client: Redis, settings: Settings) -> ServerPool:
    return ServerPool(client, PoolKeys(settings.key_prefix, "test"), REGIONS, settings)


@pytest.fixture
def add_server(pool: ServerPool) -> Callable[..., Server]:
    """Register a server at ``T0`` and heartbeat it then, so it is healthy until T0 + 15 s."""

    def add(
        server_id: str,
        region: str = "eu",
        capacity: int = 4,
        labels: Mapping[str, str] | None = None,
        *,
        now: float = T0,
    ) -> Server:
        pool.register("10.0.0.1", 7777, region, capacity, labels, server_id=server_id, now=now)
        return pool.heartbeat(server_id, now=now)

    return add


def read_keyspace(client: Redis) -> Keyspace:
    """Every key of the database with its type and whole content."""
    out: Keyspace = {}
    for key in sorted(client.scan_iter("*")):
        kind = client.type(key)
        if kind == "hash":
            value: Any = client.hgetall(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        elif kind == "string":
            value = client.get(key)
        else:
            raise AssertionError(f"unexpected {kind} key {key}")
        out[key] = (kind, value)
    return out


@pytest.fixture
def keyspace(client: Redis) -> Callable[[], Keyspace]:
    """A function returning the whole keyspace now (to show that nothing was written)."""
    return lambda: read_keyspace(client)
