"""Matches after they form: waiting for a server, assigned, started, ended — in Redis.

Each transition is one Lua script over the match and its tickets (all in the
``{mm}`` hash tag), checking the match's current state first, so a retry or a race
between two workers changes nothing twice. The game-server side of the same
transitions lives in :mod:`caroud.servers.pool`; :mod:`caroud.matchmaking.assignment`
drives the two together.

Besides the fields of :mod:`caroud.matchmaking.codec`, a match hash holds ``av``: the
servers where its start expired, comma-separated (one per failed placement), which
its next placements avoid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from caroud.errors import NotFoundError, TicketStateError, ValidationError
from caroud.matchmaking import codec
from caroud.matchmaking.models import Match, MatchStatus, ServerAddress, Ticket, TicketStatus
from caroud.matchmaking.store import MatchmakingStore
from caroud.redis.client import redis_errors

PENDING_BATCH = 500
"""Matches read from a queue's pending set per assignment round."""
CANCEL_ATTEMPTS = 3
"""Reads a cancel makes when the ticket changes under it (e.g. matched, or sent back)."""
LEFT = "player_left"
"""Why a match ends ``requeued`` when one of its players cancelled."""
IN_MATCH = frozenset({TicketStatus.MATCHED, TicketStatus.ASSIGNED})


@dataclass(frozen=True, slots=True)
class PendingMatch:
    """A match waiting for a server, with the servers where its start already expired."""

    match: Match
    failed_on: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Cancellation:
    """A cancelled ticket; the match it left (None if it was queued) and who went back."""

    ticket: Ticket
    left_match: Match | None = None
    requeued_tickets: int = 0


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

    def pending(self, queue_name: str, limit: int = PENDING_BATCH) -> list[PendingMatch]:
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
        out: list[PendingMatch] = []
        gone: list[str] = []
        for (match_id, _), fields in zip(entries, records, strict=True):
            if not fields:
                gone.append(match_id)
                continue
            failed = tuple(s for s in fields.get("av", "").split(",") if s)
            out.append(PendingMatch(codec.decode_match(match_id, fields), failed))
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
        reply = self._requeue_call(match, why, leaver="")
        return int(reply[1]) if reply[0] == "OK" else 0

    def _requeue_call(self, match: Match, why: str, leaver: str) -> Any:
        """Run requeue_match.lua over the match's tickets; ``leaver`` ends cancelled."""
        keys = [
            self.keys.match(match.id),
            self.keys.pending(match.queue),
            self.keys.events(match.queue),
            self.keys.queue(match.queue),
        ]
        args: list[Any] = [
            match.id,
            why,
            self.settings.events_maxlen,
            self.settings.ended_ttl_s,
            leaver,
        ]
        self._add_tickets(self.tickets_of(match), keys, args)
        with redis_errors(self.client):
            return self.scripts.requeue_match(keys=keys, args=args)

    def retry_elsewhere(self, match: Match, server_id: str) -> int | None:
        """The match's start expired on ``server_id``: put it back in line, at the front.

        Its next placements avoid that server. How many placements have failed so far,
        or None (nothing written) if the match is no longer assigned to that server.
        """
        keys = [self.keys.match(match.id), self.keys.pending(match.queue)]
        with redis_errors(self.client):
            reply = self.scripts.retry_match(keys=keys, args=[match.id, server_id])
        return int(reply[1]) if reply[0] == "OK" else None

    def cancel(self, ticket_id: str) -> Cancellation:
        """Cancel a ticket; one in a match that has not started leaves it.

        Queued: as :meth:`MatchmakingStore.cancel`. Matched or assigned, in a match
        that has not started: in one script the ticket ends ``cancelled`` (its players
        are free), the match ends ``requeued`` (why ``player_left``) and its other
        tickets go back to the queue keeping their wait, each change an event on the
        queue's stream. The caller frees the match's server slot, if it had one
        (:meth:`~caroud.matchmaking.assignment.Assigner.cancel_ticket` does).

        :class:`TicketStateError` once the match has started (or ended), or if the
        ticket has ended; :class:`NotFoundError` if it does not exist.
        """
        for _ in range(CANCEL_ATTEMPTS):
            ticket = self.store.get(ticket_id)
            if ticket.status is TicketStatus.QUEUED:
                try:
                    return Cancellation(self.store.cancel(ticket_id))
                except TicketStateError as e:
                    if e.status in IN_MATCH:
                        continue  # matched meanwhile: leave that match instead
                    raise
            if ticket.status not in IN_MATCH or ticket.match_id is None:
                raise TicketStateError(ticket_id, ticket.status.value, "cancel")
            left = self._leave(ticket, ticket.match_id)
            if left is not None:
                return left
        raise cancel_refused(
            ticket_id,
            ticket.status.value,
            f"ticket {ticket_id!r} kept changing state while being cancelled: try again",
        )

    def _leave(self, ticket: Ticket, match_id: str) -> Cancellation | None:
        """One attempt at taking ``ticket`` out of its match; None if it moved meanwhile."""
        try:
            match = self.get(match_id)
        except NotFoundError:
            return None
        reply = self._requeue_call(match, LEFT, leaver=ticket.id)
        if reply[0] == "OK":
            cancelled = replace(ticket, status=TicketStatus.CANCELLED, match_id=None, team=None)
            return Cancellation(cancelled, match, int(reply[1]))
        if reply[0] == "MOVED" or reply[1] == MatchStatus.REQUEUED:
            return None
        raise cancel_refused(
            ticket.id,
            ticket.status.value,
            f"ticket {ticket.id!r} is in match {match_id!r}, which is {reply[1]}: it can no "
            "longer be cancelled (leave the game on its server, or wait for the match to end)",
        )

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


def cancel_refused(ticket_id: str, status: str, message: str) -> TicketStateError:
    """A :class:`TicketStateError` of ``cancel`` whose message says why and what to do."""
    error = TicketStateError(ticket_id, status, "cancel")
    error.args = (message,)
    return error


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
