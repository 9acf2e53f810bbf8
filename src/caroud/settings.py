"""Settings: built once from the environment (and ``.env``), then passed in.

Nothing here opens a connection; :func:`caroud.redis.client.connect` does that
from a :class:`Settings`. Every variable is prefixed ``CAROUD_``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from dotenv import dotenv_values

from caroud.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything Caroud reads from its environment, validated."""

    redis_url: str | None = None
    key_prefix: str = "caroud"
    data_dir: Path = field(default_factory=lambda: Path(".caroud"))
    connect_timeout_s: float = 2.0
    socket_timeout_s: float = 2.0
    retries: int = 3
    health_check_interval_s: int = 15
    queues_file: Path | None = None
    worker_tick_s: float = 0.05
    lease_ttl_s: float = 3.0
    ended_ttl_s: int = 3600
    match_ttl_s: int = 7200
    events_maxlen: int = 200_000
    heartbeat_interval_s: float = 5.0
    missed_heartbeats: int = 3
    first_heartbeat_grace_s: float = 60.0
    start_deadline_s: float = 30.0

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, dotenv_path: Path | None = Path(".env")
    ) -> Settings:
        """Read ``CAROUD_*`` from ``env`` (default ``os.environ``), with ``.env`` underneath."""
        values: dict[str, str] = {}
        if dotenv_path is not None and dotenv_path.is_file():
            values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
        values.update(os.environ if env is None else env)
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> Settings:
        """Build settings from already-merged ``CAROUD_*`` values."""

        def get(name: str) -> str | None:
            raw = values.get(f"CAROUD_{name}")
            return raw.strip() if raw is not None and raw.strip() != "" else None

        def number(name: str, default: float, low: float, kind: type = float) -> float:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise ConfigError(
                    f"CAROUD_{name}={raw!r} is not a {kind.__name__}: set a number"
                ) from None
            if value < low:
                raise ConfigError(f"CAROUD_{name}={raw!r} must be at least {low}")
            return float(value)

        base = cls()
        queues_file = get("QUEUES_FILE")
        prefix = get("KEY_PREFIX") or base.key_prefix
        if any(c in prefix for c in "{}: "):
            raise ConfigError(
                f"CAROUD_KEY_PREFIX={prefix!r} may not contain braces, colons or spaces"
            )
        return replace(
            base,
            redis_url=get("REDIS_URL"),
            key_prefix=prefix,
            data_dir=Path(get("DATA_DIR") or base.data_dir),
            connect_timeout_s=number("CONNECT_TIMEOUT", base.connect_timeout_s, 0.01),
            socket_timeout_s=number("SOCKET_TIMEOUT", base.socket_timeout_s, 0.01),
            retries=int(number("RETRIES", base.retries, 0, int)),
            health_check_interval_s=int(
                number("HEALTH_CHECK_INTERVAL", base.health_check_interval_s, 0, int)
            ),
            queues_file=Path(queues_file) if queues_file else None,
            worker_tick_s=number("WORKER_TICK", base.worker_tick_s, 0.001),
            lease_ttl_s=number("LEASE_TTL", base.lease_ttl_s, 0.2),
            ended_ttl_s=int(number("ENDED_TTL", base.ended_ttl_s, 1, int)),
            match_ttl_s=int(number("MATCH_TTL", base.match_ttl_s, 1, int)),
            events_maxlen=int(number("EVENTS_MAXLEN", base.events_maxlen, 1000, int)),
            heartbeat_interval_s=number("HEARTBEAT_INTERVAL", base.heartbeat_interval_s, 0.01),
            missed_heartbeats=int(number("MISSED_HEARTBEATS", base.missed_heartbeats, 1, int)),
            first_heartbeat_grace_s=number(
                "FIRST_HEARTBEAT_GRACE", base.first_heartbeat_grace_s, 0.01
            ),
            start_deadline_s=number("START_DEADLINE", base.start_deadline_s, 0.01),
        )
