"""The pool's settings: heartbeat interval, missed heartbeats, grace, start deadline."""

from __future__ import annotations

import pytest

from caroud.errors import ConfigError
from caroud.settings import Settings


def test_defaults() -> None:
    s = Settings.from_mapping({})
    assert (s.heartbeat_interval_s, s.missed_heartbeats) == (5.0, 3)
    assert (s.first_heartbeat_grace_s, s.start_deadline_s) == (60.0, 30.0)


def test_from_environment() -> None:
    s = Settings.from_mapping(
        {
            "CAROUD_HEARTBEAT_INTERVAL": "2.5",
            "CAROUD_MISSED_HEARTBEATS": "4",
            "CAROUD_FIRST_HEARTBEAT_GRACE": "90",
            "CAROUD_START_DEADLINE": "10",
        }
    )
    assert (s.heartbeat_interval_s, s.missed_heartbeats) == (2.5, 4)
    assert (s.first_heartbeat_grace_s, s.start_deadline_s) == (90.0, 10.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HEARTBEAT_INTERVAL", "0"),
        ("HEARTBEAT_INTERVAL", "soon"),
        ("MISSED_HEARTBEATS", "0"),
        ("MISSED_HEARTBEATS", "2.5"),
        ("FIRST_HEARTBEAT_GRACE", "-1"),
        ("START_DEADLINE", "0"),
    ],
)
def test_bad_values(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"CAROUD_{name}"):
        Settings.from_mapping({f"CAROUD_{name}": value})
