"""Tokens out of the web server's logs: a filter for uvicorn's loggers.

A browser cannot set headers on a WebSocket, so it authenticates with
``/ws/matchmaking?token=cpt_…``, and uvicorn writes that path, query string and all,
in two places: the access log (``uvicorn.access``: ``"GET /path?query HTTP/1.1" 200``)
and, for every WebSocket handshake, its error logger (``uvicorn.error``: ``"WebSocket
/path?query" [accepted]``, at INFO, written even with ``--no-access-log``).

:class:`RedactSecrets` rewrites those records before any handler or formatter sees
them: the value of a query parameter whose name says it is a secret (``token``,
``access_token``, ``api_key``, ``password``, ...) becomes ``***``, and so does anything
:func:`caroud.logs.redact` would hide (a ``cpt_`` player token or ``csk_`` server key
anywhere in the line, a Redis URL's password). The path itself stays:
``"WebSocket /ws/matchmaking?token=***" [accepted]``. uvicorn's access lines carry no
header (client, method, path, HTTP version, status), so ``Authorization: Bearer`` is
never in them; but at ``--log-level debug`` the ``websockets`` library logs every
handshake header through ``uvicorn.error`` (``< authorization: Bearer cpt_…``), so the
values of :data:`SECRET_HEADERS` are hidden whole too.

Two ways to put the filter in place:

- :func:`log_config`: uvicorn's own default logging plus the filter, for
  ``uvicorn --log-config FILE`` (``python -m caroud.web.accesslog FILE`` writes it).
  uvicorn applies it in every worker process before it serves; ``caroud up`` runs its
  uvicorn so.
- :func:`install`: add the filter to the loggers of the running process. Called while
  the application is imported it holds (uvicorn configures logging first, and a later
  ``dictConfig`` replaces handlers, not a logger's filters).
"""

from __future__ import annotations

import copy
import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from caroud.logs import redact

LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn.asgi")
"""uvicorn's loggers that write request targets: access lines, WebSocket handshakes, trace."""
FILTER_NAME = "caroud_redact_secrets"
FILTER_FACTORY = "caroud.web.accesslog.RedactSecrets"
"""Spelled out: under ``python -m`` this module's ``__name__`` is ``__main__``."""

SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
"""Headers whose value is hidden whole when a library logs them one by one (at debug)."""

_PARAM = re.compile(r"([?&;])([^=&;#\s\"']+)=([^&;#\s\"']*)")
_SECRET_PARAM = re.compile(r"(?i)token|key|secret|passw(?:or)?d|pwd|auth|signature|credential")


def redact_target(text: str) -> str:
    """``text`` with the values of secret-named query parameters and any token as ``***``."""

    def param(m: re.Match[str]) -> str:
        sep, name, value = m.groups()
        hidden = value and _SECRET_PARAM.search(name)
        return f"{sep}{name}={'***' if hidden else value}"

    return redact(_PARAM.sub(param, text))


def _redact_arg(value: object) -> object:
    if isinstance(value, str):
        return redact_target(value)
    if value is None or isinstance(value, int | float):
        return value  # a status code, a counter: %d must still format it
    text = str(value)  # a scope dict (trace), bytes: their text, once it needs hiding
    hidden = redact_target(text)
    return value if hidden == text else hidden


def _redact_args(args: tuple[object, ...]) -> tuple[object, ...]:
    out = [_redact_arg(a) for a in args]
    for i, name in enumerate(args[:-1]):  # ("< %s: %s", name, value): a header at debug
        if isinstance(name, str) and name.lower() in SECRET_HEADERS and args[i + 1]:
            out[i + 1] = "***"
    return tuple(out)


class RedactSecrets(logging.Filter):
    """Hide query-string secrets, tokens and secret headers in a record (and keep it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_target(record.msg)
        if isinstance(record.args, tuple):
            record.args = _redact_args(record.args)
        elif isinstance(record.args, Mapping):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        return True


def install(names: Iterable[str] = LOGGERS) -> None:
    """Add :class:`RedactSecrets` to the loggers ``names`` of this process (once each)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


def log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration with :class:`RedactSecrets` on :data:`LOGGERS`."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})[FILTER_NAME] = {"()": FILTER_FACTORY}
    loggers = config.setdefault("loggers", {})
    for name in LOGGERS:
        loggers.setdefault(name, {}).setdefault("filters", []).append(FILTER_NAME)
    return config


def write_log_config(path: Path) -> Path:
    """Write :func:`log_config` as JSON to ``path`` (for ``uvicorn --log-config``); ``path``."""
    path.write_text(json.dumps(log_config(), indent=2) + "\n")
    return path


def main(argv: list[str]) -> int:
    """``python -m caroud.web.accesslog FILE``: write the log configuration, print its path."""
    if len(argv) != 1 or not argv[0].endswith(".json"):
        sys.stderr.write(
            "usage: python -m caroud.web.accesslog FILE.json\n"
            "  writes uvicorn's logging configuration with tokens redacted, for\n"
            "  uvicorn caroud.project.asgi:application --log-config FILE.json\n"
        )
        return 2
    sys.stdout.write(f"{write_log_config(Path(argv[0])).resolve()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
