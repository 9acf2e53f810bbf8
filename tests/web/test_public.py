"""Anyone's routes (queues, health, readiness), the docs, and errors outside any route."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from typing import Any

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import override_settings

from caroud.context import Context
from caroud.redis.client import Redis
from caroud.web import conf
from caroud.web.wsgi_bridge import ARRIVED

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_queues_report_waiting_and_exact_wait_percentiles(api: Any, ctx: Context) -> None:
    now = ctx.matchmaking.server_time()
    for i in range(1, 21):  # 20 tickets that have waited 1..20 s
        ctx.matchmaking.enqueue("ranked-5v5", [(f"q{i}", 1500)], created_at=now - i)
    r = api.get("/api/v1/queues")
    assert r.status_code == 200
    queues = {q["name"]: q for q in r.json()["queues"]}
    assert set(queues) == {"ranked-1v1", "ranked-2v2", "ranked-5v5", "ffa-8"}
    five = queues["ranked-5v5"]
    assert five["waiting"] == 20 and five["teams"] == 2 and five["team_size"] == 5
    assert five["party_sizes"] == [1, 2, 3, 4, 5]
    assert five["oldest_wait_seconds"] == pytest.approx(20, abs=0.5)
    assert five["p50_wait_seconds"] == pytest.approx(10, abs=0.5)  # 10th of 20, nearest rank
    assert five["p95_wait_seconds"] == pytest.approx(19, abs=0.5)  # 19th of 20
    idle = queues["ranked-1v1"]
    assert idle["waiting"] == 0
    assert idle["oldest_wait_seconds"] is idle["p50_wait_seconds"] is None
    assert idle["recent_matches"] == {
        "matches": 0,
        "rating_gap_mean": None,
        "rating_gap_p95": None,
        "imbalance_mean": None,
    }


def test_quantile_index_is_nearest_rank() -> None:
    from caroud.web.services.stats import quantile_index

    # oldest first: index 0 waited longest
    assert quantile_index(1, 0.5) == quantile_index(1, 0.95) == 0
    assert quantile_index(2, 0.5) == 1 and quantile_index(2, 0.95) == 0
    assert quantile_index(100, 0.5) == 50 and quantile_index(100, 0.95) == 5
    with pytest.raises(ValueError, match="count"):
        quantile_index(0, 0.5)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/api/v1/healthz", "/api/v1/readyz"])
def test_health_and_readiness(api: Any, path: str) -> None:
    r = api.get(path)
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    if "ready" in path:
        assert r.json()["checks"] == {"redis": "ok", "database": "ok"}


@pytest.mark.parametrize("path", ["/readyz", "/api/v1/readyz"])
def test_not_ready_when_redis_is_down(api: Any, path: str, error_of: Any) -> None:
    down = f"redis://127.0.0.1:{closed_port()}"
    with override_settings(CAROUD_REDIS_URL=down, CAROUD_RETRIES=0):
        r = api.get(path)
        assert r.status_code == 503 and r["Retry-After"] == "2"
        body = r.json()
        assert body["status"] == "unavailable" and body["checks"]["database"] == "ok"
        assert "cannot reach Redis" in body["checks"]["redis"]
        assert api.get("/healthz").status_code == 200, "liveness does not depend on Redis"
        queues = api.get("/api/v1/queues")
        assert queues.status_code == 503 and error_of(queues)["code"] == "redis_unavailable"
        assert queues["Retry-After"] == "2", "every 503 says when to try again"
    assert api.get(path).status_code == 200, "back once Redis is"


@pytest.mark.django_db(transaction=True)
def test_a_paused_redis_costs_a_request_its_deadline_not_every_timeout(
    api: Any, paused_valkey: str, make_player: Any, error_of: Any
) -> None:
    """Redis accepts and never answers: each answer is a 503 within the deadline."""
    player = make_player()
    slow = {"CAROUD_SOCKET_TIMEOUT": 2, "CAROUD_CONNECT_TIMEOUT": 2, "CAROUD_RETRIES": 3}
    with override_settings(CAROUD_REDIS_URL=paused_valkey, CAROUD_REQUEST_DEADLINE=1, **slow):
        for method, path, body, bound in [
            ("get", "/api/v1/queues", None, 1.5),
            ("post", "/api/v1/tickets", {"queue": "ranked-1v1"}, 1.5),
            ("get", "/readyz", None, 1.2),  # a probe's own, shorter, deadline
        ]:
            started = time.monotonic()
            r = api.call(method, path, body, player.token)
            spent = time.monotonic() - started
            assert r.status_code == 503 and r["Retry-After"] == "2", (path, r.content)
            assert spent <= bound, f"{path} took {spent:.2f} s (over 30 s without the deadline)"
            if path.startswith("/api/"):
                assert error_of(r)["code"] == "redis_timeout"


def test_a_request_that_waited_for_a_thread_has_less_deadline_left(
    api: Any, paused_valkey: str, error_of: Any
) -> None:
    """The deadline counts from arrival (stamped by the ASGI bridge), not from the view."""
    with override_settings(CAROUD_REDIS_URL=paused_valkey, CAROUD_REQUEST_DEADLINE=2):
        started = time.monotonic()
        r = api.get("/api/v1/queues", **{ARRIVED: time.monotonic() - 5})
        spent = time.monotonic() - started
    assert r.status_code == 503 and error_of(r)["code"] == "redis_timeout"
    assert spent < 0.5, f"it had no time left, yet took {spent:.2f} s"


def test_an_outage_is_logged_once_and_its_end_once_not_a_line_per_request(
    api: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert api.get("/api/v1/queues").status_code == 200
    down = f"redis://127.0.0.1:{closed_port()}"
    with caplog.at_level(logging.WARNING, logger="caroud"):
        with override_settings(CAROUD_REDIS_URL=down, CAROUD_RETRIES=0):
            for _ in range(5):
                assert api.get("/api/v1/queues").status_code == 503
        assert api.get("/api/v1/queues").status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 2, lines
    assert lines[0].startswith("Redis, for web requests failed, retrying until it is back")
    assert lines[1].startswith("Redis, for web requests works again after")


def test_the_request_deadline_setting_is_checked() -> None:
    assert conf.web_settings().request_deadline_s == conf.DEFAULT_REQUEST_DEADLINE_S
    with override_settings(CAROUD_REQUEST_DEADLINE="0.5"):
        assert conf.web_settings().request_deadline_s == 0.5
    for bad in ("soon", "0", "-1", "600"):
        with (
            override_settings(CAROUD_REQUEST_DEADLINE=bad),
            pytest.raises(ImproperlyConfigured, match=r"CAROUD_REQUEST_DEADLINE=.*seconds"),
        ):
            conf.web_settings()


@pytest.mark.django_db(transaction=True)
def test_not_ready_when_the_database_is_down(api: Any) -> None:
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent/caroud/db.sqlite3"
    else:
        connection.settings_dict["HOST"] = "127.0.0.1"
        connection.settings_dict["PORT"] = str(closed_port())
    try:
        r = api.get("/readyz")
        assert r.status_code == 503
        assert r.json()["checks"]["redis"] == "ok"
        assert r.json()["checks"]["database"] != "ok"
        me = api.get("/api/v1/players/me", "cpt_whatever")
        assert me.status_code == 503 and me["Retry-After"] == "2"
        assert me.json()["error"]["code"] == "database_unavailable"
    finally:
        connection.close()
        connection.settings_dict.update(saved)
    assert api.get("/readyz").status_code == 200


def test_openapi_and_docs(api: Any) -> None:
    schema = api.get("/api/openapi.json")
    assert schema.status_code == 200
    doc = schema.json()
    assert doc["info"]["version"] == "v1"
    paths = doc["paths"]
    for path in [
        "/api/v1/tickets",
        "/api/v1/tickets/{ticket_id}",
        "/api/v1/parties",
        "/api/v1/parties/{party_id}/join",
        "/api/v1/parties/{party_id}/members/me",
        "/api/v1/players/me",
        "/api/v1/servers",
        "/api/v1/servers/{server_id}/heartbeat",
        "/api/v1/servers/{server_id}",
        "/api/v1/matches/{match_id}/started",
        "/api/v1/matches/{match_id}/result",
        "/api/v1/queues",
    ]:
        assert path in paths, path
    assert {"PlayerAuth", "ServerKeyAuth"} <= set(doc["components"]["securitySchemes"])
    docs = api.get("/api/docs")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


def test_unknown_routes_and_methods_answer_json(api: Any, error_of: Any) -> None:
    for path in ["/api/v1/nope", "/api/v2/tickets", "/api", "/api/v1/tickets/a/b"]:
        r = api.get(path)
        assert r.status_code == 404, path
        assert error_of(r)["code"] == "not_found"
    r = api.client.put("/api/v1/tickets", "{}", content_type="application/json")
    assert r.status_code == 405
    assert error_of(r)["code"] == "method_not_allowed" and r["Allow"] == "POST"


@pytest.mark.parametrize("path", ["/api/v1/tickets", "/api/v1/servers", "/api/v1/queues"])
def test_oversize_bodies_are_413_json(api: Any, make_player: Any, path: str, error_of: Any) -> None:
    body = '{"queue": "' + "x" * 20_000 + '"}'
    r = api.post(path, body, make_player().token)
    assert r.status_code == 413
    assert error_of(r)["code"] == "too_large"


def test_a_body_over_djangos_own_limit_is_413_json_too(
    api: Any, make_player: Any, error_of: Any
) -> None:
    with override_settings(CAROUD_API_MAX_BODY=1_000_000, DATA_UPLOAD_MAX_MEMORY_SIZE=1000):
        r = api.post("/api/v1/tickets", '{"queue": "' + "x" * 2000 + '"}', make_player().token)
    assert r.status_code == 413 and error_of(r)["code"] == "too_large"


def test_an_unexpected_failure_is_a_logged_500_json(
    api: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, error_of: Any
) -> None:
    from caroud.web.api import public

    def broken(ctx: Context) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(public, "queue_stats", broken)
    with caplog.at_level(logging.ERROR, logger="caroud.web"):
        r = api.get("/api/v1/queues")
    assert r.status_code == 500
    error = error_of(r)
    assert error["code"] == "internal" and "boom" not in error["message"]
    assert any("boom" in (rec.exc_text or "") or rec.exc_info for rec in caplog.records)


def test_the_django_cache_is_on_the_engines_redis(clean_redis: Redis) -> None:
    cache = caches["default"]
    cache.set("greeting", "hello", 30)
    assert cache.get("greeting") == "hello"
    assert clean_redis.exists("caroud:dj:1:greeting") == 1


def asgi_get(path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    """GET ``path`` from the project's ASGI application, in this thread's event loop."""
    from asgiref.testing import ApplicationCommunicator

    from caroud.project.asgi import application

    async def run() -> tuple[int, dict[bytes, bytes], bytes]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"localhost")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        app = ApplicationCommunicator(application, scope)
        await app.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await app.receive_output(10)
        body = b""
        while True:
            part = await app.receive_output(10)
            body += part.get("body", b"")
            if not part.get("more_body"):
                break
        await app.wait(10)
        return start["status"], dict(start["headers"]), body

    return asyncio.run(run())


def test_the_asgi_application_serves_the_api_and_the_docs_static_files() -> None:
    status, headers, body = asgi_get("/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert headers[b"Content-Type"] == b"application/json"
    status, _, body = asgi_get("/api/nope")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    status, _, body = asgi_get("/static/ninja/swagger-ui.css")
    assert status == 200 and len(body) > 1000


def test_a_chunked_oversize_body_is_413_too(make_player: Any) -> None:
    from django.test import RequestFactory
    from django.urls import resolve

    request = RequestFactory().generic(
        "POST",
        "/api/v1/tickets",
        b'{"queue": "' + b"x" * 20_000 + b'"}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {make_player().token}"},
    )
    del request.META["CONTENT_LENGTH"]  # as a chunked request arrives under ASGI
    r = resolve("/api/v1/tickets").func(request)
    assert r.status_code == 413
    assert json.loads(r.content)["error"]["code"] == "too_large"


def test_the_wsgi_application_loads() -> None:
    from caroud.project.wsgi import application

    assert callable(application)


def test_a_disallowed_host_under_the_api_is_a_json_400(api: Any) -> None:
    r = api.get("/api/v1/queues", HTTP_HOST="evil.example")
    assert r.status_code == 400 and r["Content-Type"].startswith("application/json")
    error = r.json()["error"]
    assert error["code"] == "bad_request" and "ALLOWED_HOSTS" in error["message"]
    page = api.get("/dashboard", HTTP_HOST="evil.example")
    assert page.status_code == 400 and not page["Content-Type"].startswith("application/json")
