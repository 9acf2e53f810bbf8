"""Health and deadlines: missed heartbeats, the first-heartbeat grace, unconfirmed starts, reap."""

from __future__ import annotations

import dataclasses

import pytest

from caroud.errors import AllocationStateError, NotFoundError
from caroud.keys import PoolKeys
from caroud.redis.client import Redis
from caroud.servers import AllocationState, ReapReport, Server, ServerPool, ServerState
from caroud.settings import Settings

T0 = 1_000_000.0


def register(pool: ServerPool, server_id: str, capacity: int = 2, now: float = T0) -> Server:
    return pool.register("10.0.0.1", 7777, "eu", capacity, server_id=server_id, now=now)


def register_ready(pool: ServerPool, server_id: str, capacity: int = 2, now: float = T0) -> Server:
    """Register, then report ``ready`` at once (only then does it take matches)."""
    register(pool, server_id, capacity, now)
    return pool.heartbeat(server_id, now=now)


def test_grace_before_the_first_heartbeat(pool: ServerPool) -> None:
    register(pool, "g1")
    assert pool.reap(now=T0 + 60) == ReapReport()  # 60 s grace: still healthy at T0 + 60
    assert pool.get("g1").state is ServerState.STARTING
    report = pool.reap(now=T0 + 60.001)
    assert [lost.server.id for lost in report.lost_servers] == ["g1"]
    with pytest.raises(NotFoundError):
        pool.get("g1")


def test_missed_heartbeats_after_the_first(pool: ServerPool) -> None:
    register(pool, "g1")
    pool.heartbeat("g1", now=T0 + 1)  # from now on, 3 intervals of 5 s
    assert not pool.reap(now=T0 + 16)
    pool.heartbeat("g1", now=T0 + 16)
    assert not pool.reap(now=T0 + 31)
    report = pool.reap(now=T0 + 31.001)
    assert [lost.server.id for lost in report.lost_servers] == ["g1"]
    assert pool.stats().unhealthy == 1


def test_intervals_come_from_settings(client: Redis, settings: Settings) -> None:
    quick = dataclasses.replace(
        settings, heartbeat_interval_s=1.0, missed_heartbeats=2, first_heartbeat_grace_s=4.0
    )
    pool = ServerPool(client, PoolKeys(settings.key_prefix, "quick"), ["eu"], quick)
    assert register(pool, "g1").healthy_until == T0 + 4
    assert pool.heartbeat("g1", now=T0 + 1).healthy_until == T0 + 3
    assert not pool.reap(now=T0 + 3)
    assert pool.reap(now=T0 + 3.001).lost_servers


def test_a_stale_server_gets_no_match_even_before_reaping(pool: ServerPool) -> None:
    register(pool, "a", capacity=4)
    register(pool, "b", capacity=4)
    pool.heartbeat("a", now=T0)  # healthy until T0 + 15
    pool.heartbeat("b", now=T0 + 10)  # healthy until T0 + 25
    assert pool.allocate("m1", "eu", strategy="distributed", now=T0 + 10).server_id == "a"
    # "a" is fuller: packed prefers it while it is healthy ...
    assert pool.allocate("m2", "eu", now=T0 + 15).server_id == "a"
    # ... and skips it once it is stale, though nobody has reaped it yet
    assert pool.allocate("m3", "eu", now=T0 + 15.001).server_id == "b"
    assert pool.get("a").used == 2


def test_a_heartbeat_before_reaping_revives_a_stale_server(pool: ServerPool) -> None:
    register(pool, "g1")
    pool.heartbeat("g1", now=T0)
    pool.heartbeat("g1", now=T0 + 20)  # late, but not reaped yet
    assert not pool.reap(now=T0 + 21)


def test_reap_reports_the_matches_of_an_unhealthy_server(pool: ServerPool) -> None:
    register(pool, "g1", capacity=3)
    pool.heartbeat("g1", now=T0)
    pool.allocate("waiting", "eu", now=T0)
    pool.allocate("playing", "eu", now=T0)
    pool.confirm_started("playing", now=T0 + 1)
    report = pool.reap(now=T0 + 16)
    (lost,) = report.lost_servers
    assert lost.server.id == "g1" and lost.server.used == 2
    assert {a.match_id: a.state for a in lost.allocations} == {
        "waiting": AllocationState.ALLOCATED,
        "playing": AllocationState.STARTED,
    }
    assert [a.match_id for a in report.to_allocate_again] == ["waiting"]
    assert [a.match_id for a in report.interrupted] == ["playing"]
    assert report.expired == ()
    assert pool.get_allocation("waiting").state is AllocationState.LOST
    assert pool.release("playing", now=T0 + 17).state is AllocationState.LOST
    stats = pool.stats()
    assert (stats.servers, stats.capacity, stats.used, stats.pending) == (0, 0, 0, 0)
    assert not pool.reap(now=T0 + 100)  # reported once


def test_unconfirmed_allocation_expires_and_its_slot_returns(pool: ServerPool) -> None:
    register(pool, "g1", capacity=1)
    pool.heartbeat("g1", now=T0)
    pool.allocate("m1", "eu", now=T0)
    pool.heartbeat("g1", now=T0 + 10)
    pool.heartbeat("g1", now=T0 + 20)
    assert not pool.reap(now=T0 + 30)  # the deadline is T0 + 30 (settings.start_deadline_s)
    pool.heartbeat("g1", now=T0 + 30)
    report = pool.reap(now=T0 + 30.5)
    assert [(a.match_id, a.state) for a in report.expired] == [("m1", AllocationState.ALLOCATED)]
    assert report.to_allocate_again == report.expired
    assert pool.get("g1").used == 0
    assert pool.get_allocation("m1").state is AllocationState.EXPIRED
    assert pool.stats().expired == 1
    with pytest.raises(AllocationStateError, match="expired"):
        pool.confirm_started("m1", now=T0 + 31)
    assert pool.release("m1", now=T0 + 31).state is AllocationState.EXPIRED  # a no-op
    # the caller allocates it again: a new slot
    again = pool.allocate("m1", "eu", now=T0 + 32)
    assert (again.state, again.allocated_at) == (AllocationState.ALLOCATED, T0 + 32)
    assert pool.get("g1").used == 1
    assert pool.audit().ok


def test_confirmed_allocation_does_not_expire(pool: ServerPool) -> None:
    register_ready(pool, "g1")
    pool.allocate("m1", "eu", now=T0)
    pool.confirm_started("m1", now=T0 + 29)
    pool.heartbeat("g1", now=T0 + 40)
    assert not pool.reap(now=T0 + 45)
    assert pool.get_allocation("m1").state is AllocationState.STARTED


def test_a_late_confirmation_before_reaping_counts(pool: ServerPool) -> None:
    register_ready(pool, "g1")
    pool.allocate("m1", "eu", now=T0)
    assert pool.confirm_started("m1", now=T0 + 35).state is AllocationState.STARTED
    pool.heartbeat("g1", now=T0 + 35)
    assert not pool.reap(now=T0 + 36)


def test_expiry_empties_a_draining_server_out_of_the_pool(pool: ServerPool) -> None:
    register_ready(pool, "g1")
    pool.allocate("m1", "eu", now=T0)
    assert pool.drain("g1") == 1
    pool.heartbeat("g1", now=T0 + 30)  # still healthy when its start expires
    report = pool.reap(now=T0 + 31)
    assert [a.match_id for a in report.expired] == ["m1"]
    with pytest.raises(NotFoundError):
        pool.get("g1")
    assert pool.stats().draining == 0


def test_reap_works_in_bounded_batches(pool: ServerPool) -> None:
    for i in range(45):  # more than one reap call's worth (20 servers)
        register_ready(pool, f"g{i:02d}", capacity=1)
        pool.allocate(f"m{i:02d}", "eu", selector=None, now=T0)
    report = pool.reap(now=T0 + 61)
    assert len(report.lost_servers) == 45
    assert sorted(a.match_id for a in report.to_allocate_again) == [f"m{i:02d}" for i in range(45)]
    assert pool.stats().servers == 0


def test_reap_forgets_old_tombstones(client: Redis, settings: Settings, pool: ServerPool) -> None:
    register(pool, "g1")
    pool.heartbeat("g1", now=T0)
    pool.allocate("m1", "eu", now=T0)
    pool.release("m1", now=T0 + 1)
    pool.heartbeat("g1", now=T0 + settings.ended_ttl_s)
    pool.reap(now=T0 + settings.ended_ttl_s)
    assert pool.get_allocation("m1").state is AllocationState.RELEASED
    pool.heartbeat("g1", now=T0 + settings.ended_ttl_s + 2)
    pool.reap(now=T0 + settings.ended_ttl_s + 2)
    with pytest.raises(NotFoundError):
        pool.get_allocation("m1")
    assert client.zcard(pool.keys.done()) == 0


def test_an_excused_reap_gives_every_server_and_start_a_whole_budget(pool: ServerPool) -> None:
    """Redis was out of reach: nobody could heartbeat or confirm, so nobody is late for it."""
    register_ready(pool, "alive")
    pool.allocate("m1", "eu", now=T0)  # on "alive"; start deadline T0 + 30
    register_ready(pool, "dead")
    back = T0 + 40  # past both servers' health (T0 + 15) and m1's start deadline
    report = pool.reap(now=back, excuse=True)
    assert report == ReapReport(), "excused: nothing removed, nothing expired, no strike"
    assert pool.get("dead").healthy_until == back + 15
    assert pool.get_allocation("m1").state is AllocationState.ALLOCATED
    pool.heartbeat("alive", now=back + 10)
    later = pool.reap(now=back + 15.001)
    assert [lost.server.id for lost in later.lost_servers] == ["dead"], "one budget later"
    pool.heartbeat("alive", now=back + 25)
    expired = pool.reap(now=back + 30.001).expired
    assert [a.match_id for a in expired] == ["m1"], "and its start one deadline later"


def test_an_unexcused_reap_after_the_same_gap_removes_them(pool: ServerPool) -> None:
    register_ready(pool, "g1")
    pool.allocate("m1", "eu", now=T0)
    report = pool.reap(now=T0 + 40)
    assert [lost.server.id for lost in report.lost_servers] == ["g1"]
