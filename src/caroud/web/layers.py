"""The Channels layer on the engine's own Redis: ``hosts = ["caroud://engine"]`` resolves here.

As with the cache (:mod:`caroud.web.cache`), the URL is resolved when the layer is
first built in a process (the first WebSocket, or the relay's first push), not when
settings load: ``CAROUD_REDIS_URL``, or the embedded Valkey of ``CAROUD_DATA_DIR``.
So the layer, the cache and the matchmaker share one server, and a project that only
imports its settings never starts one.

Why channels-redis's pub/sub layer rather than its list-based default: a push is a
notification whose loss a client recovers from by itself (every connection starts
with the current state), so at-most-once delivery is enough; a ``group_send`` is
then one ``PUBLISH`` (the default layer needs three round trips and a script, and
keeps per-channel keys); and a web process's shutdown is not held up by the default
layer's shared ``BZPOPMIN`` receiver (seen with uvicorn waiting on it for seconds).
What it costs: a message published while a web process is disconnected from Redis
is lost for that process's sockets, and channels-redis calls the layer *beta*.
"""

from __future__ import annotations

import os
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer

from caroud.keys import Keys
from caroud.redis.client import resolve_url
from caroud.settings import Settings
from caroud.web.conf import ENGINE_REDIS


def redis_channel_layer(key_prefix: str | None = None, **config: Any) -> dict[str, Any]:
    """A ``CHANNEL_LAYERS`` entry: channels-redis on the engine's Redis, under its key prefix.

    For a project's settings module (it reads nothing from Django settings).
    ``key_prefix`` defaults to ``CAROUD_KEY_PREFIX``; ``config`` goes to channels-redis
    (e.g. ``symmetric_encryption_keys``).
    """
    prefix = key_prefix or os.environ.get("CAROUD_KEY_PREFIX") or Settings().key_prefix
    return {
        "BACKEND": "caroud.web.layers.EngineChannelLayer",
        "CONFIG": {"hosts": [ENGINE_REDIS], "prefix": Keys(prefix).channel_layer(), **config},
    }


def engine_host() -> dict[str, Any]:
    """channels-redis host parameters for the engine's Redis (started on demand if embedded)."""
    from caroud.web.apps import app_config

    settings = app_config().engine_settings()
    return {
        "address": resolve_url(settings),
        "socket_timeout": settings.socket_timeout_s,
        "socket_connect_timeout": settings.connect_timeout_s,
        "health_check_interval": settings.health_check_interval_s,
    }


class EngineChannelLayer(RedisPubSubChannelLayer):  # type: ignore[misc]
    """channels-redis's pub/sub layer; ``caroud://engine`` in ``hosts`` is the engine's Redis."""

    def __init__(self, hosts: list[Any] | None = None, **kwargs: Any) -> None:
        resolved = [engine_host() if h == ENGINE_REDIS else h for h in hosts or [ENGINE_REDIS]]
        super().__init__(hosts=resolved, **kwargs)
