"""What the WebSocket ``/ws/matchmaking`` says, shared by the relay and the consumer.

Every frame is one JSON object::

    {"type": "ticket", "event": "assigned", "event_id": "1733041107552-0",
     "ticket": {...the ticket exactly as GET /api/v1/tickets/{id} returns it...}}

``event`` is the stream event that caused the push (``queued``, ``matched``,
``assigned``, ``cancelled``, ``timed_out``, ``ended``, ``interrupted``), or
``current`` for the state sent first on every connection (``ticket`` is then
null when the player has no active ticket, and ``event_id`` is null). ``event_id``
is the Redis stream entry id (its first part is the event's time in ms); for one
ticket, ids only grow.

A player's pushes go to the Channels group :func:`player_group`; the group message
carries the frame already encoded, so a consumer only forwards it.
"""

from __future__ import annotations

import json
from typing import Any

from ninja.responses import NinjaJSONEncoder

from caroud.context import Context
from caroud.errors import NotFoundError
from caroud.matchmaking.models import Ticket
from caroud.web.api.schemas import TicketOut
from caroud.web.services.tickets import ticket_json

MESSAGE_TYPE = "ticket.push"
"""The Channels message type of a push (handled by the consumer's ``ticket_push``)."""
CURRENT = "current"
"""The ``event`` of the first frame: the current state, not a change."""


def player_group(player_id: str) -> str:
    """The Channels group of a player's connections (player ids are valid group names)."""
    return f"player.{player_id}"


def api_ticket(ctx: Context, ticket: Ticket, now: float | None = None) -> dict[str, Any]:
    """The ticket as the API renders it (JSON types: times as ISO 8601 text, like GET)."""
    rendered = TicketOut.model_validate(ticket_json(ctx, ticket, now)).model_dump()
    return dict(json.loads(json.dumps(rendered, cls=NinjaJSONEncoder)))


def frame(event: str, ticket: dict[str, Any] | None, event_id: str | None = None) -> str:
    """One WebSocket frame's text."""
    body = {"type": "ticket", "event": event, "event_id": event_id, "ticket": ticket}
    return json.dumps(body, separators=(",", ":"))


def current_frame(ctx: Context, player_id: str) -> str:
    """The first frame of a connection: the player's active ticket, or null if none.

    Synchronous (it reads Redis).
    """
    ticket_id = ctx.matchmaking.active_ticket_of(player_id)
    ticket = None
    if ticket_id is not None:
        try:
            ticket = api_ticket(ctx, ctx.matchmaking.get(ticket_id))
        except NotFoundError:  # it ended between the two reads
            ticket = None
    return frame(CURRENT, ticket)
