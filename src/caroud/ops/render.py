"""Terminal forms of the doctor's report and of a stats snapshot (JSON forms: ``to_json``)."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from caroud.ops.doctor import DoctorReport
from caroud.ops.stats import StatsSnapshot

LEVEL_STYLE = {"ok": "green", "note": "cyan", "warning": "yellow"}


def doctor_text(report: DoctorReport, strict: bool = False) -> RenderableType:
    """The doctor's report: the test, the server, the findings, or the diagnosis and steps."""
    lines: list[RenderableType] = [Text.from_markup(f"[bold]caroud doctor[/] {escape(report.url)}")]
    rtt = report.test.get("rtt_ms")
    if rtt:
        lines.append(
            Text.from_markup(
                f"[green]PING ok[/]: round trip {rtt['median_ms']:.2f} ms median, "
                f"{rtt['max_ms']:.2f} ms max (first, with connect: {rtt['connect_ms']:.2f} ms)"
            )
        )
    if "set_get_del_ms" in report.test:
        lines.append(
            Text.from_markup(
                f"[green]SET / GET / DEL ok[/] in {report.test['set_get_del_ms']:.2f} ms"
            )
        )
    if report.server:
        s = report.server
        lines.append(
            Text(
                f"server: {s['engine']} {s['version']}, {s['mode']}, {s['role']} with "
                f"{s['replicas']} replica(s), up {s['uptime_s']} s"
            )
        )
    for finding in report.findings:
        style = LEVEL_STYLE.get(finding.level, "white")
        lines.append(
            Text.from_markup(
                f"[{style}]{finding.level:7}[/] [dim]{finding.topic}[/] {escape(finding.text)}"
            )
        )
    if report.diagnosis is not None:
        d = report.diagnosis
        lines.append(Text.from_markup(f"[red bold]FAILED: {escape(d.title)}[/] ({d.case.value})"))
        lines.append(Text(d.error, style="red"))
        lines.append(Text("What to check:", style="bold"))
        lines.extend(Text(f"  {i}. {step}") for i, step in enumerate(d.steps, 1))
    code = report.exit_code(strict)
    verdict = "ok" if code == 0 else f"exit {code}"
    lines.append(Text.from_markup(f"[bold]{verdict}[/] ({len(report.warnings)} warning(s))"))
    return Group(*lines)


def _pct(value: Any) -> str:
    return "?" if value is None else f"{value:.1f} %"


def _num(value: Any, unit: str = "") -> str:
    if value is None:
        return "?"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}{unit}"
    return f"{int(value):,}{unit}"


def _bytes(value: Any) -> str:
    if value is None:
        return "?"
    n = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # unreachable: the loop returns at GiB


def redis_table(r: dict[str, Any]) -> Table:
    table = Table(title="Redis", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("detail", style="dim")
    limit = r.get("memory_limit_source")
    limit_note = (
        "maxmemory is 0: share of the machine's memory"
        if limit == "total_system_memory"
        else f"of {_bytes(r.get('memory_limit_bytes'))} maxmemory"
    )
    table.add_row(
        "memory",
        _pct(r.get("memory_percent")),
        f"{_bytes(r.get('memory_used_bytes'))} {limit_note}",
    )
    table.add_row("engine CPU", _pct(r.get("cpu_percent")), f"{r.get('cpu_source')}, of one core")
    table.add_row("connections", _num(r.get("connections")), "")
    table.add_row(
        "evictions", _num(r.get("evictions")), f"since start; {_num(r.get('evictions_per_s'))}/s"
    )
    hit = r.get("hit_rate")
    table.add_row(
        "cache hit rate",
        "?" if hit is None else f"{100 * hit:.1f} %",
        f"{_num(r.get('hits'))} hits, {_num(r.get('misses'))} misses since start",
    )
    table.add_row(
        "network in / out",
        f"{_bytes(r.get('net_in_per_s'))}/s / {_bytes(r.get('net_out_per_s'))}/s",
        f"{_bytes(r.get('net_in_bytes'))} / {_bytes(r.get('net_out_bytes'))} since start",
    )
    mean, peak = r.get("latency_ms"), r.get("latency_max_ms")
    table.add_row(
        "command latency",
        "?" if mean is None else f"{mean:.3f} ms",
        "no workload commands yet"
        if peak is None
        else f"{r.get('latency_source')}; slowest {r.get('latency_max_command')} {peak:.3f} ms",
    )
    table.add_row("ops/s", _num(r.get("ops_per_s")), "")
    return table


def queues_table(snapshot: StatsSnapshot) -> Table:
    table = Table(title="Queues", header_style="bold")
    for name, justify in (
        ("queue", "left"),
        ("waiting", "right"),
        ("oldest wait", "right"),
        ("matches/min", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for q in snapshot.queues:
        wait = "-" if q.oldest_wait_s is None else f"{q.oldest_wait_s:.1f} s"
        rate = f"{q.matches_per_min:.1f}{' ~' if q.estimated else ''}"
        table.add_row(q.name, str(q.depth), wait, rate)
    return table


def pools_table(snapshot: StatsSnapshot) -> Table:
    table = Table(title="Game-server pools", header_style="bold")
    for name in ("pool", "servers", "slots used", "no capacity", "allocations", "by state"):
        table.add_column(name)
    for p in snapshot.pools:
        states = "; ".join(
            f"{region}: " + ", ".join(f"{n} {s}" for s, n in sorted(by.items()))
            for region, by in sorted(p.servers.items())
        )
        table.add_row(
            p.name,
            str(p.stats.servers),
            f"{p.stats.used}/{p.stats.capacity}",
            str(p.stats.no_capacity),
            str(p.stats.allocations),
            states or "-",
        )
    return table


def alarms_text(snapshot: StatsSnapshot) -> RenderableType:
    lines: list[RenderableType] = []
    for a in snapshot.alarms:
        mark = "[red bold]ALARM[/]" if a.firing else "[green]ok[/]   "
        if a.value is None:
            mark = "[dim]?[/]    "
        lines.append(Text.from_markup(f"{mark} {escape(a.message)}"))
    for t in snapshot.triggers:
        label = "scale up " if t.kind == "scale_up" else "scale out"
        lines.append(Text.from_markup(f"[yellow]{label}[/] [dim]{t.name}[/] {escape(t.reason)}"))
    return Group(*lines)


def stats_view(snapshot: StatsSnapshot) -> RenderableType:
    """Everything of one snapshot, for a one-shot print or a ``rich.live.Live`` refresh."""
    parts: list[RenderableType] = [redis_table(snapshot.redis), queues_table(snapshot)]
    if snapshot.pools:
        parts.append(pools_table(snapshot))
    parts.append(alarms_text(snapshot))
    return Group(*parts)
