"""The project's ASGI app sends ``/api/`` requests through Django's WSGI handler, the rest not.

Driven as an ASGI server would drive it (asgiref's communicator), against the real
Redis and database: the same answers as the Django test client gives.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator

from caroud.project.asgi import application, http_application
from caroud.web.wsgi_bridge import wsgi_environ

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def close_bridge_connections() -> Iterator[None]:
    """The bridge's threads keep their connections (PostgreSQL): the test database is dropped."""
    yield
    http_application.close_connections()


def call(
    method: str,
    path: str,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    query: bytes = b"",
    chunks: int = 1,
) -> tuple[int, dict[bytes, bytes], bytes]:
    async def run() -> tuple[int, dict[bytes, bytes], bytes]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": [(b"host", b"localhost"), *(headers or [])],
            "client": ("127.0.0.1", 5000),
            "server": ("localhost", 80),
        }
        comm = ApplicationCommunicator(application, scope)
        size = max(1, -(-len(body) // chunks))
        parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
        for i, part in enumerate(parts):
            await comm.send_input(
                {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
            )
        start = await comm.receive_output(10)
        content = await comm.receive_output(10)
        await comm.wait(10)
        return start["status"], dict(start["headers"]), content["body"]

    return async_to_sync(run)()


def test_api_requests_answer_as_through_django(make_player: Any) -> None:
    alice = make_player()
    auth = [(b"authorization", f"Bearer {alice.token}".encode())]
    body = json.dumps({"queue": "ranked-1v1"}).encode()
    headers = [*auth, (b"content-type", b"application/json")]
    status, out_headers, content = call("POST", "/api/v1/tickets", body, headers, chunks=3)
    assert status == 201, content
    assert out_headers[b"content-type"].startswith(b"application/json")
    ticket = json.loads(content)
    assert ticket["players"] == [alice.id] and ticket["status"] == "queued"

    status, _, content = call("GET", f"/api/v1/tickets/{ticket['id']}", headers=auth)
    assert status == 200 and json.loads(content)["id"] == ticket["id"]
    status, _, content = call("GET", "/api/v1/players/me", headers=[])
    assert status == 401 and json.loads(content)["error"]["code"] == "unauthorized"
    status, _, content = call("POST", "/api/v1/tickets", b"{not json", headers)
    assert status == 400 and json.loads(content)["error"]["code"] == "bad_request"


def test_a_huge_body_is_refused_while_it_arrives() -> None:
    status, _, content = call("POST", "/api/v1/tickets", b"x" * (2 * 1024 * 1024), chunks=8)
    assert status == 413 and json.loads(content)["error"]["code"] == "too_large"


def test_other_paths_stay_on_djangos_asgi_handler() -> None:
    status, _, content = call("GET", "/healthz")
    assert status == 200 and json.loads(content) == {"status": "ok"}
    status, _, content = call("GET", "/static/ninja/swagger-ui.css")
    assert status == 200 and content


def test_the_environ_follows_pep_3333() -> None:
    import io

    scope = {
        "method": "POST",
        "path": "/api/v1/x",
        "query_string": b"a=1&b=%C3%A9",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"2"),
            (b"x-thing", b"one"),
            (b"x-thing", b"two"),
        ],
        "client": ("10.0.0.1", 4000),
        "server": ("example.org", 8000),
    }
    environ = wsgi_environ(scope, io.BytesIO(b"{}"))
    assert environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == "/api/v1/x"
    assert environ["QUERY_STRING"] == "a=1&b=%C3%A9"
    assert environ["CONTENT_TYPE"] == "application/json" and environ["CONTENT_LENGTH"] == "2"
    assert environ["HTTP_X_THING"] == "one,two", "repeated headers are joined"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("example.org", "8000")
    assert environ["REMOTE_ADDR"] == "10.0.0.1"
    assert environ["wsgi.input"].read() == b"{}"
