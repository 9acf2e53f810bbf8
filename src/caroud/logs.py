"""Structured logging: JSON lines when stderr is not a terminal, ``key=value`` when it is.

Pass fields with ``extra={"ticket_id": ..., "match_id": ...}``; they become keys of
the line. URLs are redacted before they reach a handler.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_SECRET = re.compile(r"(rediss?://[^:/@\s]*:)[^@\s]+@")


def redact(text: str) -> str:
    """``text`` with any password in a Redis URL replaced by ``***``."""
    return _SECRET.sub(r"\1***@", text)


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


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
