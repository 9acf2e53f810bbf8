"""Plain data of the game-server pool: servers, allocations, what reaping found, stats.

Also the text forms these records take in Redis (laid out in :mod:`caroud.keys`),
read here so that the pool, the benchmark and the tests share one decoding. No I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class ServerState(StrEnum):
    """Whether a server takes new matches: only a ``ready`` one does.

    ``starting`` from registration until its first ``ready`` heartbeat (a server that
    never reports ready gets no match); ``benched`` once it let ``MAX_STRIKES`` starts
    expire with no confirmed start between (see :data:`caroud.servers.pool.MAX_STRIKES`
    for the way back); ``draining`` is one-way, until it leaves. A heartbeat may report
    only ``ready`` or ``draining`` (:data:`REPORTED_STATES`).
    """

    STARTING = "starting"
    READY = "ready"
    BENCHED = "benched"
    DRAINING = "draining"


REPORTED_STATES = (ServerState.READY, ServerState.DRAINING)
"""The states a server may report in a heartbeat; the others are the pool's verdicts."""


class AllocationState(StrEnum):
    """A slot's life: ``allocated → started → released``; or ``expired`` / ``lost`` early.

    ``expired``: the server never confirmed the start before the deadline. ``lost``: the
    server was deregistered or reaped as unhealthy while the match held the slot.
    """

    ALLOCATED = "allocated"
    STARTED = "started"
    RELEASED = "released"
    EXPIRED = "expired"
    LOST = "lost"


RUNNING_STATES = frozenset({AllocationState.ALLOCATED, AllocationState.STARTED})


class Strategy(StrEnum):
    """How a server is chosen among the candidates of a region (see :mod:`.strategies`)."""

    PACKED = "packed"
    DISTRIBUTED = "distributed"


@dataclass(frozen=True, slots=True)
class Server:
    """A registered game server process, as the pool last recorded it."""

    id: str
    address: str
    port: int
    region: str
    capacity: int
    labels: Mapping[str, str] = field(default_factory=dict)
    state: ServerState = ServerState.READY
    used: int = 0
    load: float = 0.0
    registered_at: float = 0.0
    last_heartbeat: float | None = None
    healthy_until: float = 0.0
    strikes: int = 0
    """Starts it let expire since its last confirmed start (benched at ``MAX_STRIKES``)."""

    @property
    def free(self) -> int:
        """Slots a new match could take (none while draining)."""
        return self.capacity - self.used if self.state is ServerState.READY else 0

    def is_healthy(self, now: float) -> bool:
        """Whether its last heartbeat (or its registration grace) still covers ``now``."""
        return now <= self.healthy_until


@dataclass(frozen=True, slots=True)
class Allocation:
    """A match's slot on a server; times in seconds on the Redis server's clock."""

    match_id: str
    server_id: str
    region: str
    address: str
    port: int
    state: AllocationState
    allocated_at: float
    start_deadline: float
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def running(self) -> bool:
        """Whether it still holds its slot (allocated or started)."""
        return self.state in RUNNING_STATES


@dataclass(frozen=True, slots=True)
class AllocationRequest:
    """One match to place: its regions in fallback order, labels, strategy, servers to avoid."""

    match_id: str
    regions: tuple[str, ...]
    selector: Mapping[str, str] = field(default_factory=dict)
    strategy: Strategy = Strategy.PACKED
    avoid: tuple[str, ...] = ()
    """Servers not to place it on (e.g. where its start already expired)."""


@dataclass(frozen=True, slots=True)
class LostServer:
    """A server reaped as unhealthy, with the allocations it held (as they were then)."""

    server: Server
    allocations: tuple[Allocation, ...]


@dataclass(frozen=True, slots=True)
class ReapReport:
    """What :meth:`ServerPool.reap` removed: unhealthy servers and unconfirmed allocations.

    Allocations are reported as they were before reaping (``allocated`` or ``started``);
    in Redis they are now ``lost`` or ``expired``.
    """

    lost_servers: tuple[LostServer, ...] = ()
    expired: tuple[Allocation, ...] = ()
    benched: tuple[str, ...] = ()
    """Servers these expiries benched (each also announced on the pool's event stream)."""

    @property
    def to_allocate_again(self) -> tuple[Allocation, ...]:
        """Matches that never started: allocate them again (or requeue their tickets)."""
        lost = (a for s in self.lost_servers for a in s.allocations)
        return self.expired + tuple(a for a in lost if a.state is AllocationState.ALLOCATED)

    @property
    def interrupted(self) -> tuple[Allocation, ...]:
        """Matches that had started on a server that is now gone."""
        lost = (a for s in self.lost_servers for a in s.allocations)
        return tuple(a for a in lost if a.state is AllocationState.STARTED)

    def __bool__(self) -> bool:
        return bool(self.lost_servers or self.expired or self.benched)


@dataclass(frozen=True, slots=True)
class PoolStats:
    """Gauges and counters of one pool (counters only grow; they feed alarms)."""

    servers: int
    draining: int
    capacity: int
    used: int
    pending: int
    servers_with_free_slots: int
    no_capacity: int
    allocations: int
    expired: int
    unhealthy: int
    benched: int = 0
    """Times a server was benched for letting starts expire (a counter)."""


@dataclass(frozen=True, slots=True)
class PoolAudit:
    """A consistent snapshot check: no server over capacity, every used slot held by a match."""

    servers: int
    used_slots: int
    running_allocations: int
    over_capacity: tuple[str, ...]
    unaccounted: tuple[str, ...]
    capacity_gauge_ok: bool

    @property
    def ok(self) -> bool:
        return (
            not self.over_capacity
            and not self.unaccounted
            and self.used_slots == self.running_allocations
            and self.capacity_gauge_ok
        )


# -- the text forms in Redis ----------------------------------------------------------------

SERVER_ATTRS = ("host", "port", "reg", "cap", "used", "st", "lab", "load", "at", "hb", "sk")
"""A server's attributes: fields ``<server>:<attr>`` of the pool's server hash, in this order."""


def encode_labels(labels: Mapping[str, str]) -> str:
    """``,key=value,key=value,`` (sorted), so a required label is a plain substring search."""
    return "".join(f",{k}={labels[k]}" for k in sorted(labels)) + "," if labels else ""


def label_pattern(key: str, value: str) -> str:
    """What a server's encoded labels must contain to have ``key`` set to ``value``."""
    return f",{key}={value},"


def decode_labels(text: str) -> dict[str, str]:
    pairs = (item.partition("=") for item in text.split(",") if item)
    return {k: v for k, _, v in pairs}


def _seconds(ms: str | float | None) -> float | None:
    return float(ms) / 1000.0 if ms is not None and ms != "" else None


def decode_server(
    server_id: str, record: Sequence[str | None], health_deadline: str | float | None
) -> Server | None:
    """The server from its attributes in :data:`SERVER_ATTRS` order; None if it is not there."""
    values = dict(zip(SERVER_ATTRS, record, strict=True))
    if values["cap"] is None:
        return None
    return Server(
        id=server_id,
        address=values["host"] or "",
        port=int(values["port"] or 0),
        region=values["reg"] or "",
        capacity=int(values["cap"]),
        labels=decode_labels(values["lab"] or ""),
        state=ServerState(values["st"] or ServerState.READY),
        used=int(values["used"] or 0),
        load=float(values["load"] or 0),
        registered_at=_seconds(values["at"]) or 0.0,
        last_heartbeat=_seconds(values["hb"]),
        healthy_until=_seconds(health_deadline) or 0.0,
        strikes=int(values["sk"] or 0),
    )


def decode_allocation(match_id: str, value: str) -> Allocation:
    """An allocation from ``state|server|region|host|port|at|deadline|started|ended``."""
    state, server, region, host, port, at, deadline, started, ended = value.split("|")
    return Allocation(
        match_id=match_id,
        server_id=server,
        region=region,
        address=host,
        port=int(port),
        state=AllocationState(state),
        allocated_at=_seconds(at) or 0.0,
        start_deadline=_seconds(deadline) or 0.0,
        started_at=_seconds(started),
        ended_at=_seconds(ended),
    )


def decode_allocations(flat: Sequence[str]) -> tuple[Allocation, ...]:
    """Allocations from a flat ``[match, value, match, value, ...]`` script reply."""
    return tuple(decode_allocation(flat[i], flat[i + 1]) for i in range(0, len(flat), 2))


def audit_snapshot(
    server_fields: Mapping[str, str], running: Sequence[str], capacity_gauge: int
) -> PoolAudit:
    """Check a snapshot: the server hash, the running "<server>/<match>" index, the gauge."""
    caps: dict[str, int] = {}
    used: dict[str, int] = {}
    for name, value in server_fields.items():
        sid, _, attr = name.rpartition(":")
        if attr == "cap":
            caps[sid] = int(value)
        elif attr == "used":
            used[sid] = int(value)
    held: dict[str, int] = {}
    for member in running:
        sid = member.partition("/")[0]
        held[sid] = held.get(sid, 0) + 1
    return PoolAudit(
        servers=len(caps),
        used_slots=sum(used.values()),
        running_allocations=len(running),
        over_capacity=tuple(sorted(s for s, c in caps.items() if used.get(s, 0) > c)),
        unaccounted=tuple(
            sorted(s for s in caps.keys() | held.keys() if used.get(s, 0) != held.get(s, 0))
        ),
        capacity_gauge_ok=capacity_gauge == sum(caps.values()),
    )
