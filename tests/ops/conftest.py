"""Fixtures of the operations tests (the real servers they use are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from caroud.keys import PoolKeys
from caroud.redis.client import Redis
from caroud.servers import ServerPool
from caroud.settings import Settings


@pytest.fixture
def pool(client: Redis, settings: Settings) -> ServerPool:
    return ServerPool(client, PoolKeys(settings.key_prefix, "test"), ("eu", "us"), settings)
