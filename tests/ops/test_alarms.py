"""Alarm evaluation and scaling triggers: pure, over a plain dict of metrics."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caroud.errors import ConfigError
from caroud.ops.alarms import Thresholds, evaluate, firing, scaling_triggers

QUIET = {
    "cpu_percent": 10.0,
    "memory_percent": 40.0,
    "connections": 12,
    "evictions": 0,
    "latency_ms": 0.05,
    "replicas": 1,
    "role": "master",
}


def names(metrics: dict[str, object], thresholds: Thresholds | None = None) -> list[str]:
    return [a.name for a in firing(evaluate(metrics, thresholds or Thresholds()))]


def test_the_guides_thresholds() -> None:
    assert names(QUIET) == []
    assert names(QUIET | {"cpu_percent": 75.0}) == []  # strictly above
    assert names(QUIET | {"cpu_percent": 75.1}) == ["cpu_percent"]
    assert names(QUIET | {"memory_percent": 86.0}) == ["memory_percent"]
    assert names(QUIET | {"connections": 50_001}) == ["connections"]
    assert names(QUIET | {"evictions": 1}) == ["evictions"]
    assert names(QUIET | {"latency_ms": 1.2}) == ["latency_ms"]


def test_unknown_values_never_fire_and_say_so() -> None:
    alarms = evaluate({"cpu_percent": None}, Thresholds())
    cpu = next(a for a in alarms if a.name == "cpu_percent")
    assert not cpu.firing and cpu.value is None and "unknown" in cpu.message
    assert len(alarms) == 5


def test_a_firing_alarm_says_what_to_do() -> None:
    [evictions] = firing(evaluate(QUIET | {"evictions": 3}, Thresholds()))
    assert "noeviction" in evictions.message and "3 > 0" in evictions.message


def test_thresholds_from_env_and_options() -> None:
    t = Thresholds.from_env({"CAROUD_ALARM_CPU": "90", "CAROUD_ALARM_LATENCY_MS": "2.5"})
    assert t.cpu_percent == 90 and t.latency_ms == 2.5 and t.memory_percent == 85
    t = t.override(cpu_percent=None, memory_percent=50)
    assert t.cpu_percent == 90 and t.memory_percent == 50
    assert names(QUIET | {"cpu_percent": 80.0}, t) == []
    with pytest.raises(ConfigError, match="CAROUD_ALARM_MEMORY"):
        Thresholds.from_env({"CAROUD_ALARM_MEMORY": "lots"})
    with pytest.raises(ConfigError, match="at least 0"):
        Thresholds.from_env({"CAROUD_ALARM_CPU": "-1"})
    with pytest.raises(ConfigError, match="unknown alarm"):
        t.override(disk=1.0)


@given(
    st.sampled_from(["cpu_percent", "memory_percent", "connections", "evictions", "latency_ms"]),
    st.floats(0, 1e6),
    st.floats(0, 1e6),
)
def test_an_alarm_fires_exactly_when_its_value_is_above_its_threshold(
    name: str, value: float, limit: float
) -> None:
    thresholds = Thresholds().override(**{name: limit})
    fired = names(QUIET | {name: value}, thresholds)
    assert (name in fired) == (value > limit)


def test_scale_up_and_scale_out_triggers() -> None:
    quiet = scaling_triggers(QUIET, evaluate(QUIET, Thresholds()))
    assert quiet == []
    busy = QUIET | {"cpu_percent": 95.0, "connections": 60_000, "replicas": 0}
    triggers = {(t.kind, t.name) for t in scaling_triggers(busy, evaluate(busy, Thresholds()))}
    assert triggers == {
        ("scale_up", "cpu_percent"),
        ("scale_up", "connections"),
        ("scale_out", "single_node_bottleneck"),
        ("scale_out", "multi_az"),
        ("scale_out", "read_replicas"),
    }
    # evictions alone is an alarm, not a scaling trigger of the guide
    evicting = QUIET | {"evictions": 5}
    assert scaling_triggers(evicting, evaluate(evicting, Thresholds())) == []
