"""Django against the suite's real Redis, and a real database (SQLite, or DATABASE_URL).

Django is set up when this file is imported (collection), with the ready project's
settings; the Redis URL is only known once the session's server runs, so it goes in
through ``override_settings`` (the app rebuilds its engine context on the change).
Set ``DATABASE_URL=postgres://...`` to run these tests on PostgreSQL (pytest-django
creates and drops a ``test_...`` database; the role needs CREATEDB).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import django
import pytest

_TMP = tempfile.mkdtemp(prefix="caroud-web-tests-")
atexit.register(shutil.rmtree, _TMP, True)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "caroud.project.settings")
os.environ.setdefault("SECRET_KEY", "caroud-tests-only-not-a-secret")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{_TMP}/caroud.sqlite3")
django.setup()

from django.test import Client, override_settings  # noqa: E402

from caroud.context import Context  # noqa: E402
from caroud.matchmaking.worker import CycleReport, Worker  # noqa: E402
from caroud.redis.client import Redis  # noqa: E402
from caroud.web.apps import app_config, get_context  # noqa: E402
from caroud.web.models import Player  # noqa: E402
from caroud.web.services import create_player, create_server_key  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def caroud_web(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point the app (engine context and cache) at the session's Redis."""
    data_dir = tmp_path_factory.mktemp("web-data")
    with override_settings(
        CAROUD_REDIS_URL=redis_url, CAROUD_DATA_DIR=str(data_dir), CAROUD_RETRIES=1
    ):
        yield
    app_config().set_context(None)


@pytest.fixture(autouse=True)
def clean_redis(client: Redis) -> Redis:
    """Every web test starts on a flushed Redis (``client`` flushes it)."""
    return client


@pytest.fixture
def ctx(clean_redis: Redis) -> Context:
    """The app's own engine context (default queues: ranked-1v1, ranked-2v2, ...)."""
    return get_context()


class Api:
    """The Django test client, speaking JSON with a bearer token."""

    def __init__(self) -> None:
        self.client = Client()

    def call(
        self, method: str, path: str, body: Any = None, token: str | None = None, **extra: Any
    ) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        send = getattr(self.client, method)
        if body is None:
            return send(path, headers=headers, **extra)
        return send(path, body, content_type="application/json", headers=headers, **extra)

    def get(self, path: str, token: str | None = None, **extra: Any) -> Any:
        return self.call("get", path, None, token, **extra)

    def post(self, path: str, body: Any = None, token: str | None = None, **extra: Any) -> Any:
        return self.call("post", path, body, token, **extra)

    def delete(self, path: str, token: str | None = None, **extra: Any) -> Any:
        return self.call("delete", path, None, token, **extra)


@pytest.fixture
def api() -> Api:
    return Api()


@dataclass
class Account:
    """A player with its bearer token."""

    id: str
    token: str

    @property
    def player(self) -> Player:
        return Player.objects.get(public_id=self.id)


@pytest.fixture
def make_player() -> Any:
    counter = iter(range(10_000))

    def make(name: str | None = None, rating: float = 1500.0, games: int = 0) -> Account:
        created = create_player(name or f"player{next(counter)}", rating)
        if games:
            Player.objects.filter(public_id=created.id).update(games_played=games)
        return Account(created.id, created.token)

    return make


@pytest.fixture
def server_key() -> str:
    return create_server_key("game-servers").token


@pytest.fixture
def run_worker(ctx: Context) -> Callable[[], CycleReport]:
    """One matching cycle with assignment, as the matchmaker would run it."""
    worker = Worker(ctx.matchmaking, assigner=ctx.assigner)
    return worker.run_cycle


def _error_of(response: Any) -> dict[str, Any]:
    assert response["Content-Type"].startswith("application/json"), response.content
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]), body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])


@pytest.fixture
def error_of() -> Callable[[Any], dict[str, Any]]:
    """The ``error`` object of a JSON error response, asserting the envelope's shape."""
    return _error_of
