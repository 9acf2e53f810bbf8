"""``/metrics`` of the web process: the Prometheus text format, for a scraper.

The registry is built once per process and engine context (kept by the app config,
see :meth:`~caroud.web.apps.CaroudWebConfig.derived`) with
:func:`caroud.ops.metrics.build_registry`: queue depths, pools and the Redis metrics,
read from Redis at each scrape, plus this process's own series. Open by default, like
the worker's; set ``CAROUD_METRICS_TOKEN`` (a Django setting or the environment) and a
scrape must send ``Authorization: Bearer <token>``, else 401.
"""

from __future__ import annotations

import hmac
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import CollectorRegistry

from caroud.ops.metrics import WorkerMetrics, build_registry, render_latest
from caroud.web.apps import app_config

TOKEN_SETTING = "CAROUD_METRICS_TOKEN"


def web_metrics() -> tuple[CollectorRegistry, WorkerMetrics]:
    """This process's registry, and the hooks a worker running in it should be given."""
    return app_config().derived("metrics", lambda ctx: build_registry(ctx, [ctx.pool]))


def metrics_token() -> str:
    """The token ``/metrics`` requires, or "" for none (read on every request)."""
    value = getattr(settings, TOKEN_SETTING, None)
    if value is None:
        value = os.environ.get(TOKEN_SETTING, "")
    return str(value).strip()


def authorized(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The registry in the text format (a Redis outage reads ``caroud_redis_up 0``)."""
    token = metrics_token()
    if token and not authorized(request, token):
        response = HttpResponse(
            "a bearer token is required (CAROUD_METRICS_TOKEN)\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry, _ = web_metrics()
    body, content_type = render_latest(registry)
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
