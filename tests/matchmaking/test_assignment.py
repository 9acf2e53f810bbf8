"""From tickets to players holding a server address: allocation, requeues, starts, results."""

from __future__ import annotations

import pytest

from caroud.context import Context
from caroud.errors import NotFoundError, ValidationError
from caroud.events import EventReader
from caroud.matchmaking.audit import audit_matches
from caroud.matchmaking.models import MatchStatus, TicketStatus
from caroud.matchmaking.queues import QueueRegistry
from caroud.matchmaking.worker import Worker
from caroud.redis.client import Redis
from caroud.servers.models import AllocationState
from caroud.settings import Settings

QUEUES = {
    "duel": {
        "teams": 2,
        "team_size": 1,
        "regions": ["eu", "us"],
        "fallback_regions": ["ap"],
        "assign_timeout_s": 30,
        "max_wait_s": 600,
    },
    "spread": {"teams": 2, "team_size": 1, "regions": ["eu"], "strategy": "distributed"},
    "labelled": {"teams": 2, "team_size": 1, "regions": ["eu"], "selector": {"build": "b2"}},
    "squad": {"teams": 2, "team_size": 2, "regions": ["eu"]},
}


@pytest.fixture
def app(settings: Settings, client: Redis) -> Context:
    return Context.build(settings, client, QueueRegistry.from_specs(QUEUES))


def worker(app: Context, queue: str = "duel") -> Worker:
    return Worker(app.matchmaking, queue_names=[queue], assigner=app.assigner)


def pair(
    app: Context,
    queue: str = "duel",
    prefix: str = "p",
    rating: float = 1500,
    created_at: float | None = None,
) -> list[str]:
    """Two tickets that match each other (and nothing rated far from ``rating``)."""
    return [
        app.matchmaking.enqueue(queue, [(f"{prefix}{i}", rating)], created_at=created_at).id
        for i in range(2)
    ]


def test_full_path_tickets_get_the_server_address(app: Context) -> None:
    server = app.pool.register("10.0.0.5", 7777, "eu", 4, {"build": "b1"})
    reader = EventReader(app.client, app.keys, ["duel"])
    a, b = pair(app)
    report = worker(app).run_cycle()
    assert report.matches == 1 and report.assigned == 1
    ta = app.matchmaking.get(a)
    assert ta.status is TicketStatus.ASSIGNED
    match = app.matches.get(ta.match_id or "")
    assert match.status is MatchStatus.ASSIGNED
    assert match.server is not None
    assert (match.server.address, match.server.port, match.server.region) == (
        "10.0.0.5",
        7777,
        "eu",
    )
    assert match.server.server_id == server.id
    assert {match.team_of(a), match.team_of(b)} == {0, 1}
    assigned = [e for e in reader.read(block_ms=100) if e.type == "assigned"]
    assert {e.ticket_id for e in assigned} == {a, b}
    assert {e.player_ids for e in assigned} == {("p0",), ("p1",)}
    assert {e.match_id for e in assigned} == {match.id}
    assert app.pool.get(server.id).used == 1


def test_region_fallback_and_no_capacity_then_requeue_keeps_the_wait(app: Context) -> None:
    now = app.matchmaking.server_time()
    a, _ = pair(app, created_at=now - 100)
    w = worker(app)
    report = w.run_cycle(now=now)
    assert report.matches == 1 and report.assigned == 0 and report.no_capacity == 1
    match_id = app.matchmaking.get(a).match_id or ""
    assert app.matches.get(match_id).status is MatchStatus.MATCHED
    assert app.pool.stats().no_capacity >= 1
    # still no server after the queue's assign_timeout_s: the tickets go back, oldest first
    report = w.run_cycle(now=now + 31)
    assert app.matches.get(match_id).status is MatchStatus.REQUEUED
    assert app.matchmaking.get(a).status in (TicketStatus.QUEUED, TicketStatus.MATCHED)
    newer = pair(app, prefix="new")
    # a server appears only in the fallback region
    app.pool.register("10.9.9.9", 9000, "ap", 1)
    w.run_cycle(now=now + 32)
    w.run_cycle(now=now + 33)
    ta = app.matchmaking.get(a)
    assert ta.status is TicketStatus.ASSIGNED, "requeued tickets go ahead of newer ones"
    assert ta.created_at == pytest.approx(now - 100, abs=0.01)
    match = app.matches.get(ta.match_id or "")
    assert match.server is not None and match.server.region == "ap"
    assert {app.matchmaking.get(t).status for t in newer} == {TicketStatus.MATCHED}
    assert audit_matches(app.client, app.keys).ok


def test_server_lost_before_start_requeues_after_start_interrupts(app: Context) -> None:
    now = app.matchmaking.server_time()
    app.pool.register("10.0.0.1", 1, "eu", 2, server_id="s1", now=now)
    a, _ = pair(app, prefix="x", rating=1000)
    c, _ = pair(app, prefix="y", rating=2500)
    w = worker(app)
    w.run_cycle(now=now)
    first, second = (app.matchmaking.get(t).match_id or "" for t in (a, c))
    app.assigner.match_started(first)
    assert app.matches.get(first).status is MatchStatus.STARTED
    # no heartbeat at all: past the first-heartbeat grace the server is reaped
    later = now + app.settings.first_heartbeat_grace_s + 1
    report = app.assigner.reap(now=later)
    assert report.interrupted == 1 and report.requeued_matches == 1
    [(_, lost)] = app.client.xrange(app.pool.keys.events())
    assert lost == {
        "e": "server_lost",
        "srv": "s1",
        "r": "eu",
        "started": first,
        "not_started": second,
    }
    assert app.matches.get(first).status is MatchStatus.INTERRUPTED
    assert app.matchmaking.active_ticket_of("x0") is None, (
        "players of an interrupted match are free"
    )
    assert app.matches.get(second).status is MatchStatus.REQUEUED
    assert app.matchmaking.get(c).status is TicketStatus.QUEUED
    assert app.matchmaking.active_ticket_of("y0") == c


def test_unconfirmed_start_is_allocated_again(app: Context) -> None:
    now = app.matchmaking.server_time()
    app.pool.register("10.0.0.1", 1, "eu", 1, server_id="s1", now=now)
    a, _ = pair(app)
    w = worker(app)
    w.run_cycle(now=now)
    match_id = app.matchmaking.get(a).match_id or ""
    app.pool.register("10.0.0.2", 2, "eu", 1, server_id="s2", now=now)
    app.pool.heartbeat("s1", now=now + 1)
    later = now + app.settings.start_deadline_s + 1
    app.pool.heartbeat("s1", now=later)
    app.pool.heartbeat("s2", now=later)
    report = app.assigner.reap(now=later)
    assert report.reallocated == 1
    assert app.pool.get_allocation(match_id).state in (AllocationState.EXPIRED,)
    w.run_cycle(now=later)
    match = app.matches.get(match_id)
    assert match.status is MatchStatus.ASSIGNED and match.server is not None
    allocation = app.pool.get_allocation(match_id)
    assert allocation.state is AllocationState.ALLOCATED
    assert allocation.server_id == match.server.server_id
    assert app.pool.audit().ok


def test_match_end_records_the_result_once_and_frees_everything(app: Context) -> None:
    server = app.pool.register("10.0.0.1", 1, "eu", 1)
    a, _ = pair(app)
    worker(app).run_cycle()
    match_id = app.matchmaking.get(a).match_id or ""
    app.assigner.match_started(match_id)
    with pytest.raises(ValidationError, match="winner"):
        app.assigner.match_ended(match_id, 5)
    outcome = app.assigner.match_ended(match_id, 1)
    assert outcome.status is MatchStatus.ENDED and outcome.winner == 1 and not outcome.already
    again = app.assigner.match_ended(match_id, 0)
    assert again.already and again.winner == 1, "a result is recorded exactly once"
    assert app.pool.get(server.id).used == 0
    assert app.matchmaking.active_ticket_of("p0") is None
    results = app.client.xrange(app.keys.results())
    assert len(results) == 1
    fields = results[0][1]
    match = app.matches.get(match_id)
    assert fields["w"] == "1" and fields["m"] == match_id
    assert fields["srv"] == server.id and fields["addr"] == "10.0.0.1:1" and fields["st"]
    team1 = fields["teams"].split("|")[1].split(",")
    assert team1 == list(app.matchmaking.get(match.teams[1][0]).player_ids)
    assert 0 < app.client.ttl(app.keys.match(match_id)) <= app.settings.ended_ttl_s


def test_draw_and_bad_reports(app: Context) -> None:
    app.pool.register("10.0.0.1", 1, "eu", 1)
    a, _ = pair(app)
    worker(app).run_cycle()
    match_id = app.matchmaking.get(a).match_id or ""
    assert app.assigner.match_ended(match_id, None).winner is None
    with pytest.raises(NotFoundError):
        app.assigner.match_ended("nope", 0)
    with pytest.raises(NotFoundError):
        app.assigner.match_started("nope")
    with pytest.raises(ValidationError, match="winner"):
        app.assigner.match_ended(match_id, True)  # type: ignore[arg-type]


def test_distributed_and_packed_queues_choose_as_documented(app: Context) -> None:
    for i in range(3):
        app.pool.register(f"10.0.1.{i}", 1000 + i, "eu", 4, server_id=f"s{i}")
    for i in range(3):
        pair(app, "spread", prefix=f"d{i}-", rating=1000 + 1000 * i)
    worker(app, "spread").run_cycle()
    assert sorted(app.pool.get(f"s{i}").used for i in range(3)) == [1, 1, 1]
    for i in range(3):
        pair(app, "duel", prefix=f"k{i}-", rating=1000 + 1000 * i)
    worker(app, "duel").run_cycle()
    # packed fills the fullest first: all three duel matches land on one server
    assert sorted(app.pool.get(f"s{i}").used for i in range(3)) == [1, 1, 4]


def test_selector_keeps_matches_off_servers_without_the_labels(app: Context) -> None:
    app.pool.register("10.0.0.1", 1, "eu", 4, {"build": "b1"}, server_id="old")
    new = app.pool.register("10.0.0.2", 2, "eu", 4, {"build": "b2"}, server_id="new")
    a, _ = pair(app, "labelled")
    worker(app, "labelled").run_cycle()
    match = app.matches.get(app.matchmaking.get(a).match_id or "")
    assert match.server is not None and match.server.server_id == new.id


def test_team_assignment_carries_each_players_team(app: Context) -> None:
    app.pool.register("10.0.0.1", 1, "eu", 1)
    party = app.matchmaking.enqueue("squad", [("a", 1500), ("b", 1500)]).id
    solos = [app.matchmaking.enqueue("squad", [(f"s{i}", 1500)]).id for i in range(2)]
    worker(app, "squad").run_cycle()
    match = app.matches.get(app.matchmaking.get(party).match_id or "")
    assert match.status is MatchStatus.ASSIGNED
    assert match.team_of(party) != match.team_of(solos[0]) == match.team_of(solos[1])
    assert app.matchmaking.get(solos[0]).team == match.team_of(solos[0])


def test_a_worker_dying_between_allocation_and_assignment_books_one_slot(app: Context) -> None:
    server = app.pool.register("10.0.0.1", 1, "eu", 4)
    a, _ = pair(app)
    queue = app.queues.get("duel")
    w = worker(app)
    # the first worker claims the match, then dies right after the pool gave it a slot
    report = Worker(app.matchmaking, queue_names=["duel"]).run_cycle()
    assert report.matches == 1
    match_id = app.matchmaking.get(a).match_id or ""
    app.client.zadd(app.keys.pending("duel"), {match_id: 0})  # as an assigning worker queues it
    app.pool.allocate(match_id, queue.regions)
    app.client.delete(app.keys.lease("duel"))  # its lease lapses
    # its successor finishes the job without a second slot
    w.run_cycle()
    match = app.matches.get(match_id)
    assert match.status is MatchStatus.ASSIGNED and match.server is not None
    assert match.server.server_id == server.id
    assert app.pool.get(server.id).used == 1
    assert app.pool.audit().ok


def test_deregistering_a_server_settles_its_matches(app: Context) -> None:
    app.pool.register("10.0.0.1", 1, "eu", 2, server_id="s1")
    a, _ = pair(app, prefix="x", rating=1000)
    c, _ = pair(app, prefix="y", rating=2500)
    worker(app).run_cycle()
    started, waiting = (app.matchmaking.get(t).match_id or "" for t in (a, c))
    app.assigner.match_started(started)
    report = app.assigner.deregister("s1")
    assert (report.interrupted, report.requeued_matches) == (1, 1)
    assert app.matches.get(started).status is MatchStatus.INTERRUPTED
    assert app.matches.get(waiting).status is MatchStatus.REQUEUED
    assert app.matchmaking.get(c).status is TicketStatus.QUEUED
    with pytest.raises(NotFoundError):
        app.assigner.deregister("s1")
