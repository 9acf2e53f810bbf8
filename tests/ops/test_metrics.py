"""Prometheus: a scrape of the started metrics server after a known load shows its numbers."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from caroud.context import Context
from caroud.errors import NoCapacityError
from caroud.matchmaking.worker import Worker
from caroud.ops.metrics import (
    MetricsServer,
    build_registry,
    render_latest,
    start_worker_metrics,
    timed_allocate,
)
from caroud.servers import ServerPool
from caroud.settings import Settings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        return parse(reply.read().decode())


@pytest.fixture
def served(ctx: Context, pool: ServerPool) -> Iterator[MetricsServer]:
    server = start_worker_metrics(0, ctx, [pool], addr="127.0.0.1")
    yield server
    server.close()


def test_a_scrape_after_a_known_load(ctx: Context, pool: ServerPool, served: MetricsServer) -> None:
    store, metrics = ctx.matchmaking, served.metrics
    # the matchmaking load, with the hooks called where the worker calls them
    for i, rating in enumerate((1500, 1520, 1800, 1810)):
        store.enqueue("duel", [(f"p{i}", rating)])
    for i in range(3):
        store.enqueue("squad", [(f"s{i}", 1500)])
    report = Worker(store, queue_names=["duel"]).run_cycle()
    assert report.matches == 2
    metrics.observe_cycle(report, 0.004)
    metrics.observe_match("duel", 20.0, [1.0, 3.0], region="eu")
    metrics.observe_match("duel", 10.0, [40.0, 50.0], region="eu")
    metrics.observe_timed_out("duel", 2)
    # the pool load: one slot, two direct allocations
    pool.register("10.0.0.1", 7777, "eu", 1, server_id="s1")
    pool.heartbeat("s1")  # ready: only then does it take matches
    timed_allocate(pool, metrics, "m1", ["eu"], queue="duel")
    with pytest.raises(NoCapacityError):
        timed_allocate(pool, metrics, "m2", ["eu"], queue="duel")

    got = scrape(served.port)

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert value("caroud_redis_up") == 1
    assert value("caroud_queue_depth", queue="duel") == 0
    assert value("caroud_queue_depth", queue="squad") == 3
    assert value("caroud_queue_oldest_wait_seconds", queue="squad") >= 0
    assert value("caroud_matches_total", queue="duel", region="eu") == 2
    assert value("caroud_matched_tickets_total", queue="duel") == 4
    assert value("caroud_ticket_wait_seconds_count", queue="duel") == 4
    assert value("caroud_ticket_wait_seconds_sum", queue="duel") == 94.0
    assert value("caroud_ticket_wait_seconds_bucket", queue="duel", le="5.0") == 2
    assert value("caroud_match_rating_spread_sum", queue="duel") == 30.0
    assert value("caroud_match_rating_spread_bucket", queue="duel", le="10.0") == 1
    assert value("caroud_tickets_timed_out_total", queue="duel") == 2
    assert value("caroud_worker_cycles_total") == 1
    assert value("caroud_worker_queues_held") == 1
    assert value("caroud_allocations_total", queue="duel", state="allocated") == 1
    assert value("caroud_allocations_total", queue="duel", state="no_capacity") == 1
    assert value("caroud_allocation_seconds_count", queue="duel") == 2
    assert value("caroud_pool_no_capacity_total", pool="test") == 1
    assert value("caroud_pool_allocations_total", pool="test") == 1
    assert value("caroud_pool_benched_total", pool="test") == 0
    assert value("caroud_pool_servers", pool="test", region="eu", state="ready") == 1
    assert value("caroud_pool_slots", pool="test", state="used") == 1
    assert value("caroud_pool_slots", pool="test", state="capacity") == 1
    assert value("caroud_redis_connections") >= 1
    assert value("caroud_redis_memory_used_bytes") > 0
    assert 0 < value("caroud_redis_memory_used_ratio") < 1
    assert value("caroud_redis_commands_total") > 0
    assert value("caroud_redis_cpu_seconds_total") > 0
    assert value("caroud_redis_keyspace_hits_total") > 0
    # labels stay bounded: nothing is labelled by a player, ticket, match or server id
    label_values = {v for _, labels in got for _, v in labels}
    assert not label_values & {"p0", "p1", "s0", "s1", "m1", "m2"}


def test_assignment_rounds_of_the_worker_are_observed(ctx: Context, served: MetricsServer) -> None:
    """The worker's assigner places matches on the context's pool; the hook counts them."""
    store, metrics = ctx.matchmaking, served.metrics
    ctx.pool.register("10.0.0.1", 7777, "eu", 1, server_id="only")
    ctx.pool.heartbeat("only")  # ready: only then does it take matches
    for i, rating in enumerate((1500, 1501, 1502, 1503)):
        store.enqueue("duel", [(f"p{i}", rating)], {"eu": 10})
    worker = Worker(store, queue_names=["duel"], assigner=ctx.assigner)
    started = time.perf_counter()
    report = worker.run_cycle()  # claims 2 matches, then assigns them: one slot for two
    metrics.observe_assignment("duel", report, time.perf_counter() - started)
    assert (report.matches, report.assigned, report.no_capacity) == (2, 1, 1)
    got = scrape(served.port)
    assert got[("caroud_allocations_total", (("queue", "duel"), ("state", "allocated")))] == 1
    assert got[("caroud_allocations_total", (("queue", "duel"), ("state", "no_capacity")))] == 1
    assert got[("caroud_allocation_seconds_count", (("queue", "duel"),))] == 1
    pool_servers = (
        "caroud_pool_servers",
        (("pool", "default"), ("region", "eu"), ("state", "ready")),
    )
    assert pool_servers not in got  # the served pool is "test"; the default one is not read


def test_counters_grow_between_scrapes(ctx: Context, served: MetricsServer) -> None:
    before = scrape(served.port)
    ctx.matchmaking.enqueue("duel", [("late", 1500)])
    served.metrics.observe_match("duel", 5.0, 2.0, region="us")
    after = scrape(served.port)
    key = ("caroud_matches_total", (("queue", "duel"), ("region", "us")))
    assert key not in before and after[key] == 1
    depth = ("caroud_queue_depth", (("queue", "duel"),))
    assert before[depth] == 0 and after[depth] == 1


def test_a_scrape_while_redis_is_down_says_so(closed_port: int, quick: object) -> None:
    settings: Settings = quick(f"redis://127.0.0.1:{closed_port}")  # type: ignore[operator]
    registry, _ = build_registry(Context.build(settings), process=False)
    body, content_type = render_latest(registry)
    assert content_type.startswith("text/plain")
    got = parse(body.decode())
    assert got[("caroud_redis_up", ())] == 0
    assert not any(name.startswith("caroud_queue") for name, _ in got)


def test_the_registry_without_redis_is_only_the_observed_series() -> None:
    registry, metrics = build_registry(None, process=False)
    metrics.observe_error()
    got = parse(render_latest(registry)[0].decode())
    assert got[("caroud_worker_cycle_errors_total", ())] == 1
    assert ("caroud_redis_up", ()) not in got
