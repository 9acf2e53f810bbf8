"""Parties: only members who joined are queued, and only by the leader."""

from __future__ import annotations

from typing import Any

import pytest

from caroud.context import Context
from caroud.web.models import Party

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
