"""Metric derivations over plain ``INFO`` dicts, as redis-py parses them. No I/O, no clock.

These are the setup guide's CloudWatch metrics, computed from what any Redis or
Valkey reports: ``DatabaseMemoryUsagePercentage`` (used memory over ``maxmemory``),
``CurrConnections``, ``Evictions``, ``CacheHits`` / ``CacheMisses``,
``NetworkBytesIn/Out``, ``EngineCPUUtilization`` (CPU seconds of the server's main
thread over wall time, from two samples) and command latency (``INFO commandstats``).

Counters in ``INFO`` grow from the server's start (or ``CONFIG RESETSTAT``); a rate
needs two samples and the seconds between them. A counter that went down between
two samples means the server restarted: the rate is then unknown (None), not negative.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Info = Mapping[str, Any]
"""One ``INFO all`` reply as redis-py parses it (``cmdstat_<name>`` entries are dicts)."""

ADMIN_COMMANDS = frozenset(
    {"info", "hello", "auth", "ping", "select", "scan", "time", "quit", "reset", "monitor"}
)
"""Commands left out of the latency figure: the monitoring's own calls, not the workload."""
ADMIN_FAMILIES = ("config|", "client|", "cluster|", "command|", "latency|", "slowlog|", "memory|")


def number(info: Info, key: str) -> float | None:
    """``info[key]`` as a float, or None if the server does not report it."""
    value = info.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def delta(before: Info | None, after: Info, key: str) -> float | None:
    """How much counter ``key`` grew between two samples; None if unknown or it went down."""
    if before is None:
        return None
    a, b = number(before, key), number(after, key)
    if a is None or b is None or b < a:
        return None
    return b - a


def rate(before: Info | None, after: Info, key: str, elapsed_s: float) -> float | None:
    """Per-second growth of counter ``key`` between two samples ``elapsed_s`` apart."""
    grown = delta(before, after, key)
    if grown is None or elapsed_s <= 0:
        return None
    return grown / elapsed_s


# -- memory ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryUsage:
    """Used memory against its limit; ``limit_source`` says which limit was used."""

    used_bytes: int
    limit_bytes: int | None
    limit_source: str | None  # "maxmemory", "total_system_memory" or None (unknown)

    @property
    def percent(self) -> float | None:
        if not self.limit_bytes:
            return None
        return 100.0 * self.used_bytes / self.limit_bytes


def memory_usage(info: Info) -> MemoryUsage:
    """``used_memory`` over ``maxmemory``, or over the machine's memory if maxmemory is 0."""
    used = int(number(info, "used_memory") or 0)
    maxmemory = int(number(info, "maxmemory") or 0)
    if maxmemory > 0:
        return MemoryUsage(used, maxmemory, "maxmemory")
    system = int(number(info, "total_system_memory") or 0)
    if system > 0:
        return MemoryUsage(used, system, "total_system_memory")
    return MemoryUsage(used, None, None)


# -- cache hits ------------------------------------------------------------------------------


def hit_rate(hits: float | None, misses: float | None) -> float | None:
    """``hits / (hits + misses)`` in [0, 1]; None when there were no lookups."""
    if hits is None or misses is None or hits < 0 or misses < 0 or hits + misses == 0:
        return None
    return hits / (hits + misses)


# -- engine CPU ------------------------------------------------------------------------------

MAIN_THREAD = ("used_cpu_sys_main_thread", "used_cpu_user_main_thread")
PROCESS = ("used_cpu_sys", "used_cpu_user")


def cpu_seconds(info: Info, fields: tuple[str, str]) -> float | None:
    sys_s, user_s = number(info, fields[0]), number(info, fields[1])
    if sys_s is None or user_s is None:
        return None
    return sys_s + user_s


def cpu_percent(before: Info, after: Info, elapsed_s: float) -> tuple[float | None, str]:
    """Engine CPU in % of one core between two samples, and what it measured.

    The main thread's CPU (``used_cpu_*_main_thread``, Redis >= 6.2 and Valkey) is what
    ElastiCache calls EngineCPUUtilization: commands run on that one thread, so 100 %
    is the most the engine can do whatever the node's core count. Without those fields,
    the whole process's CPU is used (``"process"``).
    """
    for fields, source in ((MAIN_THREAD, "main thread"), (PROCESS, "process")):
        a, b = cpu_seconds(before, fields), cpu_seconds(after, fields)
        if a is not None and b is not None:
            if elapsed_s <= 0 or b < a:
                return None, source
            return 100.0 * (b - a) / elapsed_s, source
    return None, "unknown"


# -- command latency -------------------------------------------------------------------------


def is_admin(command: str) -> bool:
    return command in ADMIN_COMMANDS or command.startswith(ADMIN_FAMILIES)


def command_totals(info: Info) -> dict[str, tuple[float, float]]:
    """``{command: (calls, usec)}`` from the ``cmdstat_*`` entries, admin commands left out."""
    out: dict[str, tuple[float, float]] = {}
    for key, value in info.items():
        if not key.startswith("cmdstat_") or not isinstance(value, Mapping):
            continue
        command = key.removeprefix("cmdstat_")
        calls, usec = value.get("calls"), value.get("usec")
        if is_admin(command) or calls is None or usec is None:
            continue
        out[command] = (float(calls), float(usec))
    return out


@dataclass(frozen=True, slots=True)
class Latency:
    """Server-side command latency: the call-weighted mean, and the slowest command's mean."""

    mean_ms: float | None
    max_ms: float | None
    max_command: str | None
    calls: int
    source: str  # "interval" (between two samples) or "since start"


def command_latency(before: Info | None, after: Info) -> Latency:
    """Latency of the workload from ``INFO commandstats`` (usec per call, weighted by calls).

    With two samples the figures cover what ran between them; when nothing ran (or
    there is one sample) they cover everything since the server started. This is the
    time the server spent executing a command, not the network round trip.
    """
    now = command_totals(after)
    if before is not None:
        then = command_totals(before)
        interval = {
            cmd: (calls - then.get(cmd, (0.0, 0.0))[0], usec - then.get(cmd, (0.0, 0.0))[1])
            for cmd, (calls, usec) in now.items()
        }
        interval = {c: v for c, v in interval.items() if v[0] > 0 and v[1] >= 0}
        if interval:
            return _latency(interval, "interval")
    return _latency({c: v for c, v in now.items() if v[0] > 0}, "since start")


def _latency(totals: Mapping[str, tuple[float, float]], source: str) -> Latency:
    calls = sum(c for c, _ in totals.values())
    if calls <= 0:
        return Latency(None, None, None, 0, source)
    usec = sum(u for _, u in totals.values())
    slowest = max(totals, key=lambda c: (totals[c][1] / totals[c][0], c))
    max_usec = totals[slowest][1] / totals[slowest][0]
    return Latency(usec / calls / 1000.0, max_usec / 1000.0, slowest, int(calls), source)


# -- all of it -------------------------------------------------------------------------------


def redis_metrics(before: Info | None, after: Info, elapsed_s: float) -> dict[str, Any]:
    """Every figure of ``caroud stats`` for Redis, as a plain dict (``before`` may be None).

    Keys: memory_used_bytes, memory_limit_bytes, memory_limit_source, memory_percent,
    connections, evictions (total since start), evictions_per_s, hits, misses, hit_rate
    (since start), hits_per_s, misses_per_s, net_in_bytes, net_out_bytes, net_in_per_s,
    net_out_per_s, cpu_percent, cpu_source, latency_ms, latency_max_ms,
    latency_max_command, latency_source, ops_per_s, replicas, role, uptime_s, interval_s.
    """
    memory = memory_usage(after)
    cpu, cpu_source = cpu_percent(before, after, elapsed_s) if before else (None, "one sample")
    latency = command_latency(before, after)
    hits, misses = number(after, "keyspace_hits"), number(after, "keyspace_misses")
    return {
        "memory_used_bytes": memory.used_bytes,
        "memory_limit_bytes": memory.limit_bytes,
        "memory_limit_source": memory.limit_source,
        "memory_percent": memory.percent,
        "connections": number(after, "connected_clients"),
        "evictions": number(after, "evicted_keys"),
        "evictions_per_s": rate(before, after, "evicted_keys", elapsed_s),
        "hits": hits,
        "misses": misses,
        "hit_rate": hit_rate(hits, misses),
        "hits_per_s": rate(before, after, "keyspace_hits", elapsed_s),
        "misses_per_s": rate(before, after, "keyspace_misses", elapsed_s),
        "net_in_bytes": number(after, "total_net_input_bytes"),
        "net_out_bytes": number(after, "total_net_output_bytes"),
        "net_in_per_s": rate(before, after, "total_net_input_bytes", elapsed_s),
        "net_out_per_s": rate(before, after, "total_net_output_bytes", elapsed_s),
        "cpu_percent": cpu,
        "cpu_source": cpu_source,
        "latency_ms": latency.mean_ms,
        "latency_max_ms": latency.max_ms,
        "latency_max_command": latency.max_command,
        "latency_source": latency.source,
        "ops_per_s": number(after, "instantaneous_ops_per_sec"),
        "replicas": number(after, "connected_slaves"),
        "role": after.get("role"),
        "uptime_s": number(after, "uptime_in_seconds"),
        "interval_s": elapsed_s if before is not None else None,
    }
