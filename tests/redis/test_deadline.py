"""One deadline bounds all Redis work of a request: reads, retries, new calls."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from caroud.redis.client import connect
from caroud.redis.deadline import PROBE_S, budget, deadline, remaining
from caroud.settings import Settings


def slow_settings(url: str) -> Settings:
    """The defaults' shape: 2 s timeouts, 3 retries (about 8 s per call without a deadline)."""
    return Settings.from_mapping(
        {
            "CAROUD_REDIS_URL": url,
            "CAROUD_SOCKET_TIMEOUT": "2",
            "CAROUD_CONNECT_TIMEOUT": "2",
            "CAROUD_RETRIES": "3",
        }
    )


def timed(call: Callable[[], object]) -> tuple[float, Exception | None]:
    started = time.monotonic()
    try:
        call()
    except Exception as e:  # the test looks at what it was
        return time.monotonic() - started, e
    return time.monotonic() - started, None


def test_calls_inside_a_deadline_fail_once_it_has_passed(paused_valkey: str) -> None:
    client = connect(slow_settings(paused_valkey))
    with deadline(1.0):
        spent, error = timed(client.ping)  # a new connection: its handshake never answers
        assert isinstance(error, redis.TimeoutError)
        assert 0.9 <= spent <= 1.3, spent  # not 2 s per attempt, four attempts, backoffs
        again, error = timed(lambda: client.set("k", "v"))
        assert isinstance(error, redis.TimeoutError) and "deadline" in str(error)
        assert again < 0.05, "no new call once the time is up"
        pipe = client.pipeline(transaction=False)
        pipe.get("k")
        assert isinstance(timed(pipe.execute)[1], redis.TimeoutError)
    client.close()


def test_a_call_on_an_open_connection_is_bounded_too(paused_valkey: str) -> None:
    client = connect(slow_settings(paused_valkey))
    with deadline(0.5):
        timed(client.ping)  # leaves the pool with a connection whose server is paused
    with deadline(0.6):
        spent, error = timed(client.ping)
    assert isinstance(error, redis.TimeoutError) and 0.5 <= spent <= 0.9, spent
    client.close()


def test_deadlines_nest_and_end_with_their_block() -> None:
    assert remaining() is None
    with deadline(10):
        outer = remaining()
        with deadline(0.5):
            inner = remaining()
            with deadline(30):
                assert (remaining() or 0) <= 0.5, "an inner deadline never extends an outer"
        assert outer is not None and inner is not None and inner < 0.6 < outer
    assert remaining() is None


def test_a_healthy_server_is_unaffected(redis_url: str) -> None:
    client = connect(slow_settings(redis_url))
    assert client.ping() is True
    with deadline(1):
        assert client.ping() is True
        assert remaining() is not None
    assert client.ping() is True
    client.close()


def test_without_a_deadline_the_socket_timeout_still_applies(paused_valkey: str) -> None:
    settings = Settings.from_mapping(
        {
            "CAROUD_REDIS_URL": paused_valkey,
            "CAROUD_SOCKET_TIMEOUT": "0.3",
            "CAROUD_RETRIES": "0",
        }
    )
    spent, error = timed(connect(settings).ping)  # the worker and the CLI: no deadline
    assert isinstance(error, redis.TimeoutError) and spent >= 0.3


def test_after_a_failure_requests_get_a_short_budget_until_one_succeeds(
    paused_valkey: str, redis_url: str
) -> None:
    healthy = connect(slow_settings(redis_url))
    with deadline(1):
        healthy.ping()
    assert budget(2.5) == 2.5
    stuck = connect(slow_settings(paused_valkey))
    with deadline(0.3):
        assert isinstance(timed(stuck.ping)[1], redis.TimeoutError)
    assert budget(2.5) == PROBE_S, "Redis is suspect: the next requests only probe it"
    assert budget(0.1) == 0.1
    with deadline(1):
        healthy.ping()
    assert budget(2.5) == 2.5, "the first success ends the suspicion"
    healthy.ping()  # outside a deadline (the worker, the CLI) nothing is noted
    stuck.close()
    healthy.close()
