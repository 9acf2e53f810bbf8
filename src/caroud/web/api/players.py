"""Routes for players (``Authorization: Bearer <player token>``): tickets, parties, me."""

from __future__ import annotations

from typing import Any, cast

from django.http import HttpRequest, HttpResponse
from ninja import Router, Status
from ninja.responses import codes_4xx, codes_5xx

from caroud.web.api.schemas import (
    ErrorOut,
    JoinIn,
    PartyOut,
    PlayerOut,
    TicketIn,
    TicketOut,
)
from caroud.web.apps import get_context
from caroud.web.auth import PlayerAuth
from caroud.web.conf import web_settings
from caroud.web.models import Player
from caroud.web.ratelimit import hit
from caroud.web.services import accounts, parties, tickets

router = Router(auth=PlayerAuth(), tags=["players"])
ERRORS: dict[Any, Any] = {codes_4xx: ErrorOut, codes_5xx: ErrorOut}


def player_of(request: HttpRequest) -> Player:
    return cast(Player, getattr(request, "auth"))  # noqa: B009 - set by the auth class


@router.post("/tickets", response={201: TicketOut, **ERRORS})
def create_ticket(request: HttpRequest, payload: TicketIn) -> Status[dict[str, Any]]:
    """Queue yourself, or the party you lead (with every member who joined).

    Ratings come from the server's records. 409 with the existing ticket's id if a
    player is queued already; 429 (with Retry-After) past the per-player rate limit.
    """
    ctx = get_context()
    player = player_of(request)
    rate = web_settings().ticket_rate
    hit(ctx.client, ctx.keys, "tickets", player.public_id, rate, "ticket creations")
    ticket = tickets.queue_ticket(ctx, player, payload.queue, payload.party_id, payload.latencies)
    # just stamped by the Redis clock: it has waited 0 s, no need to ask the server the time
    return Status(201, tickets.ticket_json(ctx, ticket, now=ticket.created_at))


@router.get("/tickets/{ticket_id}", response={200: TicketOut, **ERRORS})
def get_ticket(request: HttpRequest, ticket_id: str) -> dict[str, Any]:
    """A ticket you are in: its status and, once matched, the match and its server."""
    ctx = get_context()
    return tickets.ticket_json(ctx, tickets.ticket_of(ctx, player_of(request), ticket_id))


@router.delete("/tickets/{ticket_id}", response={204: None, **ERRORS})
def cancel_ticket(request: HttpRequest, ticket_id: str) -> HttpResponse:
    """Cancel a queued ticket you are in; 409 once it is matched."""
    tickets.cancel_ticket(get_context(), player_of(request), ticket_id)
    return HttpResponse(status=204)


@router.post("/parties", response={201: PartyOut, **ERRORS})
def create_party(request: HttpRequest) -> Status[dict[str, Any]]:
    """A new party led by you; share its id and invite code with who should join."""
    return Status(201, parties.party_json(parties.create_party(player_of(request))))


@router.get("/parties/{party_id}", response={200: PartyOut, **ERRORS})
def get_party(request: HttpRequest, party_id: str) -> dict[str, Any]:
    """A party you are in."""
    return parties.party_json(parties.party_of_member(player_of(request), party_id))


@router.post("/parties/{party_id}/join", response={200: PartyOut, **ERRORS})
def join_party(request: HttpRequest, party_id: str, payload: JoinIn) -> dict[str, Any]:
    """Join with the party's invite code (403 if wrong, 409 if full or in another party)."""
    size = parties.max_party_size(get_context().queues)
    party = parties.join_party(player_of(request), party_id, payload.invite_code, size)
    return parties.party_json(party)


@router.delete("/parties/{party_id}/members/me", response={204: None, **ERRORS})
def leave_party(request: HttpRequest, party_id: str) -> HttpResponse:
    """Leave the party (the lead passes on; the last to leave ends it)."""
    parties.leave_party(player_of(request), party_id)
    return HttpResponse(status=204)


@router.get("/players/me", response={200: PlayerOut, **ERRORS})
def me(request: HttpRequest) -> dict[str, Any]:
    """Your id, name, rating and games played."""
    return accounts.player_json(player_of(request))
