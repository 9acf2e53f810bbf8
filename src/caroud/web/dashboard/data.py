"""The dashboard's figures, as one plain dict: what ``/dashboard/data`` answers.

Every refresh does bounded work, whatever the size of the queues and the pool:

- **queues**: per queue, tickets waiting, the oldest wait, exact p50 / p95 of the
  current waits (the ticket at a known rank of the queue's sorted set, as in
  ``GET /api/v1/queues``) and the **wait-time distribution** over every waiting
  ticket, exact too: a queue is scored by creation time, so the tickets that have
  waited between *a* and *b* seconds are one ``ZCOUNT`` over ``(now - b, now - a]``
  (one per bucket of :data:`~caroud.ops.metrics.WAIT_BUCKETS`, the Prometheus
  histogram's). No ticket is read. Also the matches waiting for a game server.
- **recent matches**: the last :data:`EVENTS_SCAN` entries of each queue's event
  stream (``XREVRANGE ... COUNT``), the match ids of their ``matched`` / ``assigned``
  entries, the newest :data:`MAX_MATCHES` of them looked up in one pipeline.
- **servers**: the pool's stats, and at most :data:`MAX_SERVERS` servers, those whose
  heartbeat lapses first (the ones to look at), shown by region.
- **alarms**: the setup guide's, evaluated by :mod:`caroud.ops.alarms` over the
  current ``INFO`` sample (rates against an earlier one this process keeps), plus
  *no capacity* (a match has waited for a server longer than :data:`PENDING_GRACE_S`,
  or the pool's ``no_capacity`` counter rose in the last :data:`NO_CAPACITY_WINDOW_S`)
  and *no worker* (no matchmaker heartbeat is current).

The reads go straight to the keys of :mod:`caroud.keys` (counts and scores only),
decoding records with the engine's own codecs. :class:`DashboardState` is what one
process keeps between refreshes, and it caches a snapshot for :data:`CACHE_S`, so any
number of open pages costs Redis at most about two refreshes a second.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from caroud.context import Context
from caroud.matchmaking import codec
from caroud.ops.alarms import Thresholds, evaluate
from caroud.ops.derive import Info, redis_metrics
from caroud.ops.metrics import WAIT_BUCKETS
from caroud.ops.stats import read_info
from caroud.redis.client import redis_errors
from caroud.servers import ServerPool
from caroud.servers.models import SERVER_ATTRS, decode_server
from caroud.web.services.stats import quantile_index

WAIT_EDGES: tuple[float, ...] = (0.0, *WAIT_BUCKETS)
"""Lower edges of the wait-time buckets, in seconds; the last bucket has no upper edge."""
MAX_MATCHES = 20
EVENTS_SCAN = 400
"""Stream entries read per queue to find recent matches (a 5v5 match writes 20)."""
MAX_SERVERS = 200
PENDING_GRACE_S = 2.0
"""A match waiting for a server longer than this had no capacity (a worker tick is 50 ms)."""
STUCK_SCAN = 20
"""Pending matches looked at per queue to count those waiting past the grace."""
NO_CAPACITY_WINDOW_S = 300.0
INFO_MIN_INTERVAL_S = 1.0
"""Rates are taken over at least this long (several pages polling at once)."""
CACHE_S = 0.5
MATCH_EVENTS = frozenset({"matched", "assigned"})


# -- pure helpers ----------------------------------------------------------------------------


def bucket_labels(edges: Sequence[float] = WAIT_EDGES) -> list[str]:
    """``["<0.5 s", "0.5-1 s", ..., "≥600 s"]`` for buckets starting at ``edges``."""
    labels = [f"<{edges[1]:g} s"] if len(edges) > 1 else []
    labels += [f"{lo:g}-{hi:g} s" for lo, hi in itertools.pairwise(edges[1:])]
    return [*labels, f"≥{edges[-1]:g} s"]


def bucket_ranges(now_ms: int, edges: Sequence[float] = WAIT_EDGES) -> list[tuple[str, str]]:
    """``ZCOUNT`` bounds (min, max) of creation times (ms) for each wait bucket.

    A wait in ``[a, b)`` is a creation time in ``(now - b, now - a]``; the first bucket
    also takes tickets stamped after ``now`` and the last has no upper wait.
    """
    out: list[tuple[str, str]] = []
    for i, lo in enumerate(edges):
        hi = edges[i + 1] if i + 1 < len(edges) else math.inf
        newest = "+inf" if lo == 0 else str(now_ms - round(lo * 1000))
        oldest = "-inf" if hi == math.inf else f"({now_ms - round(hi * 1000)}"
        out.append((oldest, newest))
    return out


def recent_match_ids(
    streams: Mapping[str, Iterable[tuple[str, Mapping[str, str]]]], limit: int = MAX_MATCHES
) -> list[tuple[str, str]]:
    """``(match id, queue)`` of the newest matches in each queue's entries, newest first.

    ``streams`` maps a queue to its entries newest first (``XREVRANGE``); a match counts
    from its ``matched`` / ``assigned`` entries, ordered by its newest one.
    """
    newest: dict[str, tuple[tuple[int, int], str]] = {}
    for queue, entries in streams.items():
        for entry_id, fields in entries:
            match_id = fields.get("m")
            if not match_id or fields.get("e") not in MATCH_EVENTS or match_id in newest:
                continue
            ms, _, seq = entry_id.partition("-")
            newest[match_id] = ((int(ms), int(seq or 0)), queue)
    ordered = sorted(newest.items(), key=lambda kv: kv[1][0], reverse=True)
    return [(match_id, queue) for match_id, (_, queue) in ordered[:limit]]


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _plain(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value


def alarm(
    name: str, label: str, firing: bool, value: float | None, threshold: float, message: str
) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "firing": firing,
        "value": _r(value),
        "threshold": threshold,
        "message": message,
    }


ALARM_LABELS = {
    "cpu_percent": "Engine CPU",
    "memory_percent": "Memory",
    "connections": "Connections",
    "evictions": "Evictions",
    "latency_ms": "Command latency",
}


def dashboard_alarms(
    metrics: Mapping[str, Any],
    thresholds: Thresholds,
    *,
    stuck_matches: int,
    no_capacity_rose: bool,
    no_capacity_total: int,
    live_workers: int,
) -> list[dict[str, Any]]:
    """The guide's Redis alarms over ``metrics``, then no capacity and no worker (pure)."""
    out = [
        alarm(a.name, ALARM_LABELS.get(a.name, a.name), a.firing, a.value, a.threshold, a.message)
        for a in evaluate(metrics, thresholds)
    ]
    starved = stuck_matches > 0 or no_capacity_rose
    if stuck_matches:
        message = (
            f"{stuck_matches} match(es) waiting over {PENDING_GRACE_S:g} s for a game server "
            f"(no_capacity count {no_capacity_total}): add servers or capacity in their regions"
        )
    elif no_capacity_rose:
        message = (
            f"allocations found no free server in the last {NO_CAPACITY_WINDOW_S / 60:g} min "
            f"(no_capacity count {no_capacity_total}): add servers or capacity"
        )
    else:
        message = f"every match found a server (no_capacity count {no_capacity_total})"
    out.append(alarm("no_capacity", "No capacity", starved, stuck_matches, 0, message))
    out.append(
        alarm(
            "worker",
            "Matchmaker worker",
            live_workers == 0,
            live_workers,
            0,
            "no live matchmaker worker: tickets queue but are never matched (run `caroud worker`)"
            if live_workers == 0
            else f"{live_workers} worker(s) alive",
        )
    )
    return out


# -- what a process keeps between refreshes --------------------------------------------------


class DashboardState:
    """The previous ``INFO`` sample (for rates), the ``no_capacity`` history, the last snapshot.

    One per process and engine context (held by the app config); thread-safe.
    """

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.thresholds = thresholds if thresholds is not None else Thresholds.from_env(os.environ)
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._info: tuple[float, Info] | None = None
        self._no_capacity: deque[tuple[float, int]] = deque()
        self._snapshot: tuple[float, dict[str, Any]] | None = None

    def redis_metrics(self, info: Info, at: float) -> dict[str, Any]:
        """Metrics of ``info`` (taken at monotonic ``at``), rates against an earlier sample."""
        with self._lock:
            before = self._info
            if before is None or at - before[0] >= INFO_MIN_INTERVAL_S:
                self._info = (at, info)
        if before is None or at <= before[0]:
            return redis_metrics(None, info, 0.0)
        return redis_metrics(before[1], info, at - before[0])

    def no_capacity_rose(self, count: int, at: float) -> bool:
        """Whether the pool's ``no_capacity`` counter grew in the last window (as seen here)."""
        with self._lock:
            history = self._no_capacity
            if history and count < history[-1][1]:  # the counter was reset (a flushed Redis)
                history.clear()
            # keep, as the baseline, the last value seen at or before the window's start
            while len(history) > 1 and at - history[1][0] >= NO_CAPACITY_WINDOW_S:
                history.popleft()
            if not history or history[-1][1] != count:
                history.append((at, count))
            return count > history[0][1]

    def snapshot(self, ctx: Context) -> dict[str, Any]:
        """:func:`collect`, reused for :data:`CACHE_S` (one refresh for many open pages)."""
        with self._build_lock:
            cached = self._snapshot
            if cached is not None and time.monotonic() - cached[0] < CACHE_S:
                return cached[1]
            data = collect(ctx, self)
            self._snapshot = (time.monotonic(), data)
            return data


# -- collection ------------------------------------------------------------------------------


def collect_queues(ctx: Context, now: float) -> list[dict[str, Any]]:
    """Per queue: waiting, oldest wait, p50 / p95 wait, the wait histogram, matches pending,
    and the quality of its newest matches (mean rating spread, mean |P(win) - 0.5|)."""
    keys, names = ctx.keys, sorted(q.name for q in ctx.queues)
    now_ms = round(now * 1000)
    ranges = bucket_ranges(now_ms)
    with redis_errors(ctx.client):
        pipe = ctx.client.pipeline(transaction=True)  # one consistent view: all keys in {mm}
        for name in names:
            pipe.zcard(keys.queue(name))
            pipe.zrange(keys.queue(name), 0, 0, withscores=True)
            for low, high in ranges:
                pipe.zcount(keys.queue(name), low, high)
            pipe.zcard(keys.pending(name))
            pipe.zrange(keys.pending(name), 0, STUCK_SCAN - 1)
        replies: list[Any] = pipe.execute()
    per_queue = 4 + len(ranges)
    quality = ctx.matchmaking.recent_quality(names)
    out: list[dict[str, Any]] = []
    pending_ids: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        waiting, oldest, *hist, pending, first = replies[i * per_queue : (i + 1) * per_queue]
        pending_ids[name] = list(first)
        out.append(
            {
                "name": name,
                "players_per_match": ctx.queues.get(name).players_per_match,
                "waiting": int(waiting),
                "oldest_wait_s": _r(max(now - oldest[0][1] / 1000, 0.0)) if oldest else None,
                "p50_wait_s": None,
                "p95_wait_s": None,
                "histogram": [int(n) for n in hist],
                "waiting_for_server": int(pending),
                "stuck_matches": 0,
                "recent_matches": quality[name].matches,
                "rating_gap": quality[name].rating_gap_mean,
                "imbalance": quality[name].imbalance_mean,
            }
        )
    _add_percentiles(ctx, out, now)
    _add_stuck(ctx, out, pending_ids, now)
    return out


def _add_stuck(
    ctx: Context, queues: list[dict[str, Any]], pending: Mapping[str, list[str]], now: float
) -> None:
    """Count the matches (of the first :data:`STUCK_SCAN` pending) waiting over the grace.

    The pending set is scored by the oldest ticket's creation, not by the match's, so
    the match records say how long each has waited for a server.
    """
    asked = [(q, mid) for q in queues for mid in pending[q["name"]]]
    if not asked:
        return
    with redis_errors(ctx.client):
        pipe = ctx.client.pipeline(transaction=False)
        for _, match_id in asked:
            pipe.hgetall(ctx.keys.match(match_id))
        records: list[Any] = pipe.execute()
    for (q, match_id), fields in zip(asked, records, strict=True):
        if fields and now - codec.decode_match(match_id, fields).created_at > PENDING_GRACE_S:
            q["stuck_matches"] += 1


def _add_percentiles(ctx: Context, queues: list[dict[str, Any]], now: float) -> None:
    """Exact p50 / p95 of the current waits: the scores at two ranks of each queue."""
    asked = [
        (q, key, quantile_index(q["waiting"], p))
        for q in queues
        if q["waiting"]
        for key, p in (("p50_wait_s", 0.50), ("p95_wait_s", 0.95))
    ]
    created = ctx.matchmaking.created_at_ranks([(q["name"], index) for q, _, index in asked])
    for (q, key, _), at in zip(asked, created, strict=True):
        if at is not None:  # the queue may have shrunk since it was counted
            q[key] = _r(max(now - at, 0.0))


def collect_matches(ctx: Context, now: float) -> list[dict[str, Any]]:
    """The newest matches (at most :data:`MAX_MATCHES`) found in the queues' event streams."""
    names = [q.name for q in ctx.queues]
    with redis_errors(ctx.client):
        pipe = ctx.client.pipeline(transaction=False)
        for name in names:
            pipe.xrevrange(ctx.keys.events(name), count=EVENTS_SCAN)
        streams = dict(zip(names, pipe.execute(), strict=True))
        found = recent_match_ids(streams)
        pipe = ctx.client.pipeline(transaction=False)
        for match_id, _ in found:
            pipe.hgetall(ctx.keys.match(match_id))
        records: list[Any] = pipe.execute() if found else []
    out: list[dict[str, Any]] = []
    for (match_id, queue), fields in zip(found, records, strict=True):
        if not fields:  # expired since its events were written
            continue
        match = codec.decode_match(match_id, fields)
        server, config = match.server, ctx.queues.get(queue)
        out.append(
            {
                "id": match.id,
                "queue": match.queue,
                "players": config.players_per_match,
                "tickets": len(match.ticket_ids),
                "spread": _r(match.spread, 1),
                "window": [config.window.initial, config.window.maximum],
                "region": match.region,
                "status": match.status.value,
                "server": f"{server.address}:{server.port}" if server else None,
                "server_id": server.server_id if server else None,
                "age_s": _r(max(now - match.created_at, 0.0), 1),
                "created_at": round(match.created_at, 3),
            }
        )
    out.sort(key=lambda m: m["created_at"], reverse=True)
    return out


def collect_pool(pool: ServerPool, now: float) -> dict[str, Any]:
    """The pool's stats, and its first :data:`MAX_SERVERS` servers by heartbeat deadline."""
    stats = pool.stats()
    with redis_errors(pool.client):
        entries: list[tuple[str, float]] = pool.client.zrange(  # type: ignore[assignment]
            pool.keys.health(), 0, MAX_SERVERS - 1, withscores=True
        )
        pipe = pool.client.pipeline(transaction=False)
        for sid, _ in entries:
            pipe.hmget(pool.keys.servers(), [f"{sid}:{a}" for a in SERVER_ATTRS])
        records: list[Any] = pipe.execute() if entries else []
    servers: list[dict[str, Any]] = []
    for (sid, deadline), record in zip(entries, records, strict=True):
        server = decode_server(sid, record, deadline)
        if server is None:  # deregistered between the two reads
            continue
        heartbeat = server.last_heartbeat
        servers.append(
            {
                "id": server.id,
                "region": server.region,
                "address": f"{server.address}:{server.port}",
                "used": server.used,
                "capacity": server.capacity,
                "state": server.state.value if server.is_healthy(now) else "unhealthy",
                "load": _r(server.load),
                "heartbeat_age_s": _r(max(now - heartbeat, 0.0), 1) if heartbeat else None,
            }
        )
    servers.sort(key=lambda s: (s["region"], s["id"]))
    return {
        "name": pool.keys.pool,
        "servers": stats.servers,
        "draining": stats.draining,
        "capacity": stats.capacity,
        "used": stats.used,
        "no_capacity": stats.no_capacity,
        "allocations": stats.allocations,
        "shown": len(servers),
        "list": servers,
    }


def live_workers(ctx: Context, now: float) -> int:
    """Matchmaker workers whose heartbeat is current (the registry scores their lapse, ms)."""
    with redis_errors(ctx.client):
        return int(ctx.client.zcount(ctx.keys.workers(), f"({round(now * 1000)}", "+inf"))


REDIS_SUMMARY = (
    "memory_percent",
    "memory_used_bytes",
    "connections",
    "ops_per_s",
    "cpu_percent",
    "latency_ms",
    "evictions",
    "role",
)


def collect(ctx: Context, state: DashboardState) -> dict[str, Any]:
    """Every figure of the page, as a plain JSON-ready dict (see the module docstring)."""
    now = ctx.matchmaking.server_time()
    at = time.monotonic()
    queues = collect_queues(ctx, now)
    pool = collect_pool(ctx.pool, now)
    workers = live_workers(ctx, now)
    metrics = state.redis_metrics(read_info(ctx.client), at)
    alarms = dashboard_alarms(
        metrics,
        state.thresholds,
        stuck_matches=sum(q["stuck_matches"] for q in queues),
        no_capacity_rose=state.no_capacity_rose(pool["no_capacity"], at),
        no_capacity_total=pool["no_capacity"],
        live_workers=workers,
    )
    return {
        "server_time": round(now, 3),
        "wait_buckets": bucket_labels(),
        "queues": queues,
        "matches": collect_matches(ctx, now),
        "pool": pool,
        "workers": workers,
        "redis": {k: _plain(metrics.get(k)) for k in REDIS_SUMMARY},
        "alarms": alarms,
    }
