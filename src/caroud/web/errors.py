"""Refusals of the HTTP layer, and the one JSON shape every API error takes.

These extend the tree of :mod:`caroud.errors` with what only an HTTP API refuses::

    CaroudError
    └── WebError                 carries its own HTTP ``status``
        ├── UnauthorizedError    401: no, or an unknown, bearer token
        ├── ForbiddenError       403: authenticated, but not allowed (not the party's leader)
        ├── PayloadTooLargeError 413: the request body is over the limit
        └── RateLimitedError     429: too many requests in the window; ``retry_after`` seconds

Every other :class:`~caroud.errors.CaroudError` answers the status of
:func:`caroud.errors.http_status`. The body is always
``{"error": {"code": "...", "message": "...", "details": {...}?}}``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.http import HttpResponseBase

from caroud.errors import (
    CaroudError,
    PlayerBusyError,
    TicketStateError,
    ValidationError,
    http_status,
)


class WebError(CaroudError):
    """A refusal of the HTTP layer that carries its own status code."""

    code = "web"
    status = 400


class UnauthorizedError(WebError):
    """The request has no bearer token, or one that matches no player or server key."""

    code = "unauthorized"
    status = 401


class ForbiddenError(WebError):
    """The caller is known but may not do this (e.g. queue a party it does not lead)."""

    code = "forbidden"
    status = 403


class PayloadTooLargeError(WebError):
    """The request body is larger than the API accepts."""

    code = "too_large"
    status = 413


class RateLimitedError(WebError):
    """Too many requests of one kind in the current window; retry after ``retry_after`` s."""

    code = "rate_limited"
    status = 429

    def __init__(self, what: str, limit: int, window_s: int, retry_after: int) -> None:
        super().__init__(f"at most {limit} {what} per {window_s} s: retry in {retry_after} s")
        self.retry_after = retry_after


def status_of(error: CaroudError) -> int:
    """The HTTP status for ``error``: its own for a :class:`WebError`, else the engine's table."""
    return error.status if isinstance(error, WebError) else http_status(error)


def details_of(error: CaroudError) -> dict[str, Any]:
    """The machine-readable extras of an error (which field, which ticket), if any."""
    if isinstance(error, ValidationError):
        return {"field": error.field}
    if isinstance(error, PlayerBusyError):
        return {"player_id": error.player_id, "ticket_id": error.ticket_id}
    if isinstance(error, TicketStateError):
        return {"ticket_id": error.ticket_id, "status": error.status}
    if isinstance(error, RateLimitedError):
        return {"retry_after": error.retry_after}
    return {}


RETRY_AFTER_S = 2
"""What a 503 tells a client to wait (``Retry-After``, seconds) before trying again."""

Response = TypeVar("Response", bound=HttpResponseBase)


def with_retry_after(response: Response) -> Response:
    """``response``, with ``Retry-After`` if it is a 503 that has none."""
    if response.status_code == 503 and "Retry-After" not in response:
        response["Retry-After"] = str(RETRY_AFTER_S)
    return response


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of an error response."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}
