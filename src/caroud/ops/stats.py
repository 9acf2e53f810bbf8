"""``caroud stats``: the guide's CloudWatch metrics from ``INFO``, plus matchmaking figures.

Collection only: the derivations are :mod:`caroud.ops.derive`, the alarms
:mod:`caroud.ops.alarms`, the rendering :mod:`caroud.ops.render`.

Rates need two ``INFO`` samples. A one-shot run takes two, ``interval_s`` apart
(1 s by default); ``--watch`` keeps the previous refresh's sample, so its rates
cover the refresh period.

**Matches per minute** are counted, not kept in a counter: each queue's event
stream has one ``matched`` entry per matched ticket, carrying the match id, and
entry ids are the server's clock in ms, so ``XREVRANGE <stream> + <now - 60 s>``
reads exactly the last minute; distinct match ids are the matches. The read is
bounded (:data:`MAX_EVENTS_READ` entries per queue, in pages of
:data:`EVENTS_PAGE`); on a queue busier than that, the rate is extrapolated from
the span that was read (or, for a span under a second, is the count read: a lower
bound), and marked ``estimated``. A stream trimmed shorter than a
minute of events (``CAROUD_EVENTS_MAXLEN``) undercounts, also marked.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from caroud.context import Context
from caroud.keys import PoolKeys
from caroud.ops.alarms import Alarm, Thresholds, Trigger, evaluate, scaling_triggers
from caroud.ops.derive import Info, redis_metrics
from caroud.redis.client import Redis, redis_errors
from caroud.servers import PoolStats, ServerPool

MATCH_WINDOW_S = 60.0
EVENTS_PAGE = 1000
MAX_EVENTS_READ = 20_000


# -- pure helpers ----------------------------------------------------------------------------


def matched_ids(entries: Iterable[tuple[str, Mapping[str, str]]]) -> set[str]:
    """Distinct match ids among stream entries (``e == "matched"``, match id in ``m``)."""
    return {f["m"] for _, f in entries if f.get("e") == "matched" and f.get("m")}


def entry_ms(entry_id: str) -> int:
    """The millisecond time of a stream entry id ``<ms>-<seq>``."""
    return int(entry_id.partition("-")[0])


def per_minute(count: int, covered_s: float) -> float:
    """``count`` events over ``covered_s`` seconds, as a per-minute rate."""
    if covered_s <= 0:
        return 0.0
    return count * 60.0 / covered_s


def servers_by_state(
    servers: Iterable[tuple[str, str, bool]],
) -> dict[str, dict[str, int]]:
    """``{region: {state: count}}`` from ``(region, state, healthy)``; unhealthy overrides."""
    out: dict[str, dict[str, int]] = {}
    for region, state, healthy in servers:
        name = state if healthy else "unhealthy"
        by_state = out.setdefault(region, {})
        by_state[name] = by_state.get(name, 0) + 1
    return out


# -- figures ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueFigures:
    """One queue: tickets waiting, the oldest one's wait, matches formed per minute."""

    name: str
    depth: int
    oldest_wait_s: float | None
    matches_per_min: float
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class PoolFigures:
    """One game-server pool: its stats (``no_capacity`` = allocation failures), servers."""

    name: str
    stats: PoolStats
    servers: dict[str, dict[str, int]]


@dataclass
class StatsSnapshot:
    """One refresh of ``caroud stats``."""

    server_time: float
    redis: dict[str, Any]
    queues: list[QueueFigures]
    pools: list[PoolFigures]
    alarms: list[Alarm]
    triggers: list[Trigger] = field(default_factory=list)

    @property
    def firing(self) -> list[Alarm]:
        return [a for a in self.alarms if a.firing]

    def to_json(self) -> dict[str, Any]:
        return {
            "server_time": round(self.server_time, 3),
            "redis": {k: _round(v) for k, v in self.redis.items()},
            "queues": [
                {
                    "name": q.name,
                    "depth": q.depth,
                    "oldest_wait_s": _round(q.oldest_wait_s),
                    "matches_per_min": _round(q.matches_per_min),
                    "estimated": q.estimated,
                }
                for q in self.queues
            ],
            "pools": [
                {"name": p.name, **_pool_stats(p.stats), "servers_by_state": p.servers}
                for p in self.pools
            ],
            "alarms": [
                {
                    "name": a.name,
                    "value": _round(a.value),
                    "threshold": a.threshold,
                    "firing": a.firing,
                    "message": a.message,
                }
                for a in self.alarms
            ],
            "scaling": [
                {"kind": t.kind, "name": t.name, "reason": t.reason} for t in self.triggers
            ],
        }


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def _pool_stats(stats: PoolStats) -> dict[str, int]:
    return {name: int(getattr(stats, name)) for name in PoolStats.__dataclass_fields__}


# -- collection ------------------------------------------------------------------------------


def read_info(client: Redis) -> Info:
    """``INFO all`` (every section, commandstats included)."""
    with redis_errors(client):
        info: dict[str, Any] = client.info("all")
    return info


def queue_matches_per_min(client: Redis, stream: str, now_s: float) -> tuple[float, bool]:
    """Matches formed in the last minute of one queue's event stream; True if estimated."""
    now_ms = int(now_s * 1000)
    floor = now_ms - int(MATCH_WINDOW_S * 1000)
    upper = "+"
    ids: set[str] = set()
    read = 0
    oldest = now_ms
    with redis_errors(client):
        while read < MAX_EVENTS_READ:
            page: list[tuple[str, dict[str, str]]] = client.xrevrange(  # type: ignore[assignment]
                stream, max=upper, min=str(floor), count=EVENTS_PAGE
            )
            ids |= matched_ids(page)
            read += len(page)
            if page:
                oldest = entry_ms(page[-1][0])
                upper = f"({page[-1][0]}"
            if len(page) < EVENTS_PAGE:
                return float(len(ids)) * 60.0 / MATCH_WINDOW_S, _trimmed(client, stream, floor)
    covered_s = (now_ms - oldest) / 1000.0
    if covered_s < 1.0:  # a burst: too short to extrapolate, report what was seen
        return float(len(ids)), True
    return max(per_minute(len(ids), covered_s), float(len(ids))), True


def _trimmed(client: Redis, stream: str, floor_ms: int) -> bool:
    """Whether the stream was trimmed past the start of the window (a count too low)."""
    first: list[tuple[str, Any]] = client.xrange(stream, count=1)  # type: ignore[assignment]
    info_needed = bool(first) and entry_ms(first[0][0]) > floor_ms
    if not info_needed:
        return False
    pipe = client.pipeline(transaction=False)
    pipe.xinfo_stream(stream)
    [info] = pipe.execute(raise_on_error=False)
    if isinstance(info, Exception):
        return False
    return int(info["entries-added"]) > int(info["length"])


def collect_queues(ctx: Context) -> list[QueueFigures]:
    """Depth, oldest wait and matches per minute of every configured queue."""
    store = ctx.matchmaking
    now = store.server_time()
    out = []
    for queue in ctx.queues:
        oldest = store.oldest_created(queue.name)
        rate, estimated = queue_matches_per_min(ctx.client, ctx.keys.events(queue.name), now)
        out.append(
            QueueFigures(
                name=queue.name,
                depth=store.count(queue.name),
                oldest_wait_s=max(now - oldest, 0.0) if oldest is not None else None,
                matches_per_min=rate,
                estimated=estimated,
            )
        )
    return out


def collect_pool(pool: ServerPool) -> PoolFigures:
    """A pool's stats and its servers by region and state (ready, draining, unhealthy)."""
    now = pool.server_time()
    servers = pool.list_servers()
    return PoolFigures(
        name=pool.keys.pool,
        stats=pool.stats(),
        servers=servers_by_state((s.region, s.state.value, s.is_healthy(now)) for s in servers),
    )


def open_pools(ctx: Context, names: Sequence[str]) -> list[ServerPool]:
    """The named pools (the context's own for its name), over every region of the queues."""
    regions = ctx.queues.all_regions()
    return [
        ctx.pool
        if name == ctx.pool.keys.pool
        else ServerPool(ctx.client, PoolKeys(ctx.settings.key_prefix, name), regions, ctx.settings)
        for name in names
    ]


class StatsCollector:
    """Takes :class:`StatsSnapshot` s, keeping the last ``INFO`` sample for the next rates."""

    def __init__(
        self,
        ctx: Context,
        pools: Sequence[ServerPool] = (),
        thresholds: Thresholds | None = None,
        *,
        interval_s: float = 1.0,
    ) -> None:
        self.ctx = ctx
        self.pools = list(pools)
        self.thresholds = thresholds or Thresholds()
        self.interval_s = interval_s
        self._last: tuple[float, Info] | None = None

    def snapshot(self) -> StatsSnapshot:
        """Figures now; the first call waits ``interval_s`` between two ``INFO`` samples."""
        if self._last is None:
            self._last = (time.monotonic(), read_info(self.ctx.client))
            time.sleep(self.interval_s)
        before_at, before = self._last
        after = read_info(self.ctx.client)
        after_at = time.monotonic()
        self._last = (after_at, after)
        metrics = redis_metrics(before, after, after_at - before_at)
        alarms = evaluate(metrics, self.thresholds)
        return StatsSnapshot(
            server_time=self.ctx.matchmaking.server_time(),
            redis=metrics,
            queues=collect_queues(self.ctx),
            pools=[collect_pool(p) for p in self.pools],
            alarms=alarms,
            triggers=scaling_triggers(metrics, alarms),
        )
