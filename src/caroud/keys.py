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
    <p>:{mm}:pend:<queue>   ZSET   matches waiting for a game server, by match time (ms)
    <p>:{mm}:qual:<queue>   LIST   "spread:imbalance" of the newest matches, newest first
    <p>:{mm}:results        STREAM match results, for the rating update
    <p>:worker:<id>         STRING a worker's heartbeat (JSON), with a TTL
    <p>:workers             ZSET   live workers, scored by when their heartbeat lapses (ms)
    <p>:doctor:<token>      STRING `caroud doctor`'s throwaway probe (60 s TTL)

All keys of one game-server pool share the hash tag ``{pool:<name>}``, for the
same reason: the pool's scripts touch servers and allocations together. The
keys are few and fixed (one per region at most), so every script is passed all
the keys it may touch; records live in fields, never in keys named by an id::

    <p>:{pool:<n>}:srv            HASH  server attributes, field "<server>:<attr>"
                                        (host port reg cap used st lab load at hb sk)
    <p>:{pool:<n>}:hb             ZSET  every registered server, by health deadline (ms)
    <p>:{pool:<n>}:free:<region>  ZSET  ready servers with a free slot, by used/capacity
    <p>:{pool:<n>}:alloc          HASH  match id -> "state|server|region|host|port|at|deadline|
                                        started|ended" (times in ms, "" when unset)
    <p>:{pool:<n>}:pending        ZSET  allocated, not yet started matches, by start deadline
    <p>:{pool:<n>}:bysrv          ZSET  "<server>/<match>" of running allocations (lex index)
    <p>:{pool:<n>}:done           ZSET  ended allocations (tombstones), by end time (ms)
    <p>:{pool:<n>}:stats          HASH  counters and gauges (see caroud.servers.models.PoolStats)
    <p>:{pool:<n>}:events         STREAM servers lost (with the matches they held) or benched
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def pending(self, queue: str) -> str:
        return f"{self._mm}:pend:{queue}"

    def quality(self, queue: str) -> str:
        return f"{self._mm}:qual:{queue}"

    def results(self) -> str:
        return f"{self._mm}:results"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}:worker:{worker_id}"

    def workers(self) -> str:
        return f"{self.prefix}:workers"

    def doctor(self, token: str) -> str:
        return f"{self.prefix}:doctor:{token}"

    def workers_pattern(self) -> str:
        return f"{self.prefix}:worker:*"

    # -- the Django side (caroud.web) -----------------------------------------------------

    def rate_limit(self, scope: str, who: str) -> str:
        """STRING, with a TTL: requests of ``who`` counted in the current window of ``scope``."""
        return f"{self.prefix}:rl:{scope}:{who}"

    def django_cache(self) -> str:
        """The prefix of the Django cache's keys (django-redis ``KEY_PREFIX``), same server."""
        return f"{self.prefix}:dj"

    def channel_layer(self) -> str:
        """The prefix of the Channels layer's names (channels-redis ``prefix``), same server.

        Its pub/sub channels are ``<p>:ws:specific.<id>`` (one per WebSocket) and
        ``<p>:ws:__group__<group>``; it stores no keys.
        """
        return f"{self.prefix}:ws:"

    def relay_group(self) -> str:
        """The consumer group, on every queue's event stream, of the WebSocket relays."""
        return f"{self.prefix}:relay"


@dataclass(frozen=True, slots=True)
class PoolKeys:
    """Key builder for one game-server pool named ``pool``, namespaced by ``prefix``."""

    prefix: str = "caroud"
    pool: str = "default"

    @property
    def _tag(self) -> str:
        return f"{self.prefix}:{{pool:{self.pool}}}"

    def servers(self) -> str:
        return f"{self._tag}:srv"

    def health(self) -> str:
        return f"{self._tag}:hb"

    def free(self, region: str) -> str:
        return f"{self._tag}:free:{region}"

    def allocations(self) -> str:
        return f"{self._tag}:alloc"

    def pending(self) -> str:
        return f"{self._tag}:pending"

    def by_server(self) -> str:
        return f"{self._tag}:bysrv"

    def done(self) -> str:
        return f"{self._tag}:done"

    def stats(self) -> str:
        return f"{self._tag}:stats"

    def events(self) -> str:
        return f"{self._tag}:events"

    def fixed(self) -> list[str]:
        """The keys every pool script is passed first, in the order the scripts expect."""
        return [
            self.servers(),
            self.health(),
            self.allocations(),
            self.pending(),
            self.by_server(),
            self.done(),
            self.stats(),
            self.events(),
        ]

    def every_key(self, regions: Sequence[str]) -> list[str]:
        """Every key of the pool with these regions (to delete a pool, or to inspect it)."""
        return self.fixed() + [self.free(r) for r in regions]
