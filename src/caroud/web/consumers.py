"""``/ws/matchmaking``: every status change of the player's tickets, pushed as it happens.

The player's token comes in the upgrade request, as ``Authorization: Bearer <token>``
or, for browsers (which cannot set headers on a WebSocket), as ``?token=<token>``.
A missing or bad token: the socket is accepted and closed at once with code
**4401**, so a client can tell it from a network failure. Redis unreachable: closed
with **1013** (try again later).

On connect the consumer joins the player's group (:func:`caroud.web.realtime.
player_group`) and then, before anything else, sends the current state of the
player's active ticket; a reconnecting client is therefore never behind. The pushes
themselves come from the relay (:mod:`caroud.web.relay`); this consumer only
forwards them. What the client sends is ignored.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

import redis
from caroud.errors import CaroudError
from caroud.web.apps import get_context
from caroud.web.auth import player_for_token
from caroud.web.errors import UnauthorizedError
from caroud.web.realtime import current_frame, player_group

log = logging.getLogger("caroud.web.ws")

CLOSE_UNAUTHORIZED = 4401
CLOSE_TRY_AGAIN = 1013
CLOSE_NOT_FOUND = 4404


def token_of(scope: dict[str, Any]) -> str:
    """The bearer token of the upgrade request's header, else of its ``token`` parameter."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = bytes(value).decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
    return str((query.get("token") or [""])[0]).strip()


def _player_id(token: str) -> str:
    return player_for_token(token).public_id


def _current(player_id: str) -> str:
    return current_frame(get_context(), player_id)


class MatchmakingConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """One player's connection: their current ticket first, then every change of it."""

    player_id: str | None = None

    async def connect(self) -> None:
        try:
            player_id = await database_sync_to_async(_player_id)(token_of(self.scope))
        except UnauthorizedError as e:
            await self.accept()
            await self.close(code=CLOSE_UNAUTHORIZED, reason=str(e)[:120])
            return
        await self.accept()
        try:
            await self.channel_layer.group_add(player_group(player_id), self.channel_name)
            self.player_id = player_id
            # Joined first, read second: a change made meanwhile is pushed after this.
            text = await sync_to_async(_current, thread_sensitive=False)(player_id)
        except (CaroudError, redis.RedisError, OSError) as e:
            log.warning("cannot follow the player's tickets", extra={"error": str(e)})
            await self.close(code=CLOSE_TRY_AGAIN)
            return
        await self.send(text_data=text)

    async def disconnect(self, code: int) -> None:
        if self.player_id is not None:
            await self.channel_layer.group_discard(player_group(self.player_id), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Clients have nothing to say on this socket: ignored."""

    async def ticket_push(self, message: dict[str, Any]) -> None:
        """A frame from the relay, already encoded."""
        await self.send(text_data=message["text"])


class UnknownPathConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Any other WebSocket path: accepted and closed with 4404 (a clear answer, not a hang)."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND, reason="no WebSocket here: use /ws/matchmaking")
