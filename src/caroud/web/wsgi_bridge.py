"""The API's HTTP requests through Django's synchronous handler, inside the ASGI server.

Why: under ASGI, Django runs a synchronous view and each of the project's (sync)
middlewares through its own ``sync_to_async`` hop, and every request in a fresh
thread; profiled (``caroud bench api``), those hops and thread starts cost more
CPU than the view itself. The API is synchronous code (ninja views, the sync Redis
client, the ORM), so its requests go to Django's WSGI handler instead, one hop per
request on a fixed pool of threads; the settings, middleware and URLs are the
same. Only paths under the prefixes given go this way (``/api/`` in the project);
anything else, async views included, stays on Django's ASGI handler, and
WebSockets never come here.

A request's body is read in full before the view runs (spooled to disk past
64 KiB, as asgiref does); the response is sent once the view returns (API
responses are small JSON documents, not streams).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from tempfile import SpooledTemporaryFile
from typing import IO, Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

ARRIVED = "caroud.arrived"
"""The environ key of when the request arrived (``time.monotonic()``), before any queueing
for a thread: its deadline counts from then (:mod:`caroud.web.middleware`)."""
SPOOL_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
"""Bodies past this are refused (413) while still arriving: the API takes at most 16 KiB."""
TOO_LARGE = json.dumps(
    {"error": {"code": "too_large", "message": "the request body is too large"}}
).encode()


def wsgi_environ(scope: Scope, body: IO[bytes], length: int | None = None) -> dict[str, Any]:
    """The WSGI environ of an ASGI HTTP ``scope`` (PEP 3333).

    ``length``: the body's size as received, which is then the ``CONTENT_LENGTH``
    (a chunked request declares none, and Django reads no more than it says).
    """
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode().decode("latin-1"),
        "PATH_INFO": scope["path"].encode().decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] if server[1] is not None else 80),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if scope.get("client"):
        environ["REMOTE_ADDR"] = scope["client"][0]
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        key = name if name in ("CONTENT_LENGTH", "CONTENT_TYPE") else f"HTTP_{name}"
        value = raw_value.decode("latin-1")
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    if length is not None:
        environ["CONTENT_LENGTH"] = str(length)
    return environ


def run_wsgi(app: WSGIApp, environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Call the WSGI app; its status, headers and whole body."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started[:] = [int(status.split(" ", 1)[0]), headers]
        return lambda data: None  # the legacy write() callable: unused by Django

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    status, headers = started
    return status, [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers], body


class WsgiBridge:
    """An ASGI app: HTTP requests under ``prefixes`` to ``wsgi_app``, the rest to ``asgi_app``."""

    def __init__(
        self,
        wsgi_app: WSGIApp,
        asgi_app: ASGIApp,
        prefixes: tuple[str, ...] = ("/api/",),
        threads: int = 8,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.wsgi_app = wsgi_app
        self.asgi_app = asgi_app
        self.prefixes = prefixes
        self.max_body_bytes = max_body_bytes
        self.threads = threads
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wsgi")

    def close_connections(self) -> None:
        """Close the database connections each of the pool's threads holds.

        With ``CONN_MAX_AGE`` (PostgreSQL), a thread keeps its connection between
        requests: that is the point, but a test database cannot be dropped under it.
        """
        threads = self.threads
        barrier = threading.Barrier(threads)

        def close() -> None:
            from django.db import connections

            connections.close_all()
            barrier.wait(timeout=10)  # one task per thread: each holds one until all ran

        for future in [self.executor.submit(close) for _ in range(threads)]:
            future.result()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefixes):
            await self.asgi_app(scope, receive, send)
            return
        arrived = time.monotonic()
        with SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body.write(message.get("body", b""))
                if body.tell() > self.max_body_bytes:
                    await _answer(send, 413, [(b"content-type", b"application/json")], TOO_LARGE)
                    return
                if not message.get("more_body"):
                    break
            length = body.tell()
            body.seek(0)
            environ = wsgi_environ(scope, body, length)
            environ[ARRIVED] = arrived
            loop = asyncio.get_running_loop()
            status, headers, content = await loop.run_in_executor(
                self.executor, run_wsgi, self.wsgi_app, environ
            )
        await _answer(send, status, headers, content)


async def _answer(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
