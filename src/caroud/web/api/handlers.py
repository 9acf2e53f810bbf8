"""Every failure of an API route becomes ``{"error": {"code", "message"}}`` — never a 500 page.

Exception handlers cover what a route raises (Caroud errors by the one status table,
ninja's validation and HTTP errors, oversize bodies, an unreachable database) with a
catch-all that logs and answers ``internal``. :func:`guard` wraps each API view for
what happens outside a route: a body over the size limit (refused before it is
parsed) and the plain-text answers ninja gives itself (405 method not allowed).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any

from asgiref.sync import markcoroutinefunction
from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views import defaults
from ninja import NinjaAPI
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError

from caroud.errors import CaroudError, RedisTimeoutError, RedisUnavailableError
from caroud.web.conf import web_settings
from caroud.web.errors import (
    RateLimitedError,
    details_of,
    error_body,
    status_of,
    with_retry_after,
)

log = logging.getLogger("caroud.web")

STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JsonResponse:
    """The API's error shape; a 503 says when to retry (``Retry-After``)."""
    return with_retry_after(JsonResponse(error_body(code, message, details), status=status))


def too_large(limit: int) -> JsonResponse:
    return error_response(413, "too_large", f"the request body is over {limit} bytes")


def _location(loc: Any) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path"):
        parts = parts[1:]
        if parts and parts[0] == "payload":
            parts = parts[1:]
    return ".".join(parts) or "body"


def validation_message(errors: list[dict[str, Any]]) -> tuple[str, str]:
    """The first field at fault, and one message naming every problem."""
    fields = [_location(e.get("loc", ())) for e in errors]
    problems = [
        f"{f}: a JSON object is required"
        if f == "body" and e.get("type") == "missing"
        else f"{f}: {e.get('msg', 'is invalid')}"
        for f, e in zip(fields, errors, strict=True)
    ]
    return (fields[0] if fields else "body"), "; ".join(problems) or "the request is invalid"


def install(api: NinjaAPI) -> None:
    """Register the handlers on ``api``."""

    @api.exception_handler(CaroudError)
    def caroud_error(request: HttpRequest, exc: CaroudError) -> HttpResponse:
        status = status_of(exc)
        if status >= 500:
            # Redis away: caroud.redis.deadline logs the outage once (and when it is
            # over), not a line per request
            quiet = isinstance(exc, RedisUnavailableError | RedisTimeoutError)
            level = logging.DEBUG if quiet else logging.WARNING
            log.log(level, "request failed: %s", exc, extra={"path": request.path})
        response = error_response(status, exc.code, str(exc), details_of(exc))
        if isinstance(exc, RateLimitedError):
            response["Retry-After"] = str(exc.retry_after)
        return response

    @api.exception_handler(NinjaValidationError)
    def invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
        field, message = validation_message(list(exc.errors))
        return error_response(422, "invalid", message, {"field": field})

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        message = str(exc)
        if exc.status_code == 400 and message.startswith("Cannot parse request body"):
            message = "the request body is not valid JSON"
        code = STATUS_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, message)

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return error_response(404, "not_found", str(exc) or "not found")

    @api.exception_handler(RequestDataTooBig)
    def body_too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        return too_large(web_settings().max_body_bytes)

    @api.exception_handler(DatabaseError)
    def database(request: HttpRequest, exc: DatabaseError) -> HttpResponse:
        log.exception("database error", extra={"path": request.path})
        return error_response(
            503, "database_unavailable", "the database is unavailable: retry later"
        )

    @api.exception_handler(Exception)
    def internal(request: HttpRequest, exc: Exception) -> HttpResponse:
        log.exception("unhandled error", extra={"path": request.path})
        return error_response(500, "internal", "internal error: the server log has the details")


def _is_json(response: HttpResponseBase) -> bool:
    return str(response.get("Content-Type", "")).startswith("application/json")


def _as_json_error(response: HttpResponseBase) -> HttpResponseBase:
    if response.status_code < 400 or _is_json(response):
        return response
    status = response.status_code
    text = getattr(response, "content", b"").decode(errors="replace").strip()
    if status == 405:
        text = f"method not allowed; allowed: {response.get('Allow', '')}"
    out = error_response(status, STATUS_CODES.get(status, "error"), text or "request failed")
    for header in ("Allow", "Retry-After", "WWW-Authenticate"):
        if header in response:
            out[header] = response[header]
    return out


def _oversize(request: HttpRequest) -> JsonResponse | None:
    """413 for a declared length over the limit (a chunked body is Django's to measure)."""
    limit = web_settings().max_body_bytes
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return error_response(400, "bad_request", "the Content-Length header is not a number")
    return too_large(limit) if length > limit else None


def guard(view: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an API view: refuse oversize bodies up front, turn non-JSON errors into JSON."""
    if inspect.iscoroutinefunction(view):

        async def async_guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            refused = _oversize(request)
            if refused is not None:
                return refused
            return _as_json_error(await view(request, *args, **kwargs))

        functools.update_wrapper(async_guarded, view)
        return markcoroutinefunction(async_guarded)

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        refused = _oversize(request)
        if refused is not None:
            return refused
        return _as_json_error(view(request, *args, **kwargs))

    return guarded


def json_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any path under the API's prefix that is no route."""
    return error_response(404, "not_found", f"no API route {request.path!r}: see /api/docs")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The project's 400 handler: JSON under ``/api/`` (a disallowed ``Host`` header, say,
    is refused before any route runs), Django's plain page elsewhere."""
    if request.path.startswith("/api/"):
        message = "bad request"
        if isinstance(exception, DisallowedHost):
            message = "the Host header names no host this server answers for (ALLOWED_HOSTS)"
        return error_response(400, "bad_request", message)
    return defaults.bad_request(request, exception or Exception())
