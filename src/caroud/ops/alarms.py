"""The setup guide's alarms and scaling triggers, over a plain dict of metrics. No I/O.

Alarms (defaults from the guide, each overridable by ``CAROUD_ALARM_*`` or a CLI option):

    cpu_percent      > 75      CAROUD_ALARM_CPU          engine CPU, % of its one core
    memory_percent   > 85      CAROUD_ALARM_MEMORY       used memory, % of maxmemory
    connections      > 50000   CAROUD_ALARM_CONNECTIONS  connected clients
    evictions        > 0       CAROUD_ALARM_EVICTIONS    keys evicted since the server started
    latency_ms       > 1       CAROUD_ALARM_LATENCY_MS   mean server-side command latency

An alarm fires when its value is strictly above the threshold. A metric that could
not be measured (None: e.g. CPU from a single sample) never fires; it shows as unknown.

Evictions count since the server started on purpose: Caroud's keys are state, not
a cache, and one eviction under an ``allkeys-*`` policy may have lost a queued ticket,
so the alarm stays until someone has looked (and restarted the node or raised
``CAROUD_ALARM_EVICTIONS`` to the count they have accounted for).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from caroud.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Alarm thresholds; a metric above its threshold fires."""

    cpu_percent: float = 75.0
    memory_percent: float = 85.0
    connections: float = 50_000
    evictions: float = 0
    latency_ms: float = 1.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Thresholds:
        """Thresholds from ``CAROUD_ALARM_*`` (see the module docstring); defaults elsewhere."""
        values: dict[str, float] = {}
        for name, variable in ENV_NAMES.items():
            raw = env.get(variable, "").strip()
            if not raw:
                continue
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"{variable}={raw!r} is not a number") from None
            if value < 0:
                raise ConfigError(f"{variable}={raw!r} must be at least 0")
            values[name] = value
        return replace(cls(), **values)

    def override(self, **values: float | None) -> Thresholds:
        """These thresholds with the given (non-None) ones replaced (CLI options)."""
        known = {f.name for f in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise ConfigError(f"unknown alarm {name!r}; alarms: {', '.join(sorted(known))}")
            if value is not None and value < 0:
                raise ConfigError(f"the {name} alarm threshold must be at least 0, got {value}")
        return replace(self, **{k: v for k, v in values.items() if v is not None})


ENV_NAMES = {
    "cpu_percent": "CAROUD_ALARM_CPU",
    "memory_percent": "CAROUD_ALARM_MEMORY",
    "connections": "CAROUD_ALARM_CONNECTIONS",
    "evictions": "CAROUD_ALARM_EVICTIONS",
    "latency_ms": "CAROUD_ALARM_LATENCY_MS",
}

UNITS = {
    "cpu_percent": " %",
    "memory_percent": " %",
    "connections": "",
    "evictions": "",
    "latency_ms": " ms",
}
DIGITS = {"cpu_percent": 1, "memory_percent": 1, "connections": 0, "evictions": 0, "latency_ms": 3}

WHAT_TO_DO = {
    "cpu_percent": "the engine thread is busy: scale up, or spread the load (see scaling)",
    "memory_percent": "scale up the node type before writes fail with OOM",
    "connections": "look for a connection leak (pool sizes x processes), or scale",
    "evictions": "Redis evicted keys: with an allkeys-* policy queued tickets may be lost; "
    "add memory and set maxmemory-policy to noeviction or volatile-ttl",
    "latency_ms": "commands are slow: look at SLOWLOG and the CPU, then scale up",
}


@dataclass(frozen=True, slots=True)
class Alarm:
    """One alarm's state: its value (None if unknown), threshold, and whether it fires."""

    name: str
    value: float | None
    threshold: float
    firing: bool
    message: str


def evaluate(metrics: Mapping[str, Any], thresholds: Thresholds) -> list[Alarm]:
    """Every alarm of :class:`Thresholds` against ``metrics`` (names as its fields)."""
    alarms: list[Alarm] = []
    for name in ENV_NAMES:
        limit = float(getattr(thresholds, name))
        raw = metrics.get(name)
        value = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else None
        firing = value is not None and value > limit
        unit, digits = UNITS[name], DIGITS[name]
        if value is None:
            message = f"{name} unknown (alarm at > {limit:g}{unit})"
        elif firing:
            message = f"{name} {value:.{digits}f}{unit} > {limit:g}{unit}: {WHAT_TO_DO[name]}"
        else:
            message = f"{name} {value:.{digits}f}{unit} <= {limit:g}{unit}"
        alarms.append(Alarm(name, value, limit, firing, message))
    return alarms


def firing(alarms: list[Alarm]) -> list[Alarm]:
    return [a for a in alarms if a.firing]


# -- scaling ---------------------------------------------------------------------------------

SCALE_UP_ALARMS = ("cpu_percent", "memory_percent", "connections", "latency_ms")


@dataclass(frozen=True, slots=True)
class Trigger:
    """A scaling trigger of the guide: ``scale_up`` or ``scale_out``, and why it is met."""

    kind: str
    name: str
    reason: str


def scaling_triggers(metrics: Mapping[str, Any], alarms: list[Alarm]) -> list[Trigger]:
    """The guide's scale-up and scale-out triggers that ``metrics`` meet now.

    Scale up (a larger node type) when CPU, memory, connections or latency is above
    its threshold. Scale out when a bigger node would not help or redundancy is
    missing: the engine thread is saturated (it runs on one core, whatever the node
    size: a single-node bottleneck), there is no replica (no Multi-AZ failover), or
    the connection count is high (read-only clients belong on read replicas).
    One sample cannot show "consistently": watch (``caroud stats --watch``) or alarm
    over several periods before acting.
    """
    by_name = {a.name: a for a in alarms}
    out = [
        Trigger("scale_up", name, by_name[name].message)
        for name in SCALE_UP_ALARMS
        if name in by_name and by_name[name].firing
    ]
    cpu = by_name.get("cpu_percent")
    if cpu is not None and cpu.firing:
        out.append(
            Trigger(
                "scale_out",
                "single_node_bottleneck",
                "the engine thread is saturated and a larger node does not make one thread "
                "faster: shard (cluster mode spreads game-server pools, one hash tag each; "
                "matchmaking keys share {mm}, one slot, so split deployments by key prefix)",
            )
        )
    if metrics.get("role", "master") == "master" and metrics.get("replicas") == 0:
        out.append(
            Trigger(
                "scale_out",
                "multi_az",
                "no replica: a node failure stops matchmaking and loses queued tickets; add "
                "a replica in another AZ with Multi-AZ automatic failover",
            )
        )
    connections = by_name.get("connections")
    if connections is not None and connections.firing:
        out.append(
            Trigger(
                "scale_out",
                "read_replicas",
                "many connections: move read-only clients (dashboards, ticket status polling) "
                "to read replicas through the reader endpoint",
            )
        )
    return out
