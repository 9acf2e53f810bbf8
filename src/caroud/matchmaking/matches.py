"""Matches after they form: waiting for a server, assigned, started, ended — in Redis.

Each transition is one Lua script over the match and its tickets (all in the
``{mm}`` hash tag), checking the match's current state first, so a retry or a race
between two workers changes nothing twice. The game-server side of the same
transitions lives in :mod:`caroud.servers.pool`; :mod:`caroud.matchmaking.assignment`
drives the two together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from caroud.errors import NotFoundError, ValidationError
from caroud.matchmaking import codec
from caroud.matchmaking.models import Match, MatchStatus, ServerAddress, Ticket
from caroud.matchmaking.store import MatchmakingStore
from caroud.redis.client import redis_errors

PENDING_BATCH = 500
"""Matches read from a queue's pending set per assignment round."""


@dataclass(frozen=True, slots=True)
class MatchOutcome:
    """How a match ended; ``already`` when an earlier call had recorded it."""

    match_id: str
    status: MatchStatus
    winner: int | None
    already: bool


class MatchStore:
    """Redis I/O for the lifecycle of formed matches."""

    def __init__(self, store: MatchmakingStore) -> None:
        self.store = store
        self.client = store.client
        self.keys = store.keys
        self.scripts = store.scripts
        self.settings = store.settings

    def get(self, match_id: str) -> Match:
        """The match; :class:`NotFoundError` if unknown or expired."""
        return self.store.get_match(match_id)

    def tickets_of(self, match: Match) -> list[Ticket]:
        """The match's tickets that still exist, in team order."""
        found = self.store.get_many(match.ticket_ids)
        return [found[t] for t in match.ticket_ids if t in found]

    def pending(self, queue_name: str, limit: int = PENDING_BATCH) -> list[Match]:
        """Matches of a queue waiting for a server, longest-waiting players first.

        Records that expired meanwhile are dropped from the set.
        """
        key = self.keys.pending(queue_name)
        with redis_errors(self.client):
            entries: Any = self.client.zrange(key, 0, limit - 1, withscores=True)
            pipe = self.client.pipeline(transaction=False)
            for match_id, _ in entries:
                pipe.hgetall(self.keys.match(match_id))
            records = pipe.execute() if entries else []
        out: list[Match] = []
        gone: list[str] = []
        for (match_id, _), fields in zip(entries, records, strict=True):
            if not fields:
                gone.append(match_id)
                continue
            out.append(codec.decode_match(match_id, fields))
        if gone:
            with redis_errors(self.client):
                self.client.zrem(key, *gone)
        return out

    def assign(self, match: Match, server: ServerAddress) -> bool:
        """Record the match's server; its tickets become assigned. False if it moved on."""
        return self.assign_many([(match, server)])[0]

    def assign_many(self, placed: Sequence[tuple[Match, ServerAddress]]) -> list[bool]:
        """:meth:`assign` for each (match, server), in one round trip, each its own script."""
        pipe = self.client.pipeline(transaction=False)
        for match, server in placed:
            keys = [
                self.keys.match(match.id),
                self.keys.pending(match.queue),
                self.keys.events(match.queue),
                *(self.keys.ticket(t) for t in match.ticket_ids),
            ]
            args: list[Any] = [
                match.id,
                server.server_id,
                server.address,
                server.port,
                server.region,
                self.settings.events_maxlen,
                *match.ticket_ids,
            ]
            self.scripts.assign_match(keys=keys, args=args, client=pipe)
        with redis_errors(self.client):
            replies = pipe.execute() if placed else []
        return [reply[0] == "OK" for reply in replies]

    def _add_tickets(self, tickets: Sequence[Ticket], keys: list[str], args: list[Any]) -> None:
        """Per ticket: its hash and player keys in KEYS; id, player count, player ids in ARGV."""
        for t in tickets:
            keys.append(self.keys.ticket(t.id))
            keys += [self.keys.player(p) for p in t.player_ids]
            args += [t.id, t.size, ",".join(t.player_ids)]

    def requeue(self, match: Match, why: str) -> int:
        """Send a match that never started back to the queue; how many tickets went back.

        Tickets keep their creation time, so they are matched ahead of newer ones.
        Returns 0 (and writes nothing) if the match had started or ended meanwhile.
        """
        tickets = self.tickets_of(match)
        keys = [
            self.keys.match(match.id),
            self.keys.pending(match.queue),
            self.keys.events(match.queue),
            self.keys.queue(match.queue),
        ]
        args: list[Any] = [match.id, why, self.settings.events_maxlen, self.settings.ended_ttl_s]
        self._add_tickets(tickets, keys, args)
        with redis_errors(self.client):
            reply = self.scripts.requeue_match(keys=keys, args=args)
        return int(reply[1]) if reply[0] == "OK" else 0

    def retry_assignment(self, match: Match) -> None:
        """Put an assigned match whose server slot expired back in line, at the front."""
        with redis_errors(self.client):
            self.client.zadd(self.keys.pending(match.queue), {match.id: 0})

    def mark_started(self, match_id: str) -> Match:
        """The server confirmed the start (idempotent).

        :class:`NotFoundError` for an unknown match, :class:`ValidationError` naming the
        state when it is not assigned (e.g. still waiting for a server, or ended).
        """
        with redis_errors(self.client):
            reply = self.scripts.start_match(keys=[self.keys.match(match_id)], args=[match_id])
        if reply[0] == "STATE":
            if reply[1] == "missing":
                raise NotFoundError(f"match {match_id!r} does not exist (or has expired)")
            raise ValidationError("match", f"match {match_id!r} is {reply[1]}: it cannot start")
        return self.get(match_id)

    def finish(self, match: Match, status: MatchStatus, winner: int | None) -> MatchOutcome:
        """End the match with a result (``ENDED``) or without (``INTERRUPTED``); idempotent."""
        tickets = self.tickets_of(match)
        by_team = [",".join(team) for team in players_by_team(match, tickets)]
        keys = [
            self.keys.match(match.id),
            self.keys.events(match.queue),
            self.keys.results(),
            self.keys.pending(match.queue),
        ]
        result = "" if status is MatchStatus.INTERRUPTED else ("draw" if winner is None else winner)
        args: list[Any] = [
            match.id,
            status.value,
            result,
            self.settings.ended_ttl_s,
            self.settings.events_maxlen,
            "|".join(by_team),
        ]
        self._add_tickets(tickets, keys, args)
        with redis_errors(self.client):
            reply = self.scripts.end_match(keys=keys, args=args)
        if reply[0] == "STATE":
            raise ValidationError(
                "match", f"match {match.id!r} is {reply[1]}: only a running match can end"
            )
        recorded = str(reply[2])
        return MatchOutcome(
            match.id,
            MatchStatus(reply[1]),
            int(recorded) if recorded.isdigit() else None,
            already=reply[0] == "DONE",
        )


def check_winner(match: Match, winner: Any) -> int | None:
    """``winner`` as a team index of ``match`` (None for a draw), or :class:`ValidationError`."""
    if winner is None:
        return None
    if isinstance(winner, bool) or not isinstance(winner, int):
        raise ValidationError("winner", f"must be a team index or null for a draw, got {winner!r}")
    if not 0 <= winner < len(match.teams):
        raise ValidationError(
            "winner", f"match {match.id!r} has teams 0..{len(match.teams) - 1}, not {winner}"
        )
    return winner


def players_by_team(match: Match, tickets: Sequence[Ticket]) -> list[list[str]]:
    """The player ids of each team of ``match``."""
    return [[p for t in tickets if t.id in team for p in t.player_ids] for team in match.teams]
