"""Tickets over HTTP: queue, look, cancel; who may see what; bad input; the rate limit."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from caroud.context import Context
from caroud.web.models import Player

pytestmark = pytest.mark.django_db

TICKETS = "/api/v1/tickets"


def test_queue_get_and_cancel_a_ticket(api: Any, make_player: Any, ctx: Context) -> None:
    alice = make_player("alice", rating=1620)
    created = api.post(TICKETS, {"queue": "ranked-1v1", "latencies": {"eu-west": 30}}, alice.token)
    assert created.status_code == 201, created.content
    ticket = created.json()
    assert set(ticket) == {
        "id",
        "queue",
        "status",
        "players",
        "created_at",
        "wait_seconds",
        "match",
    }
    assert ticket["queue"] == "ranked-1v1"
    assert ticket["status"] == "queued"
    assert ticket["players"] == [alice.id]
    assert ticket["match"] is None
    assert ticket["created_at"].endswith("Z") and ticket["wait_seconds"] >= 0
    # the rating queued is the database's
    stored = ctx.matchmaking.get(ticket["id"])
    assert [(p.id, p.rating) for p in stored.players] == [(alice.id, 1620.0)]
    assert stored.latencies == {"eu-west": 30.0}

    got = api.get(f"{TICKETS}/{ticket['id']}", alice.token)
    assert got.status_code == 200 and got.json()["id"] == ticket["id"]

    cancelled = api.delete(f"{TICKETS}/{ticket['id']}", alice.token)
    assert cancelled.status_code == 204 and cancelled.content == b""
    assert api.get(f"{TICKETS}/{ticket['id']}", alice.token).json()["status"] == "cancelled"
    again = api.post(TICKETS, {"queue": "ranked-1v1"}, alice.token)
    assert again.status_code == 201, "a cancelled ticket frees the player"


def test_a_client_cannot_send_its_own_rating(api: Any, make_player: Any, error_of: Any) -> None:
    alice = make_player(rating=1000)
    r = api.post(TICKETS, {"queue": "ranked-1v1", "rating": 3000}, alice.token)
    assert r.status_code == 422
    assert error_of(r)["details"] == {"field": "rating"}
    r = api.post(
        TICKETS, {"queue": "ranked-1v1", "players": [{"id": "x", "rating": 3000}]}, alice.token
    )
    assert r.status_code == 422 and "players" in error_of(r)["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"HTTP_AUTHORIZATION": "Bearer"},
        {"HTTP_AUTHORIZATION": "Bearer cpt_not-a-real-token"},
        {"HTTP_AUTHORIZATION": "Basic YWxpY2U6c2VjcmV0"},
        {"HTTP_AUTHORIZATION": "Bearer " + "x" * 5000},
    ],
)
def test_no_or_bad_token_is_401(api: Any, headers: dict[str, str], error_of: Any) -> None:
    for method, path in [
        ("post", TICKETS),
        ("get", f"{TICKETS}/abc"),
        ("delete", f"{TICKETS}/abc"),
        ("post", "/api/v1/parties"),
        ("get", "/api/v1/players/me"),
    ]:
        r = getattr(api.client, method)(path, content_type="application/json", **headers)
        assert r.status_code == 401, (method, path, r.content)
        assert error_of(r)["code"] == "unauthorized"


def test_a_server_key_is_not_a_player_token(api: Any, server_key: str, error_of: Any) -> None:
    r = api.post(TICKETS, {"queue": "ranked-1v1"}, server_key)
    assert r.status_code == 401 and error_of(r)["code"] == "unauthorized"


def test_an_inactive_user_is_locked_out(api: Any, make_player: Any) -> None:
    alice = make_player()
    user = alice.player.user
    user.is_active = False
    user.save()
    assert api.get("/api/v1/players/me", alice.token).status_code == 401


def test_players_never_see_or_cancel_each_others_tickets(
    api: Any, make_player: Any, error_of: Any, ctx: Context
) -> None:
    alice, mallory = make_player(), make_player()
    ticket = api.post(TICKETS, {"queue": "ranked-1v1"}, alice.token).json()
    seen = api.get(f"{TICKETS}/{ticket['id']}", mallory.token)
    unknown = api.get(f"{TICKETS}/nosuchticket", mallory.token)
    assert seen.status_code == unknown.status_code == 404
    assert error_of(seen)["message"] == error_of(unknown)["message"].replace(
        "nosuchticket", ticket["id"]
    ), "another's ticket reads exactly like a missing one"
    assert api.delete(f"{TICKETS}/{ticket['id']}", mallory.token).status_code == 404
    assert ctx.matchmaking.get(ticket["id"]).status == "queued"


def test_queueing_while_queued_is_409_with_the_existing_ticket(
    api: Any, make_player: Any, error_of: Any
) -> None:
    alice = make_player()
    first = api.post(TICKETS, {"queue": "ranked-1v1"}, alice.token).json()
    second = api.post(TICKETS, {"queue": "ranked-2v2"}, alice.token)
    assert second.status_code == 409
    error = error_of(second)
    assert error["code"] == "player_busy"
    assert error["details"] == {"player_id": alice.id, "ticket_id": first["id"]}
    assert first["id"] in error["message"]


def ready_server(api: Any, server_key: str) -> str:
    """A game server in eu-west that has reported ready (so it takes matches): its id."""
    server = api.post(
        "/api/v1/servers",
        {"address": "10.0.0.7", "port": 7777, "region": "eu-west", "capacity": 4},
        server_key,
    )
    assert server.status_code == 201
    sid = str(server.json()["id"])
    assert api.post(f"/api/v1/servers/{sid}/heartbeat", {}, server_key).status_code == 200
    return sid


def test_matched_ticket_shows_match_and_server(
    api: Any, make_player: Any, server_key: str, run_worker: Any
) -> None:
    ready_server(api, server_key)
    alice, bob = make_player(rating=1500), make_player(rating=1510)
    ta = api.post(TICKETS, {"queue": "ranked-1v1"}, alice.token).json()
    tb = api.post(TICKETS, {"queue": "ranked-1v1"}, bob.token).json()
    report = run_worker()
    assert report.matches == 1 and report.assigned == 1

    ticket = api.get(f"{TICKETS}/{ta['id']}", alice.token).json()
    assert ticket["status"] == "assigned"
    match = ticket["match"]
    assert match["server"] == {"address": "10.0.0.7", "port": 7777, "region": "eu-west"}
    assert sorted(match["teams"], key=str) == sorted([[alice.id], [bob.id]], key=str)
    assert match["teams"][match["team"]] == [alice.id]
    other = api.get(f"{TICKETS}/{tb['id']}", bob.token).json()["match"]
    assert other["id"] == match["id"] and other["team"] == 1 - match["team"]


def test_cancelling_before_the_start_leaves_the_match(
    api: Any, make_player: Any, server_key: str, run_worker: Any, ctx: Context
) -> None:
    sid = ready_server(api, server_key)
    alice, bob = make_player(rating=1500), make_player(rating=1510)
    ta = api.post(TICKETS, {"queue": "ranked-1v1"}, alice.token).json()
    tb = api.post(TICKETS, {"queue": "ranked-1v1"}, bob.token).json()
    assert run_worker().assigned == 1
    match_id = api.get(f"{TICKETS}/{ta['id']}", alice.token).json()["match"]["id"]

    r = api.delete(f"{TICKETS}/{ta['id']}", alice.token)
    assert r.status_code == 204, r.content
    mine = api.get(f"{TICKETS}/{ta['id']}", alice.token).json()
    assert (mine["status"], mine["match"]) == ("cancelled", None)
    theirs = api.get(f"{TICKETS}/{tb['id']}", bob.token).json()
    assert (theirs["status"], theirs["match"]) == ("queued", None)
    assert theirs["created_at"] == tb["created_at"], "bob keeps his wait"
    assert ctx.pool.get(sid).used == 0, "the server slot is released"
    assert api.post(f"/api/v1/matches/{match_id}/started", None, server_key).status_code == 409
    assert api.post(TICKETS, {"queue": "ranked-1v1"}, alice.token).status_code == 201
    busy = api.post(TICKETS, {"queue": "ranked-1v1"}, bob.token)
    assert busy.status_code == 409 and tb["id"] in busy.json()["error"]["message"]


def test_a_ticket_whose_match_started_cannot_be_cancelled(
    api: Any, make_player: Any, server_key: str, error_of: Any, run_worker: Any
) -> None:
    ready_server(api, server_key)
    alice, bob = make_player(rating=1500), make_player(rating=1510)
    ta = api.post(TICKETS, {"queue": "ranked-1v1"}, alice.token).json()
    api.post(TICKETS, {"queue": "ranked-1v1"}, bob.token)
    assert run_worker().assigned == 1
    match_id = api.get(f"{TICKETS}/{ta['id']}", alice.token).json()["match"]["id"]
    assert api.post(f"/api/v1/matches/{match_id}/started", None, server_key).status_code == 200

    r = api.delete(f"{TICKETS}/{ta['id']}", alice.token)
    assert r.status_code == 409
    error = error_of(r)
    assert error["code"] == "ticket_state"
    assert error["details"] == {"ticket_id": ta["id"], "status": "assigned"}
    assert "started" in error["message"] and match_id in error["message"]
    assert api.get(f"{TICKETS}/{ta['id']}", alice.token).json()["status"] == "assigned"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "queue"),
        ({"queue": 5}, "queue"),
        ({"queue": ["ranked-1v1"]}, "queue"),
        ({"queue": ""}, "queue"),
        ({"queue": "ranked-1v1", "latencies": [30]}, "latencies"),
        ({"queue": "ranked-1v1", "latencies": {"eu-west": "30"}}, "latencies.eu-west"),
        ({"queue": "ranked-1v1", "latencies": {"eu-west": True}}, "latencies.eu-west"),
        ({"queue": "ranked-1v1", "latencies": {"mars": 30}}, "latencies.mars"),
        ({"queue": "ranked-1v1", "latencies": {"eu-west": -1}}, "latencies.eu-west"),
        ({"queue": "ranked-1v1", "latencies": {"eu-west": 900}}, "latencies"),
        ({"queue": "ranked-1v1", "party_id": 7}, "party_id"),
        ({"queue": "ranked-1v1", "colour": "red"}, "colour"),
    ],
)
def test_bad_ticket_bodies_are_422_naming_the_field(
    api: Any, make_player: Any, error_of: Any, body: dict[str, Any], field: str
) -> None:
    alice = make_player()
    r = api.post(TICKETS, body, alice.token)
    assert r.status_code == 422, r.content
    error = error_of(r)
    assert error["details"]["field"] == field, error
    assert field.split(".", maxsplit=1)[0] in error["message"]


def test_unknown_queue_is_422_listing_the_queues(api: Any, make_player: Any, error_of: Any) -> None:
    r = api.post(TICKETS, {"queue": "ranked-9v9"}, make_player().token)
    assert r.status_code == 422
    error = error_of(r)
    assert error["code"] == "unknown_queue" and "ranked-1v1" in error["message"]


@pytest.mark.parametrize("body", ["{not json", "", "[1, 2]", "null", '"queue"', "\x00\xff"])
def test_unparseable_bodies_are_4xx_json(
    api: Any, make_player: Any, error_of: Any, body: str
) -> None:
    r = api.post(TICKETS, body, make_player().token)
    assert r.status_code in (400, 422), r.content
    error_of(r)


@pytest.mark.parametrize(
    "ticket_id", ["bad id", "x" * 65, "a,b", "tick%7Cet", "%00", "..%2F..%2Fetc"]
)
def test_invalid_ticket_ids_are_4xx_json(
    api: Any, make_player: Any, error_of: Any, ticket_id: str
) -> None:
    alice = make_player()
    for method in ("get", "delete"):
        r = getattr(api, method)(f"{TICKETS}/{ticket_id}", alice.token)
        assert r.status_code in (404, 422), (ticket_id, r.content)
        error_of(r)


def test_ticket_creation_is_rate_limited_per_player(
    api: Any, make_player: Any, error_of: Any
) -> None:
    alice, bob = make_player(), make_player()
    with override_settings(CAROUD_TICKET_RATE="3/30"):
        codes = []
        for _ in range(3):
            r = api.post(TICKETS, {"queue": "ranked-1v1"}, alice.token)
            codes.append(r.status_code)
            if r.status_code == 201:
                api.delete(f"{TICKETS}/{r.json()['id']}", alice.token)
        assert codes == [201, 201, 201]
        limited = api.post(TICKETS, {"queue": "ranked-1v1"}, alice.token)
        assert limited.status_code == 429
        error = error_of(limited)
        assert error["code"] == "rate_limited"
        retry = int(limited["Retry-After"])
        assert 1 <= retry <= 30 and error["details"] == {"retry_after": retry}
        assert api.post(TICKETS, {"queue": "ranked-1v1"}, bob.token).status_code == 201


def test_players_me(api: Any, make_player: Any) -> None:
    alice = make_player("alice", rating=1712.5, games=3)
    r = api.get("/api/v1/players/me", alice.token)
    assert r.status_code == 200
    assert r.json() == {"id": alice.id, "name": "alice", "rating": 1712.5, "games_played": 3}
    assert Player.objects.get(public_id=alice.id).name == "alice"


def test_player_for_token_resolves_tokens_for_other_transports(make_player: Any) -> None:
    from caroud.web.auth import player_for_token
    from caroud.web.errors import UnauthorizedError

    alice = make_player()
    assert player_for_token(alice.token).public_id == alice.id
    for bad in ("", "cpt_nope", "csk_" + alice.token[4:], alice.token + "x"):
        with pytest.raises(UnauthorizedError):
            player_for_token(bad)
