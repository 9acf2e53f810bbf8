"""``/metrics`` of the web process: the series after a known load, bounded labels, the token."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from caroud.context import Context
from caroud.web.metrics_view import web_metrics

pytestmark = pytest.mark.django_db

ALLOWED_LABELS = {
    "queue",
    "region",
    "pool",
    "state",
    "le",  # histogram buckets
    "generation",  # python_gc_*
    "implementation",  # python_info
    "major",
    "minor",
    "patchlevel",
    "version",
}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_after_a_known_load(api: Any, ctx: Context) -> None:
    for i in range(3):
        ctx.matchmaking.enqueue("ranked-5v5", [(f"player-secret-{i}", 1500 + i)])
    ctx.pool.register("10.9.8.7", 7777, "eu-west", 4, server_id="server-secret-1")
    ctx.pool.register("10.9.8.6", 7777, "us-east", 2, server_id="server-secret-2")
    ctx.pool.heartbeat("server-secret-1")  # ready (a server that never reported is "starting")

    r = api.get("/metrics")
    assert r.status_code == 200
    assert r["Content-Type"].startswith("text/plain; version=")
    text = r.content.decode()
    got = samples(text)
    assert got[("caroud_redis_up", ())] == 1
    assert got[("caroud_queue_depth", (("queue", "ranked-5v5"),))] == 3
    assert got[("caroud_queue_depth", (("queue", "ranked-1v1"),))] == 0
    assert got[("caroud_queue_oldest_wait_seconds", (("queue", "ranked-5v5"),))] >= 0
    ready = (("pool", "default"), ("region", "eu-west"), ("state", "ready"))
    assert got[("caroud_pool_servers", ready)] == 1
    assert got[("caroud_pool_slots", (("pool", "default"), ("state", "capacity")))] == 6
    assert got[("caroud_pool_no_capacity_total", (("pool", "default"),))] == 0
    assert got[("caroud_redis_connections", ())] >= 1
    assert ("caroud_redis_memory_used_bytes", ()) in got
    for family in (
        "caroud_matches_total",
        "caroud_ticket_wait_seconds",
        "caroud_match_rating_spread",
        "caroud_allocation_seconds",
        "caroud_allocations_total",
    ):
        assert f"# TYPE {family} " in text, family

    labels = {name for (_, pairs) in got for name, _ in pairs}
    assert labels <= ALLOWED_LABELS, labels - ALLOWED_LABELS
    assert "secret" not in text, "no player, ticket or server id in any label or value"


def test_observed_series_show_what_this_process_records(api: Any) -> None:
    _, hooks = web_metrics()
    hooks.observe_match("ranked-1v1", 42.0, [1.5, 3.0], region="eu-west")
    got = samples(api.get("/metrics").content.decode())
    assert got[("caroud_matches_total", (("queue", "ranked-1v1"), ("region", "eu-west")))] >= 1
    bucket = (("le", "50.0"), ("queue", "ranked-1v1"))
    assert got[("caroud_match_rating_spread_bucket", bucket)] >= 1


def test_the_registry_is_built_once_per_engine_context(api: Any) -> None:
    registry, hooks = web_metrics()
    assert web_metrics() == (registry, hooks), "one per process"
    with override_settings(CAROUD_REDIS_URL=f"redis://127.0.0.1:{closed_port()}", CAROUD_RETRIES=0):
        assert web_metrics()[0] is not registry, "a new context gets its own"
        r = api.get("/metrics")
        assert r.status_code == 200, "a Redis outage does not fail the scrape"
        got = samples(r.content.decode())
        assert got[("caroud_redis_up", ())] == 0
        assert not any(name == "caroud_queue_depth" for name, _ in got)


@pytest.mark.parametrize("how", ["django_setting", "environment"])
def test_a_token_restricts_metrics(api: Any, how: str, monkeypatch: Any) -> None:
    assert api.get("/metrics").status_code == 200, "open by default"
    if how == "environment":
        monkeypatch.setenv("CAROUD_METRICS_TOKEN", "s3cret-token")
        restricted: Any = override_settings()
    else:
        restricted = override_settings(CAROUD_METRICS_TOKEN="s3cret-token")
    with restricted:
        missing = api.get("/metrics")
        assert missing.status_code == 401
        assert missing["WWW-Authenticate"].startswith("Bearer")
        assert b"caroud_" not in missing.content
        assert api.get("/metrics", token="wrong").status_code == 401
        basic = api.get("/metrics", HTTP_AUTHORIZATION="Basic czNjcmV0LXRva2Vu")
        assert basic.status_code == 401
        ok = api.get("/metrics", token="s3cret-token")
        assert ok.status_code == 200 and b"caroud_redis_up 1.0" in ok.content
