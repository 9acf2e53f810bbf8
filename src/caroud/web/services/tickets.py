"""Tickets for players: queue (alone or as a party's leader), look, cancel.

Ratings always come from the database — a client never sends one. A player sees
and cancels only tickets they are in; any other ticket answers as if it did not
exist, so ticket ids cannot be probed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from caroud.context import Context
from caroud.errors import NotFoundError
from caroud.matchmaking.matches import players_by_team
from caroud.matchmaking.models import Match, Ticket
from caroud.matchmaking.validation import MAX_RATING, MIN_RATING, check_id
from caroud.web.errors import ForbiddenError
from caroud.web.models import Player
from caroud.web.services.parties import members_of, party_of_member


def queue_rating(player: Player) -> float:
    """The player's rating as the engine takes it (clamped to its accepted range)."""
    return min(max(player.rating, MIN_RATING), MAX_RATING)


def queue_ticket(
    ctx: Context,
    player: Player,
    queue: str,
    party_id: str | None = None,
    latencies: Mapping[str, float] | None = None,
) -> Ticket:
    """Queue ``player`` alone, or the party it leads with every member who joined.

    Errors from the engine pass through: :class:`~caroud.errors.UnknownQueueError`,
    :class:`~caroud.errors.ValidationError` (a party the queue does not take, bad
    latencies), :class:`~caroud.errors.PlayerBusyError` (someone is queued already).
    """
    ctx.queues.get(queue)
    members = [player]
    if party_id is not None:
        party = party_of_member(player, party_id)
        if party.leader_id != player.pk:
            raise ForbiddenError(
                f"only the leader of party {party_id!r} ({party.leader.public_id}) can queue it"
            )
        members = members_of(party)
    entries = [(m.public_id, queue_rating(m)) for m in members]
    return ctx.matchmaking.enqueue(queue, entries, latencies)


def ticket_of(ctx: Context, player: Player, ticket_id: str) -> Ticket:
    """The ticket if ``player`` is in it; :class:`NotFoundError` otherwise."""
    check_id("ticket_id", ticket_id)
    try:
        ticket = ctx.matchmaking.get(ticket_id)
    except NotFoundError:
        ticket = None
    if ticket is None or player.public_id not in ticket.player_ids:
        raise NotFoundError(f"ticket {ticket_id!r} does not exist (or has expired)")
    return ticket


def cancel_ticket(ctx: Context, player: Player, ticket_id: str) -> Ticket:
    """Cancel a ticket ``player`` is in, leaving its match if that has not started.

    The other tickets of a match left go back to the queue, keeping their wait (see
    :meth:`~caroud.matchmaking.assignment.Assigner.cancel_ticket`).
    :class:`~caroud.errors.TicketStateError` once the match has started, or the ticket ended.
    """
    ticket = ticket_of(ctx, player, ticket_id)
    return ctx.assigner.cancel_ticket(ticket.id)


def _timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def match_json(ctx: Context, match: Match, ticket_id: str) -> dict[str, Any]:
    """The part of a ticket's JSON about its match: teams as player ids, the server."""
    teams = players_by_team(match, ctx.matches.tickets_of(match))
    server = None
    if match.server is not None:
        server = {
            "address": match.server.address,
            "port": match.server.port,
            "region": match.server.region,
        }
    return {
        "id": match.id,
        "status": match.status.value,
        "team": match.team_of(ticket_id),
        "teams": teams,
        "server": server,
    }


def ticket_json(ctx: Context, ticket: Ticket, now: float | None = None) -> dict[str, Any]:
    """A ticket as the API shows it.

    ``wait_seconds`` is how long it has waited so far while queued, and how long it
    waited to be matched once it is (or since creation, once it ended unmatched).
    """
    now = now if now is not None else ctx.matchmaking.server_time()
    match = None
    wait = ticket.wait_s(now)
    if ticket.match_id is not None:
        try:
            found = ctx.matches.get(ticket.match_id)
        except NotFoundError:
            found = None
        if found is not None:
            match = match_json(ctx, found, ticket.id)
            wait = max(found.created_at - ticket.created_at, 0.0)
    return {
        "id": ticket.id,
        "queue": ticket.queue,
        "status": ticket.status.value,
        "players": list(ticket.player_ids),
        "created_at": _timestamp(ticket.created_at),
        "wait_seconds": round(wait, 3),
        "match": match,
    }
