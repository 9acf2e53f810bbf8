"""The one place that builds Redis clients, and turns Redis failures into Caroud errors.

``connect(settings)`` honours ``CAROUD_REDIS_URL`` — ``redis://`` or ``rediss://``
(TLS, as ElastiCache in-transit encryption needs), with ``user:password@`` or
``:token@`` for an AUTH token — and otherwise starts the embedded Valkey.
Connection errors are retried with jittered exponential backoff; idle
connections are health-checked before use.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from redis.backoff import ExponentialWithJitterBackoff

import redis
from caroud import errors
from caroud.redis.deadline import BOUNDED, DeadlineRetry
from caroud.redis.embedded import embedded_url
from caroud.settings import Settings

Redis = redis.Redis


def redact_url(url: str) -> str:
    """``url`` with its password (the AUTH token) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def resolve_url(settings: Settings) -> str:
    """The configured URL, or the embedded server's (started on demand)."""
    return settings.redis_url or embedded_url(settings.data_dir)


def connect(settings: Settings, url: str | None = None) -> Redis:
    """A client for ``url`` (default: from ``settings``) with timeouts, retries, health checks."""
    url = url or resolve_url(settings)
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "unix"):
        raise errors.ConfigError(
            f"CAROUD_REDIS_URL={redact_url(url)!r}: the scheme must be redis:// (plain), "
            "rediss:// (TLS) or unix://"
        )
    try:
        client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=settings.connect_timeout_s,
            socket_timeout=settings.socket_timeout_s,
            retry=DeadlineRetry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), settings.retries),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
            health_check_interval=settings.health_check_interval_s,
            client_name="caroud",
        )
    except ValueError as e:
        raise errors.ConfigError(f"CAROUD_REDIS_URL={redact_url(url)!r} is not valid: {e}") from e
    pool = client.connection_pool
    # calls made inside `deadline(...)` (a web request) wait no longer than it allows
    pool.connection_class = BOUNDED.get(pool.connection_class, pool.connection_class)
    client.caroud_url = redact_url(url)  # type: ignore[attr-defined]
    return client


def url_of(client: Redis) -> str:
    """The redacted URL ``client`` was built for (for error messages)."""
    return str(getattr(client, "caroud_url", "<redis>"))


def translate(exc: redis.RedisError | ssl.SSLError, url: str) -> errors.RedisError:
    """The Caroud error for a redis-py failure, with a message that says what to check."""
    text = str(exc)
    if isinstance(exc, redis.AuthenticationError) or text.startswith(("NOAUTH", "WRONGPASS")):
        return errors.RedisAuthError(
            f"Redis at {url} rejected authentication ({text}). Put the AUTH token in the URL: "
            "rediss://:TOKEN@host:6379 (or rediss://USER:TOKEN@host:6379 with ACL users)."
        )
    if isinstance(exc, redis.OutOfMemoryError) or "OOM command not allowed" in text:
        return errors.RedisOutOfMemoryError(
            f"Redis at {url} is out of memory and refused a write ({text}). Scale up the node "
            "type, check that ended tickets expire (CAROUD_ENDED_TTL), and watch memory alarms."
        )
    if isinstance(exc, ssl.SSLError) or "SSL" in text or "certificate" in text:
        return errors.RedisTLSError(
            f"TLS with Redis at {url} failed ({text}). Use rediss:// only for TLS endpoints "
            "(in-transit encryption on) and redis:// for plain ones, and check the certificate."
        )
    plain = url.startswith("redis://")
    if plain and isinstance(exc, redis.ConnectionError) and _looks_like_tls_hangup(text):
        return errors.RedisTLSError(
            f"Redis at {url} closed the connection on the first command ({text}): the endpoint "
            "most likely requires TLS (ElastiCache in-transit encryption). Use rediss://."
        )
    if isinstance(exc, redis.TimeoutError):
        return errors.RedisTimeoutError(
            f"timed out talking to Redis at {url} ({text}). Check the security group allows "
            "TCP 6379 from this host, the VPC and subnets, that the cluster is 'available', "
            "and that the backend runs in the same VPC. A redis:// URL against a TLS-only "
            "endpoint also looks like this: try rediss://."
        )
    if isinstance(exc, redis.ConnectionError):
        return errors.RedisUnavailableError(
            f"cannot reach Redis at {url} ({text}). Check the endpoint and port, that the server "
            "(or ElastiCache cluster) is running, and try `caroud doctor`."
        )
    return errors.RedisError(f"Redis at {url} failed: {text}")


def _looks_like_tls_hangup(text: str) -> bool:
    return "reset by peer" in text or "Connection closed by server" in text


@contextmanager
def redis_errors(client: Redis) -> Iterator[None]:
    """Run a block of Redis calls, re-raising redis-py failures as Caroud errors."""
    try:
        yield
    except (redis.RedisError, ssl.SSLError) as e:
        raise translate(e, url_of(client)) from e
