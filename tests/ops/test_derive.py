"""Metric derivations over plain INFO dicts: memory share, hit rate, engine CPU, latency."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caroud.ops.derive import (
    command_latency,
    cpu_percent,
    hit_rate,
    memory_usage,
    rate,
    redis_metrics,
)


def cmd(calls: float, usec: float) -> dict[str, float]:
    return {"calls": calls, "usec": usec, "usec_per_call": usec / calls if calls else 0.0}


def test_memory_share_of_maxmemory() -> None:
    m = memory_usage({"used_memory": 850, "maxmemory": 1000, "total_system_memory": 10**9})
    assert m.limit_source == "maxmemory" and m.percent == pytest.approx(85.0)


def test_memory_without_maxmemory_uses_the_machine_and_says_so() -> None:
    m = memory_usage({"used_memory": 25, "maxmemory": 0, "total_system_memory": 100})
    assert m.limit_source == "total_system_memory" and m.percent == pytest.approx(25.0)
    unknown = memory_usage({"used_memory": 25, "maxmemory": 0})
    assert unknown.limit_source is None and unknown.percent is None


def test_hit_rate() -> None:
    assert hit_rate(3, 1) == 0.75
    assert hit_rate(0, 0) is None
    assert hit_rate(None, 4) is None


@given(st.integers(0, 10**12), st.integers(0, 10**12))
def test_hit_rate_is_a_share(hits: int, misses: int) -> None:
    r = hit_rate(hits, misses)
    if hits + misses == 0:
        assert r is None
    else:
        assert r is not None and 0.0 <= r <= 1.0
        assert r == pytest.approx(hits / (hits + misses))


def test_cpu_prefers_the_main_thread() -> None:
    before = {
        "used_cpu_sys": 10.0,
        "used_cpu_user": 20.0,
        "used_cpu_sys_main_thread": 1.0,
        "used_cpu_user_main_thread": 2.0,
    }
    after = {
        "used_cpu_sys": 11.0,
        "used_cpu_user": 21.0,
        "used_cpu_sys_main_thread": 1.2,
        "used_cpu_user_main_thread": 2.3,
    }
    percent, source = cpu_percent(before, after, 1.0)
    assert source == "main thread" and percent == pytest.approx(50.0)
    old = {"used_cpu_sys": 1.0, "used_cpu_user": 1.0}
    percent, source = cpu_percent(old, {"used_cpu_sys": 1.5, "used_cpu_user": 1.5}, 2.0)
    assert source == "process" and percent == pytest.approx(50.0)


def test_cpu_after_a_restart_or_without_time_is_unknown() -> None:
    before = {"used_cpu_sys": 5.0, "used_cpu_user": 5.0}
    assert cpu_percent(before, {"used_cpu_sys": 0.1, "used_cpu_user": 0.1}, 1.0)[0] is None
    assert cpu_percent(before, before, 0.0)[0] is None


@given(
    st.floats(0, 1e6),
    st.floats(0, 1e6),
    st.floats(0, 100),
    st.floats(0, 100),
    st.floats(0.01, 3600),
)
def test_cpu_percent_is_cpu_seconds_over_wall_seconds(
    sys0: float, user0: float, dsys: float, duser: float, elapsed: float
) -> None:
    before = {"used_cpu_sys_main_thread": sys0, "used_cpu_user_main_thread": user0}
    after = {"used_cpu_sys_main_thread": sys0 + dsys, "used_cpu_user_main_thread": user0 + duser}
    percent, _ = cpu_percent(before, after, elapsed)
    assert percent is not None and percent >= 0
    assert percent == pytest.approx(100 * (dsys + duser) / elapsed, rel=1e-6, abs=1e-3)


def test_latency_is_weighted_by_calls_and_leaves_admin_commands_out() -> None:
    info: dict[str, Any] = {
        "cmdstat_get": cmd(900, 900),  # 1 us each
        "cmdstat_evalsha": cmd(100, 100_000),  # 1 ms each
        "cmdstat_info": cmd(5, 5_000_000),  # the monitoring itself: left out
        "cmdstat_config|get": cmd(5, 5_000_000),
    }
    lat = command_latency(None, info)
    assert lat.source == "since start" and lat.calls == 1000
    assert lat.mean_ms == pytest.approx(100_900 / 1000 / 1000)
    assert lat.max_command == "evalsha" and lat.max_ms == pytest.approx(1.0)


def test_latency_between_two_samples_covers_the_interval() -> None:
    before = {"cmdstat_get": cmd(1000, 1000), "cmdstat_zadd": cmd(10, 10)}
    after = {"cmdstat_get": cmd(1010, 1000 + 10 * 2000), "cmdstat_zadd": cmd(10, 10)}
    lat = command_latency(before, after)
    assert lat.source == "interval" and lat.calls == 10
    assert lat.mean_ms == pytest.approx(2.0) and lat.max_command == "get"
    # nothing ran in between: fall back to since start
    assert command_latency(after, after).source == "since start"
    assert command_latency(None, {}).mean_ms is None


@given(st.lists(st.tuples(st.integers(1, 10**6), st.integers(0, 10**9)), min_size=1, max_size=8))
def test_weighted_latency_lies_between_the_fastest_and_the_slowest(
    stats: list[tuple[int, int]],
) -> None:
    info = {f"cmdstat_c{i}": cmd(c, u) for i, (c, u) in enumerate(stats)}
    lat = command_latency(None, info)
    per_call = [u / c / 1000 for c, u in stats]
    assert lat.mean_ms is not None and lat.max_ms is not None
    assert min(per_call) - 1e-9 <= lat.mean_ms <= max(per_call) + 1e-9
    assert lat.max_ms == pytest.approx(max(per_call))


def test_rates_need_two_samples_and_a_counter_that_grew() -> None:
    assert rate(None, {"k": 5}, "k", 1.0) is None
    assert rate({"k": 5}, {"k": 15}, "k", 2.0) == 5.0
    assert rate({"k": 15}, {"k": 5}, "k", 2.0) is None  # restarted


def test_redis_metrics_from_two_samples() -> None:
    base = {
        "used_memory": 500,
        "maxmemory": 1000,
        "connected_clients": 7,
        "evicted_keys": 0,
        "keyspace_hits": 90,
        "keyspace_misses": 10,
        "total_net_input_bytes": 1000,
        "total_net_output_bytes": 2000,
        "used_cpu_sys_main_thread": 1.0,
        "used_cpu_user_main_thread": 1.0,
        "connected_slaves": 1,
        "role": "master",
    }
    later = base | {
        "evicted_keys": 4,
        "total_net_input_bytes": 3000,
        "used_cpu_sys_main_thread": 1.5,
        "cmdstat_set": cmd(10, 30_000),
    }
    m = redis_metrics(base, later, 2.0)
    assert m["memory_percent"] == pytest.approx(50.0)
    assert m["connections"] == 7 and m["evictions"] == 4 and m["evictions_per_s"] == 2.0
    assert m["hit_rate"] == pytest.approx(0.9)
    assert m["net_in_per_s"] == 1000.0 and m["net_out_per_s"] == 0.0
    assert m["cpu_percent"] == pytest.approx(25.0)
    assert m["latency_ms"] == pytest.approx(3.0) and m["latency_source"] == "interval"
    single = redis_metrics(None, later, 0.0)
    assert single["cpu_percent"] is None and single["interval_s"] is None
