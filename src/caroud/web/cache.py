"""django-redis on the engine's own Redis: ``LOCATION = "caroud://engine"`` resolves here.

The URL is resolved when the cache first connects, not when settings load, from
the same settings the engine uses (``CAROUD_REDIS_URL``, or the embedded Valkey of
``CAROUD_DATA_DIR``, started on demand), with the engine's socket timeouts. So the
cache and the matchmaker always share one server, and a project that only imports
its settings never starts one.
"""

from __future__ import annotations

from typing import Any

from django_redis.pool import ConnectionFactory

from caroud.redis.client import resolve_url
from caroud.web.conf import ENGINE_REDIS


class EngineConnectionFactory(ConnectionFactory):  # type: ignore[misc]
    """A django-redis connection factory that maps ``caroud://engine`` to the engine's URL."""

    def make_connection_params(self, url: str) -> dict[str, Any]:
        if url != ENGINE_REDIS:
            return dict(super().make_connection_params(url))
        from caroud.web.apps import app_config

        settings = app_config().engine_settings()
        params = dict(super().make_connection_params(resolve_url(settings)))
        params.setdefault("socket_timeout", settings.socket_timeout_s)
        params.setdefault("socket_connect_timeout", settings.connect_timeout_s)
        return params
