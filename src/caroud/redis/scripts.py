"""Lua scripts: read once from ``caroud/lua/*.lua``, registered as redis-py ``Script`` objects.

A ``Script`` computes its SHA up front, calls EVALSHA, reloads on NOSCRIPT and
works inside pipelines. Each ``.lua`` file opens with a header naming its KEYS,
ARGV and replies; the typed wrappers that turn replies into domain results live
with the code that owns the keys (``caroud.matchmaking.store``,
``caroud.servers.pool``).
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
    assign_match: Script
    requeue_match: Script
    retry_match: Script
    start_match: Script
    end_match: Script

    @classmethod
    def register(cls, client: Redis) -> MatchmakingScripts:
        return cls(
            **{name: client.register_script(source(name)) for name in cls.__dataclass_fields__}
        )


@dataclass(frozen=True, slots=True)
class PoolScripts:
    """The game-server pool scripts (``pool_<name>.lua``), registered on one client.

    Each is registered with ``pool_lib.lua`` in front of it. The pool's scripts share
    their key layout, the clock and three multi-step writes (remove a server, free a
    slot, drain): written once there rather than copied into several scripts, so they
    cannot drift apart. ``pool_lib.lua`` writes nothing by itself; each script decides.
    """

    register_server: Script
    heartbeat: Script
    drain: Script
    deregister: Script
    allocate: Script
    confirm_started: Script
    release: Script
    reap: Script

    @classmethod
    def register(cls, client: Redis) -> PoolScripts:
        lib = source("pool_lib")
        return cls(
            **{
                name: client.register_script(f"{lib}\n{source(f'pool_{name}')}")
                for name in cls.__dataclass_fields__
            }
        )
