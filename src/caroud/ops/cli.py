"""The ``caroud doctor`` and ``caroud stats`` commands: parse options, call the library, exit.

Wired into the ``caroud`` app by ``caroud.cli`` (``app.command()(doctor)``,
``app.command()(stats)``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape

from caroud.context import Context
from caroud.errors import CaroudError, ConfigError
from caroud.matchmaking.queues import QueueRegistry
from caroud.ops.alarms import Thresholds
from caroud.ops.diagnosis import EXIT_CODES, Case, classify, diagnose
from caroud.ops.doctor import DoctorReport, run_doctor
from caroud.ops.render import doctor_text, stats_view
from caroud.ops.stats import StatsCollector, StatsSnapshot, open_pools
from caroud.redis.client import redact_url
from caroud.settings import Settings

EXIT_ALARM = 1
"""``caroud stats --check``: at least one alarm fires."""

Url = Annotated[
    str | None, typer.Option("--url", help="Redis URL (default: CAROUD_REDIS_URL or embedded)")
]
JsonOut = Annotated[bool, typer.Option("--json", help="print JSON instead of text")]
QueuesFile = Annotated[
    Path | None, typer.Option("--queues-file", help="TOML queue definitions (CAROUD_QUEUES_FILE)")
]


def _settings(url: str | None, queues_file: Path | None) -> Settings:
    env = dict(os.environ)
    if url is not None:
        env["CAROUD_REDIS_URL"] = url
    if queues_file is not None:
        env["CAROUD_QUEUES_FILE"] = str(queues_file)
    return Settings.from_env(env)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def doctor(
    url: Url = None,
    json_out: JsonOut = False,
    strict: Annotated[bool, typer.Option(help="exit 1 when there are warnings")] = False,
    timeout: Annotated[
        float | None, typer.Option(help="seconds to wait for the server (CAROUD_CONNECT_TIMEOUT)")
    ] = None,
    queues_file: QueuesFile = None,
) -> None:
    """Test the connection to Redis as the setup guide's step 4 does, then check it.

    PING, SET / GET / DEL of a unique key, round-trip time; then server
    version and kind, TLS, AUTH, maxmemory and eviction policy, persistence,
    and the matchmaker workers. On failure, says which troubleshooting case
    it is and what to check.

    \b
    Exit codes:
      0  ok (warnings are printed; they count only with --strict)
      1  warnings, with --strict
      3  timeout: security group, VPC and subnets, cluster status, same VPC
      4  refused: endpoint, port, cluster running (or the host is unknown)
      5  auth: NOAUTH / WRONGPASS, the AUTH token
      6  oom: the write was refused, maxmemory reached
      7  tls: redis:// against a TLS-only endpoint, rediss:// against a
         plain one, or an untrusted certificate
      8  other: bad URL or settings, cluster-mode or replica endpoint, ...
    """
    try:
        settings = _settings(url, queues_file)
        queues = [q.name for q in QueueRegistry.load(settings.queues_file)]
        report = run_doctor(settings, queues=queues, timeout_s=timeout)
    except ConfigError as e:
        report = DoctorReport(url=redact_url(url) if url else "<configured>")
        report.fail(e)
    if json_out:
        _print_json(report.to_json(strict))
    else:
        Console(soft_wrap=True).print(doctor_text(report, strict), highlight=False)
    raise typer.Exit(report.exit_code(strict))


def stats(
    watch: Annotated[bool, typer.Option(help="refresh in place until Ctrl-C")] = False,
    check: Annotated[bool, typer.Option(help="exit 1 if any alarm fires (cron, CI)")] = False,
    json_out: JsonOut = False,
    url: Url = None,
    interval: Annotated[
        float, typer.Option(min=0.05, help="seconds between the two INFO samples (rates)")
    ] = 1.0,
    refresh: Annotated[
        float, typer.Option(min=0.2, help="seconds between --watch refreshes")
    ] = 2.0,
    pool: Annotated[
        list[str] | None, typer.Option(help="game-server pool to show (repeatable)")
    ] = None,
    alarm_cpu: Annotated[float | None, typer.Option(help="engine CPU % (75)")] = None,
    alarm_memory: Annotated[float | None, typer.Option(help="memory % of maxmemory (85)")] = None,
    alarm_connections: Annotated[float | None, typer.Option(help="connections (50000)")] = None,
    alarm_evictions: Annotated[float | None, typer.Option(help="evicted keys (0)")] = None,
    alarm_latency_ms: Annotated[float | None, typer.Option(help="mean latency, ms (1)")] = None,
    queues_file: QueuesFile = None,
) -> None:
    """The guide's CloudWatch metrics from INFO, matchmaking figures, and the alarms.

    Memory (share of maxmemory), engine CPU, connections, evictions, cache
    hit rate, network in/out, command latency; per queue the waiting
    tickets, oldest wait and matches per minute; per game-server pool the
    no-capacity failures and the servers by state.

    \b
    Alarms (option / env), firing above:
      engine CPU        75 %   --alarm-cpu / CAROUD_ALARM_CPU
      memory            85 %   --alarm-memory / CAROUD_ALARM_MEMORY
      connections      50000   --alarm-connections / CAROUD_ALARM_CONNECTIONS
      evictions (total)    0   --alarm-evictions / CAROUD_ALARM_EVICTIONS
      latency           1 ms   --alarm-latency-ms / CAROUD_ALARM_LATENCY_MS

    \b
    Exit codes: 0 ok, 1 an alarm fires (with --check),
    3-8 Redis failed (the codes of caroud doctor).
    """
    if watch and check:
        raise typer.BadParameter("--watch runs until Ctrl-C; --check takes one look: pick one")
    try:
        settings = _settings(url, queues_file)
        thresholds = Thresholds.from_env(os.environ).override(
            cpu_percent=alarm_cpu,
            memory_percent=alarm_memory,
            connections=alarm_connections,
            evictions=alarm_evictions,
            latency_ms=alarm_latency_ms,
        )
        ctx = Context.build(settings)
        collector = StatsCollector(
            ctx, open_pools(ctx, pool or ["default"]), thresholds, interval_s=interval
        )
        if watch:
            _watch(collector, refresh, json_out)
            raise typer.Exit(0)
        snapshot = collector.snapshot()
    except CaroudError as e:
        _redis_failed(e, url or os.environ.get("CAROUD_REDIS_URL") or "")
    _show(snapshot, json_out)
    raise typer.Exit(EXIT_ALARM if check and snapshot.firing else 0)


def _show(snapshot: StatsSnapshot, json_out: bool) -> None:
    if json_out:
        _print_json(snapshot.to_json())
    else:
        Console(soft_wrap=True).print(stats_view(snapshot))


def _watch(collector: StatsCollector, refresh_s: float, json_lines: bool) -> None:
    """Refresh until Ctrl-C; each refresh's rates cover the time since the previous one."""
    import time

    collector.interval_s = min(collector.interval_s, refresh_s)
    try:
        if json_lines:
            while True:
                sys.stdout.write(json.dumps(collector.snapshot().to_json(), default=str) + "\n")
                sys.stdout.flush()
                time.sleep(refresh_s)
        with Live(stats_view(collector.snapshot()), auto_refresh=False) as live:
            while True:
                time.sleep(refresh_s)
                live.update(stats_view(collector.snapshot()), refresh=True)
    except KeyboardInterrupt:
        return


def _redis_failed(error: CaroudError, url: str) -> NoReturn:
    """One line on stderr, and the doctor's exit code for the case."""
    err = Console(stderr=True, soft_wrap=True, highlight=False)
    if isinstance(error, ConfigError):
        err.print(f"[red]error:[/] {escape(str(error))}")
        raise typer.Exit(EXIT_CODES[Case.OTHER])
    case = classify(error)
    diagnosis = diagnose(case, str(error), redact_url(url) if url else "<embedded>")
    err.print(f"[red]error:[/] {escape(diagnosis.title)}: {escape(str(error))}")
    err.print(f"run `caroud doctor` for the steps (exit {EXIT_CODES[case]})")
    raise typer.Exit(EXIT_CODES[case])


ops_app = typer.Typer(help="Caroud operations: doctor and stats.", no_args_is_help=True)
"""The two commands on their own (``python -m caroud.ops.cli``), for tests and for tools."""
ops_app.command()(doctor)
ops_app.command()(stats)

if __name__ == "__main__":
    ops_app()
