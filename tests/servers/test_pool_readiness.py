"""Which servers take matches: only after a ``ready`` heartbeat, not once benched for strikes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from caroud.errors import NoCapacityError, ValidationError
from caroud.redis.client import Redis
from caroud.servers import AllocationState, ReapReport, Server, ServerPool, ServerState
from caroud.servers.pool import MAX_STRIKES

T0 = 1_000_000.0
START_S = 30.0  # settings.start_deadline_s


def let_expire(pool: ServerPool, server_id: str, match_id: str, at: float) -> ReapReport:
    """Allocate ``match_id`` at ``at`` on the only candidate, let its start expire, reap."""
    assert pool.allocate(match_id, "eu", now=at).server_id == server_id
    pool.heartbeat(server_id, now=at + START_S)  # alive, yet it never confirms the start
    return pool.reap(now=at + START_S + 1)


def test_a_registered_server_takes_no_match_before_its_first_ready_heartbeat(
    pool: ServerPool,
) -> None:
    registered = pool.register("10.0.0.1", 7777, "eu", 2, server_id="g1", now=T0)
    assert registered.state is ServerState.STARTING and registered.free == 0
    assert [(s.id, s.state) for s in pool.list_servers()] == [("g1", ServerState.STARTING)]
    with pytest.raises(NoCapacityError):
        pool.allocate("m1", "eu", now=T0 + 1)
    assert pool.stats().servers_with_free_slots == 0
    beat = pool.heartbeat("g1", now=T0 + 2)
    assert beat.state is ServerState.READY and beat.free == 2
    assert pool.allocate("m1", "eu", now=T0 + 3).server_id == "g1"
    # a starting server that drains instead leaves at once
    pool.register("10.0.0.2", 7777, "eu", 2, server_id="g2", now=T0)
    assert pool.heartbeat("g2", "draining", now=T0 + 4).state is ServerState.DRAINING
    assert [s.id for s in pool.list_servers()] == ["g1"]
    assert pool.stats().capacity == 2
    assert pool.audit().ok


@pytest.mark.parametrize("state", ["starting", "benched", "READY", ""])
def test_a_heartbeat_reports_only_ready_or_draining(pool: ServerPool, state: str) -> None:
    pool.register("10.0.0.1", 7777, "eu", 2, server_id="g1", now=T0)
    with pytest.raises(ValidationError, match="'ready' or 'draining'"):
        pool.heartbeat("g1", state, now=T0 + 1)
    assert pool.get("g1").state is ServerState.STARTING


def test_expired_starts_bench_a_server_and_say_so(
    pool: ServerPool, add_server: Callable[..., Server], client: Redis
) -> None:
    add_server("g1", capacity=4)
    at = T0
    for strike in range(1, MAX_STRIKES):
        report = let_expire(pool, "g1", f"m{strike}", at)
        assert [a.match_id for a in report.expired] == [f"m{strike}"] and not report.benched
        server = pool.get("g1")
        assert (server.state, server.strikes) == (ServerState.READY, strike)
        at += START_S + 1
    report = let_expire(pool, "g1", "last", at)
    assert report.benched == ("g1",)
    [server] = pool.list_servers()
    assert (server.state, server.strikes, server.used, server.free) == (
        ServerState.BENCHED,
        MAX_STRIKES,
        0,
        0,
    )
    assert pool.stats().benched == 1
    [(_, event)] = client.xrange(pool.keys.events())
    assert event == {
        "e": "server_benched",
        "srv": "g1",
        "r": "eu",
        "strikes": str(MAX_STRIKES),
        "m": "last",
    }
    # it heartbeats on, ready, and still gets nothing
    pool.heartbeat("g1", now=at + START_S + 2)
    assert pool.get("g1").state is ServerState.BENCHED
    with pytest.raises(NoCapacityError):
        pool.allocate("next", "eu", now=at + START_S + 2)
    assert pool.audit().ok


def test_a_confirmed_start_clears_the_strikes(
    pool: ServerPool, add_server: Callable[..., Server]
) -> None:
    add_server("g1", capacity=4)
    at = T0
    for n in range(MAX_STRIKES - 1):
        let_expire(pool, "g1", f"lost{n}", at)
        at += START_S + 1
    assert pool.get("g1").strikes == MAX_STRIKES - 1
    pool.allocate("good", "eu", now=at)
    pool.confirm_started("good", now=at + 1)
    assert pool.get("g1").strikes == 0
    at += START_S + 1
    pool.heartbeat("g1", now=at)
    for n in range(MAX_STRIKES - 1):  # as many again: still short of the bench
        let_expire(pool, "g1", f"again{n}", at)
        at += START_S + 1
    assert (pool.get("g1").state, pool.get("g1").strikes) == (ServerState.READY, MAX_STRIKES - 1)


def test_a_benched_server_that_confirms_a_start_it_held_is_ready_again(
    pool: ServerPool, add_server: Callable[..., Server]
) -> None:
    add_server("g1", capacity=MAX_STRIKES + 1)
    for n in range(MAX_STRIKES):
        pool.allocate(f"lost{n}", "eu", now=T0)
    pool.allocate("held", "eu", now=T0 + 10)  # its deadline is 10 s later
    pool.heartbeat("g1", now=T0 + START_S)
    report = pool.reap(now=T0 + START_S + 1)
    assert len(report.expired) == MAX_STRIKES and report.benched == ("g1",)
    assert pool.get("g1").used == 1, "it keeps the match it still holds"
    assert pool.confirm_started("held", now=T0 + START_S + 2).state is AllocationState.STARTED
    server = pool.get("g1")
    assert (server.state, server.strikes, server.free) == (ServerState.READY, 0, MAX_STRIKES)
    assert pool.allocate("next", "eu", now=T0 + START_S + 3).server_id == "g1"
    assert pool.audit().ok


def test_a_benched_server_comes_back_by_registering_again(
    pool: ServerPool, add_server: Callable[..., Server]
) -> None:
    add_server("g1", capacity=1)
    at = T0
    for n in range(MAX_STRIKES):
        let_expire(pool, "g1", f"m{n}", at)
        at += START_S + 1
    assert pool.get("g1").state is ServerState.BENCHED
    assert pool.deregister("g1", now=at) == ()
    pool.register("10.0.0.1", 7777, "eu", 1, server_id="g1", now=at)
    assert pool.get("g1").strikes == 0
    with pytest.raises(NoCapacityError):
        pool.allocate("fresh", "eu", now=at)
    pool.heartbeat("g1", now=at)
    assert pool.allocate("fresh", "eu", now=at).server_id == "g1"


def test_a_draining_server_is_not_benched(
    pool: ServerPool, add_server: Callable[..., Server]
) -> None:
    add_server("g1", capacity=MAX_STRIKES + 1)
    for n in range(MAX_STRIKES):
        pool.allocate(f"m{n}", "eu", now=T0)
    pool.allocate("running", "eu", now=T0)
    pool.confirm_started("running", now=T0 + 1)
    pool.drain("g1")
    pool.heartbeat("g1", now=T0 + START_S)
    report = pool.reap(now=T0 + START_S + 1)
    assert len(report.expired) == MAX_STRIKES and report.benched == ()
    server = pool.get("g1")
    assert (server.state, server.strikes) == (ServerState.DRAINING, MAX_STRIKES)


def test_allocation_avoids_the_servers_it_is_told_to(
    pool: ServerPool, add_server: Callable[..., Server]
) -> None:
    add_server("a", capacity=2)
    add_server("b", capacity=2)
    assert pool.allocate("m1", "eu", avoid=["b"], now=T0).server_id == "a"
    # packed would now take "a" (fuller); told to avoid it, the match gets "b"
    assert pool.allocate("m2", "eu", avoid=("a",), now=T0).server_id == "b"
    with pytest.raises(NoCapacityError):
        pool.allocate("m3", "eu", avoid=["a", "b"], now=T0)
    assert pool.allocate("m3", "eu", now=T0).server_id in {"a", "b"}


@pytest.mark.parametrize("avoid", [["bad id"], [""], ["x"] * 65, [3]])
def test_a_bad_avoid_list_is_refused_before_anything_is_written(
    pool: ServerPool, add_server: Callable[..., Server], avoid: list[object]
) -> None:
    add_server("a")
    with pytest.raises(ValidationError, match="avoid"):
        pool.allocate("m1", "eu", avoid=avoid, now=T0)  # type: ignore[arg-type]
    assert pool.stats().allocations == 0
