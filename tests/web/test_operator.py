"""Operator commands (the functions ``caroud`` wires, and the management commands) and settings."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import override_settings

from caroud.errors import ConflictError, ValidationError
from caroud.web import cli, conf
from caroud.web.models import Player, ServerKey

pytestmark = pytest.mark.django_db


def test_player_create_prints_id_and_a_working_token(api: Any) -> None:
    created = cli.player_create("alice", 1650)
    assert set(created) == {"id", "token"}
    me = api.get("/api/v1/players/me", created["token"]).json()
    assert me == {"id": created["id"], "name": "alice", "rating": 1650, "games_played": 0}
    stored = Player.objects.get(public_id=created["id"])
    assert created["token"] not in stored.token_hash, "only a hash is stored"
    assert cli.player_create("bob")["id"] != created["id"]
    assert Player.objects.get(user__username="bob").rating == 1500


def test_player_create_refuses_taken_names_and_bad_input() -> None:
    cli.player_create("alice")
    with pytest.raises(ConflictError, match="alice"):
        cli.player_create("alice")
    with pytest.raises(ValidationError, match="name"):
        cli.player_create("no spaces please")
    with pytest.raises(ValidationError, match="name"):
        cli.player_create("alice2\n")  # a trailing line break is not part of a name
    with pytest.raises(ValidationError, match="rating"):
        cli.player_create("carol", -5)
    with pytest.raises(ValidationError, match="rating"):
        cli.player_create("carol", float("nan"))


def test_server_key_create(api: Any) -> None:
    created = cli.server_key_create("fleet-eu")
    assert set(created) == {"key"} and created["key"].startswith("csk_")
    newline = api.post(
        "/api/v1/servers",
        {"address": "10.2.0.9\n", "port": 7000, "region": "eu-west", "capacity": 1},
        created["key"],
    )
    assert newline.status_code == 422 and newline.json()["error"]["details"]["field"] == "address"
    r = api.post(
        "/api/v1/servers",
        {"address": "10.0.0.1", "port": 7000, "region": "eu-west", "capacity": 1},
        created["key"],
    )
    assert r.status_code == 201
    assert created["key"] not in ServerKey.objects.get(name="fleet-eu").token_hash
    with pytest.raises(ConflictError):
        cli.server_key_create("fleet-eu")


def test_migrate_applies_nothing_on_an_up_to_date_database() -> None:
    assert cli.migrate() == []


def test_management_commands_print_json() -> None:
    out = io.StringIO()
    call_command("caroud_player_create", "dave", "--rating", "1400", stdout=out)
    printed = json.loads(out.getvalue())
    assert set(printed) == {"id", "token"}
    assert Player.objects.get(public_id=printed["id"]).rating == 1400
    out = io.StringIO()
    call_command("caroud_server_key_create", "fleet", stdout=out)
    assert set(json.loads(out.getvalue())) == {"key"}
    with pytest.raises(CommandError, match="exists already"):
        call_command("caroud_server_key_create", "fleet", stdout=io.StringIO())
    with pytest.raises(CommandError, match="name"):
        call_command("caroud_player_create", "bad name", stdout=io.StringIO())
    out = io.StringIO()
    call_command("caroud_apply_results", stdout=out)
    assert out.getvalue().strip() == "0 results applied"


def test_web_settings_are_validated() -> None:
    assert conf.web_settings().ticket_rate.limit == 10
    with override_settings(CAROUD_TICKET_RATE="5/60s"):
        rate = conf.web_settings().ticket_rate
        assert (rate.limit, rate.window_s) == (5, 60)
    for bad in ("ten", "0/10", "5/0", "5 per second"):
        with (
            override_settings(CAROUD_TICKET_RATE=bad),
            pytest.raises(ImproperlyConfigured, match="CAROUD_TICKET_RATE"),
        ):
            conf.web_settings()
    with (
        override_settings(CAROUD_API_MAX_BODY="lots"),
        pytest.raises(ImproperlyConfigured, match="CAROUD_API_MAX_BODY"),
    ):
        conf.web_settings()


def test_engine_settings_come_from_django_settings_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAROUD_WORKER_TICK", "0.5")
    monkeypatch.setenv("CAROUD_MATCH_TTL", "100")
    with override_settings(CAROUD_MATCH_TTL=200):
        engine = conf.engine_settings()
    assert engine.worker_tick_s == 0.5 and engine.match_ttl_s == 200
    with (
        override_settings(CAROUD_RETRIES="-1"),
        pytest.raises(ImproperlyConfigured, match="CAROUD_RETRIES"),
    ):
        conf.engine_settings()


def test_project_settings_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from caroud.project import settings as project

    monkeypatch.setattr(project, "ENV", {"DEBUG": "yes", "ODD": "maybe"})
    assert project._flag("DEBUG", False) is True
    assert project._flag("MISSING", True) is True
    with pytest.raises(ImproperlyConfigured, match="ODD"):
        project._flag("ODD", False)

    key = project._secret_key(tmp_path / "data")
    assert len(key) > 40 and (tmp_path / "data" / "secret_key").stat().st_mode & 0o777 == 0o600
    assert project._secret_key(tmp_path / "data") == key, "kept across processes"
    monkeypatch.setattr(project, "ENV", {"SECRET_KEY": "given"})
    assert project._secret_key(tmp_path / "other") == "given"

    pg = project._database("postgres://u:p@db.example:5433/caroud")
    assert pg["ENGINE"] == "django.db.backends.postgresql"
    assert (pg["HOST"], pg["PORT"], pg["NAME"]) == ("db.example", 5433, "caroud")
    lite = project._database(f"sqlite:///{tmp_path}/x.sqlite3")
    assert lite["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        project._database("nosuchdb://x")


def test_database_url_chooses_postgresql() -> None:
    import os

    from django.db import connection

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        pytest.skip("DATABASE_URL names no PostgreSQL server: this pass runs on SQLite")
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        assert "PostgreSQL" in cursor.fetchone()[0]
