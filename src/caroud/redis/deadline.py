"""One deadline for all the Redis work of a request, however many calls and retries it makes.

A web request makes a few Redis calls (rate limit, enqueue, reads), each with a
socket timeout and retries on connection errors. While Redis is paused, every
call waits out its timeout and its retries: 2 s x 4 attempts each added up to
8.5 s before a 503. Inside ``with deadline(seconds)`` every call of the clients
built by :func:`caroud.redis.client.connect` is bounded by what is left of it:

* a read waits at most the time left (not the whole socket timeout);
* a retry is not started once the time is up, nor a new call: it fails at once
  with ``TimeoutError("... deadline ...")``, which becomes the usual 503;
* deadlines nest: the inner one can only shorten the outer.

Outside any deadline (the worker, the CLI) nothing changes. The deadline is a
context variable, so it follows the request's thread or asyncio task.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from caroud.outage import Outage

T = TypeVar("T")

_deadline: ContextVar[float | None] = ContextVar("caroud_redis_deadline", default=None)

MIN_WAIT_S = 0.01
"""Less time than this left is no time: the call fails instead of racing the clock."""
SUSPECT_S = 1.0
"""How long after a Redis call timed out or failed inside a deadline Redis is suspect."""
PROBE_S = 0.25
"""The budget of a request while Redis is suspect (:func:`budget`)."""

_suspect_until = 0.0
_outage = Outage(logging.getLogger("caroud.web"), "Redis, for web requests")
"""One warning when requests' Redis calls start failing, a reminder a minute, one when back."""
_outage_lock = threading.Lock()


def budget(seconds: float) -> float:
    """The deadline to give a request that may take ``seconds``: shorter while Redis is suspect.

    While Redis is paused every request waits out its whole deadline, and requests
    arriving meanwhile queue for the server's threads behind them. Once a call inside
    a deadline has failed, the next requests (for :data:`SUSPECT_S`, renewed by each
    failure; ended by the first success) get only :data:`PROBE_S`: each still tries
    Redis, so the first to find it back ends the suspicion, but none holds a thread
    for long.
    """
    return min(seconds, PROBE_S) if time.monotonic() < _suspect_until else seconds


def _note(error: Exception | None) -> None:
    """A Redis call inside a deadline succeeded (``error`` None) or failed."""
    global _suspect_until  # noqa: PLW0603 - one flag for the process, as the pool is
    if error is None:
        if _suspect_until:
            _suspect_until = 0.0
            with _outage_lock:
                _outage.ok()
    else:
        _suspect_until = time.monotonic() + SUSPECT_S
        with _outage_lock:
            _outage.failed(error)


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound all Redis work inside the block to ``seconds`` from now (or an outer deadline)."""
    end = time.monotonic() + seconds
    outer = _deadline.get()
    token = _deadline.set(end if outer is None else min(outer, end))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left of the current deadline, or None outside any."""
    end = _deadline.get()
    return None if end is None else end - time.monotonic()


def _check() -> float | None:
    left = remaining()
    if left is not None and left < MIN_WAIT_S:
        raise RedisTimeoutError("the request's deadline for Redis passed: Redis is slow or away")
    return left


class DeadlineRetry(Retry):
    """Redis-py's retry that starts no attempt, and sleeps no backoff, past the deadline.

    Outside a deadline it is redis-py's own loop. Inside one it is the same loop with
    two changes: once the time is up the last error is raised rather than retried
    (retries nest: a connect retries inside a command's retry, and each would
    otherwise sleep its backoff again), and a backoff never sleeps past the deadline.
    """

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        if remaining() is None:
            return super().call_with_retry(do, fail, is_retryable, with_failure_count)
        self._backoff.reset()  # type: ignore[no-untyped-call]
        failures = 0
        while True:
            _check()
            try:
                return do()
            except self._supported_errors as error:
                if is_retryable is not None and not is_retryable(error):
                    raise
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                left = remaining() or 0.0
                if (self._retries >= 0 and failures > self._retries) or left < MIN_WAIT_S:
                    raise
                time.sleep(min(self._backoff.compute(failures), left))


class _Bounded:
    """Mixed into redis-py's connections: reads and connects wait no longer than the deadline."""

    socket_timeout: float | None
    socket_connect_timeout: float | None

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        left = _check()
        if left is None:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        if kwargs.get("timeout") is None:
            configured = self.socket_timeout
            kwargs["timeout"] = left if configured is None else min(configured, left)
        try:
            reply = super().read_response(*args, **kwargs)  # type: ignore[misc]
        except (RedisTimeoutError, RedisConnectionError) as e:
            _note(e)
            raise
        _note(None)
        return reply

    def connect(self) -> None:
        left = _check()
        if left is None:
            super().connect()  # type: ignore[misc]
            return
        configured = self.socket_connect_timeout
        self.socket_connect_timeout = left if configured is None else min(configured, left)
        try:
            super().connect()  # type: ignore[misc]
        except (RedisTimeoutError, RedisConnectionError) as e:
            _note(e)
            raise
        finally:
            self.socket_connect_timeout = configured


class BoundedConnection(_Bounded, Connection):
    """A TCP connection bounded by the deadline."""


class BoundedSSLConnection(_Bounded, SSLConnection):
    """A TLS connection bounded by the deadline."""


class BoundedUnixConnection(_Bounded, UnixDomainSocketConnection):
    """A Unix-socket connection bounded by the deadline."""


BOUNDED: dict[type[Any], type[Any]] = {
    Connection: BoundedConnection,
    SSLConnection: BoundedSSLConnection,
    UnixDomainSocketConnection: BoundedUnixConnection,
}
"""redis-py's connection classes and their bounded versions."""
