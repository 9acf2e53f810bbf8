"""Bearer tokens: player tokens and game-server keys.

A token is 256 random bits (:mod:`secrets`) behind a prefix that says what it is
(``cpt_`` player token, ``csk_`` server key). Only its SHA-256 is stored; a request's
token is hashed, looked up by that hash, and compared with :func:`hmac.compare_digest`.
A leaked database therefore leaks no usable token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING, Any, cast

from django.http import HttpRequest
from ninja.security import HttpBearer

from caroud.web.errors import UnauthorizedError

if TYPE_CHECKING:
    from caroud.web.models import Player

PLAYER_TOKEN_PREFIX = "cpt_"
SERVER_KEY_PREFIX = "csk_"
MAX_TOKEN_LENGTH = 128


def new_token(prefix: str) -> str:
    """A fresh random token with ``prefix``."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored for ``token``: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(request: HttpRequest, kind: str) -> str:
    """The token of ``Authorization: Bearer <token>``; :class:`UnauthorizedError` if absent."""
    value = request.headers.get("Authorization", "")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError(f"send `Authorization: Bearer <{kind}>` with this request")
    return token.strip()


class TokenAuth(HttpBearer):
    """A bearer scheme whose tokens are looked up by hash; subclasses name the model."""

    kind = "token"
    prefix = ""

    def __call__(self, request: HttpRequest) -> Any:
        return self.holder_of(bearer_token(request, self.kind))

    def holder_of(self, token: str) -> Any:
        """Who holds ``token``; :class:`UnauthorizedError` if nobody (or it is malformed)."""
        if not token.startswith(self.prefix) or len(token) > MAX_TOKEN_LENGTH:
            raise UnauthorizedError(f"that is not a {self.kind}")
        digest = token_hash(token)
        holder = self.lookup(digest)
        if holder is None or not hmac.compare_digest(str(holder.token_hash), digest):
            raise UnauthorizedError(f"unknown or revoked {self.kind}")
        return holder

    def authenticate(self, request: HttpRequest, token: str) -> Any:  # pragma: no cover
        raise NotImplementedError  # __call__ does the work, with messages

    def lookup(self, digest: str) -> Any:
        raise NotImplementedError


class PlayerAuth(TokenAuth):
    """``Authorization: Bearer <player token>``; ``request.auth`` is the :class:`Player`."""

    kind = "player token"
    prefix = PLAYER_TOKEN_PREFIX

    def lookup(self, digest: str) -> Any:
        from caroud.web.models import Player

        return (
            Player.objects.select_related("user")
            .filter(token_hash=digest, user__is_active=True)
            .first()
        )


class ServerKeyAuth(TokenAuth):
    """``Authorization: Bearer <server key>``; ``request.auth`` is the :class:`ServerKey`."""

    kind = "server key"
    prefix = SERVER_KEY_PREFIX

    def lookup(self, digest: str) -> Any:
        from caroud.web.models import ServerKey

        return ServerKey.objects.filter(token_hash=digest, revoked_at__isnull=True).first()


def player_for_token(token: str) -> Player:
    """The player holding ``token`` (e.g. from a WebSocket's first message or query string).

    :class:`UnauthorizedError` if none. Synchronous: it reads the database.
    """
    return cast("Player", PlayerAuth().holder_of(token))
