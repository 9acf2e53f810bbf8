"""The game-server pool in Redis: registration, health, and atomic slot allocation.

Every write is one Lua script (``caroud/lua/pool_*.lua``) over keys that all
share the pool's hash tag; this module checks input before anything is sent,
wraps each script and turns its sentinel replies into results or Caroud errors.
Methods say what happens when a record is missing.

Time is the Redis server's clock unless a method is given ``now`` (seconds), so
every process shares one clock and tests can drive deadlines without sleeping.

No capacity is an error, :class:`~caroud.errors.NoCapacityError`, raised after the
script has counted it in the pool's ``no_capacity`` counter (see :meth:`stats`).

Only a ``ready`` server takes matches (:class:`~caroud.servers.models.ServerState`):
one that registered but never reported ``ready`` is ``starting``, and one that lets
starts expire is ``benched`` after :data:`MAX_STRIKES` of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from caroud.errors import (
    AllocationStateError,
    ConfigError,
    NoCapacityError,
    NotFoundError,
    ValidationError,
)
from caroud.ids import new_id
from caroud.keys import PoolKeys
from caroud.redis.client import Redis, redis_errors
from caroud.redis.scripts import PoolScripts
from caroud.servers.models import (
    SERVER_ATTRS,
    Allocation,
    AllocationRequest,
    LostServer,
    PoolAudit,
    PoolStats,
    ReapReport,
    Server,
    ServerState,
    Strategy,
    audit_snapshot,
    decode_allocation,
    decode_allocations,
    decode_server,
    encode_labels,
    label_pattern,
)
from caroud.servers.validation import (
    MAX_CAPACITY,
    check_address,
    check_avoid,
    check_id,
    check_int,
    check_labels,
    check_load,
    check_pool_config,
    check_region,
    check_regions,
    check_state,
    check_strategy,
    clock_arg,
)
from caroud.settings import Settings

SCAN_LIMIT = 64
"""Candidates one allocation looks at per region, at most: bounds one call (tens of µs)."""
REAP_SERVERS = 20
"""Unhealthy servers removed per reap call (each ends at most its capacity of allocations)."""
REAP_ALLOCATIONS = 500
"""Expired allocations, and old tombstones, handled per reap call."""
READ_CHUNK = 500
"""Records read per round trip when listing."""
MAX_STRIKES = 3
"""Expired starts (allocated, never confirmed in time) that bench a ``ready`` server.

A confirmed start clears the strikes. Benched, a server keeps its running matches and
heartbeats but gets no new match, and a ``server_benched`` event goes on the pool's
stream. A ``ready`` heartbeat does not undo it (a server that heartbeats but does not
know its matches is what this is for). The way back: it confirms a start it still
held, or it registers again (a new record: no strikes, matches after its first
``ready`` heartbeat).
"""

AllocateOutcome = Allocation | NoCapacityError | AllocationStateError
"""One result of :meth:`ServerPool.allocate_many`: the allocation, or why there is none."""


class ServerPool:
    """One pool of game servers in Redis, over the given regions.

    ``regions`` must name every region servers were registered in: the scripts are
    passed one key per region, so a server of a region dropped from the list would
    be left in that region's free set.
    """

    def __init__(
        self,
        client: Redis,
        keys: PoolKeys,
        regions: Sequence[str],
        settings: Settings,
        *,
        scan_limit: int = SCAN_LIMIT,
    ) -> None:
        self.regions = check_pool_config(keys.pool, regions)
        if scan_limit < 1:
            raise ConfigError(f"scan_limit must be at least 1, got {scan_limit}")
        self.client = client
        self.keys = keys
        self.settings = settings
        self.scan_limit = scan_limit
        self.scripts = PoolScripts.register(client)
        self._fixed_keys = keys.fixed()
        self._free_keys = {r: keys.free(r) for r in self.regions}
        self._all_keys = keys.every_key(self.regions)
        self._all_regions = ",".join(self.regions)

    @property
    def health_ttl_s(self) -> float:
        """How long a server stays healthy after a heartbeat."""
        return self.settings.heartbeat_interval_s * self.settings.missed_heartbeats

    def _run(self, script: Any, now: float | None, *args: Any) -> Any:
        """Run a pool script given every key of the pool (the layout of pool_lib.lua)."""
        with redis_errors(self.client):
            return script(keys=self._all_keys, args=[self._all_regions, clock_arg(now), *args])

    def _server_not_found(self, server_id: str) -> NotFoundError:
        return NotFoundError(
            f"game server {server_id!r} is not in pool {self.keys.pool!r}: never registered, "
            "deregistered, drained empty, or reaped for missing heartbeats (register it again)"
        )

    def _match_not_found(self, match_id: str) -> NotFoundError:
        return NotFoundError(
            f"pool {self.keys.pool!r} has no allocation for match {match_id!r}: it was never "
            f"allocated here, or ended more than {self.settings.ended_ttl_s} s ago"
        )

    # -- servers --------------------------------------------------------------------------

    def register(
        self,
        address: str,
        port: int,
        region: str,
        capacity: int,
        labels: Mapping[str, str] | None = None,
        *,
        server_id: str | None = None,
        now: float | None = None,
    ) -> Server:
        """Add a server with ``capacity`` match slots; it must heartbeat within the grace.

        It is ``starting``: it takes no match until its first ``ready`` heartbeat.
        :class:`ValidationError` on bad input or if ``server_id`` is taken (nothing written).
        """
        sid = check_id("server_id", server_id) if server_id is not None else new_id(12)
        host = check_address(address)
        port = check_int("port", port, 1, 65535)
        region = check_region("region", region, self.regions)
        capacity = check_int("capacity", capacity, 1, MAX_CAPACITY)
        labels = check_labels("labels", labels)
        grace_ms = round(self.settings.first_heartbeat_grace_s * 1000)
        args = (sid, host, port, region, capacity, encode_labels(labels), grace_ms)
        reply = self._run(self.scripts.register_server, now, *args)
        if reply[0] == "EXISTS":
            raise ValidationError("server_id", f"a server {sid!r} is registered already")
        if reply[0] == "REGION":  # only if this pool's keys and regions disagree
            raise ValidationError("region", f"region {region!r} has no key in this pool")
        return Server(
            sid,
            host,
            port,
            region,
            capacity,
            labels,
            state=ServerState.STARTING,
            registered_at=int(reply[1]) / 1000,
            healthy_until=int(reply[2]) / 1000,
        )

    def heartbeat(
        self,
        server_id: str,
        state: ServerState | str = ServerState.READY,
        load: float = 0.0,
        *,
        now: float | None = None,
    ) -> Server:
        """Record that the server is alive; :class:`NotFoundError` if it is not in the pool.

        The first ``ready`` of a ``starting`` server makes it ``ready``: from then on it
        takes matches. ``state="draining"`` drains it (see :meth:`drain`); draining is
        one-way, a later ``ready`` does not undo it, nor does it unbench a ``benched``
        server (see :data:`MAX_STRIKES`). ``load`` is recorded for observation only: placement
        ranks by slots. The reply is the server's record; ``draining`` with ``used == 0``
        means it has just left the pool (its next heartbeat is NotFoundError).
        """
        sid = check_id("server_id", server_id)
        wanted = check_state(state)
        reported = repr(check_load(load))
        ttl_ms = round(self.health_ttl_s * 1000)
        reply = self._run(self.scripts.heartbeat, now, sid, wanted.value, reported, ttl_ms)
        if reply[0] == "NOTFOUND":
            raise self._server_not_found(sid)
        server = decode_server(sid, reply[1], reply[2])
        assert server is not None  # the script replies with the record it found
        return server

    def drain(self, server_id: str) -> int:
        """Take no new matches on the server; running ones go on. How many still run.

        The server leaves the pool when its last match is released or expires (at once
        if none runs: 0). :class:`NotFoundError` if it is not in the pool.
        """
        sid = check_id("server_id", server_id)
        reply = self._run(self.scripts.drain, None, sid)
        if reply[0] == "NOTFOUND":
            raise self._server_not_found(sid)
        return int(reply[1])

    def deregister(self, server_id: str, *, now: float | None = None) -> tuple[Allocation, ...]:
        """Remove the server now; the allocations it held (as they were), which end ``lost``.

        :class:`NotFoundError` if it is not in the pool.
        """
        sid = check_id("server_id", server_id)
        reply = self._run(self.scripts.deregister, now, sid)
        if reply[0] == "NOTFOUND":
            raise self._server_not_found(sid)
        return decode_allocations(reply[3])

    def get(self, server_id: str) -> Server:
        """The server's record; :class:`NotFoundError` if it is not in the pool."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(self.keys.servers(), [f"{server_id}:{a}" for a in SERVER_ATTRS])
        pipe.zscore(self.keys.health(), server_id)
        with redis_errors(self.client):
            record, deadline = pipe.execute()
        server = decode_server(server_id, record, deadline)
        if server is None:
            raise self._server_not_found(server_id)
        return server

    def list_servers(self, region: str | None = None) -> list[Server]:
        """Every server in the pool (or in ``region``), by id; read in chunks."""
        if region is not None:
            check_region("region", region, self.regions)
        with redis_errors(self.client):
            entries: list[tuple[str, float]] = self.client.zrange(  # type: ignore[assignment]
                self.keys.health(), 0, -1, withscores=True
            )
        deadlines = dict(entries)
        ids = sorted(deadlines)
        servers: list[Server] = []
        for start in range(0, len(ids), READ_CHUNK):
            chunk = ids[start : start + READ_CHUNK]
            pipe = self.client.pipeline(transaction=False)
            for sid in chunk:
                pipe.hmget(self.keys.servers(), [f"{sid}:{a}" for a in SERVER_ATTRS])
            with redis_errors(self.client):
                records = pipe.execute()
            for sid, record in zip(chunk, records, strict=True):
                server = decode_server(sid, record, deadlines[sid])
                if server is not None and region in (None, server.region):
                    servers.append(server)
        return servers

    # -- allocations ----------------------------------------------------------------------

    def allocate(
        self,
        match_id: str,
        regions: str | Sequence[str],
        *,
        selector: Mapping[str, str] | None = None,
        strategy: Strategy | str = Strategy.PACKED,
        avoid: Sequence[str] = (),
        now: float | None = None,
    ) -> Allocation:
        """Take a slot for the match on a server of the first of ``regions`` that has one.

        A candidate is ready, healthy, has a free slot, every label of ``selector``, and
        is none of the servers in ``avoid`` (e.g. where the match's start expired before).
        Idempotent: while the match holds a slot, a retry returns that same allocation
        (whatever regions or selector it names); after the slot expired or was lost, the
        match gets a new one. The slot is ``allocated`` until :meth:`confirm_started`, at
        the latest by ``settings.start_deadline_s``, else :meth:`reap` frees it.

        Raises :class:`NoCapacityError` (counted in ``stats().no_capacity``) if no
        candidate is found among the first ``scan_limit`` of each region,
        :class:`AllocationStateError` if the match was already released, and
        :class:`ValidationError` on bad input (nothing written).
        """
        request = self._check_request(match_id, regions, selector or {}, strategy, avoid)
        keys, args = self._allocate_call(request, clock_arg(now))
        with redis_errors(self.client):
            reply = self.scripts.allocate(keys=keys, args=args)
        outcome = self._allocate_outcome(request, reply)
        if isinstance(outcome, Allocation):
            return outcome
        raise outcome

    def allocate_many(
        self, requests: Sequence[AllocationRequest], *, now: float | None = None
    ) -> list[AllocateOutcome]:
        """:meth:`allocate` for each request in one round trip, each its own atomic step.

        One outcome per request, in order: the allocation, or the NoCapacityError /
        AllocationStateError :meth:`allocate` would raise. Checks every request first:
        :class:`ValidationError` if one is bad (nothing sent).
        """
        checked = [
            self._check_request(r.match_id, r.regions, r.selector, r.strategy, r.avoid)
            for r in requests
        ]
        clock = clock_arg(now)
        pipe = self.client.pipeline(transaction=False)
        for request in checked:
            keys, args = self._allocate_call(request, clock)
            self.scripts.allocate(keys=keys, args=args, client=pipe)
        with redis_errors(self.client):
            replies = pipe.execute() if checked else []
        return [self._allocate_outcome(r, x) for r, x in zip(checked, replies, strict=True)]

    def _check_request(
        self, match_id: Any, regions: Any, selector: Any, strategy: Any, avoid: Any
    ) -> AllocationRequest:
        return AllocationRequest(
            check_id("match_id", match_id),
            check_regions(regions, self.regions),
            check_labels("selector", selector),
            check_strategy(strategy),
            check_avoid(avoid),
        )

    def _allocate_call(self, request: AllocationRequest, clock: str) -> tuple[list[str], list[Any]]:
        keys = self._fixed_keys + [self._free_keys[r] for r in request.regions]
        args: list[Any] = [
            ",".join(request.regions),
            clock,
            request.match_id,
            request.strategy.value,
            self.scan_limit,
            round(self.settings.start_deadline_s * 1000),
            "".join(f",{sid}" for sid in request.avoid) + "," if request.avoid else "",
            *(label_pattern(k, v) for k, v in sorted(request.selector.items())),
        ]
        return keys, args

    def _allocate_outcome(self, request: AllocationRequest, reply: Any) -> AllocateOutcome:
        if reply[0] == "NOCAP":
            return NoCapacityError(request.match_id, request.regions, dict(request.selector))
        allocation = decode_allocation(request.match_id, reply[1])
        if reply[0] == "RELEASED":
            return AllocationStateError(request.match_id, allocation.state, "allocate a slot for")
        return allocation

    def confirm_started(self, match_id: str, *, now: float | None = None) -> Allocation:
        """The server started the match: its slot can no longer expire.

        Idempotent. A confirmation past the deadline still counts if :meth:`reap` has not
        freed the slot yet. It clears the server's strikes (and unbenches it: see
        :data:`MAX_STRIKES`). :class:`AllocationStateError` if the allocation has ended
        (expired, lost, released): the server must not run the match.
        :class:`NotFoundError` if the pool never knew the match (or forgot it).
        """
        mid = check_id("match_id", match_id)
        reply = self._run(self.scripts.confirm_started, now, mid)
        if reply[0] == "NOTFOUND":
            raise self._match_not_found(mid)
        allocation = decode_allocation(mid, reply[1])
        if reply[0] == "STATE":
            raise AllocationStateError(mid, allocation.state, "confirm the start of")
        return allocation

    def release(self, match_id: str, *, now: float | None = None) -> Allocation:
        """The match ended: free its slot. The allocation, now ended.

        Idempotent: releasing a match whose allocation already ended (released, expired,
        lost) changes nothing and returns it. A draining server whose last match this
        was leaves the pool. :class:`NotFoundError` if the pool never knew the match.
        """
        mid = check_id("match_id", match_id)
        outcome = self._release_outcome(mid, self._run(self.scripts.release, now, mid))
        if isinstance(outcome, NotFoundError):
            raise outcome
        return outcome

    def release_many(
        self, match_ids: Sequence[str], *, now: float | None = None
    ) -> list[Allocation | NotFoundError]:
        """:meth:`release` for each match in one round trip; one outcome per match, in order."""
        mids = [check_id("match_id", m) for m in match_ids]
        clock = clock_arg(now)
        pipe = self.client.pipeline(transaction=False)
        for mid in mids:
            args = [self._all_regions, clock, mid]
            self.scripts.release(keys=self._all_keys, args=args, client=pipe)
        with redis_errors(self.client):
            replies = pipe.execute() if mids else []
        return [self._release_outcome(m, r) for m, r in zip(mids, replies, strict=True)]

    def _release_outcome(self, match_id: str, reply: Any) -> Allocation | NotFoundError:
        if reply[0] == "NOTFOUND":
            return self._match_not_found(match_id)
        return decode_allocation(match_id, reply[1])

    def get_allocation(self, match_id: str) -> Allocation:
        """The match's allocation (ended ones are kept ``settings.ended_ttl_s``).

        :class:`NotFoundError` if the pool never knew the match, or forgot it since.
        """
        with redis_errors(self.client):
            value = self.client.hget(self.keys.allocations(), match_id)
        if value is None:
            raise self._match_not_found(match_id)
        return decode_allocation(match_id, str(value))

    def allocations_of(self, server_id: str) -> list[Allocation]:
        """The running allocations of a server (none if it is unknown)."""
        with redis_errors(self.client):
            members = self.client.zrangebylex(
                self.keys.by_server(), f"[{server_id}/", f"({server_id}0"
            )
            matches = [str(m).partition("/")[2] for m in members]
            values = self.client.hmget(self.keys.allocations(), matches) if matches else []
        return [decode_allocation(m, str(v)) for m, v in zip(matches, values, strict=True) if v]

    # -- health ---------------------------------------------------------------------------

    def reap(self, now: float | None = None, *, excuse: bool = False) -> ReapReport:
        """Remove unhealthy servers and free unconfirmed slots; what was removed.

        A server is unhealthy once ``heartbeat_interval_s * missed_heartbeats`` passed
        since its last heartbeat (``first_heartbeat_grace_s`` since registration before
        the first). Its allocations end ``lost``; allocations unconfirmed past their
        start deadline end ``expired`` and give their server a strike (it is benched
        at :data:`MAX_STRIKES`: see there). Run it about every heartbeat interval; each script
        call is bounded, and this method calls again until nothing is left.

        ``excuse``: the caller could not reach Redis for a while (a pause, a restart, a
        failover), and neither could the servers: every server first gets a whole health
        budget from now, and every pending start a whole start deadline, so that the
        outage does not remove or strike them all the moment it ends.
        """
        lost: list[LostServer] = []
        expired: list[Allocation] = []
        benched: list[str] = []
        retention_ms = self.settings.ended_ttl_s * 1000
        maxlen = self.settings.events_maxlen
        settings = self.settings
        budget_ms = round(settings.heartbeat_interval_s * settings.missed_heartbeats * 1000)
        start_ms = round(self.settings.start_deadline_s * 1000)
        excused = "1" if excuse else "0"
        while True:
            limits = (REAP_SERVERS, REAP_ALLOCATIONS, retention_ms, MAX_STRIKES, maxlen)
            excusing = (excused, budget_ms, start_ms)
            excused = "0"  # once, before the first call
            reply = self._run(self.scripts.reap, now, *limits, *excusing)
            more, servers, matches, newly_benched = reply
            for sid, record, deadline, held in servers:
                server = decode_server(sid, record, deadline)
                if server is not None:
                    lost.append(LostServer(server, decode_allocations(held)))
            expired.extend(decode_allocations(matches))
            benched.extend(str(sid) for sid in newly_benched)
            if not more:
                return ReapReport(tuple(lost), tuple(expired), tuple(benched))

    def server_time(self) -> float:
        """The Redis server's clock, in seconds: the one the scripts use."""
        with redis_errors(self.client):
            seconds, micros = self.client.time()
        return seconds + micros / 1e6

    # -- observation ----------------------------------------------------------------------

    def stats(self) -> PoolStats:
        """Gauges and counters of the pool (``no_capacity`` feeds the capacity alarm)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(self.keys.stats())
        pipe.zcard(self.keys.health())
        pipe.zcard(self.keys.by_server())
        pipe.zcard(self.keys.pending())
        for region in self.regions:
            pipe.zcard(self.keys.free(region))
        with redis_errors(self.client):
            counters, servers, used, pending, *free = pipe.execute()

        def count(name: str) -> int:
            return int(counters.get(name, 0))

        return PoolStats(
            servers=int(servers),
            draining=count("draining"),
            capacity=count("capacity"),
            used=int(used),
            pending=int(pending),
            servers_with_free_slots=sum(int(n) for n in free),
            no_capacity=count("no_capacity"),
            allocations=count("allocations"),
            expired=count("expired"),
            unhealthy=count("unhealthy"),
            benched=count("benched"),
        )

    def audit(self) -> PoolAudit:
        """Check on one consistent snapshot that slots add up. Reads the whole pool: ops only."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(self.keys.servers())
        pipe.zrange(self.keys.by_server(), 0, -1)
        pipe.hget(self.keys.stats(), "capacity")
        with redis_errors(self.client):
            fields, running, capacity_gauge = pipe.execute()
        return audit_snapshot(fields, running, int(capacity_gauge or 0))
