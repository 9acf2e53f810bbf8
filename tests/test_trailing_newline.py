"""Validators take the whole value: a trailing newline is not a valid id, address or label.

(``$`` in a Python pattern also matches just before a final newline, which would hand
``"10.2.0.9\\n"`` to players as a server address.)"""

from __future__ import annotations

from typing import Any

import pytest

from caroud.errors import ConfigError, ValidationError
from caroud.matchmaking.queues import parse_queue
from caroud.matchmaking.store import MatchmakingStore
from caroud.servers.validation import check_address, check_labels


@pytest.mark.parametrize("value", ["10.2.0.9\n", "10.2.0.9\r\n", "host\n"])
def test_a_server_address_with_a_line_break_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="address"):
        check_address(value)
    assert check_address(value.strip()) == value.strip()


@pytest.mark.parametrize("labels", [{"build\n": "1.4"}, {"build": "1.4\n"}])
def test_labels_with_a_line_break_are_refused(labels: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        check_labels("labels", labels)


def test_player_and_ticket_ids_with_a_line_break_are_refused(store: MatchmakingStore) -> None:
    with pytest.raises(ValidationError):
        store.enqueue("duel", [("alice\n", 1500)])
    with pytest.raises(ValidationError):
        store.enqueue("duel", [("alice", 1500)], ticket_id="t1\n")
    assert store.count("duel") == 0, "nothing half-written"


def test_queue_and_region_names_with_a_line_break_are_refused() -> None:
    spec: dict[str, Any] = {"teams": 2, "team_size": 1}
    with pytest.raises(ConfigError):
        parse_queue("duel\n", spec)
    with pytest.raises(ConfigError):
        parse_queue("duel", spec | {"regions": ["eu\n"]})
