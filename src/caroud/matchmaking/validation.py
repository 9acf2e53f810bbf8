"""Checks on caller input, before anything is written: each failure names the field and the rule."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from caroud.errors import ValidationError
from caroud.matchmaking.models import PlayerEntry, QueueConfig
from caroud.matchmaking.queues import NAME_RE

MIN_RATING = 0.0
MAX_RATING = 10_000.0
MAX_LATENCY_MS = 10_000.0


def _finite_number(field: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(field, f"must be a number, got {type(value).__name__} {value!r}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise ValidationError(field, f"must be between {low:g} and {high:g}, got {value!r}")
    return number


def check_id(field: str, value: Any) -> str:
    """An id (player, ticket, region): 1-64 of letters, digits, '.', '_', '-'."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ValidationError(
            field, f"must be 1-64 letters, digits, '.', '_' or '-', got {value!r}"
        )
    return value


def check_players(queue: QueueConfig, players: Sequence[Any]) -> tuple[PlayerEntry, ...]:
    """Players as ``PlayerEntry`` (or ``(id, rating)`` pairs), checked against ``queue``'s rules."""
    if not isinstance(players, Sequence) or isinstance(players, str) or not players:
        raise ValidationError("players", "must be a non-empty list of players")
    if len(players) > queue.team_size:
        raise ValidationError(
            "players",
            f"a party of {len(players)} is larger than the team size {queue.team_size} "
            f"of queue {queue.name!r}",
        )
    if len(players) not in queue.party_sizes:
        allowed = ", ".join(str(s) for s in queue.party_sizes)
        raise ValidationError(
            "players", f"queue {queue.name!r} takes parties of {allowed}, not {len(players)}"
        )
    out: list[PlayerEntry] = []
    seen: set[str] = set()
    for i, p in enumerate(players):
        pid, rating = (p.id, p.rating) if isinstance(p, PlayerEntry) else p
        pid = check_id(f"players[{i}].id", pid)
        if pid in seen:
            raise ValidationError(f"players[{i}].id", f"player {pid!r} appears twice in the ticket")
        seen.add(pid)
        value = _finite_number(f"players[{i}].rating", rating, MIN_RATING, MAX_RATING)
        out.append(PlayerEntry(pid, value))
    return tuple(out)


def check_latencies(queue: QueueConfig, latencies: Any) -> dict[str, float]:
    """Per-region latencies in ms: known regions only, and at least one under the queue's limit."""
    if latencies is None:
        return {}
    if not isinstance(latencies, Mapping):
        raise ValidationError("latencies", "must be an object of region name to milliseconds")
    out: dict[str, float] = {}
    for region, ms in latencies.items():
        if region not in queue.regions:
            raise ValidationError(
                f"latencies.{region}",
                f"unknown region for queue {queue.name!r}; its regions: {', '.join(queue.regions)}",
            )
        out[region] = _finite_number(f"latencies.{region}", ms, 0.0, MAX_LATENCY_MS)
    if out and min(out.values()) > queue.max_latency_ms:
        raise ValidationError(
            "latencies",
            f"no region is under the queue's limit of {queue.max_latency_ms:g} ms, "
            "so the ticket could never be matched",
        )
    return out
