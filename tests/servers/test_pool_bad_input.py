"""Bad input gets a clear error and leaves the keyspace exactly as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from caroud.errors import CaroudError, NotFoundError, ValidationError
from caroud.servers import AllocationRequest, Server, ServerPool

T0 = 1_000_000.0

Keyspace = dict[str, tuple[str, Any]]


@pytest.fixture
def busy_pool(pool: ServerPool, add_server: Callable[..., Server]) -> ServerPool:
    """A pool with servers, a running and a released allocation: something to corrupt."""
    add_server("g1", "eu", 2, {"build": "7"})
    add_server("g2", "us", 1)
    pool.allocate("m1", "eu", now=T0)
    pool.allocate("m2", "eu", now=T0)
    pool.release("m2", now=T0 + 1)
    return pool


def register(pool: ServerPool, **overrides: Any) -> None:
    args: dict[str, Any] = {
        "address": "10.0.0.9",
        "port": 7777,
        "region": "eu",
        "capacity": 2,
        "labels": {"build": "7"},
        "server_id": "new",
        "now": T0,
    }
    args.update(overrides)
    pool.register(**args)


BAD_REGISTRATIONS: list[tuple[dict[str, Any], str]] = [
    ({"port": 0}, "port"),
    ({"port": 65536}, "port"),
    ({"port": -1}, "port"),
    ({"port": "7777"}, "port"),
    ({"port": True}, "port"),
    ({"region": "mars"}, "region"),
    ({"region": ""}, "region"),
    ({"capacity": 0}, "capacity"),
    ({"capacity": -3}, "capacity"),
    ({"capacity": 1.5}, "capacity"),
    ({"capacity": 100_000}, "capacity"),
    ({"address": ""}, "address"),
    ({"address": "host|evil"}, "address"),
    ({"address": "a b"}, "address"),
    ({"server_id": "a:b"}, "server_id"),
    ({"server_id": "a/b"}, "server_id"),
    ({"server_id": ""}, "server_id"),
    ({"server_id": "g1"}, "server_id"),  # taken: found by the script, which writes nothing
    ({"labels": {"build": 7}}, "labels.build"),
    ({"labels": {"build": "a,b"}}, "labels.build"),
    ({"labels": {"build": ""}}, "labels.build"),
    ({"labels": {"bad key": "x"}}, "labels"),
    ({"labels": ["build"]}, "labels"),
    ({"labels": {f"k{i}": "v" for i in range(33)}}, "labels"),
    ({"now": float("nan")}, "now"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_REGISTRATIONS)
def test_bad_registration_writes_nothing(
    busy_pool: ServerPool,
    keyspace: Callable[[], Keyspace],
    overrides: dict[str, Any],
    field: str,
) -> None:
    before = keyspace()
    with pytest.raises(ValidationError) as caught:
        register(busy_pool, **overrides)
    assert caught.value.field == field
    assert keyspace() == before


BAD_CALLS: list[tuple[Callable[[ServerPool], Any], type[CaroudError], str]] = [
    (lambda p: p.heartbeat("ghost", now=T0), NotFoundError, "'ghost'"),
    (lambda p: p.heartbeat("g1", "busy", now=T0), ValidationError, "state"),
    (lambda p: p.heartbeat("g1", "ready", -1, now=T0), ValidationError, "load"),
    (lambda p: p.heartbeat("g1", "ready", float("inf"), now=T0), ValidationError, "load"),
    (lambda p: p.heartbeat("g1", "ready", "high", now=T0), ValidationError, "load"),
    (lambda p: p.heartbeat("g:1", now=T0), ValidationError, "server_id"),
    (lambda p: p.drain("ghost"), NotFoundError, "'ghost'"),
    (lambda p: p.deregister("ghost", now=T0), NotFoundError, "'ghost'"),
    (lambda p: p.release("never", now=T0), NotFoundError, "'never'"),
    (lambda p: p.release("bad|id", now=T0), ValidationError, "match_id"),
    (lambda p: p.confirm_started("never", now=T0), NotFoundError, "'never'"),
    (lambda p: p.get_allocation("never"), NotFoundError, "'never'"),
    (lambda p: p.allocate("m9", "mars", now=T0), ValidationError, "regions"),
    (lambda p: p.allocate("m9", ["eu", "mars"], now=T0), ValidationError, r"regions\[1\]"),
    (lambda p: p.allocate("m9", [], now=T0), ValidationError, "regions"),
    (lambda p: p.allocate("m9", ["eu", "eu"], now=T0), ValidationError, "twice"),
    (lambda p: p.allocate("m9", "eu", strategy="random", now=T0), ValidationError, "strategy"),
    (lambda p: p.allocate("m9", "eu", selector={"b": 1}, now=T0), ValidationError, "selector"),
    (lambda p: p.allocate("", "eu", now=T0), ValidationError, "match_id"),
    (lambda p: p.allocate("m/9", "eu", now=T0), ValidationError, "match_id"),
    (lambda p: p.allocate("m9", "eu", now=float("nan")), ValidationError, "now"),
    (
        lambda p: p.allocate_many(
            [AllocationRequest("m8", ("eu",)), AllocationRequest("m9", ("mars",))], now=T0
        ),
        ValidationError,
        "mars",
    ),
    (lambda p: p.release_many(["m1", "b|d"], now=T0), ValidationError, "match_id"),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD_CALLS)
def test_bad_call_writes_nothing(
    busy_pool: ServerPool,
    keyspace: Callable[[], Keyspace],
    call: Callable[[ServerPool], Any],
    error: type[CaroudError],
    message: str,
) -> None:
    before = keyspace()
    with pytest.raises(error, match=message):
        call(busy_pool)
    assert keyspace() == before
