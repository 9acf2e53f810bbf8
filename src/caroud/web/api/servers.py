"""Routes for game servers (``Authorization: Bearer <server key>``): the pool and results."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from django.http import HttpRequest, HttpResponse
from ninja import Router, Status
from ninja.responses import codes_4xx, codes_5xx

from caroud.web.api.schemas import (
    ErrorOut,
    HeartbeatIn,
    MatchStartedOut,
    ResultIn,
    ResultOut,
    ServerIn,
    ServerOut,
)
from caroud.web.apps import get_context
from caroud.web.auth import ServerKeyAuth
from caroud.web.models import ServerKey
from caroud.web.services import servers

router = Router(auth=ServerKeyAuth(), tags=["game servers"])
ERRORS: dict[Any, Any] = {codes_4xx: ErrorOut, codes_5xx: ErrorOut}


def key_of(request: HttpRequest) -> ServerKey:
    return cast(ServerKey, getattr(request, "auth"))  # noqa: B009 - set by the auth class


@router.post("/servers", response={201: ServerOut, **ERRORS})
def register(request: HttpRequest, payload: ServerIn) -> Status[dict[str, Any]]:
    """Join the pool with ``capacity`` match slots; heartbeat within the grace period."""
    server = servers.register_server(
        get_context(),
        key_of(request),
        payload.address,
        payload.port,
        payload.region,
        payload.capacity,
        payload.labels,
    )
    return Status(201, servers.server_json(server))


@router.post("/servers/{server_id}/heartbeat", response={200: ServerOut, **ERRORS})
def heartbeat(
    request: HttpRequest, server_id: str, payload: HeartbeatIn | None = None
) -> dict[str, Any]:
    """Stay in the pool (``draining``: take no new matches, leave after the last one).

    The body may be left out: ``{"state": "ready", "load": 0}``.
    """
    beat = payload if payload is not None else HeartbeatIn()
    server = servers.heartbeat(get_context(), key_of(request), server_id, beat.state, beat.load)
    return servers.server_json(server)


@router.delete("/servers/{server_id}", response={204: None, **ERRORS})
def deregister(request: HttpRequest, server_id: str) -> HttpResponse:
    """Leave the pool now: matches not started go back to the queue, started ones end."""
    servers.deregister(get_context(), key_of(request), server_id)
    return HttpResponse(status=204)


@router.post("/matches/{match_id}/started", response={200: MatchStartedOut, **ERRORS})
def started(request: HttpRequest, match_id: str) -> dict[str, Any]:
    """The match placed on your server has started (idempotent)."""
    match = servers.match_started(get_context(), key_of(request), match_id)
    at = datetime.fromtimestamp(match.started_at, tz=UTC) if match.started_at else None
    return {"id": match.id, "status": match.status.value, "started_at": at}


@router.post("/matches/{match_id}/result", response={200: ResultOut, **ERRORS})
def result(request: HttpRequest, match_id: str, payload: ResultIn) -> dict[str, Any]:
    """The match is over: ``winner`` is a team index, or null for a draw.

    Applied once: a repeated report answers the first result and its rating changes.
    """
    applied = servers.match_result(get_context(), key_of(request), match_id, payload.winner)
    return applied.as_json()
