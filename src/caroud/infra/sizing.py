"""Which node type a number of concurrent players needs, from measured bytes. Pure, no I/O.

The memory model (printed by ``caroud infra size``)::

    total = baseline                                     an empty server with the scripts loaded
          + queues x events_maxlen x event               event streams, full (they fill up in a
                                                         day of play and are then trimmed)
          + players x (ticket + (match + allocation) / players_per_match)
                                                         each concurrent player: one ticket at
                                                         worst, plus its share of one match and
                                                         its game-server slot
          + players x (retained_matches - 1) x (ticket + match / players_per_match)
                                                         finished matches and their tickets kept
                                                         for CAROUD_MATCH_TTL (2 h): raise
                                                         retained_matches for short matches
          + servers x server                             registered game servers

A node's usable memory is what ElastiCache leaves after ``reserved-memory-percent``
(25 %, set in the templates) and the recommendation is the cheapest node type whose
usable memory keeps the total under the 85 % memory alarm. Client buffers are not
counted: they are small next to the reserve for a backend's few hundred connections.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from caroud.errors import ValidationError

GIB = 1024**3
HOURS_PER_MONTH = 730
"""AWS's month for on-demand prices (the guide's $0.017/h = $12.41/month)."""
RESERVED_MEMORY_PERCENT = 25.0
"""ElastiCache's default reserved-memory-percent, written into both templates."""
MEMORY_ALARM_PERCENT = 85.0
"""The templates' DatabaseMemoryUsagePercentage alarm (the guide's "Memory > 85%")."""


@dataclass(frozen=True, slots=True)
class MeasuredBytes:
    """Bytes of Redis memory per record, as INFO ``used_memory`` deltas (see ``measure``)."""

    server: str
    count: int
    baseline_bytes: int
    ticket_bytes: float
    event_bytes: float
    match_bytes: float
    server_bytes: float
    allocation_bytes: float

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# Produced by `caroud infra measure` (a fresh embedded Valkey) and by
# `caroud infra measure --redis-url unix:///tmp/redis7/redis.sock` against a fresh Debian
# redis-server 7 (the engine family ElastiCache runs), started with `redis-server --port 0
# --unixsocket /tmp/redis7/redis.sock --save '' --appendonly no --dir /tmp/redis7 --daemonize
# yes`. Re-run both after changing what a ticket, a match or a server stores, and paste the
# printed figures here (tests/infra/test_measure.py fails when they drift 2x).
MEASURED_VALKEY = MeasuredBytes(
    server="valkey 9.1.2",
    count=2000,
    baseline_bytes=1_542_408,
    ticket_bytes=406.2,
    event_bytes=70.4,
    match_bytes=192.4,
    server_bytes=719.7,
    allocation_bytes=282.5,
)
MEASURED_REDIS = MeasuredBytes(
    server="redis 7.0.15",
    count=2000,
    baseline_bytes=1_417_256,
    ticket_bytes=514.7,
    event_bytes=72.2,
    match_bytes=231.0,
    server_bytes=1135.5,
    allocation_bytes=358.7,
)


def larger(a: MeasuredBytes, b: MeasuredBytes) -> MeasuredBytes:
    """Each figure from whichever engine needs more: production's engine may be either."""
    return MeasuredBytes(
        server=f"max of {a.server} and {b.server}",
        count=min(a.count, b.count),
        baseline_bytes=max(a.baseline_bytes, b.baseline_bytes),
        ticket_bytes=max(a.ticket_bytes, b.ticket_bytes),
        event_bytes=max(a.event_bytes, b.event_bytes),
        match_bytes=max(a.match_bytes, b.match_bytes),
        server_bytes=max(a.server_bytes, b.server_bytes),
        allocation_bytes=max(a.allocation_bytes, b.allocation_bytes),
    )


MEASURED = larger(MEASURED_VALKEY, MEASURED_REDIS)
"""What :func:`size` uses by default."""


@dataclass(frozen=True, slots=True)
class NodeType:
    """An ElastiCache node type: memory, on-demand price, and where the price comes from."""

    name: str
    memory_gib: float
    usd_per_hour: float
    price_source: str

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * GIB)


GUIDE = "guide, ap-southeast-1"
# Not in the guide: us-east-1 on-demand list prices, which ap-southeast-1 exceeds; pass
# `--price cache.r6g.large=USD` with the current price from the ElastiCache pricing page.
ASSUMED = "ASSUMED (us-east-1 list price)"
NODE_TYPES: tuple[NodeType, ...] = (
    NodeType("cache.t3.micro", 0.5, 0.017, GUIDE),
    NodeType("cache.t3.small", 1.37, 0.034, GUIDE),
    NodeType("cache.t3.medium", 3.09, 0.068, GUIDE),
    NodeType("cache.m6g.large", 6.38, 0.149, ASSUMED),
    NodeType("cache.r6g.large", 13.07, 0.206, ASSUMED),
    NodeType("cache.r6g.xlarge", 26.32, 0.411, ASSUMED),
)
"""The node types the templates accept (a test keeps the two lists equal)."""


@dataclass(frozen=True, slots=True)
class Workload:
    """What is being sized for; defaults are the model's stated assumptions."""

    players: int
    players_per_match: int = 2
    players_per_server: int = 10
    retained_matches: int = 1
    queues: int = 4
    events_maxlen: int = 200_000
    replicas: int = 1

    def check(self) -> Workload:
        for f in fields(self):
            value = getattr(self, f.name)
            low = 0 if f.name in ("players", "replicas") else 1
            if not isinstance(value, int) or value < low:
                raise ValidationError(f.name, f"must be a whole number of at least {low}")
        return self

    @property
    def servers(self) -> int:
        return math.ceil(self.players / self.players_per_server)


@dataclass(frozen=True, slots=True)
class Estimate:
    """The model's terms, in bytes."""

    baseline: float
    streams: float
    per_player: float
    players: float
    servers: float

    @property
    def total(self) -> float:
        return self.baseline + self.streams + self.players + self.servers


@dataclass(frozen=True, slots=True)
class NodeFit:
    """One node type against an estimate."""

    node: NodeType
    usable_bytes: float
    headroom_bytes: float
    fits: bool
    nodes: int
    monthly_usd: float

    @property
    def used_percent(self) -> float:
        return 100.0 * (self.usable_bytes - self.headroom_bytes) / self.usable_bytes


@dataclass(frozen=True, slots=True)
class Sizing:
    """The estimate, every node type's fit, and the recommendation (None if none fits)."""

    workload: Workload
    measured: MeasuredBytes
    estimate: Estimate
    fits: tuple[NodeFit, ...]
    choice: NodeFit | None
    reserved_percent: float = RESERVED_MEMORY_PERCENT
    alarm_percent: float = MEMORY_ALARM_PERCENT


def estimate(workload: Workload, measured: MeasuredBytes = MEASURED) -> Estimate:
    """The memory model of the module docstring, term by term."""
    w = workload.check()
    share = 1 / w.players_per_match
    live = measured.ticket_bytes + (measured.match_bytes + measured.allocation_bytes) * share
    history = (w.retained_matches - 1) * (measured.ticket_bytes + measured.match_bytes * share)
    return Estimate(
        baseline=float(measured.baseline_bytes),
        streams=float(w.queues * w.events_maxlen * measured.event_bytes),
        per_player=live + history,
        players=w.players * (live + history),
        servers=w.servers * measured.server_bytes,
    )


def usable_bytes(node: NodeType, reserved_percent: float = RESERVED_MEMORY_PERCENT) -> float:
    """Memory left for data after ElastiCache's reserve."""
    return node.memory_bytes * (1 - reserved_percent / 100)


def size(
    workload: Workload,
    *,
    measured: MeasuredBytes = MEASURED,
    nodes: Sequence[NodeType] = NODE_TYPES,
    reserved_percent: float = RESERVED_MEMORY_PERCENT,
    alarm_percent: float = MEMORY_ALARM_PERCENT,
) -> Sizing:
    """Every node type's headroom and cost for ``workload``, and the cheapest that fits."""
    if not 0 <= reserved_percent < 100 or not 0 < alarm_percent <= 100:
        raise ValidationError("reserved_percent", "percentages must be within 0-100")
    est = estimate(workload, measured)
    fits: list[NodeFit] = []
    for node in nodes:
        usable = usable_bytes(node, reserved_percent)
        count = 1 + workload.replicas
        fits.append(
            NodeFit(
                node=node,
                usable_bytes=usable,
                headroom_bytes=usable - est.total,
                fits=est.total <= usable * alarm_percent / 100,
                nodes=count,
                monthly_usd=round(node.usd_per_hour * HOURS_PER_MONTH * count, 2),
            )
        )
    fitting = [f for f in fits if f.fits]
    choice = min(fitting, key=lambda f: (f.monthly_usd, -f.usable_bytes), default=None)
    return Sizing(workload, measured, est, tuple(fits), choice, reserved_percent, alarm_percent)


def with_prices(nodes: Sequence[NodeType], prices: Mapping[str, float]) -> tuple[NodeType, ...]:
    """``nodes`` with the given hourly prices (``{"cache.t3.small": 0.034}``) put in."""
    known = {n.name for n in nodes}
    for name, price in prices.items():
        if name not in known:
            raise ValidationError("price", f"{name!r} is not one of {', '.join(sorted(known))}")
        if price < 0:
            raise ValidationError("price", f"{name}: a price cannot be negative")
    return tuple(
        replace(n, usd_per_hour=prices[n.name], price_source="given") if n.name in prices else n
        for n in nodes
    )


def describe(sizing: Sizing) -> list[str]:
    """The model and its inputs, as lines for a person (the CLI prints them)."""
    w, m, e = sizing.workload, sizing.measured, sizing.estimate
    mib = 1024**2
    lines = [
        f"model: {w.players} concurrent players, each one queued ticket at worst plus its share "
        f"of one match of {w.players_per_match} and of its game-server slot; "
        f"{w.retained_matches} match(es) per player kept (CAROUD_MATCH_TTL); "
        f"{w.servers} game servers ({w.players_per_server} players each); "
        f"{w.queues} queues with full event streams of {w.events_maxlen} entries",
        f"measured bytes ({m.server}): ticket {m.ticket_bytes:g}, stream entry "
        f"{m.event_bytes:g}, match {m.match_bytes:g}, allocation {m.allocation_bytes:g}, "
        f"server {m.server_bytes:g}, empty server {m.baseline_bytes}",
        f"estimate: {e.total / mib:.1f} MiB = baseline {e.baseline / mib:.1f} + streams "
        f"{e.streams / mib:.1f} + players {e.players / mib:.1f} ({e.per_player:.0f} B each) "
        f"+ servers {e.servers / mib:.1f}",
        f"usable memory = node memory - {sizing.reserved_percent:g}% reserved "
        f"(reserved-memory-percent); a node fits below the {sizing.alarm_percent:g}% alarm; "
        f"cost = {1 + w.replicas} node(s) x {HOURS_PER_MONTH} h",
        "memory only: the engine's one thread (EngineCPUUtilization) and a t3's CPU credits "
        "usually run out first - measure throughput with `caroud bench matchmaking`",
    ]
    return lines


def table(sizing: Sizing) -> list[str]:
    """One line per node type: memory, usable, used, headroom, fits, monthly cost, price source."""
    mib = 1024**2
    head = ("node type", "memory", "usable", "used", "headroom", "fits", "$/month", "price")
    rows = [head] + [
        (
            f.node.name,
            f"{f.node.memory_gib:g} GiB",
            f"{f.usable_bytes / mib:,.0f} MiB",
            f"{f.used_percent:.1f}%",
            f"{f.headroom_bytes / mib:,.0f} MiB",
            "yes" if f.fits else "no",
            f"{f.monthly_usd:,.2f}",
            f.node.price_source,
        )
        for f in sizing.fits
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    return [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows
    ]


def as_json(sizing: Sizing) -> dict[str, Any]:
    """The whole sizing as plain data."""
    return {
        "workload": {f.name: getattr(sizing.workload, f.name) for f in fields(sizing.workload)},
        "measured": sizing.measured.as_dict(),
        "estimate_bytes": {
            "baseline": sizing.estimate.baseline,
            "streams": sizing.estimate.streams,
            "players": sizing.estimate.players,
            "per_player": sizing.estimate.per_player,
            "servers": sizing.estimate.servers,
            "total": sizing.estimate.total,
        },
        "nodes": [
            {
                "node_type": f.node.name,
                "memory_gib": f.node.memory_gib,
                "usable_bytes": f.usable_bytes,
                "headroom_bytes": f.headroom_bytes,
                "used_percent": round(f.used_percent, 2),
                "fits": f.fits,
                "nodes": f.nodes,
                "monthly_usd": f.monthly_usd,
                "price_source": f.node.price_source,
            }
            for f in sizing.fits
        ],
        "recommended": sizing.choice.node.name if sizing.choice else None,
        "model": describe(sizing),
    }


def as_source(measured: MeasuredBytes) -> str:
    """``measured`` as the Python literal to paste above (MEASURED_VALKEY or MEASURED_REDIS)."""
    lines = ["MeasuredBytes("]
    for f in fields(measured):
        value = getattr(measured, f.name)
        shown = f"{value:_}" if isinstance(value, int) and value >= 10_000 else repr(value)
        lines.append(f"    {f.name}={shown},")
    lines.append(")")
    return "\n".join(lines)
