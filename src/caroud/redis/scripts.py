"""Lua scripts: read once from ``caroud/lua/*.lua``, registered as redis-py ``Script`` objects.

A ``Script`` computes its SHA up front, calls EVALSHA, reloads on NOSCRIPT and
works inside pipelines. Each ``.lua`` file opens with a header naming its KEYS,
ARGV and replies; the typed wrappers that turn replies into domain results live
with the code that owns the keys (``caroud.matchmaking.store``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from redis.commands.core import Script

from caroud.redis.client import Redis


@cache
def source(name: str) -> str:
    """The text of ``caroud/lua/<name>.lua``."""
    return resources.files("caroud").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class MatchmakingScripts:
    """The matchmaking scripts, registered on one client."""

    enqueue: Script
    cancel: Script
    time_out: Script
    claim_matches: Script
    lease: Script
    release_lease: Script

    @classmethod
    def register(cls, client: Redis) -> MatchmakingScripts:
        return cls(
            **{name: client.register_script(source(name)) for name in cls.__dataclass_fields__}
        )
