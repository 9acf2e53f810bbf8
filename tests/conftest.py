"""Test fixtures: a real Valkey (embedded, or CAROUD_TEST_REDIS_URL), a clean database per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from caroud.context import Context
from caroud.matchmaking.queues import QueueRegistry
from caroud.matchmaking.store import MatchmakingStore
from caroud.redis.client import Redis, connect
from caroud.redis.embedded import embedded_url, stop_embedded
from caroud.settings import Settings


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server the suite runs against: CAROUD_TEST_REDIS_URL, else a fresh embedded Valkey."""
    url = os.environ.get("CAROUD_TEST_REDIS_URL")
    if url:
        yield url
        return
    data_dir = tmp_path_factory.mktemp("caroud-data")
    yield embedded_url(data_dir)
    stop_embedded(data_dir)


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings.from_mapping({"CAROUD_REDIS_URL": redis_url, "CAROUD_DATA_DIR": str(tmp_path)})


@pytest.fixture
def client(settings: Settings) -> Iterator[Redis]:
    """A client on a flushed database."""
    c = connect(settings)
    c.flushdb()
    yield c
    c.close()


TEST_QUEUES = {
    "duel": {
        "teams": 2,
        "team_size": 1,
        "window": {"initial": 50, "growth_per_s": 10, "max": 400},
        "max_wait_s": 60,
        "regions": ["eu", "us"],
        "max_latency_ms": 100,
    },
    "squad": {
        "teams": 2,
        "team_size": 5,
        "window": {"initial": 100, "growth_per_s": 20, "max": 600},
        "max_wait_s": 120,
        "regions": ["eu", "us"],
        "max_latency_ms": 100,
    },
    "ffa": {"teams": 4, "team_size": 1, "window": {"initial": 100, "max": 500}, "regions": ["eu"]},
}


@pytest.fixture
def queues() -> QueueRegistry:
    return QueueRegistry.from_specs(TEST_QUEUES)


@pytest.fixture
def ctx(settings: Settings, client: Redis, queues: QueueRegistry) -> Context:
    return Context.build(settings, client, queues)


@pytest.fixture
def store(ctx: Context) -> MatchmakingStore:
    return ctx.matchmaking
