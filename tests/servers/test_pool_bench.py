"""The pool benchmark runs end to end and finds every slot accounted for."""

from __future__ import annotations

import pytest

from caroud.bench.pool import SERVERS, print_pool_table, run_pool_benchmark
from caroud.redis.client import Redis
from caroud.settings import Settings


@pytest.mark.slow
def test_short_benchmark_run(
    settings: Settings, client: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_pool_benchmark(settings, 0.5, processes=2, batch=8)
    assert result["servers"] == SERVERS
    assert result["allocations"] > 0
    assert result["over_allocations"] == 0
    assert result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert not list(client.scan_iter("bench:*"))  # it cleans up after itself
    print_pool_table(result)
    assert "allocations_per_s" in capsys.readouterr().out
