"""Log redaction: secrets never reach a log line, in the message, an exception or an extra field."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from caroud.logs import JsonFormatter, KeyValueFormatter, redact, redact_value

SECRETS = ("s3cret", "tok-123", "hunter2", "pw-in-auth", "nested-pw")


def record(msg: str, extra: dict[str, object], exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("connect to rediss://:s3cret@cache:6379 failed, token=tok-123")
        except RuntimeError:
            exc_info = sys.exc_info()
    rec = logging.LogRecord("caroud.test", logging.INFO, __file__, 1, msg, None, exc_info)
    rec.__dict__.update(extra)
    return rec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:s3cret@h:6379/0", "redis://:***@h:6379/0"),
        ("rediss://app:s3cret@h:1", "rediss://app:***@h:1"),
        ("token=tok-123 queue=duel", "token=*** queue=duel"),
        ("password: 'hunter 2' ok", "password: *** ok"),
        ("auth_token=tok-123&x=1", "auth_token=***&x=1"),
        ("CAROUD_AUTH_TOKEN=tok-123", "CAROUD_AUTH_TOKEN=***"),
        ("('AUTH', 'default', 'pw-in-auth')", "('AUTH', '***')"),
        ("Put the AUTH token in the URL", "Put the AUTH token in the URL"),
        ("tokens=5 matched_tickets=4", "tokens=5 matched_tickets=4"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_secret_fields_are_masked_whole_and_others_redacted_deeply() -> None:
    assert redact_value("auth_token", "tok-123") == "***"
    assert redact_value("password", "") == ""
    assert redact_value("ctx", {"requirepass": "x", "urls": ["redis://:nested-pw@h"]}) == {
        "requirepass": "***",
        "urls": ["redis://:***@h"],
    }
    assert redact_value("matched_tickets", 4) == 4
    assert redact_value("ticket_ids", "a,b") == "a,b"


@pytest.mark.parametrize("formatter", [JsonFormatter(), KeyValueFormatter()])
def test_no_secret_reaches_a_line(formatter: logging.Formatter) -> None:
    rec = record(
        "cannot reach redis://:s3cret@cache:6379 (password=hunter2)",
        {
            "url": "rediss://:s3cret@cache:6379",
            "auth_token": "tok-123",
            "command": "('AUTH', 'pw-in-auth')",
            "details": {"password": "nested-pw", "queue": "duel"},
            "queue": "duel",
        },
        exc=True,
    )
    line = formatter.format(rec)
    for secret in SECRETS:
        assert secret not in line, (secret, line)
    assert "duel" in line and "***" in line
    if isinstance(formatter, JsonFormatter):
        body = json.loads(line)
        assert body["auth_token"] == "***" and body["details"]["queue"] == "duel"
