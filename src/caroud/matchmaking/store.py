"""Tickets and matches in Redis: every read and write of the matchmaking keys goes through here.

Writes that must be atomic are Lua scripts (``caroud/lua``); this module wraps each
one, turning its sentinel replies into results or Caroud errors. Methods say what
happens when a record is missing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from redis.client import Pipeline

from caroud.errors import (
    LeaseLostError,
    NotFoundError,
    PlayerBusyError,
    TicketStateError,
    ValidationError,
)
from caroud.events import Event, parse_event
from caroud.ids import new_id
from caroud.keys import Keys
from caroud.matchmaking import codec
from caroud.matchmaking.models import (
    Match,
    PlayerEntry,
    ProposedMatch,
    QueueConfig,
    Ticket,
    TicketStatus,
)
from caroud.matchmaking.queues import QueueRegistry
from caroud.matchmaking.validation import check_id, check_latencies, check_players
from caroud.redis.client import Redis, redis_errors
from caroud.redis.scripts import MatchmakingScripts
from caroud.settings import Settings

CLAIM_BATCH_TICKETS = 100
"""Tickets per claim or time-out script call: bounds how long one call holds the server (~1 ms)."""
SCAN_CHUNK = 1000
"""Tickets read per round trip when loading a queue."""
QUALITY_KEPT = 200
"""How many of a queue's newest matches its recent-quality figures are taken over."""


@dataclass(frozen=True, slots=True)
class RecentQuality:
    """A queue's newest matches (at most :data:`QUALITY_KEPT`) as players felt them."""

    matches: int
    rating_gap_mean: float | None
    """Mean rating spread between the tickets of a match (1v1: the gap)."""
    rating_gap_p95: float | None
    imbalance_mean: float | None
    """Mean ``|P(win) - 0.5|`` of the strongest team against the weakest (0: coin flips)."""


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """What became of one proposed match: claimed, or which of its tickets were gone."""

    match_id: str
    proposal: ProposedMatch
    claimed: bool
    stale_tickets: tuple[str, ...] = ()


@dataclass
class Claims:
    """The outcome of :meth:`MatchmakingStore.claim`."""

    results: list[ClaimResult] = field(default_factory=list)
    lease_lost: bool = False


class MatchmakingStore:
    """Redis I/O for tickets, matches, leases and queue event streams."""

    def __init__(
        self, client: Redis, keys: Keys, queues: QueueRegistry, settings: Settings
    ) -> None:
        self.client = client
        self.keys = keys
        self.queues = queues
        self.settings = settings
        self.scripts = MatchmakingScripts.register(client)

    # -- tickets --------------------------------------------------------------------------

    def enqueue(
        self,
        queue_name: str,
        players: Sequence[PlayerEntry | tuple[str, float]],
        latencies: Mapping[str, float] | None = None,
        *,
        ticket_id: str | None = None,
        created_at: float | None = None,
    ) -> Ticket:
        """Queue a player or party; :class:`PlayerBusyError` if a player already has a ticket.

        ``created_at`` (seconds) keeps an earlier waiting time (a requeue); by default
        the Redis server's clock stamps the ticket, so all processes share one clock.
        """
        queue = self.queues.get(queue_name)
        entries = check_players(queue, players)
        lat = check_latencies(queue, latencies)
        tid = check_id("ticket_id", ticket_id) if ticket_id is not None else new_id()
        created = "" if created_at is None else str(int(created_at * 1000))
        keys = [self.keys.ticket(tid), self.keys.queue(queue.name), self.keys.events(queue.name)]
        keys += [self.keys.player(p.id) for p in entries]
        args: list[Any] = [
            tid,
            queue.name,
            codec.encode_players(entries),
            codec.encode_latencies(lat),
            created,
            self.settings.events_maxlen,
            ",".join(p.id for p in entries),
        ]
        with redis_errors(self.client):
            reply = self.scripts.enqueue(keys=keys, args=args)
        if reply[0] == "BUSY":
            raise PlayerBusyError(reply[1], reply[2])
        if reply[0] == "EXISTS":
            raise ValidationError("ticket_id", f"a ticket {tid!r} exists already; use a new id")
        return Ticket(tid, queue.name, entries, int(reply[1]) / 1000.0, lat)

    def get(self, ticket_id: str) -> Ticket:
        """The ticket; :class:`NotFoundError` if it never existed or has expired."""
        with redis_errors(self.client):
            fields: dict[str, str] = self.client.hgetall(self.keys.ticket(ticket_id))  # type: ignore[assignment]
        if not fields:
            raise NotFoundError(f"ticket {ticket_id!r} does not exist (or has expired)")
        return codec.decode_ticket(ticket_id, fields)

    def get_many(self, ticket_ids: Sequence[str]) -> dict[str, Ticket]:
        """The tickets that still exist among ``ticket_ids`` (missing ones are left out)."""
        replies = self._read_chunked(
            ticket_ids, lambda pipe, tid: pipe.hmget(self.keys.ticket(tid), codec.TICKET_FIELDS)
        )
        found = ((tid, codec.decode_ticket_values(tid, values)) for tid, values in replies)
        return {tid: ticket for tid, ticket in found if ticket is not None}

    def _read_chunked(
        self, ids: Sequence[str], read: Callable[[Pipeline, str], object]
    ) -> Iterator[tuple[str, Any]]:
        """``read`` of each id, :data:`SCAN_CHUNK` per pipelined round trip, with its reply."""
        with redis_errors(self.client):
            for start in range(0, len(ids), SCAN_CHUNK):
                chunk = ids[start : start + SCAN_CHUNK]
                pipe = self.client.pipeline(transaction=False)
                for one in chunk:
                    read(pipe, one)
                yield from zip(chunk, pipe.execute(), strict=True)

    def cancel(self, ticket_id: str) -> Ticket:
        """Cancel a queued ticket; :class:`TicketStateError` once it is matched or ended."""
        ticket = self.get(ticket_id)
        keys = [
            self.keys.ticket(ticket_id),
            self.keys.queue(ticket.queue),
            self.keys.events(ticket.queue),
            *(self.keys.player(p) for p in ticket.player_ids),
        ]
        args: list[Any] = [ticket_id, self.settings.ended_ttl_s, self.settings.events_maxlen]
        with redis_errors(self.client):
            reply = self.scripts.cancel(keys=keys, args=args)
        if reply[0] == "NOTFOUND":
            raise NotFoundError(f"ticket {ticket_id!r} does not exist (or has expired)")
        if reply[0] == "STATE":
            raise TicketStateError(ticket_id, reply[1], "cancel")
        return replace(ticket, status=TicketStatus.CANCELLED)

    def active_ticket_of(self, player_id: str) -> str | None:
        """The id of the player's active ticket, or None."""
        with redis_errors(self.client):
            value = self.client.get(self.keys.player(player_id))
        return str(value) if value is not None else None

    def count(self, queue_name: str) -> int:
        """How many tickets wait in the queue."""
        queue = self.queues.get(queue_name)
        with redis_errors(self.client):
            return int(self.client.zcard(self.keys.queue(queue.name)))

    def list_queued(self, queue_name: str, offset: int = 0, limit: int = 100) -> list[Ticket]:
        """Queued tickets, oldest first, ``limit`` from ``offset``."""
        queue = self.queues.get(queue_name)
        with redis_errors(self.client):
            ids: list[str] = self.client.zrange(
                self.keys.queue(queue.name), offset, offset + limit - 1
            )  # type: ignore[assignment]
        found = self.get_many(ids)
        return [found[t] for t in ids if t in found]

    def oldest_created(self, queue_name: str) -> float | None:
        """Creation time of the oldest queued ticket (seconds), or None if the queue is empty."""
        queue = self.queues.get(queue_name)
        with redis_errors(self.client):
            first: Any = self.client.zrange(self.keys.queue(queue.name), 0, 0, withscores=True)
        return float(first[0][1]) / 1000.0 if first else None

    def created_at_ranks(self, asked: Sequence[tuple[str, int]]) -> list[float | None]:
        """For each (queue, rank), the creation time (s) of the rank-th oldest queued ticket.

        One round trip for all of them, each an O(log n) read; None where the queue has
        fewer tickets (it may have shrunk since it was counted).
        """
        pipe = self.client.pipeline(transaction=False)
        for queue_name, rank in asked:
            pipe.zrange(
                self.keys.queue(self.queues.get(queue_name).name), rank, rank, withscores=True
            )
        with redis_errors(self.client):
            replies: list[Any] = pipe.execute() if asked else []
        return [float(found[0][1]) / 1000.0 if found else None for found in replies]

    def iter_queued_ids(self, queue_name: str) -> Iterator[list[str]]:
        """The queue's ticket ids in chunks of :data:`SCAN_CHUNK` (each a bounded call)."""
        key = self.keys.queue(queue_name)
        start = 0
        while True:
            with redis_errors(self.client):
                ids: list[str] = self.client.zrange(key, start, start + SCAN_CHUNK - 1)  # type: ignore[assignment]
            if not ids:
                return
            yield ids
            start += len(ids)

    def server_time(self) -> float:
        """The Redis server's clock, in seconds: the one clock all processes share."""
        with redis_errors(self.client):
            seconds, micros = self.client.time()
        return seconds + micros / 1e6

    # -- matches --------------------------------------------------------------------------

    def get_match(self, match_id: str) -> Match:
        """The match; :class:`NotFoundError` if unknown or expired."""
        with redis_errors(self.client):
            fields: dict[str, str] = self.client.hgetall(self.keys.match(match_id))  # type: ignore[assignment]
        if not fields:
            raise NotFoundError(f"match {match_id!r} does not exist (or has expired)")
        return codec.decode_match(match_id, fields)

    def get_matches(self, match_ids: Sequence[str]) -> dict[str, Match]:
        """The matches that still exist among ``match_ids`` (missing ones are left out)."""
        replies = self._read_chunked(
            match_ids, lambda pipe, mid: pipe.hgetall(self.keys.match(mid))
        )
        return {mid: codec.decode_match(mid, fields) for mid, fields in replies if fields}

    def claim(
        self,
        queue: QueueConfig,
        lease_token: str,
        proposals: Sequence[ProposedMatch],
        tickets: Mapping[str, Ticket],
        *,
        assign: bool = False,
        now: float | None = None,
    ) -> Claims:
        """Claim proposed matches atomically, each all-or-nothing, in one pipelined round trip.

        Each script call covers at most :data:`CLAIM_BATCH_TICKETS` tickets. ``tickets``
        must hold every proposed ticket (for its player ids). A batch refused because
        another worker now owns the queue's lease sets ``lease_lost``; matches claimed
        by other batches stay claimed. ``assign`` queues the matches for a game server.
        ``now`` (default: the server's clock) stamps the matches.
        """
        now_ms = int((now if now is not None else self.server_time()) * 1000)
        batches: list[list[tuple[str, ProposedMatch]]] = []
        size = CLAIM_BATCH_TICKETS
        for proposal in proposals:
            if size >= CLAIM_BATCH_TICKETS:
                batches.append([])
                size = 0
            batches[-1].append((new_id(), proposal))
            size += len(proposal.ticket_ids)
        pipe = self.client.pipeline(transaction=False)
        for batch in batches:
            keys, args = self._claim_call(queue, lease_token, batch, tickets, assign, now_ms)
            self.scripts.claim_matches(keys=keys, args=args, client=pipe)
        with redis_errors(self.client):
            replies = pipe.execute() if batches else []
        claims = Claims()
        for batch, reply in zip(batches, replies, strict=True):
            if reply[0] == "LEASE":
                claims.lease_lost = True
                continue
            for (match_id, proposal), outcome in zip(batch, reply[1:], strict=True):
                if outcome == 1:
                    claims.results.append(ClaimResult(match_id, proposal, True))
                else:
                    stale = tuple(t for t in str(outcome).split(",") if t)
                    claims.results.append(ClaimResult(match_id, proposal, False, stale))
        return claims

    def _claim_call(
        self,
        queue: QueueConfig,
        lease_token: str,
        batch: Sequence[tuple[str, ProposedMatch]],
        tickets: Mapping[str, Ticket],
        assign: bool,
        now_ms: int,
    ) -> tuple[list[str], list[Any]]:
        keys = [
            self.keys.lease(queue.name),
            self.keys.queue(queue.name),
            self.keys.events(queue.name),
            self.keys.pending(queue.name),
            self.keys.quality(queue.name),
        ]
        args: list[Any] = [
            lease_token,
            queue.name,
            self.settings.match_ttl_s,
            self.settings.events_maxlen,
            "1" if assign else "0",
            now_ms,
            QUALITY_KEPT,
        ]
        for match_id, proposal in batch:
            keys.append(self.keys.match(match_id))
            args += [
                match_id,
                proposal.region,
                ",".join(proposal.regions or (proposal.region,)),
                codec.number(round(proposal.spread, 2)),
                codec.number(round(proposal.imbalance, 4)),
                codec.encode_teams(proposal.teams),
                len(proposal.ticket_ids),
            ]
            for team_index, team in enumerate(proposal.teams):
                for tid in team:
                    players = tickets[tid].player_ids
                    keys.append(self.keys.ticket(tid))
                    keys += [self.keys.player(p) for p in players]
                    args += [tid, team_index, len(players), ",".join(players)]
        return keys, args

    def time_out(
        self, queue: QueueConfig, lease_token: str, tickets: Sequence[Ticket], cutoff: float
    ) -> int:
        """End queued tickets created at or before ``cutoff``; how many timed out."""
        done = 0
        pipe = self.client.pipeline(transaction=False)
        for start in range(0, len(tickets), CLAIM_BATCH_TICKETS):
            chunk = tickets[start : start + CLAIM_BATCH_TICKETS]
            keys = [
                self.keys.lease(queue.name),
                self.keys.queue(queue.name),
                self.keys.events(queue.name),
            ]
            args: list[Any] = [
                lease_token,
                int(cutoff * 1000),
                self.settings.ended_ttl_s,
                self.settings.events_maxlen,
            ]
            for t in chunk:
                keys.append(self.keys.ticket(t.id))
                keys += [self.keys.player(p) for p in t.player_ids]
                args += [t.id, t.size]
            self.scripts.time_out(keys=keys, args=args, client=pipe)
        with redis_errors(self.client):
            replies = pipe.execute()
        for reply in replies:
            if reply[0] == "LEASE":
                raise LeaseLostError(
                    f"the lease of queue {queue.name!r} was taken by another worker"
                )
            done += int(reply[1])
        return done

    def recent_quality(self, queue_names: Sequence[str]) -> dict[str, RecentQuality]:
        """Each queue's recent match quality, in one round trip (empty queues: no figures)."""
        pipe = self.client.pipeline(transaction=False)
        for name in queue_names:
            pipe.lrange(self.keys.quality(self.queues.get(name).name), 0, QUALITY_KEPT - 1)
        with redis_errors(self.client):
            replies: list[Any] = pipe.execute() if queue_names else []
        return {name: _quality(entries) for name, entries in zip(queue_names, replies, strict=True)}

    # -- leases ---------------------------------------------------------------------------

    def hold_leases(self, queue_names: Sequence[str], token: str, ttl_s: float) -> set[str]:
        """Take or renew the lease of each queue; the names this token now holds."""
        pipe = self.client.pipeline(transaction=False)
        for name in queue_names:
            self.scripts.lease(
                keys=[self.keys.lease(name)], args=[token, int(ttl_s * 1000)], client=pipe
            )
        with redis_errors(self.client):
            replies = pipe.execute()
        return {name for name, held in zip(queue_names, replies, strict=True) if held == 1}

    def release_leases(self, queue_names: Sequence[str], token: str) -> None:
        """Give up the leases this token holds (others' are untouched)."""
        pipe = self.client.pipeline(transaction=False)
        for name in queue_names:
            self.scripts.release_lease(keys=[self.keys.lease(name)], args=[token], client=pipe)
        with redis_errors(self.client):
            pipe.execute()

    # -- events ---------------------------------------------------------------------------

    def stream_position(self, queue_name: str) -> tuple[str, int]:
        """The newest event id of the queue (``0-0`` if none) and how many were ever added."""
        with redis_errors(self.client):
            pipe = self.client.pipeline(transaction=False)
            pipe.xinfo_stream(self.keys.events(queue_name))
            [info] = pipe.execute(raise_on_error=False)
        if isinstance(info, Exception):  # no stream yet: nothing was ever added
            return "0-0", 0
        return str(info["last-generated-id"]), int(info["entries-added"])

    def events_after(self, queue_name: str, after: str, count: int) -> tuple[list[Event], int]:
        """Up to ``count`` events after ``after``, and how many entries were trimmed so far.

        Entries are numbered from 1 as they are added; trimming removes the lowest
        numbers. A reader that has seen up to number N missed some iff more than N
        were trimmed. Both reads run in one MULTI so no trim slips between them.
        """
        stream = self.keys.events(queue_name)
        pipe = self.client.pipeline(transaction=True)
        pipe.xinfo_stream(stream)
        pipe.xrange(stream, min=f"({after}", count=count)
        with redis_errors(self.client):
            info, entries = pipe.execute(raise_on_error=False)
        if isinstance(info, Exception):
            return [], 0
        if isinstance(entries, Exception):
            with redis_errors(self.client):
                raise entries
        events = [parse_event(queue_name, eid, fields) for eid, fields in entries]
        return events, int(info["entries-added"]) - int(info["length"])


def _quality(entries: Sequence[str]) -> RecentQuality:
    """Figures from ``spread:imbalance`` entries (malformed ones are skipped)."""
    pairs: list[tuple[float, float]] = []
    for entry in entries:
        spread, _, imbalance = str(entry).partition(":")
        try:
            pairs.append((float(spread), float(imbalance)))
        except ValueError:
            continue
    if not pairs:
        return RecentQuality(0, None, None, None)
    spreads = sorted(p[0] for p in pairs)
    p95 = spreads[min(len(spreads) - 1, max(math.ceil(0.95 * len(spreads)) - 1, 0))]
    return RecentQuality(
        matches=len(pairs),
        rating_gap_mean=round(sum(spreads) / len(spreads), 2),
        rating_gap_p95=round(p95, 2),
        imbalance_mean=round(sum(p[1] for p in pairs) / len(pairs), 4),
    )
