"""Django middleware of the Caroud app."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from caroud.redis.deadline import deadline
from caroud.web.conf import web_settings


class RedisDeadlineMiddleware:
    """All the Redis work of one request shares one deadline (``CAROUD_REQUEST_DEADLINE``).

    While Redis is paused or away, a request answers 503 (with ``Retry-After``) after
    at most that long, instead of waiting out every call's timeout and retries.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        with deadline(web_settings().request_deadline_s):
            return self.get_response(request)
