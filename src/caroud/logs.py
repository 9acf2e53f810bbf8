"""Structured logging: JSON lines when stderr is not a terminal, ``key=value`` when it is.

Pass fields with ``extra={"ticket_id": ..., "match_id": ...}``; they become keys of
the line. Secrets are redacted before a line is written, in the message, the
exception and every extra field (nested dicts and lists too): the password of a
Redis URL, ``token=`` / ``password=`` / ``secret=`` key-values, the argument of an
``AUTH`` command written as a tuple or list, and the whole value of any field whose
name says it holds a secret (``password``, ``token``, ``auth``, ``secret``, ...).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_SECRET = re.compile(r"((?:rediss?|valkeys?)://[^:/@\s]*:)[^@\s]+@")
_KEY_VALUE = re.compile(
    r"(?i)(?<![a-z])((?:auth[_-]?)?(?:password|passwd|pwd|token|secret|requirepass))"
    r"(\s*[=:]\s*)(?:\"[^\"]*\"|'[^']*'|(?!\*\*\*)[^\s'\"&,;]+)"
)
_CAROUD_TOKEN = re.compile(r"(?<![A-Za-z0-9])(c(?:pt|sk)_)[A-Za-z0-9_-]+")
"""A player token or a server key (the prefixes of :mod:`caroud.web.auth`), bare or in a URL."""
_AUTH_COMMAND = re.compile(r"""(?i)(['"]AUTH['"]\s*,\s*)(?:(['"])[^'"]*\2\s*,\s*)?(['"])[^'"]*\3""")
_SECRET_FIELD = re.compile(
    r"(?i)(password|passwd|pwd|requirepass|token|secret|auth|credential|^pass$|_pass$)"
)


def redact(text: str) -> str:
    """``text`` with secrets as ``***``: URL passwords, ``token=`` values, Caroud tokens, AUTH."""
    text = _SECRET.sub(r"\1***@", text)
    text = _KEY_VALUE.sub(r"\1\2***", text)
    text = _CAROUD_TOKEN.sub(r"\1***", text)
    return _AUTH_COMMAND.sub(r"\1'***'", text)


def redact_value(name: str, value: object) -> object:
    """An extra field's value fit to log: masked whole if ``name`` says it is a secret."""
    if _SECRET_FIELD.search(name) and value not in (None, ""):
        return "***"
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value("", v) for v in value]
    return value


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: redact_value(k, v) for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        line.update(_fields(record))
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


class KeyValueFormatter(logging.Formatter):
    """``HH:MM:SS level msg key=value ...`` for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        text = (
            f"{stamp} {record.levelname.lower():7} {redact(record.getMessage())} {extra}".rstrip()
        )
        if record.exc_info:
            text += "\n" + redact(self.formatException(record.exc_info))
        return text


def configure_logging(level: str = "info", json_lines: bool | None = None) -> None:
    """Send ``caroud.*`` logs to stderr in the format that suits where stderr goes."""
    use_json = not sys.stderr.isatty() if json_lines is None else json_lines
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else KeyValueFormatter())
    root = logging.getLogger("caroud")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


class DropStatus(logging.Filter):
    """Drop Django's ``"Service Unavailable: /path"`` record of every 503 response.

    A 503 is an outage, and the code that met it logs the outage once (and its end),
    not once per request: see :mod:`caroud.outage`. Other statuses pass.
    """

    def __init__(self, status: int = 503) -> None:
        super().__init__()
        self.status = status

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "status_code", None) != self.status
