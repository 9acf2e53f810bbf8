"""Match results into the database: Elo applied exactly once, in one transaction.

Two roads lead here and both may carry the same result: the game server's
``POST /matches/{id}/result`` (which records it in Redis first), and the engine's
results stream (``Keys.results()``, one entry per ended match) read by
:func:`apply_pending_results` — which catches whatever the first road missed (a
web process that died between Redis and the database, a result reported by
another tool). The unique :class:`MatchRecord` row is the lock: the first
transaction to hold it applies the ratings and sets ``rated_at``; any other finds
it set and applies nothing.

Only registered players are rated (ids unknown to the database, e.g. simulated
players, are left out, and the team averages are over the registered players); a
match where some team has no registered player changes no rating.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import DatabaseError, close_old_connections, connections, transaction
from django.utils import timezone

import redis
from caroud.context import Context
from caroud.errors import CaroudError, NotFoundError
from caroud.keys import Keys
from caroud.matchmaking.models import Match
from caroud.outage import Outage
from caroud.ratings import Rated, team_deltas
from caroud.redis.client import Redis, redis_errors
from caroud.web.models import MatchPlayer, MatchRecord, Player, RatingHistory

log = logging.getLogger("caroud.web.results")

RESULTS_GROUP = "caroud-web-ratings"
"""The consumer group of the results stream that applies ratings."""
CLAIM_IDLE_MS = 60_000
"""A result delivered to a consumer that has not acknowledged it for this long is taken over."""


@dataclass(frozen=True, slots=True)
class RatingChange:
    """One player's rating change from one match."""

    player_id: str
    team: int
    rating_before: float
    rating_after: float

    @property
    def delta(self) -> float:
        return round(self.rating_after - self.rating_before, 2)

    def as_json(self) -> dict[str, Any]:
        return {
            "player_id": self.player_id,
            "team": self.team,
            "rating_before": self.rating_before,
            "rating_after": self.rating_after,
            "delta": self.delta,
        }


@dataclass(frozen=True, slots=True)
class AppliedResult:
    """The recorded result of a match; ``already`` when an earlier call had applied it."""

    match_id: str
    winner: int | None
    already: bool
    changes: list[RatingChange] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "match_id": self.match_id,
            "winner": self.winner,
            "draw": self.winner is None,
            "already": self.already,
            "changes": [c.as_json() for c in self.changes],
        }


def _changes_of(record: MatchRecord) -> list[RatingChange]:
    rows = record.rating_changes.select_related("player").order_by("team", "pk")
    return [RatingChange(r.player.public_id, r.team, r.rating_before, r.rating_after) for r in rows]


def _describe(
    record: MatchRecord, queue: str, teams: Sequence[Sequence[str]], match: Match | None
) -> None:
    record.queue = queue or record.queue
    record.teams = [list(team) for team in teams]
    if match is None:
        return
    if match.server is not None:
        record.server_id = match.server.server_id
        record.server_address = match.server.address
        record.server_port = match.server.port
        record.region = match.server.region
    if match.started_at is not None and record.started_at is None:
        record.started_at = datetime.fromtimestamp(match.started_at, tz=UTC)


def record_result(
    match_id: str,
    *,
    queue: str,
    teams: Sequence[Sequence[str]],
    winner: int | None,
    ended_at: datetime | None = None,
    match: Match | None = None,
) -> AppliedResult:
    """Store the result and apply Elo to the registered players, once per ``match_id``."""
    with transaction.atomic():
        record, _ = MatchRecord.objects.select_for_update().get_or_create(
            match_id=match_id, defaults={"queue": queue}
        )
        if record.rated_at is not None:
            return AppliedResult(match_id, record.winner, True, _changes_of(record))
        _describe(record, queue, teams, match)
        record.winner = winner
        record.ended_at = ended_at or timezone.now()
        ids = [pid for team in teams for pid in team]
        players = {
            p.public_id: p
            for p in Player.objects.select_for_update().filter(public_id__in=ids).order_by("pk")
        }
        seats = [[players[pid] for pid in team if pid in players] for team in teams]
        MatchPlayer.objects.bulk_create(
            [
                MatchPlayer(match=record, player=p, team=i)
                for i, team in enumerate(seats)
                for p in team
            ],
            ignore_conflicts=True,
        )
        changes = _apply_elo(record, seats, winner) if len(seats) > 1 and all(seats) else []
        record.rated_at = timezone.now()
        record.save()
    return AppliedResult(match_id, winner, False, changes)


def _apply_elo(
    record: MatchRecord, seats: list[list[Player]], winner: int | None
) -> list[RatingChange]:
    deltas = team_deltas(
        [[Rated(p.rating, p.games_played) for p in team] for team in seats], winner
    )
    changes: list[RatingChange] = []
    history: list[RatingHistory] = []
    for team_index, (team, team_deltas_) in enumerate(zip(seats, deltas, strict=True)):
        for player, delta in zip(team, team_deltas_, strict=True):
            before = player.rating
            after = round(before + delta, 2)
            history.append(
                RatingHistory(
                    player=player,
                    match=record,
                    team=team_index,
                    rating_before=before,
                    rating_after=after,
                    games_before=player.games_played,
                )
            )
            player.rating = after
            player.games_played += 1
            changes.append(RatingChange(player.public_id, team_index, before, after))
    Player.objects.bulk_update([p for team in seats for p in team], ["rating", "games_played"])
    RatingHistory.objects.bulk_create(history)
    return changes


# -- the results stream ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResultEntry:
    """One entry of the results stream: ``m`` match, ``q`` queue, ``teams``, ``w`` winner."""

    entry_id: str
    match_id: str
    queue: str
    teams: list[list[str]]
    winner: int | None
    ended_at: datetime | None


def parse_entry(entry_id: str, fields: dict[str, str]) -> ResultEntry:
    """A stream entry as a :class:`ResultEntry`; ValueError if it is malformed."""
    match_id, w = fields.get("m", ""), fields.get("w", "")
    if not match_id or not (w == "draw" or w.isdigit()):
        raise ValueError(f"results entry {entry_id} has no match id or winner: {fields}")
    teams = [[p for p in team.split(",") if p] for team in fields.get("teams", "").split("|")]
    if w.isdigit() and int(w) >= len(teams):
        raise ValueError(f"results entry {entry_id}: winner {w} is not a team of {len(teams)}")
    at = fields.get("at", "")
    return ResultEntry(
        entry_id,
        match_id,
        fields.get("q", ""),
        teams,
        None if w == "draw" else int(w),
        datetime.fromtimestamp(int(at) / 1000, tz=UTC) if at.isdigit() else None,
    )


class ResultsFeed:
    """The results stream read through a consumer group: each entry acknowledged once applied."""

    def __init__(
        self,
        client: Redis,
        keys: Keys,
        consumer: str | None = None,
        claim_idle_ms: int = CLAIM_IDLE_MS,
    ) -> None:
        self.client = client
        self.stream = keys.results()
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.claim_idle_ms = claim_idle_ms

    def ensure_group(self) -> None:
        """Create the group at the stream's start (so nothing already there is skipped)."""
        with redis_errors(self.client):
            try:
                self.client.xgroup_create(self.stream, RESULTS_GROUP, id="0", mkstream=True)
            except redis.ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    def read(self, count: int, block_ms: int | None) -> list[tuple[str, dict[str, str]]]:
        """Entries to apply: this consumer's unacknowledged ones, stalled ones of others, new."""
        with redis_errors(self.client):
            mine: Any = self.client.xreadgroup(
                RESULTS_GROUP, self.consumer, {self.stream: "0"}, count=count
            )
            entries = self._present(mine[0][1] if mine else [])
            if entries:
                return entries
            claimed: Any = self.client.xautoclaim(
                self.stream, RESULTS_GROUP, self.consumer, self.claim_idle_ms, "0-0", count=count
            )
            entries = self._present(claimed[1])
            if entries:
                return entries
            new: Any = self.client.xreadgroup(
                RESULTS_GROUP, self.consumer, {self.stream: ">"}, count=count, block=block_ms
            )
        return list(new[0][1]) if new else []

    def _present(self, entries: Any) -> list[tuple[str, dict[str, str]]]:
        """The entries that still have their fields; trimmed ones are acknowledged away."""
        gone = [entry_id for entry_id, fields in entries if not fields]
        self.ack(gone)
        return [(entry_id, fields) for entry_id, fields in entries if fields]

    def ack(self, entry_ids: Sequence[str]) -> None:
        if entry_ids:
            with redis_errors(self.client):
                self.client.xack(self.stream, RESULTS_GROUP, *entry_ids)


def apply_pending_results(
    ctx: Context | None = None,
    *,
    consumer: str | None = None,
    count: int = 100,
    block_ms: int | None = None,
    claim_idle_ms: int = CLAIM_IDLE_MS,
) -> int:
    """Apply results from the stream not yet in the database; how many were newly applied.

    One call reads up to ``count`` entries (waiting up to ``block_ms`` for new ones
    if given): first this consumer's unacknowledged ones, then those another consumer
    has held unacknowledged for ``claim_idle_ms`` (it died), then new ones. An entry
    is acknowledged once its transaction commits; a database failure is raised, the
    entry and the rest left unacknowledged for the next call. Malformed entries are
    logged and acknowledged, so they cannot block the feed.
    """
    if ctx is None:
        from caroud.web.apps import get_context

        ctx = get_context()
    feed = ResultsFeed(ctx.client, ctx.keys, consumer, claim_idle_ms)
    feed.ensure_group()
    applied = 0
    for entry_id, fields in feed.read(count, block_ms):
        try:
            entry = parse_entry(entry_id, fields)
        except ValueError as e:
            log.error("skipping a malformed result", extra={"entry": entry_id, "error": str(e)})
            feed.ack([entry_id])
            continue
        result = record_result(
            entry.match_id,
            queue=entry.queue,
            teams=entry.teams,
            winner=entry.winner,
            ended_at=entry.ended_at,
            match=_match_or_none(ctx, entry.match_id),
        )
        feed.ack([entry_id])
        applied += 0 if result.already else 1
    return applied


def follow_results(stop: threading.Event, block_ms: int = 1000, ctx: Context | None = None) -> int:
    """Apply results as they come until ``stop`` is set; how many were newly applied.

    Redis or the database being away does not end it: the failure is logged once,
    retried with a backoff, and the end of the outage logged once (:class:`Outage`).
    """
    outage = Outage(log, "applying results")
    total = 0
    try:
        while not stop.is_set():
            close_old_connections()  # a long-lived loop: drop stale or broken connections
            try:
                total += apply_pending_results(ctx, block_ms=block_ms)
                outage.ok()
            except (CaroudError, DatabaseError) as e:
                stop.wait(outage.failed(e))
    finally:
        connections.close_all()  # this thread's own connections; nobody else will close them
    return total


def _match_or_none(ctx: Context, match_id: str) -> Match | None:
    try:
        return ctx.matches.get(match_id)
    except NotFoundError:
        return None
