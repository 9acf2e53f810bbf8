"""Prometheus metrics: what the worker observes, and what Redis holds, read at scrape time.

Two kinds of series, in one :class:`~prometheus_client.CollectorRegistry` per process
(never the global one, so a test or a second app cannot collide with it):

- **Observed** by the process (:class:`WorkerMetrics`): matches formed, per-ticket wait
  and rating-spread histograms, timeouts, cycles, and allocations with their latency.
  They count what *this* process did; sum them over processes in PromQL.
- **Read from Redis at scrape** (:class:`CaroudCollector`): queue depth and oldest wait,
  game-server pools (servers by region and state, slots, the pool-wide ``no_capacity``
  counter), and the guide's Redis metrics from one ``INFO all``. Every process that
  serves them reports the same values: scrape one, or aggregate with ``max``.

Labels are bounded by configuration: ``queue``, ``region``, ``pool`` and ``state``
(a small fixed set). Nothing is labelled by player, ticket, match or server id.

PromQL for the guide's figures: engine CPU % is
``100 * rate(caroud_redis_cpu_seconds_total[1m])``, mean command latency is
``rate(caroud_redis_commands_duration_seconds_total[1m]) /
rate(caroud_redis_commands_total[1m])``, matches per minute
``60 * sum by (queue) (rate(caroud_matches_total[5m]))``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector

from caroud.context import Context
from caroud.errors import AllocationStateError, CaroudError, NoCapacityError
from caroud.ops.derive import (
    MAIN_THREAD,
    PROCESS,
    Info,
    command_latency,
    command_totals,
    cpu_seconds,
    memory_usage,
    number,
)
from caroud.ops.stats import read_info
from caroud.servers import Allocation, ServerPool

log = logging.getLogger("caroud.metrics")

WAIT_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
"""Seconds from enqueue to match (a queue's max_wait_s is 300 by default)."""
SPREAD_BUCKETS = (10, 25, 50, 75, 100, 150, 200, 300, 400, 600)
"""Rating spread of a match (windows start at 50-100 and grow to 400-600)."""
ALLOCATION_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
"""Seconds of one allocation call, round trip included."""
CYCLE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class CycleFigures(Protocol):
    """What :meth:`WorkerMetrics.observe_cycle` reads of a worker's ``CycleReport``.

    A protocol, so this module does not import the worker (which imports it).
    """

    queues: list[str]
    stale: int
    requeued_tickets: int
    interrupted: int


class AssignFigures(Protocol):
    """What :meth:`WorkerMetrics.observe_assignment` reads of an ``AssignReport``."""

    assigned: int
    no_capacity: int


class WorkerMetrics:
    """The series a worker (or any process that allocates) updates through its hooks."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.matches = Counter(
            "caroud_matches", "Matches formed", ["queue", "region"], registry=registry
        )
        self.matched_tickets = Counter(
            "caroud_matched_tickets", "Tickets matched", ["queue"], registry=registry
        )
        self.wait = Histogram(
            "caroud_ticket_wait_seconds",
            "Wait of each matched ticket, from enqueue to match",
            ["queue"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.spread = Histogram(
            "caroud_match_rating_spread",
            "Rating spread of each match formed",
            ["queue"],
            buckets=SPREAD_BUCKETS,
            registry=registry,
        )
        self.timed_out = Counter(
            "caroud_tickets_timed_out",
            "Tickets that waited max_wait_s",
            ["queue"],
            registry=registry,
        )
        self.cycles = Counter("caroud_worker_cycles", "Matching cycles run", registry=registry)
        self.cycle_errors = Counter(
            "caroud_worker_cycle_errors", "Cycles that failed (Redis errors)", registry=registry
        )
        self.cycle_seconds = Histogram(
            "caroud_worker_cycle_seconds",
            "Duration of one matching cycle over every held queue",
            buckets=CYCLE_BUCKETS,
            registry=registry,
        )
        self.stale = Counter(
            "caroud_claim_stale_tickets",
            "Proposed tickets that were no longer queued at claim time",
            registry=registry,
        )
        self.queues_held = Gauge(
            "caroud_worker_queues_held", "Queues whose lease this worker holds", registry=registry
        )
        self.requeued = Counter(
            "caroud_tickets_requeued",
            "Tickets put back in their queue (no capacity for too long, lost server)",
            registry=registry,
        )
        self.interrupted = Counter(
            "caroud_matches_interrupted",
            "Started matches whose game server was lost",
            registry=registry,
        )
        self.allocations = Counter(
            "caroud_allocations",
            "Allocation outcomes by state: allocated, no_capacity, ended",
            ["queue", "state"],
            registry=registry,
        )
        self.allocation_seconds = Histogram(
            "caroud_allocation_seconds",
            "Duration of one allocation call (one allocate, or one allocate_many round)",
            ["queue"],
            buckets=ALLOCATION_BUCKETS,
            registry=registry,
        )

    # -- the hooks ------------------------------------------------------------------------

    def observe_cycle(self, report: CycleFigures, seconds: float) -> None:
        """One finished cycle (matches, timeouts and allocations have their own hooks)."""
        self.cycles.inc()
        self.cycle_seconds.observe(max(seconds, 0.0))
        self.queues_held.set(len(report.queues))
        for counter, n in (
            (self.stale, report.stale),
            (self.requeued, report.requeued_tickets),
            (self.interrupted, report.interrupted),
        ):
            if n:
                counter.inc(n)

    def observe_error(self) -> None:
        """A cycle failed with a Caroud (Redis) error."""
        self.cycle_errors.inc()

    def observe_match(
        self,
        queue: str,
        spread: float,
        wait_s: float | Sequence[float],
        region: str = "",
    ) -> None:
        """One claimed match: its rating spread, and the wait of each of its tickets."""
        waits = [wait_s] if isinstance(wait_s, int | float) else list(wait_s)
        self.matches.labels(queue, region).inc()
        self.matched_tickets.labels(queue).inc(len(waits))
        self.spread.labels(queue).observe(max(spread, 0.0))
        histogram = self.wait.labels(queue)
        for w in waits:
            histogram.observe(max(w, 0.0))

    def observe_timed_out(self, queue: str, count: int) -> None:
        """``count`` tickets of ``queue`` timed out this cycle."""
        if count:
            self.timed_out.labels(queue).inc(count)

    def observe_assignment(self, queue: str, report: AssignFigures, seconds: float) -> None:
        """One ``Assigner.assign_pending`` round of ``queue``: its outcomes and duration."""
        if report.assigned:
            self.allocations.labels(queue, "allocated").inc(report.assigned)
        if report.no_capacity:
            self.allocations.labels(queue, "no_capacity").inc(report.no_capacity)
        if report.assigned or report.no_capacity:
            self.allocation_seconds.labels(queue).observe(max(seconds, 0.0))

    def observe_allocation(
        self, outcome: Allocation | CaroudError, seconds: float, queue: str = ""
    ) -> None:
        """One allocation call's outcome (an Allocation, or the error it raised)."""
        self.allocations.labels(queue, allocation_state(outcome)).inc()
        self.allocation_seconds.labels(queue).observe(max(seconds, 0.0))


def allocation_state(outcome: Allocation | CaroudError) -> str:
    if isinstance(outcome, Allocation):
        return "allocated"
    if isinstance(outcome, NoCapacityError):
        return "no_capacity"
    if isinstance(outcome, AllocationStateError):
        return "ended"
    return "error"


def timed_allocate(
    pool: ServerPool,
    metrics: WorkerMetrics,
    match_id: str,
    regions: Sequence[str],
    *,
    queue: str = "",
    **kw: Any,
) -> Allocation:
    """:meth:`ServerPool.allocate`, observed: its latency and outcome (errors re-raised)."""
    started = time.perf_counter()
    try:
        allocation = pool.allocate(match_id, regions, **kw)
    except CaroudError as e:
        metrics.observe_allocation(e, time.perf_counter() - started, queue)
        raise
    metrics.observe_allocation(allocation, time.perf_counter() - started, queue)
    return allocation


# -- read at scrape time ---------------------------------------------------------------------


class CaroudCollector:
    """Queue, pool and Redis series read from Redis on each scrape (a custom Collector).

    A scrape while Redis is down answers ``caroud_redis_up 0`` and nothing else read
    from Redis, rather than failing the whole scrape.
    """

    def __init__(
        self, ctx: Context, pools: Sequence[ServerPool] = (), *, redis_info: bool = True
    ) -> None:
        self.ctx = ctx
        self.pools = list(pools)
        self.redis_info = redis_info

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily("caroud_redis_up", "1 if Redis answered this scrape, else 0")
        try:
            families = self._queues() + self._pools()
            if self.redis_info:
                families += redis_families(read_info(self.ctx.client))
        except CaroudError as e:
            log.warning("metrics scrape could not read Redis", extra={"error": str(e)})
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families
        took = GaugeMetricFamily("caroud_scrape_seconds", "Time spent reading Redis")
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _queues(self) -> list[Metric]:
        store = self.ctx.matchmaking
        depth = GaugeMetricFamily("caroud_queue_depth", "Tickets waiting", labels=["queue"])
        oldest = GaugeMetricFamily(
            "caroud_queue_oldest_wait_seconds",
            "Wait of the oldest queued ticket (0 if none)",
            labels=["queue"],
        )
        now = store.server_time()
        for queue in self.ctx.queues:
            depth.add_metric([queue.name], store.count(queue.name))
            created = store.oldest_created(queue.name)
            oldest.add_metric([queue.name], max(now - created, 0.0) if created is not None else 0.0)
        return [depth, oldest]

    def _pools(self) -> list[Metric]:
        servers = GaugeMetricFamily(
            "caroud_pool_servers",
            "Game servers by region and state (starting, ready, benched, draining, unhealthy)",
            labels=["pool", "region", "state"],
        )
        capacity = GaugeMetricFamily("caroud_pool_slots", "Match slots", labels=["pool", "state"])
        counters = {
            name: CounterMetricFamily(f"caroud_pool_{name}", text, labels=["pool"])
            for name, text in (
                ("no_capacity", "Allocations refused: no server had a free slot"),
                ("allocations", "Slots allocated"),
                ("expired", "Allocations never confirmed started in time"),
                ("unhealthy", "Servers reaped for missing heartbeats"),
                ("benched", "Servers benched for letting starts expire"),
            )
        }
        for pool in self.pools:
            name = pool.keys.pool
            stats = pool.stats()
            now = pool.server_time()
            counts: dict[tuple[str, str], int] = {}
            for s in pool.list_servers():
                state = s.state.value if s.is_healthy(now) else "unhealthy"
                counts[(s.region, state)] = counts.get((s.region, state), 0) + 1
            for (region, state), n in sorted(counts.items()):
                servers.add_metric([name, region, state], n)
            capacity.add_metric([name, "used"], stats.used)
            capacity.add_metric([name, "capacity"], stats.capacity)
            for key, family in counters.items():
                family.add_metric([name], getattr(stats, key))
        return [servers, capacity, *counters.values()]


def redis_families(info: Info) -> list[Metric]:
    """The guide's Redis metrics from one ``INFO all``, as Prometheus families (pure)."""
    out: list[Metric] = []

    def gauge(name: str, text: str, value: float | None) -> None:
        if value is not None:
            out.append(GaugeMetricFamily(name, text, value=value))

    def counter(name: str, text: str, value: float | None) -> None:
        if value is not None:
            out.append(CounterMetricFamily(name, text, value=value))

    memory = memory_usage(info)
    gauge("caroud_redis_memory_used_bytes", "used_memory", memory.used_bytes)
    gauge(
        "caroud_redis_memory_limit_bytes",
        "maxmemory, or the machine's memory when maxmemory is 0",
        memory.limit_bytes,
    )
    percent = memory.percent
    gauge(
        "caroud_redis_memory_used_ratio",
        "used memory over its limit (DatabaseMemoryUsagePercentage / 100)",
        None if percent is None else percent / 100,
    )
    gauge("caroud_redis_connections", "connected clients", number(info, "connected_clients"))
    counter("caroud_redis_evicted_keys", "keys evicted since start", number(info, "evicted_keys"))
    counter("caroud_redis_keyspace_hits", "key lookups that hit", number(info, "keyspace_hits"))
    counter(
        "caroud_redis_keyspace_misses", "key lookups that missed", number(info, "keyspace_misses")
    )
    counter("caroud_redis_net_input_bytes", "bytes received", number(info, "total_net_input_bytes"))
    counter("caroud_redis_net_output_bytes", "bytes sent", number(info, "total_net_output_bytes"))
    cpu = cpu_seconds(info, MAIN_THREAD)
    counter(
        "caroud_redis_cpu_seconds",
        "CPU seconds of the engine's main thread (of the process on older servers)",
        cpu if cpu is not None else cpu_seconds(info, PROCESS),
    )
    totals = command_totals(info)
    counter(
        "caroud_redis_commands",
        "workload commands run (admin commands left out)",
        sum(c for c, _ in totals.values()),
    )
    counter(
        "caroud_redis_commands_duration_seconds",
        "server time spent in workload commands",
        sum(u for _, u in totals.values()) / 1e6,
    )
    slowest = command_latency(None, info).max_ms
    gauge(
        "caroud_redis_command_max_latency_seconds",
        "mean latency of the slowest workload command since start",
        None if slowest is None else slowest / 1000,
    )
    return out


# -- wiring ----------------------------------------------------------------------------------


def build_registry(
    ctx: Context | None = None,
    pools: Sequence[ServerPool] = (),
    *,
    process: bool = True,
    redis_info: bool = True,
) -> tuple[CollectorRegistry, WorkerMetrics]:
    """A registry with the observed series, plus the Redis-read ones when ``ctx`` is given.

    ``process`` adds the standard process and GC series (CPU, memory, open files).
    """
    registry = CollectorRegistry()
    metrics = WorkerMetrics(registry)
    if ctx is not None:
        registry.register(CaroudCollector(ctx, pools, redis_info=redis_info))
    if process:
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)
    return registry, metrics


def render_latest(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The registry in the Prometheus text format, and its content type (for a /metrics view).

    In Django: ``body, ctype = render_latest(registry); HttpResponse(body, content_type=ctype)``.
    """
    return generate_latest(registry), CONTENT_TYPE_LATEST


@dataclass
class MetricsServer:
    """A running ``/metrics`` HTTP server (a daemon thread) and what it serves."""

    port: int
    registry: CollectorRegistry
    metrics: WorkerMetrics
    _httpd: Any

    def close(self) -> None:
        """Stop serving (the worker exits without it too: the thread is a daemon)."""
        self._httpd.shutdown()
        self._httpd.server_close()


def start_worker_metrics(
    port: int,
    ctx: Context,
    pools: Sequence[ServerPool] = (),
    *,
    addr: str = "0.0.0.0",
    redis_info: bool = True,
) -> MetricsServer:
    """Serve ``/metrics`` on ``addr:port`` (0 picks a free port) for ``caroud worker``.

    Pass the returned ``.metrics`` to the worker, which calls its hooks. Binds every
    interface by default, as Prometheus scrapes from outside the container; the
    series carry no player data.
    """
    registry, metrics = build_registry(ctx, pools, redis_info=redis_info)
    httpd, _thread = start_http_server(port, addr=addr, registry=registry)
    bound = int(httpd.server_address[1])
    log.info("metrics served", extra={"port": bound, "addr": addr})
    return MetricsServer(bound, registry, metrics, httpd)
