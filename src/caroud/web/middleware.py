"""Django middleware of the Caroud app."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from caroud.redis.deadline import budget, deadline
from caroud.web.conf import web_settings
from caroud.web.wsgi_bridge import ARRIVED


class RedisDeadlineMiddleware:
    """All the Redis work of one request shares one deadline (``CAROUD_REQUEST_DEADLINE``).

    While Redis is paused or away, a request answers 503 (with ``Retry-After``) after
    at most that long from its arrival, instead of waiting out every call's timeout and
    retries; and once a call has failed, the next requests try Redis only briefly
    (:func:`~caroud.redis.deadline.budget`), so that they do not queue behind each other.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        seconds = budget(web_settings().request_deadline_s)
        arrived = request.META.get(ARRIVED)
        if isinstance(arrived, float):  # time spent queueing for a thread counts too
            seconds -= time.monotonic() - arrived
        with deadline(max(seconds, 0.0)):
            return self.get_response(request)
