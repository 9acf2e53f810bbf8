"""Settings of the ready project, from the environment (``.env`` underneath).

=================== ========================================= ===============================
``SECRET_KEY``      ``<CAROUD_DATA_DIR>/secret_key``, created  set it in production
``DEBUG``           ``false``                                 ``true`` / ``false``
``ALLOWED_HOSTS``   ``localhost,127.0.0.1,[::1]``              comma-separated
``DATABASE_URL``    ``sqlite:///<CAROUD_DATA_DIR>/caroud.sqlite3``  or ``postgres://u:p@h/db``
``CAROUD_REDIS_URL`` the embedded Valkey                      engine, cache, Channels share it
=================== ========================================= ===============================

Nothing here connects anywhere: the engine and the cache resolve the Redis URL on
first use (:mod:`caroud.web.conf`, :mod:`caroud.web.cache`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import dotenv_values

from caroud.private import private_dir, private_file
from caroud.web.conf import redis_cache
from caroud.web.layers import redis_channel_layer

ENV: dict[str, str] = {
    **{k: v for k, v in dotenv_values(".env").items() if v is not None},
    **os.environ,
}


def _text(name: str, default: str = "") -> str:
    return ENV.get(name, "").strip() or default


def _flag(name: str, default: bool) -> bool:
    raw = _text(name).lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={raw!r}: use true or false")


def _secret_key(data_dir: Path) -> str:
    """``SECRET_KEY``, else one made once and kept in the data directory (mode 600)."""
    if key := _text("SECRET_KEY"):
        return key
    path = data_dir / "secret_key"
    try:
        if not path.is_file():
            private_dir(data_dir)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(50))
        return path.read_text().strip()
    except FileExistsError:  # another process created it just now
        return path.read_text().strip()
    except OSError as e:
        raise ImproperlyConfigured(f"set SECRET_KEY (cannot keep one in {path}: {e})") from e


def _private_sqlite(path: Path) -> None:
    """Create the SQLite file 0600 (its WAL and shared-memory files take its mode) in a
    0700 folder, before SQLite creates it world-readable; not for ``:memory:``."""
    if path.name in ("", ":memory:"):
        return
    try:
        private_dir(path.parent)
        private_file(path)
    except OSError as e:
        raise ImproperlyConfigured(f"cannot create the database file {path}: {e}") from e


def _database(url: str) -> dict[str, Any]:
    try:
        config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=60))
    except ValueError as e:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {e}") from e
    if config["ENGINE"] == "django.db.backends.sqlite3":
        _private_sqlite(Path(str(config["NAME"])))
        # One writer at a time, waiting for the lock rather than failing (results
        # reported concurrently); WAL lets readers go on meanwhile.
        config["CONN_MAX_AGE"] = 0
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        config["TEST"] = {"NAME": f"{config['NAME']}.test"}
    else:
        config["CONN_HEALTH_CHECKS"] = True
    return config


DATA_DIR = Path(_text("CAROUD_DATA_DIR", ".caroud")).resolve()
BASE_DIR = Path(__file__).resolve().parent

DEBUG = _flag("DEBUG", False)
SECRET_KEY = _secret_key(DATA_DIR)
ALLOWED_HOSTS = [
    h.strip() for h in _text("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",
    "caroud.web",
]

MIDDLEWARE = [
    "caroud.web.middleware.RedisDeadlineMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "caroud.project.urls"
ASGI_APPLICATION = "caroud.project.asgi.application"
WSGI_APPLICATION = "caroud.project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": _database(_text("DATABASE_URL", f"sqlite:///{DATA_DIR / 'caroud.sqlite3'}"))
}
CACHES = {"default": redis_cache(_text("CAROUD_KEY_PREFIX") or None)}
# Channels (the WebSocket at /ws/matchmaking): channels-redis on the same Redis, resolved
# at first use like the cache (caroud.web.layers).
CHANNEL_LAYERS = {"default": redis_channel_layer(_text("CAROUD_KEY_PREFIX") or None)}

# Small bodies: the API's largest request is a few hundred bytes (see CAROUD_API_MAX_BODY).
DATA_UPLOAD_MAX_MEMORY_SIZE = 16 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "filters": {"outage_logged_once": {"()": "caroud.logs.DropStatus", "status": 503}},
    "loggers": {
        "caroud": {"handlers": ["console"], "level": _text("CAROUD_LOG_LEVEL", "INFO").upper()},
        "django.request": {"filters": ["outage_logged_once"]},
    },
}
