"""`caroud infra measure` against real servers: a fresh embedded Valkey, or an empty database."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from caroud.errors import ConfigError
from caroud.infra import sizing
from caroud.infra.cli import infra_app
from caroud.infra.measure import measure
from caroud.redis.client import Redis

SHIPPED = sizing.MEASURED_VALKEY


def within(value: float, shipped: float, factor: float = 2.0) -> bool:
    return shipped / factor <= value <= shipped * factor


def test_fresh_embedded_figures_agree_with_the_shipped_ones() -> None:
    """Fails when what a ticket, match or server stores has changed a lot since the figures in
    sizing.py were measured: run `caroud infra measure` (both engines) and paste them there."""
    m = measure(count=1000)
    assert m.server.startswith("valkey ")
    assert m.count == 1000
    assert within(m.ticket_bytes, SHIPPED.ticket_bytes), m
    assert within(m.event_bytes, SHIPPED.event_bytes), m
    assert within(m.match_bytes, SHIPPED.match_bytes), m
    assert within(m.server_bytes, SHIPPED.server_bytes), m
    assert within(m.allocation_bytes, SHIPPED.allocation_bytes), m
    assert within(m.baseline_bytes, SHIPPED.baseline_bytes), m


def test_measuring_a_given_empty_database_leaves_it_empty(redis_url: str, client: Redis) -> None:
    m = measure(redis_url, count=20)
    assert m.ticket_bytes > 0 and m.server_bytes > 0
    assert client.dbsize() == 0


def test_a_database_with_keys_is_not_measured(redis_url: str, client: Redis) -> None:
    client.set("someone:else", "1")
    with pytest.raises(ConfigError, match="has 1 keys: measuring needs an empty one"):
        measure(redis_url, count=20)
    assert client.get("someone:else") == "1"
    assert client.dbsize() == 1


@pytest.mark.parametrize("count", [0, 1, 21])
def test_the_count_must_be_even(count: int) -> None:
    with pytest.raises(ConfigError, match="even number"):
        measure(count=count)


def test_measure_command_prints_figures_to_paste() -> None:
    runner = CliRunner()
    result = runner.invoke(infra_app, ["measure", "--count", "100"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("MeasuredBytes(\n    server='valkey ")
    as_json = runner.invoke(infra_app, ["measure", "--count", "100", "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["count"] == 100 and data["ticket_bytes"] > 0
