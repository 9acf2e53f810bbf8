"""From tickets to players holding a server address: allocation, requeues, starts, results."""

from __future__ import annotations

import pytest

from caroud.context import Context
from caroud.errors import NotFoundError, TicketStateError, ValidationError
from caroud.events import EventReader
from caroud.matchmaking.assignment import MAX_PLACEMENTS, AssignReport, placement_request
from caroud.matchmaking.audit import audit_matches
from caroud.matchmaking.models import MatchStatus, TicketStatus
from caroud.matchmaking.queues import QueueRegistry
from caroud.matchmaking.worker import Worker
from caroud.redis.client import Redis
from caroud.servers.models import Allocation, AllocationState, Server, ServerState
from caroud.servers.pool import MAX_STRIKES
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


def ready(
    app: Context,
    address: str,
    port: int,
    region: str,
    capacity: int,
    labels: dict[str, str] | None = None,
    *,
    server_id: str | None = None,
    now: float | None = None,
) -> Server:
    """Register a game server and report it ``ready`` (only then does it take matches)."""
    server = app.pool.register(
        address, port, region, capacity, labels, server_id=server_id, now=now
    )
    return app.pool.heartbeat(server.id, now=now)


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
    server = ready(app, "10.0.0.5", 7777, "eu", 4, {"build": "b1"})
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
    ready(app, "10.9.9.9", 9000, "ap", 1, now=now + 32)
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
    ready(app, "10.0.0.1", 1, "eu", 2, server_id="s1", now=now)
    a, _ = pair(app, prefix="x", rating=1000)
    c, _ = pair(app, prefix="y", rating=2500)
    w = worker(app)
    w.run_cycle(now=now)
    first, second = (app.matchmaking.get(t).match_id or "" for t in (a, c))
    app.assigner.match_started(first)
    assert app.matches.get(first).status is MatchStatus.STARTED
    # no heartbeat after the first: past the first-heartbeat grace the server is reaped
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
    ready(app, "10.0.0.1", 1, "eu", 1, server_id="s1", now=now)
    a, _ = pair(app)
    w = worker(app)
    w.run_cycle(now=now)
    match_id = app.matchmaking.get(a).match_id or ""
    ready(app, "10.0.0.2", 2, "eu", 1, server_id="s2", now=now)
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
    server = ready(app, "10.0.0.1", 1, "eu", 1)
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
    ready(app, "10.0.0.1", 1, "eu", 1)
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
        ready(app, f"10.0.1.{i}", 1000 + i, "eu", 4, server_id=f"s{i}")
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
    ready(app, "10.0.0.1", 1, "eu", 4, {"build": "b1"}, server_id="old")
    new = ready(app, "10.0.0.2", 2, "eu", 4, {"build": "b2"}, server_id="new")
    a, _ = pair(app, "labelled")
    worker(app, "labelled").run_cycle()
    match = app.matches.get(app.matchmaking.get(a).match_id or "")
    assert match.server is not None and match.server.server_id == new.id


def test_team_assignment_carries_each_players_team(app: Context) -> None:
    ready(app, "10.0.0.1", 1, "eu", 1)
    party = app.matchmaking.enqueue("squad", [("a", 1500), ("b", 1500)]).id
    solos = [app.matchmaking.enqueue("squad", [(f"s{i}", 1500)]).id for i in range(2)]
    worker(app, "squad").run_cycle()
    match = app.matches.get(app.matchmaking.get(party).match_id or "")
    assert match.status is MatchStatus.ASSIGNED
    assert match.team_of(party) != match.team_of(solos[0]) == match.team_of(solos[1])
    assert app.matchmaking.get(solos[0]).team == match.team_of(solos[0])


def test_a_worker_dying_between_allocation_and_assignment_books_one_slot(app: Context) -> None:
    server = ready(app, "10.0.0.1", 1, "eu", 4)
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
    ready(app, "10.0.0.1", 1, "eu", 2, server_id="s1")
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


# -- servers that never start their matches (issue 10, item 6) --------------------------------


def beat(app: Context, now: float, *server_ids: str) -> None:
    """Heartbeat ``ready`` for each server at ``now``: alive, whether or not it starts matches."""
    for sid in server_ids:
        app.pool.heartbeat(sid, now=now)


def test_a_registered_server_takes_no_match_until_it_reports_ready(app: Context) -> None:
    now = app.matchmaking.server_time()
    app.pool.register("10.0.0.1", 1, "eu", 4, server_id="s1", now=now)
    a, _ = pair(app)
    w = worker(app)
    report = w.run_cycle(now=now)
    assert (report.matches, report.assigned, report.no_capacity) == (1, 0, 1)
    assert app.pool.get("s1").used == 0
    app.pool.heartbeat("s1", now=now + 1)
    assert w.run_cycle(now=now + 1).assigned == 1
    assert app.matchmaking.get(a).status is TicketStatus.ASSIGNED


def test_an_expired_start_is_placed_on_another_server(app: Context) -> None:
    now = app.matchmaking.server_time()
    ready(app, "10.0.0.1", 1, "eu", 1, server_id="s1", now=now)
    ready(app, "10.0.0.2", 2, "eu", 1, server_id="s2", now=now)
    a, _ = pair(app)
    w = worker(app)
    w.run_cycle(now=now)
    match_id = app.matchmaking.get(a).match_id or ""
    first = app.matches.get(match_id).server
    assert first is not None
    later = now + app.settings.start_deadline_s + 1
    beat(app, later, "s1", "s2")
    # both servers are empty again: packed would choose the same one as before
    w.run_cycle(now=later)
    match = app.matches.get(match_id)
    assert match.status is MatchStatus.ASSIGNED and match.server is not None
    assert match.server.server_id != first.server_id, "it avoids the server it failed on"
    allocation = app.pool.get_allocation(match_id)
    assert (allocation.state, allocation.server_id) == (
        AllocationState.ALLOCATED,
        match.server.server_id,
    )
    assert app.pool.get(first.server_id).strikes == 1
    assert app.pool.audit().ok


def test_after_max_placements_the_tickets_go_back_keeping_their_wait(app: Context) -> None:
    now = app.matchmaking.server_time()
    ids = [f"s{i}" for i in range(MAX_PLACEMENTS + 1)]  # room for one more: not a capacity issue
    for i, sid in enumerate(ids):
        ready(app, f"10.0.0.{i}", 1, "eu", 1, server_id=sid, now=now)
    a, b = pair(app, created_at=now - 50)
    reader = EventReader(app.client, app.keys, ["duel"])
    w = worker(app)
    w.run_cycle(now=now)
    match_id = app.matchmaking.get(a).match_id or ""
    tried: list[str] = []
    at = now
    for _ in range(MAX_PLACEMENTS):
        server = app.matches.get(match_id).server
        assert server is not None
        tried.append(server.server_id)
        at += app.settings.start_deadline_s + 1
        beat(app, at, *ids)
        w.run_cycle(now=at)
    assert len(set(tried)) == MAX_PLACEMENTS, f"a new server each time: {tried}"
    assert app.matches.get(match_id).status is MatchStatus.REQUEUED
    assert app.client.hget(app.keys.match(match_id), "why") == "start_expired"
    for t in (a, b):
        ticket = app.matchmaking.get(t)
        assert ticket.match_id != match_id, "matched anew (here at once, on the spare server)"
        assert ticket.created_at == pytest.approx(now - 50, abs=0.01), "they keep their wait"
    requeued = [e for e in reader.read(block_ms=100) if e.type == "queued"]
    assert {e.ticket_id for e in requeued} == {a, b}
    assert [app.pool.get(s).strikes for s in tried] == [1] * MAX_PLACEMENTS
    assert app.pool.audit().ok and audit_matches(app.client, app.keys).ok


def test_a_server_that_never_starts_its_matches_is_benched(app: Context) -> None:
    """The observed loop: one live server that does not know its matches, forever."""
    now = app.matchmaking.server_time()
    ready(app, "10.0.0.1", 1, "eu", 4, server_id="dud", now=now)
    w = worker(app)
    at = now
    for round_no in range(MAX_STRIKES):
        pair(app, prefix=f"r{round_no}-", rating=1000 + 500 * round_no)
        w.run_cycle(now=at)
        at += app.settings.start_deadline_s + 1
        beat(app, at, "dud")
        w.run_cycle(now=at)  # reaped: a strike (the match now avoids "dud": no capacity)
    assert app.pool.get("dud").state is ServerState.BENCHED
    [(_, event)] = app.client.xrange(app.pool.keys.events())
    assert event["e"] == "server_benched" and event["srv"] == "dud"
    pair(app, prefix="late-", rating=3000)
    report = w.run_cycle(now=at + 1)
    assert report.assigned == 0 and report.no_capacity >= 1, "a benched server takes nothing"
    assert app.pool.get("dud").used == 0


def test_the_reaper_dying_before_the_requeue_is_repaired_by_the_next_round(app: Context) -> None:
    now = app.matchmaking.server_time()
    ready(app, "10.0.0.1", 1, "eu", 4, server_id="s1", now=now)
    a, _ = pair(app)
    worker(app).run_cycle(now=now)
    match = app.matches.get(app.matchmaking.get(a).match_id or "")
    # its placements all failed, the last one recorded but not yet acted on
    app.client.hset(app.keys.match(match.id), "av", "x1,x2")
    assert app.matches.retry_elsewhere(match, "s1") == MAX_PLACEMENTS
    report = app.assigner.assign_pending(app.queues.get("duel"), now + 1)
    assert report.requeued_matches == 1 and report.assigned == 0
    assert app.matches.get(match.id).status is MatchStatus.REQUEUED


# -- a player leaves a match that has not started ---------------------------------------


def test_a_player_leaves_an_assigned_match_and_the_others_go_back(app: Context) -> None:
    server = ready(app, "10.0.0.1", 1, "eu", 4)
    a, b = pair(app, created_at=app.matchmaking.server_time() - 20)
    before_b = app.matchmaking.get(b).created_at
    worker(app).run_cycle()
    match_id = app.matchmaking.get(a).match_id or ""
    assert app.pool.get(server.id).used == 1
    reader = EventReader(app.client, app.keys, ["duel"])

    cancelled = app.assigner.cancel_ticket(a)

    assert cancelled.status is TicketStatus.CANCELLED and cancelled.match_id is None
    stored = app.matchmaking.get(a)
    assert (stored.status, stored.match_id) == (TicketStatus.CANCELLED, None)
    assert app.matchmaking.active_ticket_of("p0") is None, "the leaver is free"
    assert 0 < app.client.ttl(app.keys.ticket(a)) <= app.settings.ended_ttl_s
    other = app.matchmaking.get(b)
    assert (other.status, other.match_id) == (TicketStatus.QUEUED, None)
    assert other.created_at == before_b, "the others keep their wait"
    assert app.matchmaking.active_ticket_of("p1") == b
    assert app.client.ttl(app.keys.ticket(b)) == -1
    assert [t.id for t in app.matchmaking.list_queued("duel")] == [b]
    match = app.matches.get(match_id)
    assert match.status is MatchStatus.REQUEUED
    assert app.client.hget(app.keys.match(match_id), "why") == "player_left"
    assert app.pool.get_allocation(match_id).state is AllocationState.RELEASED
    assert app.pool.get(server.id).used == 0
    events = {e.ticket_id: e for e in reader.read(block_ms=100)}
    assert (events[a].type, events[a].match_id, events[a].player_ids) == (
        "cancelled",
        match_id,
        ("p0",),
    )
    assert (events[b].type, events[b].player_ids) == ("queued", ("p1",))
    assert app.pool.audit().ok and audit_matches(app.client, app.keys).ok
    with pytest.raises(TicketStateError, match="cancelled"):
        app.assigner.cancel_ticket(a)


def test_leaving_a_match_waiting_for_a_server_frees_no_slot(app: Context) -> None:
    party = app.matchmaking.enqueue("squad", [("a", 1500), ("b", 1500)]).id
    solos = [app.matchmaking.enqueue("squad", [(f"s{i}", 1500)]).id for i in range(2)]
    worker(app, "squad").run_cycle()  # no server anywhere: the match waits
    match_id = app.matchmaking.get(party).match_id or ""
    assert app.matches.get(match_id).status is MatchStatus.MATCHED
    app.assigner.cancel_ticket(party)
    assert {app.matchmaking.active_ticket_of(p) for p in ("a", "b")} == {None}
    assert {app.matchmaking.get(t).status for t in solos} == {TicketStatus.QUEUED}
    assert app.matches.get(match_id).status is MatchStatus.REQUEUED
    assert not app.client.zscore(app.keys.pending("squad"), match_id), "no longer waits"
    with pytest.raises(NotFoundError):
        app.pool.get_allocation(match_id)


def test_a_started_match_cannot_be_left(app: Context) -> None:
    server = ready(app, "10.0.0.1", 1, "eu", 4)
    a, b = pair(app)
    worker(app).run_cycle()
    match_id = app.matchmaking.get(a).match_id or ""
    app.assigner.match_started(match_id)
    with pytest.raises(TicketStateError, match="started") as refused:
        app.assigner.cancel_ticket(a)
    assert refused.value.status == "assigned"
    assert {app.matchmaking.get(t).status for t in (a, b)} == {TicketStatus.ASSIGNED}
    assert app.matches.get(match_id).status is MatchStatus.STARTED
    assert app.pool.get(server.id).used == 1
    with pytest.raises(NotFoundError):
        app.assigner.cancel_ticket("nope")


def test_a_slot_taken_for_a_match_its_player_left_is_given_back(app: Context) -> None:
    """A worker that read the pending match before the player left allocates it after."""
    server = ready(app, "10.0.0.1", 1, "eu", 4)
    a, _ = pair(app)
    Worker(app.matchmaking, queue_names=["duel"]).run_cycle()  # matched, not yet placed
    match_id = app.matchmaking.get(a).match_id or ""
    app.client.zadd(app.keys.pending("duel"), {match_id: 0})  # as an assigning worker queues it
    stale = app.matches.pending("duel")
    app.assigner.cancel_ticket(a)
    # the slow worker goes on with what it read: the slot it takes is given back at once
    placed = app.pool.allocate_many([placement_request(app.queues.get("duel"), p) for p in stale])
    assert isinstance(placed[0], Allocation)
    report = AssignReport()
    app.assigner._record_assignments(
        app.queues.get("duel"), [(stale[0].match, placed[0])], 0.0, report
    )
    assert report.assigned == 0
    assert app.pool.get(server.id).used == 0
    assert app.matches.get(match_id).status is MatchStatus.REQUEUED


def test_a_start_confirmed_after_a_player_left_frees_the_slot(app: Context) -> None:
    """The leave's release never came (its process died): the server's start frees it."""
    server = ready(app, "10.0.0.1", 1, "eu", 4)
    a, _ = pair(app)
    worker(app).run_cycle()
    match_id = app.matchmaking.get(a).match_id or ""
    app.matches.cancel(a)  # the leave itself, without the release that follows it
    assert app.pool.get(server.id).used == 1
    with pytest.raises(ValidationError, match="requeued"):
        app.assigner.match_started(match_id)
    assert app.pool.get_allocation(match_id).state is AllocationState.RELEASED
    assert app.pool.get(server.id).used == 0
