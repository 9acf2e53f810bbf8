"""`caroud infra size`: the model over the shipped measured constants."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from caroud.errors import ValidationError
from caroud.infra import sizing
from caroud.infra.cli import infra_app
from caroud.infra.sizing import MEASURED, NODE_TYPES, Workload

MIB = 2**20


def test_the_shipped_figures_are_measured_and_plausible() -> None:
    for m in (sizing.MEASURED_VALKEY, sizing.MEASURED_REDIS):
        assert m.count >= 1000
        assert 100 < m.ticket_bytes < 2000  # a hash of a dozen fields, a string, a zset entry
        assert 10 < m.event_bytes < 500
        assert 0 < m.match_bytes < 2000
        assert 100 < m.server_bytes < 4000
        assert 0 < m.allocation_bytes < 2000
        assert 100_000 < m.baseline_bytes < 10 * MIB


def test_the_default_is_the_larger_engine_per_figure() -> None:
    a, b = sizing.MEASURED_VALKEY, sizing.MEASURED_REDIS
    assert MEASURED.ticket_bytes == max(a.ticket_bytes, b.ticket_bytes)
    assert MEASURED.server_bytes == max(a.server_bytes, b.server_bytes)
    assert MEASURED.event_bytes == max(a.event_bytes, b.event_bytes)
    assert MEASURED.baseline_bytes == max(a.baseline_bytes, b.baseline_bytes)


def test_the_estimate_is_the_documented_sum() -> None:
    w = Workload(10_000, players_per_match=2, players_per_server=10, queues=4, events_maxlen=1000)
    e = sizing.estimate(w)
    m = MEASURED
    per_player = m.ticket_bytes + (m.match_bytes + m.allocation_bytes) / 2
    assert e.per_player == pytest.approx(per_player)
    assert e.players == pytest.approx(10_000 * per_player)
    assert e.streams == pytest.approx(4 * 1000 * m.event_bytes)
    assert e.servers == pytest.approx(1000 * m.server_bytes)
    assert e.total == pytest.approx(m.baseline_bytes + e.streams + e.players + e.servers)


def test_retained_matches_add_history_per_player() -> None:
    one = sizing.estimate(Workload(1000))
    twelve = sizing.estimate(Workload(1000, retained_matches=12))
    history = 11 * (MEASURED.ticket_bytes + MEASURED.match_bytes / 2)
    assert twelve.per_player - one.per_player == pytest.approx(history)


def test_headroom_is_usable_memory_after_the_reserve_minus_the_estimate() -> None:
    result = sizing.size(Workload(50_000))
    for fit in result.fits:
        usable = fit.node.memory_gib * 2**30 * 0.75
        assert fit.usable_bytes == pytest.approx(usable, rel=1e-9)
        assert fit.headroom_bytes == pytest.approx(usable - result.estimate.total)
        assert fit.fits == (result.estimate.total <= 0.85 * usable)
        assert fit.used_percent == pytest.approx(100 * result.estimate.total / usable)


def test_the_guide_prices_and_a_replica_doubling_them() -> None:
    micro = NODE_TYPES[0]
    assert (micro.name, micro.memory_gib, micro.usd_per_hour) == ("cache.t3.micro", 0.5, 0.017)
    dev = sizing.size(Workload(0, replicas=0)).choice
    prod = sizing.size(Workload(0, replicas=1)).choice
    assert dev is not None and prod is not None
    assert dev.monthly_usd == pytest.approx(12.41)  # the guide's ~$12.41/month
    assert prod.nodes == 2
    assert prod.monthly_usd == pytest.approx(24.82)


def test_prices_beyond_the_guide_are_labelled_assumptions() -> None:
    for node in NODE_TYPES:
        if node.name.startswith("cache.t3."):
            assert node.price_source == sizing.GUIDE
        else:
            assert node.price_source.startswith("ASSUMED")


def test_a_small_game_fits_the_smallest_node() -> None:
    choice = sizing.size(Workload(1000)).choice
    assert choice is not None and choice.node.name == "cache.t3.micro"


def test_a_huge_game_fits_no_node() -> None:
    result = sizing.size(Workload(50_000_000))
    assert result.choice is None
    assert not any(f.fits for f in result.fits)


def required_memory(players: int) -> float:
    choice = sizing.size(Workload(players)).choice
    return math.inf if choice is None else choice.node.memory_gib


@given(st.integers(0, 30_000_000), st.integers(0, 30_000_000))
def test_more_players_never_pick_a_smaller_node(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert required_memory(low) <= required_memory(high)


def test_the_recommendation_steps_up_through_the_node_types() -> None:
    picked = []
    for players in range(0, 40_000_001, 250_000):
        choice = sizing.size(Workload(players)).choice
        picked.append(choice.node.name if choice else None)
    names = [n for i, n in enumerate(picked) if i == 0 or n != picked[i - 1]]
    assert names == [n.name for n in NODE_TYPES] + [None]


def test_given_prices_replace_the_defaults() -> None:
    nodes = sizing.with_prices(NODE_TYPES, {"cache.t3.micro": 1.0})
    result = sizing.size(Workload(0), nodes=nodes)
    assert result.choice is not None and result.choice.node.name == "cache.t3.small"
    with pytest.raises(ValidationError, match=re.escape("'cache.x9' is not one of")):
        sizing.with_prices(NODE_TYPES, {"cache.x9": 1.0})
    with pytest.raises(ValidationError, match="cannot be negative"):
        sizing.with_prices(NODE_TYPES, {"cache.t3.micro": -1})


@pytest.mark.parametrize(
    "workload",
    [
        Workload(-1),
        Workload(10, players_per_match=0),
        Workload(10, queues=0),
        Workload(10, replicas=-1),
    ],
)
def test_nonsense_workloads_are_refused(workload: Workload) -> None:
    with pytest.raises(ValidationError):
        sizing.size(workload)


def test_measured_figures_print_as_pastable_source() -> None:
    source = sizing.as_source(sizing.MEASURED_REDIS)
    assert eval(source, {"MeasuredBytes": sizing.MeasuredBytes}) == sizing.MEASURED_REDIS


def test_size_command_states_the_model_and_recommends() -> None:
    result = CliRunner().invoke(infra_app, ["size", "--players", "20000"])
    assert result.exit_code == 0, result.output
    assert "model: 20000 concurrent players, each one queued ticket at worst" in result.stderr
    assert "measured bytes (max of valkey" in result.stderr
    assert "cache.r6g.xlarge" in result.stdout and "ASSUMED" in result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("recommended: cache.t3.micro (prod, 2")


def test_size_command_json_and_dev() -> None:
    result = CliRunner().invoke(infra_app, ["size", "--players", "1000", "--env", "dev", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["recommended"] == "cache.t3.micro"
    assert data["nodes"][0]["monthly_usd"] == pytest.approx(12.41)
    assert data["workload"]["players"] == 1000


def test_size_command_when_nothing_fits() -> None:
    result = CliRunner().invoke(infra_app, ["size", "--players", "90000000"])
    assert result.exit_code == 1
    assert "no node type fits" in result.stdout
