"""Tickets in Redis: enqueue, get, cancel, list; one active ticket per player; bad input."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from caroud.errors import (
    NotFoundError,
    PlayerBusyError,
    TicketStateError,
    UnknownQueueError,
    ValidationError,
)
from caroud.events import EventReader
from caroud.matchmaking.models import PlayerEntry, TicketStatus
from caroud.matchmaking.store import MatchmakingStore
from caroud.redis.client import Redis


def keyspace(client: Redis) -> dict[str, Any]:
    """Every key with its type and content, to prove that nothing was written."""
    out: dict[str, Any] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == "hash":
            out[key] = client.hgetall(key)
        elif kind == "string":
            out[key] = client.get(key)
        elif kind == "zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            out[key] = client.xlen(key)
        else:
            out[key] = kind
    return out


def test_enqueue_and_get_round_trip(store: MatchmakingStore) -> None:
    before = store.server_time()
    ticket = store.enqueue("duel", [("alice", 1512.5)], {"eu": 35, "us": 120})
    got = store.get(ticket.id)
    assert got == ticket
    assert got.status is TicketStatus.QUEUED
    assert got.players == (PlayerEntry("alice", 1512.5),)
    assert got.latencies == {"eu": 35.0, "us": 120.0}
    assert before - 1 <= got.created_at <= store.server_time() + 1
    assert store.count("duel") == 1
    assert store.active_ticket_of("alice") == ticket.id


def test_party_ticket_holds_every_member(store: MatchmakingStore) -> None:
    ticket = store.enqueue("squad", [("a", 1500), ("b", 1600), ("c", 1400)])
    assert store.get(ticket.id).rating == 1500
    assert {store.active_ticket_of(p) for p in "abc"} == {ticket.id}


def test_second_enqueue_of_a_player_is_refused_with_the_active_ticket(
    store: MatchmakingStore, client: Redis
) -> None:
    first = store.enqueue("duel", [("alice", 1500)])
    before = keyspace(client)
    with pytest.raises(PlayerBusyError) as caught:
        store.enqueue("squad", [("bob", 1500), ("alice", 1500)])
    assert caught.value.player_id == "alice"
    assert caught.value.ticket_id == first.id
    assert keyspace(client) == before


def test_list_count_and_oldest_are_oldest_first(store: MatchmakingStore) -> None:
    now = store.server_time()
    old = store.enqueue("duel", [("a", 1500)], created_at=now - 30)
    new = store.enqueue("duel", [("b", 1500)])
    assert [t.id for t in store.list_queued("duel")] == [old.id, new.id]
    assert store.oldest_created("duel") == pytest.approx(now - 30, abs=0.01)
    assert store.count("duel") == 2
    assert store.oldest_created("squad") is None


def test_cancel_ends_the_ticket_frees_the_player_and_expires(
    store: MatchmakingStore, client: Redis
) -> None:
    ticket = store.enqueue("duel", [("alice", 1500)])
    cancelled = store.cancel(ticket.id)
    assert cancelled.status is TicketStatus.CANCELLED
    assert store.count("duel") == 0
    assert store.active_ticket_of("alice") is None
    ttl = client.ttl(store.keys.ticket(ticket.id))
    assert 0 < ttl <= store.settings.ended_ttl_s
    again = store.enqueue("duel", [("alice", 1500)])
    assert again.id != ticket.id
    with pytest.raises(TicketStateError, match="cancelled"):
        store.cancel(ticket.id)


def test_cancel_unknown_ticket_is_not_found(store: MatchmakingStore) -> None:
    with pytest.raises(NotFoundError):
        store.cancel("nope")
    with pytest.raises(NotFoundError):
        store.get("nope")


def test_events_tell_every_change_in_order(store: MatchmakingStore) -> None:
    reader = EventReader(store.client, store.keys, ["duel"])
    ticket = store.enqueue("duel", [("alice", 1500)])
    store.cancel(ticket.id)
    events = reader.read(block_ms=100)
    assert [(e.type, e.ticket_id, e.player_ids) for e in events] == [
        ("queued", ticket.id, ("alice",)),
        ("cancelled", ticket.id, ("alice",)),
    ]


def test_event_streams_are_trimmed(store: MatchmakingStore, client: Redis) -> None:
    limit = 1000
    store = MatchmakingStore(
        client, store.keys, store.queues, replace(store.settings, events_maxlen=limit)
    )
    # ~ trimming keeps whole stream nodes (100 entries by default) beyond the limit
    pipe_count = limit + 500
    for i in range(pipe_count):
        store.enqueue("duel", [(f"p{i}", 1500)])
    assert client.xlen(store.keys.events("duel")) <= limit + 200


BAD_INPUT: list[tuple[str, Any, Any, str]] = [
    ("nope", [("a", 1500)], None, "queue"),
    ("duel", [("a", "1500")], None, "players[0].rating"),
    ("duel", [("a", True)], None, "players[0].rating"),
    ("duel", [("a", float("nan"))], None, "players[0].rating"),
    ("duel", [("a", -1)], None, "players[0].rating"),
    ("duel", [("a", 1e9)], None, "players[0].rating"),
    ("duel", [("a", 1500), ("b", 1500)], None, "players"),
    ("duel", [], None, "players"),
    ("squad", [("a", 1500), ("a", 1400)], None, "players[1].id"),
    ("squad", [(f"p{i}", 1500) for i in range(6)], None, "players"),
    ("duel", [("bad id!", 1500)], None, "players[0].id"),
    ("duel", [("a,b=c", 1500)], None, "players[0].id"),
    ("duel", [("a", 1500)], ["eu"], "latencies"),
    ("duel", [("a", 1500)], {"mars": 10}, "latencies.mars"),
    ("duel", [("a", 1500)], {"eu": "fast"}, "latencies.eu"),
    ("duel", [("a", 1500)], {"eu": -5}, "latencies.eu"),
    ("duel", [("a", 1500)], {"eu": 500, "us": 400}, "latencies"),
]


@pytest.mark.parametrize(("queue", "players", "latencies", "field"), BAD_INPUT)
def test_bad_input_names_the_field_and_writes_nothing(
    store: MatchmakingStore, client: Redis, queue: str, players: Any, latencies: Any, field: str
) -> None:
    store.enqueue("duel", [("someone", 1500)])
    before = keyspace(client)
    expected = UnknownQueueError if field == "queue" else ValidationError
    with pytest.raises(expected) as caught:
        store.enqueue(queue, players, latencies)
    assert str(caught.value).startswith(f"{field}:")
    assert keyspace(client) == before


def test_party_larger_than_team_size_says_so(store: MatchmakingStore) -> None:
    with pytest.raises(ValidationError, match="larger than the team size 5"):
        store.enqueue("squad", [(f"p{i}", 1500) for i in range(6)])


def test_ticket_id_collision_is_refused(store: MatchmakingStore, client: Redis) -> None:
    store.enqueue("duel", [("a", 1500)], ticket_id="fixed")
    before = keyspace(client)
    with pytest.raises(ValidationError, match="exists already"):
        store.enqueue("duel", [("b", 1500)], ticket_id="fixed")
    assert keyspace(client) == before


def test_created_at_ranks_reads_the_queue_by_age(store: MatchmakingStore) -> None:
    now = store.server_time()
    for i, age in enumerate((30, 20, 10)):
        store.enqueue("duel", [(f"p{i}", 1500)], created_at=now - age)
    oldest, newest, beyond = store.created_at_ranks([("duel", 0), ("duel", 2), ("duel", 3)])
    assert oldest == pytest.approx(now - 30, abs=0.01)
    assert newest == pytest.approx(now - 10, abs=0.01)
    assert beyond is None
    with pytest.raises(UnknownQueueError):
        store.created_at_ranks([("nope", 0)])
