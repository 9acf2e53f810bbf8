"""The audit after a chaos run: Redis and the database read directly, checked against each other.

It trusts neither the engine's stores nor their own audits: the records are read
raw (HGETALL over SCAN; key names from :mod:`caroud.keys`, field names from
:mod:`caroud.matchmaking.codec`'s layout) and the invariants are checked here, by
pure functions over plain data (:func:`check`), so a test can feed them a broken
state and see each one fire.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from caroud.keys import Keys, PoolKeys
from caroud.redis.client import Redis

LIVE_MATCH = frozenset({"matched", "assigned", "started"})
"""Statuses of a match that still holds its players."""
LIVE_SLOT = frozenset({"allocated", "started"})


@dataclass(frozen=True, slots=True)
class TicketRow:
    id: str
    status: str
    players: tuple[str, ...]
    match_id: str | None


@dataclass(frozen=True, slots=True)
class MatchRow:
    id: str
    status: str
    players: tuple[str, ...]
    started_ms: int | None
    ended_ms: int | None


@dataclass(frozen=True, slots=True)
class SlotRow:
    match_id: str
    state: str
    server: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What Redis and the database hold at the end of a run."""

    tickets: dict[str, TicketRow]
    matches: dict[str, MatchRow]
    slots: list[SlotRow]
    capacity: dict[str, int]
    rated: dict[str, int]
    """Match id → rating-history rows in the database."""
    recorded_players: dict[str, int]
    """Match id → players of its database record."""


@dataclass(frozen=True, slots=True)
class Findings:
    """Each invariant's violations (all should be empty); ids, for a human to look at."""

    double_matches: list[str] = field(default_factory=list)
    two_active_tickets: list[str] = field(default_factory=list)
    acked_lost: list[str] = field(default_factory=list)
    acked_lost_near_sigkill: list[str] = field(default_factory=list)
    slots_over_capacity: list[str] = field(default_factory=list)
    results_lost: list[str] = field(default_factory=list)
    ratings_applied_twice: list[str] = field(default_factory=list)


def check(
    snap: Snapshot,
    acked: Mapping[str, float],
    results: Mapping[str, bool],
    sigkills: Sequence[float],
    loss_window_s: float = 1.5,
) -> Findings:
    """The invariants, over a snapshot and what the clients were told.

    * a player is in at most one live match, and no two started matches of a player
      overlap in time (``double_matches``: player ids);
    * a player has at most one active ticket (queued, matched, or assigned to a live
      match);
    * every ticket the API acknowledged (201) still exists; those acknowledged within
      ``loss_window_s`` before a Redis SIGKILL are counted apart (AOF ``everysec``
      may lose the last second);
    * no server runs more matches than its capacity;
    * every result the API acknowledged (200) is in the database, with one rating
      change per player: never zero, never twice.
    """
    double = _double_matches(snap.matches.values())
    active: dict[str, list[str]] = defaultdict(list)
    for t in snap.tickets.values():
        if _is_active(t, snap.matches):
            for p in t.players:
                active[p].append(t.id)
    lost, near = [], []
    for ticket_id, when in acked.items():
        if ticket_id in snap.tickets:
            continue
        if any(0 <= kill - when <= loss_window_s for kill in sigkills):
            near.append(ticket_id)
        else:
            lost.append(ticket_id)
    running: dict[str, int] = defaultdict(int)
    for slot in snap.slots:
        if slot.state in LIVE_SLOT:
            running[slot.server] += 1
    over = [s for s, n in running.items() if n > snap.capacity.get(s, 0)]
    results_lost = [m for m in results if snap.rated.get(m, 0) == 0]
    twice = [m for m, n in snap.rated.items() if n > snap.recorded_players.get(m, n)]
    return Findings(
        double_matches=sorted(double),
        two_active_tickets=sorted(p for p, ids in active.items() if len(ids) > 1),
        acked_lost=sorted(lost),
        acked_lost_near_sigkill=sorted(near),
        slots_over_capacity=sorted(over),
        results_lost=sorted(results_lost),
        ratings_applied_twice=sorted(twice),
    )


def _is_active(t: TicketRow, matches: Mapping[str, MatchRow]) -> bool:
    if t.status in ("queued", "matched"):
        return True
    if t.status != "assigned" or t.match_id is None:
        return False
    match = matches.get(t.match_id)
    return match is None or match.status in LIVE_MATCH


def _double_matches(matches: Iterable[MatchRow]) -> set[str]:
    live: dict[str, int] = defaultdict(int)
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for m in matches:
        for p in m.players:
            if m.status in LIVE_MATCH:
                live[p] += 1
            if m.started_ms is not None:
                spans[p].append((m.started_ms, m.ended_ms or 2**62))
    out = {p for p, n in live.items() if n > 1}
    for p, intervals in spans.items():
        intervals.sort()
        if any(b[0] < a[1] for a, b in pairwise(intervals)):
            out.add(p)
    return out


# -- reading ---------------------------------------------------------------------------------


def read_redis(
    client: Redis, keys: Keys, pool: PoolKeys
) -> tuple[dict[str, TicketRow], dict[str, MatchRow], list[SlotRow], dict[str, int]]:
    """Every ticket, match and slot in Redis, and each server's capacity (raw reads)."""
    tickets = {key.rsplit(":", 1)[1]: fields for key, fields in _hashes(client, keys.ticket("*"))}
    matches = {key.rsplit(":", 1)[1]: fields for key, fields in _hashes(client, keys.match("*"))}
    ticket_rows = {
        tid: TicketRow(
            tid,
            f.get("s", ""),
            tuple(item.partition("=")[0] for item in f.get("p", "").split(",") if item),
            f.get("m") or None,
        )
        for tid, f in tickets.items()
    }
    match_rows = {
        mid: MatchRow(
            mid,
            f.get("s", ""),
            tuple(p for team in f.get("tm", "").split("|") for p in team.split(",") if p),
            int(f["st"]) if f.get("st") else None,
            int(f["en"]) if f.get("en") else None,
        )
        for mid, f in matches.items()
    }
    alloc: dict[str, str] = client.hgetall(pool.allocations())  # type: ignore[assignment]
    slots = [SlotRow(mid, *value.split("|")[:2]) for mid, value in alloc.items()]
    attrs: dict[str, str] = client.hgetall(pool.servers())  # type: ignore[assignment]
    capacity = {f.rsplit(":", 1)[0]: int(v) for f, v in attrs.items() if f.endswith(":cap")}
    return ticket_rows, match_rows, slots, capacity


def _hashes(client: Redis, pattern: str) -> list[tuple[str, dict[str, str]]]:
    names = sorted(client.scan_iter(match=pattern, count=1000, _type="hash"))
    out: list[tuple[str, dict[str, str]]] = []
    for i in range(0, len(names), 500):
        chunk = names[i : i + 500]
        with client.pipeline(transaction=False) as pipe:
            for name in chunk:
                pipe.hgetall(name)
            out.extend(zip(chunk, pipe.execute(), strict=True))
    return out


def read_database() -> tuple[dict[str, int], dict[str, int]]:
    """Rating-history rows per match, and players per match record (Django is set up)."""
    from django.db.models import Count

    from caroud.web.models import MatchRecord, RatingHistory

    rated = {
        str(row["match__match_id"]): int(row["n"])
        for row in RatingHistory.objects.values("match__match_id").annotate(n=Count("id"))
    }
    players = {
        str(r.match_id): sum(len(team) for team in r.teams) for r in MatchRecord.objects.all()
    }
    return rated, players
