"""Parties: only members who joined are queued, and only by the leader."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import QuerySet
from django.test import Client

from caroud.context import Context
from caroud.web.apps import get_context
from caroud.web.models import Party, PartyMember, Player
from caroud.web.services.parties import max_party_size

pytestmark = pytest.mark.django_db

PARTIES = "/api/v1/parties"


def new_party(api: Any, leader: Any) -> dict[str, Any]:
    r = api.post(PARTIES, None, leader.token)
    assert r.status_code == 201, r.content
    return dict(r.json())


def join(api: Any, who: Any, party: dict[str, Any], code: str | None = None) -> Any:
    body = {"invite_code": code if code is not None else party["invite_code"]}
    return api.post(f"{PARTIES}/{party['id']}/join", body, who.token)


def test_create_join_and_queue_a_party(api: Any, make_player: Any, ctx: Context) -> None:
    lead, friend = make_player(rating=1400), make_player(rating=1600)
    party = new_party(api, lead)
    assert set(party) == {"id", "invite_code", "leader", "members"}
    assert party["leader"] == lead.id and party["members"] == [lead.id]
    joined = join(api, friend, party)
    assert joined.status_code == 200
    assert joined.json()["members"] == [lead.id, friend.id]
    assert join(api, friend, party).status_code == 200, "joining twice is harmless"
    assert api.get(f"{PARTIES}/{party['id']}", friend.token).json()["members"] == [
        lead.id,
        friend.id,
    ]

    r = api.post("/api/v1/tickets", {"queue": "ranked-2v2", "party_id": party["id"]}, lead.token)
    assert r.status_code == 201, r.content
    ticket = r.json()
    assert ticket["players"] == [lead.id, friend.id]
    stored = ctx.matchmaking.get(ticket["id"])
    assert [(p.id, p.rating) for p in stored.players] == [(lead.id, 1400.0), (friend.id, 1600.0)]
    # a member sees the party's ticket too, and may cancel it
    assert api.get(f"/api/v1/tickets/{ticket['id']}", friend.token).status_code == 200
    assert api.delete(f"/api/v1/tickets/{ticket['id']}", friend.token).status_code == 204


def test_only_the_leader_queues_the_party(
    api: Any, make_player: Any, error_of: Any, ctx: Context
) -> None:
    lead, friend = make_player(), make_player()
    party = new_party(api, lead)
    join(api, friend, party)
    r = api.post("/api/v1/tickets", {"queue": "ranked-2v2", "party_id": party["id"]}, friend.token)
    assert r.status_code == 403
    assert error_of(r)["code"] == "forbidden" and "leader" in error_of(r)["message"]
    assert ctx.matchmaking.active_ticket_of(lead.id) is None


def test_nobody_can_queue_a_player_who_did_not_join(
    api: Any, make_player: Any, error_of: Any, ctx: Context
) -> None:
    lead, victim = make_player(), make_player()
    party = new_party(api, lead)
    # no join: the party holds only its leader, so only the leader is queued
    r = api.post("/api/v1/tickets", {"queue": "ranked-2v2", "party_id": party["id"]}, lead.token)
    assert r.status_code == 201 and r.json()["players"] == [lead.id]
    assert ctx.matchmaking.active_ticket_of(victim.id) is None
    # a party one is not in cannot be used at all
    other = new_party(api, victim)
    r = api.post("/api/v1/tickets", {"queue": "ranked-2v2", "party_id": other["id"]}, lead.token)
    assert r.status_code == 404
    assert ctx.matchmaking.active_ticket_of(victim.id) is None


def test_a_wrong_invite_code_is_403_and_an_unknown_party_404(
    api: Any, make_player: Any, error_of: Any
) -> None:
    lead, stranger = make_player(), make_player()
    party = new_party(api, lead)
    r = join(api, stranger, party, code="WRONGCODE")
    assert r.status_code == 403 and error_of(r)["code"] == "forbidden"
    missing = {"id": "ynosuchparty", "invite_code": party["invite_code"]}
    assert join(api, stranger, missing).status_code == 404
    assert api.get(f"{PARTIES}/{party['id']}", stranger.token).status_code == 404
    assert api.get(f"{PARTIES}/bad%20id", stranger.token).status_code == 422
    r = api.post(f"{PARTIES}/{party['id']}/join", {"invite_code": 1234}, stranger.token)
    assert r.status_code == 422
    r = api.post(f"{PARTIES}/{party['id']}/join", {}, stranger.token)
    assert r.status_code == 422 and error_of(r)["details"]["field"] == "invite_code"


def test_a_party_too_large_for_the_queue_is_422_naming_the_rule(
    api: Any, make_player: Any, error_of: Any
) -> None:
    lead, a, b = make_player(), make_player(), make_player()
    party = new_party(api, lead)
    join(api, a, party)
    join(api, b, party)
    r = api.post("/api/v1/tickets", {"queue": "ranked-2v2", "party_id": party["id"]}, lead.token)
    assert r.status_code == 422
    message = error_of(r)["message"]
    assert "party of 3" in message and "team size 2" in message
    assert (
        api.post(
            "/api/v1/tickets", {"queue": "ranked-5v5", "party_id": party["id"]}, lead.token
        ).status_code
        == 201
    )


def test_a_party_cannot_grow_past_the_largest_queue(
    api: Any, make_player: Any, error_of: Any
) -> None:
    lead = make_player()
    party = new_party(api, lead)
    for _ in range(4):  # the largest default queue takes parties of 5
        assert join(api, make_player(), party).status_code == 200
    r = join(api, make_player(), party)
    assert r.status_code == 409 and "full" in error_of(r)["message"]


def test_one_party_at_a_time(api: Any, make_player: Any, error_of: Any) -> None:
    a, b = make_player(), make_player()
    first = new_party(api, a)
    r = api.post(PARTIES, None, a.token)
    assert r.status_code == 409 and first["id"] in error_of(r)["message"]
    second = new_party(api, b)
    r = join(api, a, second)
    assert r.status_code == 409


def test_leaving_passes_the_lead_and_the_last_one_out_ends_the_party(
    api: Any, make_player: Any
) -> None:
    lead, friend = make_player(), make_player()
    party = new_party(api, lead)
    join(api, friend, party)
    assert api.delete(f"{PARTIES}/{party['id']}/members/me", lead.token).status_code == 204
    now = api.get(f"{PARTIES}/{party['id']}", friend.token).json()
    assert now["leader"] == friend.id and now["members"] == [friend.id]
    assert api.get(f"{PARTIES}/{party['id']}", lead.token).status_code == 404
    assert api.delete(f"{PARTIES}/{party['id']}/members/me", lead.token).status_code == 404
    assert api.delete(f"{PARTIES}/{party['id']}/members/me", friend.token).status_code == 204
    assert not Party.objects.filter(public_id=party["id"]).exists()
    assert new_party(api, lead)["leader"] == lead.id, "free to start another"


# Races: each request of a race runs in its own thread, on its own database connection.
# The test holds a row the racers must write through (``SELECT ... FOR UPDATE``) until
# each one waits on a lock, so on PostgreSQL every racer has passed its checks before
# any of them writes: the race happens every run, not by luck. SQLite takes the write
# lock when a transaction begins, so there the racers simply go one after the other.

Call = tuple[str, dict[str, Any] | None, str]
"""A POST of a race: path, JSON body, bearer token."""


def _backend_pid() -> int | None:
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def _wait_until_blocked(pids: list[int | None]) -> None:
    """Return once every racer's connection waits on a lock (PostgreSQL), or after a pause."""
    if None in pids:
        time.sleep(0.3)
        return
    deadline = time.monotonic() + 10
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted AND pid = ANY(%s)",
                [pids],
            )
            if cursor.fetchone()[0] == len(pids):
                return
            assert time.monotonic() < deadline, "the racers never all waited on the held row"
            time.sleep(0.01)


@contextmanager
def _holding(rows: QuerySet[Any]) -> Iterator[None]:
    with transaction.atomic():
        assert list(rows.select_for_update()), "no row to hold"
        yield


def race(calls: list[Call], hold: QuerySet[Any]) -> list[Any]:
    """Send ``calls`` at once, each from its own thread, ``hold`` locked until all wait."""
    answers: list[Any] = [None] * len(calls)
    pids: list[int | None] = [None] * len(calls)
    errors: list[BaseException] = []
    connected = threading.Barrier(len(calls) + 1)

    def send(i: int, path: str, body: dict[str, Any] | None, token: str) -> None:
        try:
            pids[i] = _backend_pid()
            connected.wait(timeout=10)
            answers[i] = Client().post(
                path,
                body,
                content_type="application/json",
                headers={"Authorization": f"Bearer {token}"},
            )
        except BaseException as e:  # reported below
            errors.append(e)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i, *call)) for i, call in enumerate(calls)]
    try:
        with _holding(hold):
            for t in threads:
                t.start()
            connected.wait(timeout=10)
            _wait_until_blocked(pids)
    finally:  # a racer left running would keep its connection open past the test
        for t in threads:
            if t.ident is not None:
                t.join(timeout=60)
    assert not errors, errors
    assert all(a is not None for a in answers), "a racer never answered"
    return answers


def outcome(answers: list[Any], error_of: Any) -> tuple[list[int], list[dict[str, Any]]]:
    """The statuses, in order, and the error of each refusal."""
    statuses = [a.status_code for a in answers]
    assert sorted(statuses) in ([200, 409], [201, 409]), [a.content for a in answers]
    return statuses, [error_of(a) for a in answers if a.status_code == 409]


def members(party_id: str) -> list[str]:
    return sorted(
        PartyMember.objects.filter(party__public_id=party_id).values_list(
            "player__public_id", flat=True
        )
    )


@pytest.mark.django_db(transaction=True)
def test_one_player_creating_two_parties_at_once_gets_one_and_a_409(
    make_player: Any, error_of: Any
) -> None:
    lead = make_player()
    answers = race([(PARTIES, None, lead.token)] * 2, Player.objects.filter(public_id=lead.id))
    statuses, (refused,) = outcome(answers, error_of)
    created = answers[statuses.index(201)].json()
    assert refused["code"] == "conflict", refused
    assert refused["message"] == f"you are in party {created['id']!r} already: leave it first"
    assert list(Party.objects.values_list("public_id", flat=True)) == [created["id"]], (
        "the refused party is not left behind"
    )
    assert members(created["id"]) == [lead.id]


@pytest.mark.django_db(transaction=True)
def test_two_players_joining_the_last_seat_at_once_one_gets_it_and_one_a_409(
    api: Any, make_player: Any, error_of: Any
) -> None:
    party = new_party(api, make_player())
    for _ in range(max_party_size(get_context().queues) - 2):
        assert join(api, make_player(), party).status_code == 200
    a, b = make_player(), make_player()
    path = f"{PARTIES}/{party['id']}/join"
    code = {"invite_code": party["invite_code"]}
    answers = race(
        [(path, code, a.token), (path, code, b.token)], Party.objects.filter(public_id=party["id"])
    )
    statuses, (refused,) = outcome(answers, error_of)
    assert refused["code"] == "conflict" and "is full" in refused["message"], refused
    seated = [a, b][statuses.index(200)]
    assert len(members(party["id"])) == max_party_size(get_context().queues)
    assert {a.id, b.id} & set(members(party["id"])) == {seated.id}


@pytest.mark.django_db(transaction=True)
def test_one_player_joining_two_parties_at_once_gets_one_and_a_409(
    api: Any, make_player: Any, error_of: Any
) -> None:
    first, second = new_party(api, make_player()), new_party(api, make_player())
    joiner = make_player()
    answers = race(
        [
            (f"{PARTIES}/{p['id']}/join", {"invite_code": p["invite_code"]}, joiner.token)
            for p in (first, second)
        ],
        Player.objects.filter(public_id=joiner.id),
    )
    statuses, (refused,) = outcome(answers, error_of)
    joined, other = (first, second) if statuses[0] == 200 else (second, first)
    assert refused["code"] == "conflict", refused
    assert refused["message"] == f"you are in party {joined['id']!r} already: leave it first"
    assert joiner.id in members(joined["id"])
    assert members(other["id"]) == [other["leader"]], "nothing half-written"
