"""Game servers through the API: register, heartbeat, leave, report starts and results.

A server key acts only on the servers it registered, and on the matches placed on
them; anything else answers as if it did not exist. The pool and the matches live
in Redis (:class:`~caroud.servers.pool.ServerPool`, :class:`~caroud.matchmaking.
assignment.Assigner`); the database remembers which key registered which server.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from caroud.context import Context
from caroud.errors import NotFoundError
from caroud.matchmaking.matches import players_by_team
from caroud.matchmaking.models import Match
from caroud.matchmaking.validation import check_id
from caroud.servers.models import Server
from caroud.web.models import GameServer, MatchRecord, ServerKey
from caroud.web.services.results import AppliedResult, record_result

log = logging.getLogger("caroud.web")


def server_json(server: Server) -> dict[str, Any]:
    return {
        "id": server.id,
        "address": server.address,
        "port": server.port,
        "region": server.region,
        "capacity": server.capacity,
        "labels": dict(server.labels),
        "state": server.state.value,
        "used": server.used,
        "load": server.load,
        "healthy_until": datetime.fromtimestamp(server.healthy_until, tz=UTC),
        "strikes": server.strikes,
    }


def register_server(
    ctx: Context,
    key: ServerKey,
    address: str,
    port: int,
    region: str,
    capacity: int,
    labels: Mapping[str, str] | None = None,
) -> Server:
    """Add a server to the pool, owned by ``key``."""
    server = ctx.pool.register(address, port, region, capacity, labels)
    GameServer.objects.create(
        server_id=server.id, key=key, address=server.address, port=server.port, region=region
    )
    return server


def _owned(key: ServerKey, server_id: str) -> str:
    check_id("server_id", server_id)
    if not GameServer.objects.filter(server_id=server_id, key=key).exists():
        raise NotFoundError(f"game server {server_id!r} is not one of this key's servers")
    return server_id


def heartbeat(
    ctx: Context, key: ServerKey, server_id: str, state: str = "ready", load: float = 0.0
) -> Server:
    """Record that the server is alive (``draining``: take no new matches)."""
    return ctx.pool.heartbeat(_owned(key, server_id), state, load)


def deregister(ctx: Context, key: ServerKey, server_id: str) -> int:
    """Remove the server now; its matches go back to the queue, or end interrupted if started.

    How many matches it held.
    """
    settled = ctx.assigner.deregister(_owned(key, server_id))
    GameServer.objects.filter(server_id=server_id).update(deregistered_at=timezone.now())
    return settled.requeued_matches + settled.interrupted


def _not_yours(match_id: str) -> NotFoundError:
    return NotFoundError(
        f"match {match_id!r} is not on any of this key's servers (or does not exist, or has"
        " expired): send the id of a match placed on a server this key registered"
    )


def owned_match(ctx: Context, key: ServerKey, match_id: str) -> Match:
    """The match if it was placed on one of ``key``'s servers; :class:`NotFoundError` if not.

    An unknown match and another key's match get the same refusal, after the same
    Redis read and database query: a key cannot probe which match ids are live.
    """
    check_id("match_id", match_id)
    try:
        match: Match | None = ctx.matches.get(match_id)
    except NotFoundError:
        match = None
    server = match.server if match is not None else None
    # No server id is empty: for a missing match the query runs, and finds nothing.
    owns = GameServer.objects.filter(
        server_id=server.server_id if server is not None else "", key=key
    ).exists()
    if match is None or server is None or not owns:
        raise _not_yours(match_id)
    return match


def _seconds(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None


def teams_of(ctx: Context, match: Match) -> list[list[str]]:
    """The player ids of each team of ``match``."""
    return players_by_team(match, ctx.matches.tickets_of(match))


def match_started(ctx: Context, key: ServerKey, match_id: str) -> Match:
    """The server started the match: confirm it in Redis, open its record in the database."""
    owned_match(ctx, key, match_id)
    match = ctx.assigner.match_started(match_id)
    server = match.server
    MatchRecord.objects.update_or_create(
        match_id=match.id,
        defaults={
            "queue": match.queue,
            "teams": teams_of(ctx, match),
            "server_id": server.server_id if server else "",
            "server_address": server.address if server else "",
            "server_port": server.port if server else None,
            "region": server.region if server else match.region,
            "started_at": _seconds(match.started_at),
        },
    )
    return match


def match_result(ctx: Context, key: ServerKey, match_id: str, winner: int | None) -> AppliedResult:
    """Record the result in Redis (once), then apply the ratings (once, in one transaction).

    A repeated report answers the recorded result and the changes made the first
    time, whatever winner it names.
    """
    match = owned_match(ctx, key, match_id)
    teams = teams_of(ctx, match)
    outcome = ctx.assigner.match_ended(match_id, winner)
    ended = ctx.matches.get(match_id)
    applied = record_result(
        match_id,
        queue=match.queue,
        teams=teams,
        winner=outcome.winner,
        ended_at=_seconds(ended.ended_at),
        match=ended,
    )
    # The first report is the one Redis recorded first; the results applier may have
    # put the ratings in the database a moment before this call did, which changes
    # nothing for the reporter: not "already", and the same rating changes.
    return dataclasses.replace(applied, already=outcome.already)
