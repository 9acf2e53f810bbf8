"""The ``caroud`` command line: parses arguments and calls library functions, nothing more."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from caroud.context import Context
from caroud.errors import CaroudError
from caroud.infra.cli import infra_app
from caroud.logs import configure_logging
from caroud.ops.cli import doctor, stats
from caroud.settings import Settings

app = typer.Typer(help="Caroud matchmaking and game-server pooling on Redis.", no_args_is_help=True)
ticket_app = typer.Typer(help="Queue, inspect and cancel tickets.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks (figures go to docs/benchmarks.md).", no_args_is_help=True)
app.add_typer(ticket_app, name="ticket")
app.add_typer(bench_app, name="bench")
app.add_typer(infra_app, name="infra")
player_app = typer.Typer(help="Players of the HTTP API (each with a token).", no_args_is_help=True)
server_key_app = typer.Typer(help="Keys for game servers on the HTTP API.", no_args_is_help=True)
app.add_typer(player_app, name="player")
app.add_typer(server_key_app, name="server-key")
err = Console(stderr=True)

QueuesFile = Annotated[
    Path | None, typer.Option("--queues-file", help="TOML queue definitions (CAROUD_QUEUES_FILE)")
]


def _context(queues_file: Path | None = None) -> Context:
    settings = Settings.from_env()
    if queues_file is not None:
        settings = Settings.from_mapping({"CAROUD_QUEUES_FILE": str(queues_file)} | _env())
    return Context.build(settings)


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


@app.command()
def worker(
    tick: Annotated[float | None, typer.Option(help="seconds between cycles")] = None,
    queue: Annotated[list[str] | None, typer.Option(help="work only these queues")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
    metrics_port: Annotated[
        int | None, typer.Option(help="serve Prometheus /metrics on this port")
    ] = None,
    queues_file: QueuesFile = None,
) -> None:
    """Run matchmaking cycles for all queues until SIGTERM or Ctrl-C."""
    from caroud.matchmaking.worker import Worker

    configure_logging(log_level)
    ctx = _context(queues_file)
    metrics = None
    if metrics_port is not None:
        from caroud.ops.metrics import start_worker_metrics

        metrics = start_worker_metrics(metrics_port, ctx, [ctx.pool]).metrics
    w = Worker(
        ctx.matchmaking,
        tick_s=tick,
        queue_names=queue,
        assigner=ctx.assigner,
        metrics=metrics,
    )
    w.install_signal_handlers()
    w.run()


@app.command()
def demo(
    rate: Annotated[float, typer.Option(help="tickets per second")] = 40.0,
    duration: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
    queues_file: QueuesFile = None,
) -> None:
    """A worker plus simulated players, so you can watch matches form (Ctrl-C stops)."""
    from caroud.demo import DemoTotals, run_load, run_servers
    from caroud.matchmaking.worker import Worker

    configure_logging("info")
    ctx = _context(queues_file)
    w = Worker(ctx.matchmaking, assigner=ctx.assigner)
    stop = threading.Event()
    w.install_signal_handlers()
    thread = threading.Thread(target=w.run, name="worker", daemon=True)
    thread.start()
    err.print(
        f"[bold]caroud demo[/]: {rate:g} tickets/s over {len(ctx.queues)} queues; Ctrl-C stops"
    )

    def report(t: DemoTotals) -> None:
        depth = {q.name: ctx.matchmaking.count(q.name) for q in ctx.queues}
        pool = ctx.pool.stats()
        err.print(
            f"[dim]enqueued={t.enqueued} matches={w.totals.matches} assigned={w.totals.assigned} "
            f"slots={pool.used}/{pool.capacity} timed_out={w.totals.timed_out} waiting={depth}[/]"
        )

    servers = threading.Thread(target=run_servers, args=(_context(queues_file), stop))
    servers.start()
    loader = threading.Thread(target=run_load, args=(ctx.matchmaking, rate, stop, report))
    loader.start()
    started = time.monotonic()
    try:
        while thread.is_alive() and (duration is None or time.monotonic() - started < duration):
            thread.join(0.2)
    except KeyboardInterrupt:
        pass
    stop.set()
    w.stop()
    loader.join()
    servers.join()
    thread.join()


app.command()(doctor)
app.command()(stats)


@app.command()
def queues(queues_file: QueuesFile = None) -> None:
    """The configured queues: waiting tickets and the quality of the newest matches (JSON)."""
    ctx = _context(queues_file)
    now = ctx.matchmaking.server_time()
    quality = ctx.matchmaking.recent_quality([q.name for q in ctx.queues])
    out = []
    for q in ctx.queues:
        oldest = ctx.matchmaking.oldest_created(q.name)
        out.append(
            {
                "name": q.name,
                "shape": f"{q.teams}x{q.team_size}",
                "party_sizes": list(q.party_sizes),
                "regions": list(q.regions),
                "waiting": ctx.matchmaking.count(q.name),
                "oldest_wait_s": round(now - oldest, 3) if oldest is not None else None,
                "window": dataclasses.asdict(q.window),
                "recent_matches": dataclasses.asdict(quality[q.name]),
            }
        )
    _print_json(out)


def _ticket_json(ctx: Context, ticket_id: str) -> dict[str, Any]:
    t = ctx.matchmaking.get(ticket_id)
    return {
        "id": t.id,
        "queue": t.queue,
        "status": t.status.value,
        "players": [{"id": p.id, "rating": p.rating} for p in t.players],
        "latencies": dict(t.latencies),
        "created_at": t.created_at,
        "match_id": t.match_id,
        "team": t.team,
    }


@ticket_app.command("enqueue")
def ticket_enqueue(
    queue: Annotated[str, typer.Argument(help="queue name")],
    players: Annotated[list[str], typer.Argument(help="PLAYER=RATING, one per party member")],
    latency: Annotated[list[str] | None, typer.Option(help="REGION=MS, repeatable")] = None,
    queues_file: QueuesFile = None,
) -> None:
    """Queue a player or a party."""
    from caroud.errors import ValidationError

    def pair(text: str, what: str) -> tuple[str, float]:
        name, sep, value = text.partition("=")
        try:
            if not sep:
                raise ValueError
            return name, float(value)
        except ValueError:
            raise ValidationError(what, f"expected NAME=NUMBER, got {text!r}") from None

    ctx = _context(queues_file)
    entries = [pair(p, "players") for p in players]
    latencies = dict(pair(x, "latency") for x in latency or [])
    ticket = ctx.matchmaking.enqueue(queue, entries, latencies)
    _print_json(_ticket_json(ctx, ticket.id))


@ticket_app.command("get")
def ticket_get(ticket_id: str) -> None:
    """Show a ticket."""
    _print_json(_ticket_json(_context(), ticket_id))


@ticket_app.command("cancel")
def ticket_cancel(ticket_id: str) -> None:
    """Cancel a queued ticket."""
    ctx = _context()
    ctx.matchmaking.cancel(ticket_id)
    _print_json(_ticket_json(ctx, ticket_id))


@app.command()
def events(
    follow: Annotated[bool, typer.Option(help="keep printing new events")] = False,
    queues_file: QueuesFile = None,
) -> None:
    """Print ticket events of every queue as JSON lines (the last 20 per queue, or --follow)."""
    from caroud.events import EventReader

    ctx = _context(queues_file)
    names = [q.name for q in ctx.queues]
    reader = EventReader(ctx.client, ctx.keys, names, start="$" if follow else "0-0")
    while True:
        batch = reader.read(block_ms=1000 if follow else None, count=20)
        for e in batch:
            sys.stdout.write(json.dumps(dataclasses.asdict(e)) + "\n")
        sys.stdout.flush()
        if not follow and not batch:
            return


@app.command()
def servers(
    region: Annotated[str | None, typer.Option(help="only this region")] = None,
    queues_file: QueuesFile = None,
) -> None:
    """The game-server pool: every server with its load, and the pool's counters (JSON)."""
    ctx = _context(queues_file)
    listed = [dataclasses.asdict(s) for s in ctx.pool.list_servers(region)]
    _print_json({"stats": dataclasses.asdict(ctx.pool.stats()), "servers": listed})


@app.command("match")
def match_get(match_id: str, queues_file: QueuesFile = None) -> None:
    """Show a match: its teams, server and result (JSON)."""
    _print_json(dataclasses.asdict(_context(queues_file).matches.get(match_id)))


@bench_app.command("pool")
def bench_pool(
    duration: Annotated[float, typer.Option(help="seconds to run")] = 10.0,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Allocations per second and latency against 1,000 registered servers."""
    from caroud.bench.pool import print_pool_table, run_pool_benchmark

    result = run_pool_benchmark(Settings.from_env(), duration_s=duration)
    if json_out:
        _print_json(result)
    else:
        print_pool_table(result)


@bench_app.command("matchmaking")
def bench_matchmaking(
    duration: Annotated[float, typer.Option(help="seconds per phase")] = 5.0,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    workers: Annotated[int, typer.Option(help="worker processes for the drain phase")] = 1,
) -> None:
    """Enqueue rate, match rate, latency, memory per ticket, longest Redis call, double matches."""
    from caroud.bench.matchmaking import print_table, run_benchmark

    result = run_benchmark(Settings.from_env(), duration_s=duration, workers=workers)
    if json_out:
        _print_json(result)
    else:
        print_table(result)


@bench_app.command("quality")
def bench_quality(
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    seed: Annotated[int, typer.Option(help="the simulated population's seed")] = 1,
    scenario: Annotated[
        list[str] | None, typer.Option(help="run only this scenario (repeatable)")
    ] = None,
) -> None:
    """Match quality of simulated populations against the offline optimum and the targets."""
    from caroud.bench.quality import print_quality_table, run_quality_benchmark

    result = run_quality_benchmark(Settings.from_env(), seed=seed, names=scenario)
    if json_out:
        _print_json(result)
    else:
        print_quality_table(result)


@app.command("up")
def up_command(
    host: Annotated[str, typer.Option(help="address the web server listens on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port of the web server")] = 8000,
    demo: Annotated[
        bool, typer.Option(help="also simulated players and game servers on the API")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="web server (uvicorn) processes")] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "warning",
) -> None:
    """The whole backend: web server, matchmaker, WebSocket relay, ratings (Ctrl-C stops)."""
    from caroud.web.up import UpOptions, up

    configure_logging(log_level)
    options = UpOptions(host=host, port=port, workers=workers, demo=demo, log_level=log_level)
    raise typer.Exit(up(options))


@app.command()
def relay(
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
) -> None:
    """Push ticket events to the players' WebSockets (`caroud up` runs one); SIGTERM stops."""
    from caroud.web.cli import setup_django

    setup_django()  # before the relay's imports: they include Django models
    from caroud.web.relay import run_relay

    configure_logging(log_level)
    run_relay()


@player_app.command("create")
def player_create(
    name: Annotated[str, typer.Argument(help="a unique name")],
    rating: Annotated[float | None, typer.Option(help="starting rating (default 1500)")] = None,
) -> None:
    """Create a player: prints {"id", "token"} (the token is shown only now)."""
    from caroud.web.cli import player_create as create

    _print_json(create(name, rating))


@server_key_app.command("create")
def server_key_create(name: Annotated[str, typer.Argument(help="a unique name")]) -> None:
    """Create a key for game servers: prints {"key"} (shown only now)."""
    from caroud.web.cli import server_key_create as create

    _print_json(create(name))


@bench_app.command("api")
def bench_api(
    duration: Annotated[float, typer.Option(help="seconds of load")] = 10.0,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    connections: Annotated[int, typer.Option(help="concurrent keep-alive connections")] = 64,
    server_workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 2,
    client: Annotated[str, typer.Option(help="load generator: raw or httpx")] = "raw",
    push_duration: Annotated[float, typer.Option(help="seconds of the push phase")] = 5.0,
) -> None:
    """Ticket creations per second over HTTP against uvicorn, and WebSocket push latency."""
    from caroud.bench.api import print_api_table, run_api_benchmark

    result = run_api_benchmark(
        duration_s=duration,
        connections=connections,
        server_workers=server_workers,
        client=client,
        push_duration_s=push_duration,
    )
    if json_out:
        _print_json(result)
    else:
        print_api_table(result)


@app.command()
def chaos(
    duration: Annotated[
        float, typer.Option(help="seconds of faults (whole cycles of about 90 s; at least one)")
    ] = 90.0,
    as_json: Annotated[bool, typer.Option("--json", help="the report as JSON")] = False,
    keep: Annotated[
        Path | None, typer.Option(help="keep the run's folder (logs, AOF, database) here")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "warning",
) -> None:
    """The fault suite: the backend as real processes, faults injected, an independent audit.

    Exit code 0 when every figure is at its target, 1 otherwise.
    """
    from caroud.chaos.render import print_report
    from caroud.chaos.run import ChaosOptions, run_chaos

    configure_logging(log_level)
    report = run_chaos(ChaosOptions(duration_s=duration, keep=keep))
    if as_json:
        _print_json(report.as_json())
    else:
        print_report(report)
    raise typer.Exit(0 if report.ok else 1)


def main() -> None:
    """Entry point: Caroud errors become one red line and exit code 1, never a traceback."""
    try:
        app()
    except CaroudError as e:
        err.print(f"[red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
