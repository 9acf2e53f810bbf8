"""The dashboard's figures (``caroud.web.dashboard.data``) and its two views, on the real Redis."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.test import override_settings

from caroud.context import Context
from caroud.matchmaking.worker import Worker
from caroud.ops.alarms import Thresholds
from caroud.web.dashboard import data
from caroud.web.dashboard.data import (
    DashboardState,
    bucket_labels,
    bucket_ranges,
    collect,
    recent_match_ids,
)

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in items}


# -- pure helpers ----------------------------------------------------------------------------


def test_wait_buckets_partition_creation_times() -> None:
    now_ms = 1_000_000_000
    ranges = bucket_ranges(now_ms)
    labels = bucket_labels()
    assert len(ranges) == len(labels) == len(data.WAIT_EDGES)
    assert labels[0] == "<0.5 s" and labels[1] == "0.5-1 s" and labels[-1] == "≥600 s"

    def inside(score: int, low: str, high: str) -> bool:
        above = low == "-inf" or (score > int(low[1:]) if low.startswith("(") else False)
        below = high == "+inf" or score <= int(high)
        return above and below

    # every wait (ms), a bucket edge itself included, lands in exactly one bucket
    for wait_ms in (-5, 0, 499, 500, 501, 1000, 4999, 5000, 299_999, 600_000, 10**9):
        hits = [i for i, (lo, hi) in enumerate(ranges) if inside(now_ms - wait_ms, lo, hi)]
        assert len(hits) == 1, (wait_ms, hits)
    assert inside(now_ms - 500, *ranges[1]) and inside(now_ms - 600_000, *ranges[-1])


def test_recent_match_ids_are_distinct_newest_first_across_queues() -> None:
    streams = {
        "a": [
            ("300-0", {"e": "assigned", "m": "m2"}),
            ("250-0", {"e": "queued", "t": "t9"}),
            ("200-1", {"e": "matched", "m": "m2"}),
            ("200-0", {"e": "matched", "m": "m1"}),
        ],
        "b": [("260-0", {"e": "matched", "m": "m3"}), ("100-0", {"e": "cancelled", "m": "x"})],
    }
    assert recent_match_ids(streams) == [("m2", "a"), ("m3", "b"), ("m1", "a")]
    assert recent_match_ids(streams, limit=2) == [("m2", "a"), ("m3", "b")]


def test_no_capacity_rises_only_within_the_window() -> None:
    state = DashboardState(Thresholds())
    assert not state.no_capacity_rose(3, at=0.0), "the first sample is the baseline"
    assert state.no_capacity_rose(4, at=1.0)
    assert state.no_capacity_rose(4, at=200.0), "rose 199 s ago: still in the window"
    assert not state.no_capacity_rose(4, at=1.0 + data.NO_CAPACITY_WINDOW_S + 1)
    assert not state.no_capacity_rose(0, at=1000.0), "a flushed counter is a new baseline"
    window = data.NO_CAPACITY_WINDOW_S
    assert state.no_capacity_rose(1, at=1000.0 + window - 1)
    assert state.no_capacity_rose(1, at=1000.0 + window + 1), "the rise is 2 s old"
    assert not state.no_capacity_rose(1, at=1000.0 + 2 * window)


# -- figures after a known load --------------------------------------------------------------


def test_queue_depths_percentiles_and_exact_wait_histogram(ctx: Context) -> None:
    now = ctx.matchmaking.server_time()
    for i in range(20):  # waited 0.25 s past 1..20 s: clear of every bucket edge
        ctx.matchmaking.enqueue("ranked-5v5", [(f"p{i}", 1500)], created_at=now - (i + 1.25))
    ctx.matchmaking.enqueue("ranked-1v1", [("solo", 1500)], created_at=now - 700)
    figures = collect(ctx, DashboardState(Thresholds()))

    queues = by_name(figures["queues"])
    assert list(queues) == ["ffa-8", "ranked-1v1", "ranked-2v2", "ranked-5v5"]
    five = queues["ranked-5v5"]
    assert five["waiting"] == 20 and five["players_per_match"] == 10
    assert five["oldest_wait_s"] == pytest.approx(20.25, abs=0.2)
    assert five["p50_wait_s"] == pytest.approx(10.25, abs=0.2)  # 10th of 20, nearest rank
    assert five["p95_wait_s"] == pytest.approx(19.25, abs=0.2)  # 19th of 20
    buckets = dict(zip(figures["wait_buckets"], five["histogram"], strict=True))
    assert {k: v for k, v in buckets.items() if v} == {
        "1-2 s": 1,
        "2-5 s": 3,
        "5-10 s": 5,
        "10-20 s": 10,
        "20-30 s": 1,
    }
    assert queues["ranked-1v1"]["histogram"][-1] == 1, "700 s is in the open last bucket"
    assert queues["ranked-2v2"]["waiting"] == 0 and sum(queues["ranked-2v2"]["histogram"]) == 0
    assert queues["ranked-2v2"]["oldest_wait_s"] is queues["ranked-2v2"]["p50_wait_s"] is None
    assert figures["matches"] == [] and figures["pool"]["list"] == []
    assert five["recent_matches"] == 0 and five["rating_gap"] is five["imbalance"] is None


def test_matches_servers_and_alarms_after_a_cycle(ctx: Context, monkeypatch: Any) -> None:
    pool = ctx.pool
    pool.register("10.0.0.1", 7001, "eu-west", 2, server_id="eu-a")
    pool.register("10.0.0.2", 7002, "eu-west", 1, server_id="eu-b")
    pool.register("10.0.0.3", 7003, "us-east", 1, server_id="us-a")
    pool.heartbeat("eu-b", load=0.75)  # 4 slots in all, for 5 matches
    pool.heartbeat("eu-a")  # only a server that reported ready takes matches
    pool.heartbeat("us-a")
    for i, rating in enumerate((1500, 1510, 1600, 1605, 1700, 1702, 1800, 1801)):  # 4 pairs
        ctx.matchmaking.enqueue("ranked-1v1", [(f"solo{i}", rating)])
    for i, rating in enumerate((1400, 1420, 1410, 1430)):  # one 2v2
        ctx.matchmaking.enqueue("ranked-2v2", [(f"duo{i}", rating)])
    state = DashboardState(Thresholds())
    before = by_name(collect(ctx, state)["alarms"])
    assert not before["no_capacity"]["firing"]
    assert before["worker"]["firing"], "no worker heartbeat yet"

    worker = Worker(ctx.matchmaking, assigner=ctx.assigner)
    report = worker.run_cycle()
    assert (report.matches, report.assigned, report.no_capacity) == (5, 4, 1)
    worker.heartbeat()
    assert pool.drain("us-a") == 1, "draining, it keeps its match"
    figures = collect(ctx, state)

    matches = figures["matches"]
    assert len(matches) == 5
    assert sorted((m["queue"], m["players"], m["spread"]) for m in matches) == [
        ("ranked-1v1", 2, 1.0),
        ("ranked-1v1", 2, 2.0),
        ("ranked-1v1", 2, 5.0),
        ("ranked-1v1", 2, 10.0),
        ("ranked-2v2", 4, 30.0),  # max - min rating
    ]
    duel = by_name(figures["queues"])["ranked-1v1"]
    assert duel["recent_matches"] == 4 and duel["rating_gap"] == 4.5  # (1 + 2 + 5 + 10) / 4
    assert 0 < duel["imbalance"] < 0.02
    duo = by_name(figures["queues"])["ranked-2v2"]
    assert duo["recent_matches"] == 1 and duo["imbalance"] == 0  # 1400+1430 vs 1420+1410
    placed = [m for m in matches if m["status"] == "assigned"]
    assert len(placed) == 4
    assert sorted((m["server"], m["region"]) for m in placed) == [
        ("10.0.0.1:7001", "eu-west"),
        ("10.0.0.1:7001", "eu-west"),
        ("10.0.0.2:7002", "eu-west"),
        ("10.0.0.3:7003", "us-east"),
    ]
    [waiting] = [m for m in matches if m["status"] == "matched"]
    assert waiting["server"] is None

    servers = {s["id"]: s for s in figures["pool"]["list"]}
    assert [s["id"] for s in figures["pool"]["list"]] == ["eu-a", "eu-b", "us-a"]
    assert (servers["eu-a"]["used"], servers["eu-a"]["capacity"]) == (2, 2)
    assert (servers["eu-b"]["used"], servers["eu-b"]["load"]) == (1, 0.75)
    assert servers["us-a"]["state"] == "draining" and servers["us-a"]["used"] == 1
    assert servers["eu-a"]["address"] == "10.0.0.1:7001"
    pool_figures = figures["pool"]
    assert (pool_figures["used"], pool_figures["capacity"], pool_figures["no_capacity"]) == (
        4,
        4,
        1,
    )

    queue = by_name(figures["queues"])[waiting["queue"]]
    assert queue["waiting_for_server"] == 1 and queue["stuck_matches"] == 0, "just formed"
    alarms = by_name(figures["alarms"])
    assert alarms["no_capacity"]["firing"], "the counter rose since the previous refresh"
    assert "no free server" in alarms["no_capacity"]["message"]
    assert not alarms["worker"]["firing"] and alarms["worker"]["value"] == 1
    assert {"cpu_percent", "memory_percent", "latency_ms"} <= set(alarms)

    # a fresh process (no history): the match waiting past the grace still fires
    monkeypatch.setattr(data, "PENDING_GRACE_S", 0.0)
    fresh = collect(ctx, DashboardState(Thresholds()))
    assert by_name(fresh["queues"])[waiting["queue"]]["stuck_matches"] == 1
    assert (
        "waiting over 0 s for a game server" in by_name(fresh["alarms"])["no_capacity"]["message"]
    )


def test_redis_alarms_use_the_guides_thresholds(ctx: Context) -> None:
    strict = DashboardState(Thresholds(connections=0, memory_percent=0))
    alarms = by_name(collect(ctx, strict)["alarms"])
    assert alarms["connections"]["firing"] and alarms["memory_percent"]["firing"]
    assert alarms["connections"]["label"] == "Connections"
    relaxed = by_name(collect(ctx, DashboardState(Thresholds()))["alarms"])
    assert not relaxed["connections"]["firing"] and not relaxed["memory_percent"]["firing"]
    assert relaxed["cpu_percent"]["value"] is None, "one sample: CPU unknown, never fires"


def test_snapshots_are_shared_briefly(ctx: Context, monkeypatch: Any) -> None:
    state = DashboardState(Thresholds())
    first = state.snapshot(ctx)
    ctx.matchmaking.enqueue("ranked-1v1", [("late", 1500)])
    assert state.snapshot(ctx) is first, "within CACHE_S the same snapshot answers"
    monkeypatch.setattr(data, "CACHE_S", 0.0)
    assert by_name(state.snapshot(ctx)["queues"])["ranked-1v1"]["waiting"] == 1


# -- the views -------------------------------------------------------------------------------


def test_the_page_links_its_own_static_files(api: Any) -> None:
    r = api.get("/dashboard")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/html")
    html = r.content.decode()
    assert 'data-url="/dashboard/data"' in html
    assert "/static/caroud/dashboard.js" in html and "/static/caroud/dashboard.css" in html
    assert "http://" not in html and "https://" not in html, "nothing from outside"
    for name in ("caroud/dashboard.js", "caroud/dashboard.css"):
        assert finders.find(name), name


def test_data_view_answers_the_figures(api: Any, ctx: Context) -> None:
    ctx.matchmaking.enqueue("ranked-2v2", [("a", 1500), ("b", 1500)])
    r = api.get("/dashboard/data")
    assert r.status_code == 200 and r["Cache-Control"] == "no-store"
    body = r.json()
    assert set(body) >= {"queues", "wait_buckets", "matches", "pool", "alarms", "redis", "workers"}
    assert by_name(body["queues"])["ranked-2v2"]["waiting"] == 1
    assert api.post("/dashboard/data").status_code == 405


def test_data_view_says_when_redis_is_down(api: Any) -> None:
    with override_settings(CAROUD_REDIS_URL=f"redis://127.0.0.1:{closed_port()}", CAROUD_RETRIES=0):
        r = api.get("/dashboard/data")
        assert r.status_code == 503 and r["Retry-After"] == "2"
        assert r.json()["error"]["code"] == "redis_unavailable"
        assert api.get("/dashboard").status_code == 200, "the page itself needs no Redis"
    assert api.get("/dashboard/data").status_code == 200
