"""``caroud up``: the whole backend on one machine, and ``make run``.

What runs, and where::

    caroud up (this process: supervisor)
    ├── valkey keeper   (only with no CAROUD_REDIS_URL) its own session, so a Ctrl-C at the
    │   └── valkey-server    terminal leaves Redis up until everything else has stopped
    ├── uvicorn         caroud.project.asgi:application, N worker processes (--workers),
    │                   logging at --log-level with tokens redacted (caroud.web.accesslog)
    └── threads here    the matchmaker worker (with server assignment), the WebSocket
                        relay, the results applier, and with --demo the simulated
                        players and game servers (on the public HTTP API and WebSocket)

Start: the embedded Valkey (once, shared by every process through
``CAROUD_REDIS_URL``), the database migrations, uvicorn (waiting for ``/healthz``),
then the threads; then the URLs are printed. SIGINT or SIGTERM stops it all in
reverse order and returns 0; a part that dies on its own stops the rest and
returns 1. The keeper stops Valkey when its stdin closes, so even a killed
supervisor leaves no Redis behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from caroud.errors import ConfigError
from caroud.logs import configure_logging
from caroud.settings import Settings

log = logging.getLogger("caroud.up")

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
DEFAULT_DEMO_PLAYERS = 26
UVICORN_LOG_CONFIG = "uvicorn-logging.json"
"""In the data directory: uvicorn's logging with the token filter, rewritten at each start."""


@dataclass(frozen=True, slots=True)
class UpOptions:
    """What ``caroud up`` was asked for."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    demo: bool = False
    demo_players: int = DEFAULT_DEMO_PLAYERS
    log_level: str = "warning"

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"


# -- the embedded Valkey, kept by a child in its own session -------------------------------


def start_keeper(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """Start the keeper of the embedded Valkey of ``data_dir``; it and the server's URL."""
    keeper = subprocess.Popen(
        [sys.executable, "-m", "caroud.web.up", "--keep-valkey", str(data_dir.resolve())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert keeper.stdout is not None
    ready, _, _ = select.select([keeper.stdout], [], [], READY_TIMEOUT_S)
    line = keeper.stdout.readline().strip() if ready else ""
    if not line.startswith(("redis://", "unix://")):
        stop_process(keeper, close_stdin=True)
        raise ConfigError(f"the embedded Valkey did not start (data in {data_dir}/valkey)")
    return keeper, line


def keep_valkey(data_dir: Path) -> None:
    """The keeper: start (or find) the embedded server, print its URL, stop it on stdin EOF."""
    from caroud.redis.embedded import embedded_url, stop_embedded

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        sys.stdout.write(embedded_url(data_dir) + "\n")
        sys.stdout.flush()
        sys.stdin.read()  # until the supervisor closes it (or dies)
    finally:
        stop_embedded(data_dir)


def stop_process(proc: subprocess.Popen[Any], close_stdin: bool = False) -> int | None:
    """Ask ``proc`` to stop (stdin EOF or SIGTERM), kill it after the timeout; its exit code."""
    if close_stdin and proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    elif proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(STOP_TIMEOUT_S)


# -- the web server ---------------------------------------------------------------------------


ACCESS_LOG_LEVELS = frozenset({"info", "debug", "trace"})
"""uvicorn writes its access lines at INFO: below these levels they are never printed."""


def uvicorn_command(
    options: UpOptions,
    app: str = "caroud.project.asgi:application",
    log_config: Path | None = None,
) -> list[str]:
    """uvicorn's command line for ``options``.

    With ``log_config`` (:func:`caroud.web.accesslog.write_log_config`: tokens redacted)
    uvicorn logs at ``options.log_level``, access lines included from ``info`` down;
    without it, only warnings and no access log: a request line (and at ``info`` a
    WebSocket handshake line) would carry the ``?token=`` of a browser's WebSocket.
    """
    level = options.log_level.lower() if log_config is not None else "warning"
    level = {"warn": "warning", "fatal": "critical"}.get(level, level)  # logging's aliases
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        options.host,
        "--port",
        str(options.port),
        "--workers",
        str(options.workers),
        "--lifespan",
        "off",  # Django has no lifespan handler
        "--log-level",
        level,
    ]
    if log_config is not None:
        command += ["--log-config", str(log_config)]
    if level not in ACCESS_LOG_LEVELS:
        command.append("--no-access-log")  # nothing printed: skip even building the lines
    return command


def uvicorn_log_config(data_dir: Path) -> Path:
    """Write uvicorn's logging configuration (tokens redacted) in ``data_dir``; its path."""
    from caroud.private import private_dir
    from caroud.web.accesslog import write_log_config

    return write_log_config(private_dir(data_dir) / UVICORN_LOG_CONFIG)


def wait_ready(url: str, proc: subprocess.Popen[Any], timeout_s: float = READY_TIMEOUT_S) -> None:
    """Wait until ``url`` answers 200; :class:`ConfigError` if ``proc`` exits or time runs out."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ConfigError(f"the web server exited with code {proc.returncode} (see above)")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise ConfigError(f"the web server did not answer {url} within {timeout_s:g} s")


# -- threads ----------------------------------------------------------------------------------


@dataclass
class Part:
    """A thread of the supervisor and how to stop it."""

    name: str
    thread: threading.Thread
    stop: Callable[[], None]


def _thread(name: str, target: Callable[[], object], stop: Callable[[], None]) -> Part:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return Part(name, thread, stop)


def start_parts(options: UpOptions, stop: threading.Event, out: TextIO) -> list[Part]:
    """The worker, the relay, the results applier and (``--demo``) the simulation."""
    from caroud.matchmaking.worker import Worker
    from caroud.web.apps import get_context
    from caroud.web.relay import Relay
    from caroud.web.services import follow_results

    ctx = get_context()
    worker = Worker(ctx.matchmaking, assigner=ctx.assigner)
    relay = Relay(ctx)
    relay.ensure_groups()  # before the first client can queue: no event is missed
    parts = [
        _thread("worker", worker.run, worker.stop),
        _thread("relay", relay.run, relay.stop),
        _thread("results", lambda: follow_results(stop), stop.set),
    ]
    if options.demo:
        parts.append(start_demo(options, out))
    return parts


def start_demo(options: UpOptions, out: TextIO) -> Part:
    from caroud.web.demo_api import ApiDemo, demo_accounts, demo_server_key, run_demo

    demo_stop = threading.Event()
    accounts = demo_accounts(options.demo_players)
    demo = ApiDemo(
        options.base_url,
        accounts,
        demo_server_key(),
        demo_stop,
        report=lambda line: _say(out, line),
    )
    return _thread("demo", lambda: run_demo(demo), demo_stop.set)


def _say(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()


# -- the whole ----------------------------------------------------------------------------------


@dataclass
class Supervisor:
    """Everything ``caroud up`` started, stopped in reverse order by :meth:`shutdown`."""

    keeper: subprocess.Popen[str] | None = None
    web: subprocess.Popen[bytes] | None = None
    parts: list[Part] = field(default_factory=list)

    def failed_part(self) -> str | None:
        """The name of a part that stopped on its own, if any."""
        if self.web is not None and self.web.poll() is not None:
            return f"the web server (exit code {self.web.returncode})"
        if self.keeper is not None and self.keeper.poll() is not None:
            return "the embedded Valkey"
        return next((p.name for p in self.parts if not p.thread.is_alive()), None)

    def shutdown(self) -> None:
        demo = [p for p in self.parts if p.name == "demo"]
        for part in demo:  # it talks to the web server: first
            part.stop()
            part.thread.join(STOP_TIMEOUT_S)
        if self.web is not None:
            log.info("stopping the web server")
            stop_process(self.web)
        for part in self.parts:
            part.stop()
        for part in self.parts:
            log.info("stopping a part", extra={"part": part.name})
            part.thread.join(STOP_TIMEOUT_S)
            if part.thread.is_alive():
                log.warning("a part did not stop in time", extra={"part": part.name})
        from caroud.web.apps import app_config

        app_config().set_context(None)
        if self.keeper is not None:
            log.info("stopping the embedded Valkey")
            stop_process(self.keeper, close_stdin=True)
        log.info("all stopped")


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def up(options: UpOptions, out: TextIO = sys.stdout) -> int:
    """Run the backend until SIGINT / SIGTERM (0), or until a part dies (1)."""
    stop = threading.Event()
    sup = Supervisor()
    failed: str | None = None
    with _stop_on_signals(stop):
        try:
            settings = Settings.from_env()
            if settings.redis_url is None:
                sup.keeper, url = start_keeper(settings.data_dir)
                os.environ["CAROUD_REDIS_URL"] = url
            from caroud.web.cli import migrate

            applied = migrate()
            configure_logging(options.log_level)  # again: Django's LOGGING replaced it
            env = {**os.environ, "CAROUD_REDIS_URL": os.environ.get("CAROUD_REDIS_URL", "")}
            log_config = uvicorn_log_config(settings.data_dir)
            sup.web = subprocess.Popen(uvicorn_command(options, log_config=log_config), env=env)
            wait_ready(options.base_url + "/healthz", sup.web)
            sup.parts = start_parts(options, stop, out)
            _say(out, banner(options, applied))
            while not stop.wait(0.2):
                failed = sup.failed_part()
                if failed is not None and not stop.is_set():
                    _say(out, f"caroud up: {failed} stopped; stopping everything")
                    break
        finally:
            sup.shutdown()
    _say(out, "caroud up: stopped")
    return 1 if failed else 0


def banner(options: UpOptions, applied: list[str]) -> str:
    from django.conf import settings as django_settings

    from caroud.redis.client import redact_url

    base = options.base_url
    ws = base.replace("http", "ws", 1)
    db = django_settings.DATABASES["default"]
    redis_url = redact_url(os.environ.get("CAROUD_REDIS_URL", ""))
    lines = [
        f"caroud up: the backend is running on {base}  (Ctrl-C stops everything)",
        f"  API docs   {base}/api/docs",
        f"  dashboard  {base}/dashboard",
        f"  health     {base}/healthz   readiness {base}/readyz",
        f"  WebSocket  {ws}/ws/matchmaking?token=<player token>",
        f"  Redis      {redis_url}",
        f"  database   {db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}"
        + (f"  (applied {len(applied)} migrations)" if applied else ""),
        "  players    caroud player create NAME   game servers: caroud server-key create NAME",
    ]
    if options.demo:
        lines.append(f"  demo       {options.demo_players} simulated players and 6 game servers")
    return "\n".join(lines)


if __name__ == "__main__":  # the keeper: python -m caroud.web.up --keep-valkey DATA_DIR
    if len(sys.argv) == 3 and sys.argv[1] == "--keep-valkey":
        keep_valkey(Path(sys.argv[2]))
    else:
        sys.exit("usage: python -m caroud.web.up --keep-valkey DATA_DIR")
