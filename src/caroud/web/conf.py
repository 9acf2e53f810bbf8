"""Settings of the Django side, read lazily (at first use, never at import) and validated.

The engine's settings (:class:`caroud.settings.Settings`) come from ``CAROUD_*``
variables: a Django setting of the same name wins over the environment, which wins
over ``.env``. So an existing project can write ``CAROUD_REDIS_URL = "rediss://..."``
in its settings, or leave it to the environment. The web side adds:

=========================== ========= ==================================================
``CAROUD_TICKET_RATE``      ``10/10`` ticket creations per player: LIMIT/SECONDS
``CAROUD_API_MAX_BODY``     ``16384`` bytes of request body the API accepts (else 413)
``CAROUD_REQUEST_DEADLINE`` ``2.5``   seconds a request may spend on Redis in all (then 503)
=========================== ========= ==================================================

Anything invalid raises :class:`~django.core.exceptions.ImproperlyConfigured` naming it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from caroud.errors import ConfigError
from caroud.settings import Settings
from caroud.web.ratelimit import Rate

ENGINE_REDIS = "caroud://engine"
"""A cache ``LOCATION`` meaning "the engine's Redis" (resolved by :mod:`caroud.web.cache`)."""

WEB_ONLY_SETTINGS = frozenset(
    {"CAROUD_TICKET_RATE", "CAROUD_API_MAX_BODY", "CAROUD_METRICS_TOKEN", "CAROUD_REQUEST_DEADLINE"}
)
"""Settings read on every use (changing them needs no new engine context)."""
DEFAULT_TICKET_RATE = "10/10"
DEFAULT_MAX_BODY = 16 * 1024
DEFAULT_REQUEST_DEADLINE_S = 2.5


@dataclass(frozen=True, slots=True)
class WebSettings:
    """What the HTTP layer reads: the ticket rate limit, the body size limit, the deadline."""

    ticket_rate: Rate
    max_body_bytes: int
    request_deadline_s: float = DEFAULT_REQUEST_DEADLINE_S


def _setting(name: str) -> Any:
    value = getattr(django_settings, name, None)
    return value if value is not None else os.environ.get(name)


def web_settings() -> WebSettings:
    """The web side's settings, from Django settings or the environment."""
    rate_text = _setting("CAROUD_TICKET_RATE") or DEFAULT_TICKET_RATE
    try:
        rate = Rate.parse(str(rate_text))
    except ValueError as e:
        raise ImproperlyConfigured(f"CAROUD_TICKET_RATE: {e}") from None
    body = _setting("CAROUD_API_MAX_BODY") or DEFAULT_MAX_BODY
    try:
        max_body = int(body)
    except (TypeError, ValueError):
        max_body = 0
    if max_body < 256:
        raise ImproperlyConfigured(
            f"CAROUD_API_MAX_BODY={body!r} must be a whole number of bytes, at least 256"
        )
    text = _setting("CAROUD_REQUEST_DEADLINE") or DEFAULT_REQUEST_DEADLINE_S
    try:
        deadline = float(text)
    except (TypeError, ValueError):
        deadline = 0.0
    if not 0.1 <= deadline <= 60:
        raise ImproperlyConfigured(
            f"CAROUD_REQUEST_DEADLINE={text!r} must be seconds between 0.1 and 60"
        )
    return WebSettings(rate, max_body, deadline)


def engine_overrides() -> dict[str, str]:
    """The ``CAROUD_*`` Django settings that are engine settings, as text."""
    out: dict[str, str] = {}
    for name in dir(django_settings):
        if not name.startswith("CAROUD_"):
            continue
        value = getattr(django_settings, name)
        if isinstance(value, str | int | float | Path) and not isinstance(value, bool):
            out[name] = str(value)
    return out


def engine_settings() -> Settings:
    """The engine's settings: Django ``CAROUD_*`` settings over the environment over ``.env``."""
    try:
        return Settings.from_env(env={**os.environ, **engine_overrides()})
    except ConfigError as e:
        raise ImproperlyConfigured(str(e)) from e


def redis_cache(key_prefix: str | None = None, **options: Any) -> dict[str, Any]:
    """A ``CACHES`` entry: django-redis on the engine's Redis, under the engine's key prefix.

    For a project's settings module (it reads nothing from Django settings).
    ``key_prefix`` defaults to ``CAROUD_KEY_PREFIX``; ``options`` go to django-redis
    ``OPTIONS`` (e.g. ``IGNORE_EXCEPTIONS=True``).
    """
    from caroud.keys import Keys

    prefix = key_prefix or os.environ.get("CAROUD_KEY_PREFIX") or Settings().key_prefix
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": ENGINE_REDIS,
        "KEY_PREFIX": Keys(prefix).django_cache(),
        "OPTIONS": {"CONNECTION_FACTORY": "caroud.web.cache.EngineConnectionFactory", **options},
    }
