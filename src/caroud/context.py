"""Wiring: from :class:`Settings` to a connected store. Every entry point starts here."""

from __future__ import annotations

from dataclasses import dataclass

from caroud.keys import Keys
from caroud.matchmaking.queues import QueueRegistry
from caroud.matchmaking.store import MatchmakingStore
from caroud.redis.client import Redis, connect
from caroud.settings import Settings


@dataclass(frozen=True)
class Context:
    """The settings, the Redis client and the stores built on it."""

    settings: Settings
    client: Redis
    keys: Keys
    queues: QueueRegistry
    matchmaking: MatchmakingStore

    @classmethod
    def build(cls, settings: Settings, client: Redis | None = None) -> Context:
        client = client if client is not None else connect(settings)
        keys = Keys(settings.key_prefix)
        queues = QueueRegistry.load(settings.queues_file)
        return cls(settings, client, keys, queues, MatchmakingStore(client, keys, queues, settings))
