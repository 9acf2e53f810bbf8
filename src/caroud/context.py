"""Wiring: from :class:`Settings` to connected stores. Every entry point starts here."""

from __future__ import annotations

from dataclasses import dataclass

from caroud.keys import Keys, PoolKeys
from caroud.matchmaking.assignment import Assigner
from caroud.matchmaking.matches import MatchStore
from caroud.matchmaking.queues import QueueRegistry
from caroud.matchmaking.store import MatchmakingStore
from caroud.redis.client import Redis, connect
from caroud.servers.pool import ServerPool
from caroud.settings import Settings


@dataclass(frozen=True)
class Context:
    """The settings, the Redis client and the stores built on it."""

    settings: Settings
    client: Redis
    keys: Keys
    queues: QueueRegistry
    matchmaking: MatchmakingStore
    matches: MatchStore
    pool: ServerPool
    assigner: Assigner

    @classmethod
    def build(
        cls, settings: Settings, client: Redis | None = None, queues: QueueRegistry | None = None
    ) -> Context:
        client = client if client is not None else connect(settings)
        keys = Keys(settings.key_prefix)
        queues = queues if queues is not None else QueueRegistry.load(settings.queues_file)
        store = MatchmakingStore(client, keys, queues, settings)
        matches = MatchStore(store)
        pool = ServerPool(client, PoolKeys(settings.key_prefix), queues.all_regions(), settings)
        return cls(settings, client, keys, queues, store, matches, pool, Assigner(matches, pool))
