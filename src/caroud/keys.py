"""Every Redis key Caroud uses, and nothing else builds one.

All matchmaking keys share the hash tag ``{mm}``: one Lua script can then
enforce "one active ticket per player" across every queue atomically, and the
same scripts run unchanged on Redis Cluster (on one shard). Key names are kept
short because a queued ticket pays for its key names in memory.

    <p>:{mm}:t:<ticket>     HASH   ticket record (see caroud.matchmaking.codec)
    <p>:{mm}:p:<player>     STRING id of the player's active ticket
    <p>:{mm}:q:<queue>      ZSET   queued ticket ids, scored by creation time (ms)
    <p>:{mm}:ev:<queue>     STREAM ticket events of one queue
    <p>:{mm}:m:<match>      HASH   match record
    <p>:{mm}:lease:<queue>  STRING token of the worker that owns the queue
    <p>:worker:<id>         STRING a worker's heartbeat (JSON), with a TTL
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder for one deployment, namespaced by ``prefix``."""

    prefix: str = "caroud"

    @property
    def _mm(self) -> str:
        return f"{self.prefix}:{{mm}}"

    def ticket(self, ticket_id: str) -> str:
        return f"{self._mm}:t:{ticket_id}"

    def player(self, player_id: str) -> str:
        return f"{self._mm}:p:{player_id}"

    def queue(self, queue: str) -> str:
        return f"{self._mm}:q:{queue}"

    def events(self, queue: str) -> str:
        return f"{self._mm}:ev:{queue}"

    def match(self, match_id: str) -> str:
        return f"{self._mm}:m:{match_id}"

    def lease(self, queue: str) -> str:
        return f"{self._mm}:lease:{queue}"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    def workers_pattern(self) -> str:
        return f"{self.prefix}:worker:*"
