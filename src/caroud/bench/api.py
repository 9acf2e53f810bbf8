"""``caroud bench api``: ticket creations per second over HTTP, and WebSocket push latency.

Everything runs on this machine, as ``caroud up`` would: a fresh embedded Valkey
and a fresh SQLite database in a temporary directory (``DATABASE_URL`` is used if
set), uvicorn serving ``caroud.project.asgi:application`` with ``server_workers``
processes, and the load generator in this process: an asyncio ``httpx`` client
with ``connections`` keep-alive connections that sends ``POST /api/v1/tickets`` as
fast as the server answers. Each request is from a different player (made up
front, straight into the database), so no player is ever busy or rate limited and
no ticket has to be cancelled: every request is a full creation (token lookup,
rate-limit count, enqueue script, the ticket's JSON). The load generator shares the
machine's cores with the server; its figures are what the two together reach.

The push phase then runs the relay (a thread here) with ``push_clients`` players
connected to ``/ws/matchmaking``, each queueing and cancelling a ticket about once
a second; a push's latency is from the event's stream id (Redis's clock when the
change was made) to its arrival at the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table

from caroud.errors import ConfigError

Result = dict[str, Any]
QUEUE = "ranked-1v1"
WARMUP_S = 1.0
PLAYERS_PER_S = 3000
"""Players made per second of load (one per request): past what the server can take."""


@dataclass
class Load:
    """What the load generator saw."""

    latencies_ms: list[float] = field(default_factory=list)
    ok: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    exhausted: bool = False

    def record(self, elapsed_ms: float, kind: str) -> None:
        self.latencies_ms.append(elapsed_ms)
        if kind == "ok":
            self.ok += 1
        else:
            self.errors += 1
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of ``values`` (0 if empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


@contextmanager
def bench_environment(tmp: Path) -> Iterator[str]:
    """This process's environment for a fresh backend in ``tmp``; the Redis URL."""
    from caroud.redis.embedded import embedded_url, stop_embedded

    if "django" in sys.modules and _django_ready():
        raise ConfigError("caroud bench api must run in its own process (Django is set up here)")
    data_dir = tmp / "data"
    url = embedded_url(data_dir)
    os.environ["CAROUD_DATA_DIR"] = str(data_dir)
    os.environ["CAROUD_REDIS_URL"] = url
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'bench.sqlite3'}")
    try:
        yield url
    finally:
        stop_embedded(data_dir)


def _django_ready() -> bool:
    from django.apps import apps

    return bool(apps.ready)


def make_players(count: int) -> list[tuple[str, str]]:
    """``count`` players straight into the database (bulk); their (id, token)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from caroud.web.auth import PLAYER_TOKEN_PREFIX, new_token, token_hash
    from caroud.web.models import Player, new_player_id

    user_model = get_user_model()
    unusable = make_password(None)
    start = user_model.objects.count()
    users = user_model.objects.bulk_create(
        [user_model(username=f"bench{start + i}", password=unusable) for i in range(count)],
        batch_size=2000,
    )
    tokens = [new_token(PLAYER_TOKEN_PREFIX) for _ in users]
    players = [
        Player(user=u, public_id=new_player_id(), token_hash=token_hash(t))
        for u, t in zip(users, tokens, strict=True)
    ]
    Player.objects.bulk_create(players, batch_size=2000)
    return [(p.public_id, t) for p, t in zip(players, tokens, strict=True)]


@dataclass
class Server:
    """The uvicorn under test: its URL and process."""

    base_url: str
    proc: subprocess.Popen[bytes]

    def cpu_s(self) -> float:
        """CPU seconds used so far by uvicorn and its worker processes (from /proc)."""
        return sum(_cpu_s(pid) for pid in [self.proc.pid, *_children(self.proc.pid)])


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def uvicorn_server(port: int, workers: int) -> Iterator[Server]:
    """uvicorn with ``workers`` processes on ``port``, until the block ends."""
    from caroud.web.up import UpOptions, stop_process, uvicorn_command, wait_ready

    options = UpOptions(port=port, workers=workers)
    proc = subprocess.Popen(uvicorn_command(options), env=dict(os.environ))
    try:
        wait_ready(options.base_url + "/healthz", proc)
        yield Server(options.base_url, proc)
    finally:
        stop_process(proc)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the HTTP load ----------------------------------------------------------------------------


async def offer_load(
    base_url: str, tokens: list[str], connections: int, warmup_s: float, duration_s: float
) -> tuple[Load, float]:
    """POST tickets from ``connections`` concurrent clients; what was seen, and the window (s)."""
    import httpx

    load = Load()
    supply = iter(tokens)
    body = json.dumps({"queue": QUEUE}).encode()
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    loop = asyncio.get_running_loop()
    started = loop.time()
    measure_from = started + warmup_s
    until = measure_from + duration_s

    async def client(http: httpx.AsyncClient) -> None:
        while (now := loop.time()) < until:
            token = next(supply, None)
            if token is None:
                load.exhausted = True
                return
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            t0 = time.perf_counter()
            try:
                r = await http.post("/api/v1/tickets", content=body, headers=headers)
                kind = "ok" if r.status_code == 201 else f"http_{r.status_code}"
            except httpx.HTTPError as e:
                kind = type(e).__name__
            if now >= measure_from:
                load.record((time.perf_counter() - t0) * 1000, kind)

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as http:
        await asyncio.gather(*(client(http) for _ in range(connections)))
    window = min(loop.time(), until) - measure_from
    return load, window


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client connection: requests out, status and body back.

    The load generator's own cost is what limits it on a small machine: httpx spends
    more CPU per request than the server does, so the default client writes the
    request bytes itself and reads a ``Content-Length`` response (which Django always
    sends). ``--client httpx`` measures with httpx instead.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def post(self, path: str, host: str, token: str, body: bytes) -> int:
        self.writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def offer_raw_load(
    base_url: str, tokens: list[str], connections: int, warmup_s: float, duration_s: float
) -> tuple[Load, float]:
    """As :func:`offer_load`, with :class:`RawConnection` clients."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    load = Load()
    supply = iter(tokens)
    body = json.dumps({"queue": QUEUE}).encode()
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + warmup_s
    until = measure_from + duration_s

    async def client() -> None:
        conn = await RawConnection.open(host, port)
        try:
            while (now := loop.time()) < until:
                token = next(supply, None)
                if token is None:
                    load.exhausted = True
                    return
                t0 = time.perf_counter()
                try:
                    status = await conn.post("/api/v1/tickets", f"{host}:{port}", token, body)
                    kind = "ok" if status == 201 else f"http_{status}"
                except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                    kind = type(e).__name__
                    await conn.close()
                    conn = await RawConnection.open(host, port)
                if now >= measure_from:
                    load.record((time.perf_counter() - t0) * 1000, kind)
        finally:
            await conn.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    return load, min(loop.time(), until) - measure_from


# -- the push latency -------------------------------------------------------------------------


async def measure_pushes(
    base_url: str, accounts: list[tuple[str, str]], duration_s: float
) -> list[float]:
    """Each account: connect, then queue and cancel a ticket every second; push lags (ms)."""
    import httpx
    from websockets.asyncio.client import connect

    ws_url = base_url.replace("http", "ws", 1) + "/ws/matchmaking"
    lags: list[float] = []
    loop = asyncio.get_running_loop()
    until = loop.time() + duration_s

    async def player(http: httpx.AsyncClient, token: str, offset: float) -> None:
        auth = {"Authorization": f"Bearer {token}"}
        async with connect(ws_url, additional_headers=auth) as ws:
            await ws.recv()  # the current state
            await asyncio.sleep(offset)
            while loop.time() < until:
                next_at = loop.time() + 1.0
                r = await http.post("/api/v1/tickets", json={"queue": QUEUE}, headers=auth)
                if r.status_code != 201:
                    await asyncio.sleep(1.0)
                    continue
                await _lag_of(ws, "queued", lags)
                await http.delete(f"/api/v1/tickets/{r.json()['id']}", headers=auth)
                await _lag_of(ws, "cancelled", lags)
                await asyncio.sleep(max(next_at - loop.time(), 0.0))

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        n = len(accounts)
        await asyncio.gather(*(player(http, t, i / n) for i, (_, t) in enumerate(accounts)))
    return lags


async def _lag_of(ws: Any, event: str, lags: list[float]) -> None:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame["event"] == event:
            lags.append(time.time() * 1000 - int(frame["event_id"].partition("-")[0]))
            return


@contextmanager
def relay_thread() -> Iterator[None]:
    from caroud.web.apps import get_context
    from caroud.web.relay import Relay

    relay = Relay(get_context(), block_ms=200)
    relay.ensure_groups()
    thread = threading.Thread(target=relay.run, name="relay", daemon=True)
    thread.start()
    try:
        yield
    finally:
        relay.stop()
        thread.join(5)


# -- the whole ------------------------------------------------------------------------------


def run_api_benchmark(
    duration_s: float = 10.0,
    connections: int = 64,
    server_workers: int = 2,
    push_clients: int = 50,
    push_duration_s: float = 5.0,
    client: str = "raw",
) -> Result:
    """Run both phases against a fresh backend; the figures (see the module docstring)."""
    with TemporaryDirectory(prefix="caroud-bench-api-") as tmp, bench_environment(Path(tmp)):
        from caroud.web.cli import migrate

        migrate()
        accounts = make_players(int(PLAYERS_PER_S * (duration_s + WARMUP_S)) + push_clients)
        push_accounts, load_accounts = accounts[:push_clients], accounts[push_clients:]
        load_before = os.getloadavg()
        with uvicorn_server(free_port(), server_workers) as server:
            base = server.base_url
            cpu0, client0 = server.cpu_s(), time.process_time()
            offer = offer_raw_load if client == "raw" else offer_load
            load, window = asyncio.run(
                offer(base, [t for _, t in load_accounts], connections, WARMUP_S, duration_s)
            )
            server_cpu, client_cpu = server.cpu_s() - cpu0, time.process_time() - client0
            load_during = os.getloadavg()
            with relay_thread():
                lags = asyncio.run(measure_pushes(base, push_accounts, push_duration_s))
    return {
        "requests_per_s": round(load.ok / window, 1) if window > 0 else 0.0,
        "p50_ms": round(percentile(load.latencies_ms, 0.50), 2),
        "p99_ms": round(percentile(load.latencies_ms, 0.99), 2),
        "errors": load.errors,
        "error_kinds": load.error_kinds,
        "requests": load.ok + load.errors,
        "duration_s": round(window, 2),
        "players_ran_out": load.exhausted,
        "connections": connections,
        "client": client,
        "server_workers": server_workers,
        "push_p50_ms": round(percentile(lags, 0.50), 2),
        "push_p99_ms": round(percentile(lags, 0.99), 2),
        "pushes": len(lags),
        "server_cpu_ms_per_request": round(server_cpu * 1000 / max(load.ok + load.errors, 1), 2),
        "client_cpu_ms_per_request": round(client_cpu * 1000 / max(load.ok + load.errors, 1), 2),
        "cpus": os.cpu_count(),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after_http": [round(x, 2) for x in load_during],
    }


def print_api_table(result: Result, console: Console | None = None) -> None:
    """The figures as a table, with the targets."""
    table = Table(title="HTTP API benchmark (POST /api/v1/tickets)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("note")
    notes = {
        "requests_per_s": "target ≥ 2,000",
        "p99_ms": "target ≤ 50",
        "push_p50_ms": "event written → frame received",
        "push_p99_ms": "target ≤ 100",
    }
    for name, value in result.items():
        shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        table.add_row(name, str(shown), notes.get(name, ""))
    (console or Console()).print(table)
