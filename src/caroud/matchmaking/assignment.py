"""From formed match to players holding a server address, and back when things go wrong.

The worker calls :meth:`Assigner.assign_pending` for each queue it leases, and
:meth:`Assigner.reap` about once a heartbeat interval. Game servers report through
:meth:`Assigner.match_started` and :meth:`Assigner.match_ended`; players cancel (and
leave a match that has not started) through :meth:`Assigner.cancel_ticket`. Every
step is idempotent on both sides (the pool's allocation per match id, the match's
state checks), so a worker killed between the pool's step and the match's step is
repaired by whoever retries.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

from caroud.errors import AllocationStateError, NoCapacityError, NotFoundError, ValidationError
from caroud.matchmaking.matches import MatchOutcome, MatchStore, PendingMatch, check_winner
from caroud.matchmaking.models import Match, MatchStatus, QueueConfig, ServerAddress, Ticket
from caroud.redis.client import redis_errors
from caroud.servers.models import (
    Allocation,
    AllocationRequest,
    AllocationState,
    LostServer,
    Strategy,
)
from caroud.servers.pool import ServerPool

log = logging.getLogger("caroud.assignment")

MAX_PLACEMENTS = 3
"""Servers a match is placed on, at most, before its tickets go back to the queue.

A placement fails when its server never confirms the start (the pool's start deadline):
the match is placed again, avoiding every server it failed on. After this many failed
placements its tickets are requeued (why ``start_expired``), keeping their wait, and
matched anew.
"""


@dataclass
class AssignReport:
    """What one assignment round or reap did."""

    assigned: int = 0
    no_capacity: int = 0
    requeued_matches: int = 0
    requeued_tickets: int = 0
    interrupted: int = 0
    reallocated: int = 0
    assigned_ids: list[str] = field(default_factory=list)


def regions_to_try(queue: QueueConfig, match: Match) -> tuple[str, ...]:
    """The match's regions (best first), then the queue's fallbacks, each once."""
    return tuple(dict.fromkeys(match.regions + queue.fallback_regions))


def placement_request(queue: QueueConfig, pending: PendingMatch) -> AllocationRequest:
    """Where a waiting match may go: its regions, the queue's labels, not where it failed."""
    return AllocationRequest(
        pending.match.id,
        regions_to_try(queue, pending.match),
        dict(queue.selector),
        Strategy(queue.strategy),
        pending.failed_on,
    )


def address_of(allocation: Allocation) -> ServerAddress:
    return ServerAddress(
        allocation.server_id, allocation.address, allocation.port, allocation.region
    )


class Assigner:
    """Connects formed matches to the game-server pool."""

    def __init__(self, matches: MatchStore, pool: ServerPool) -> None:
        self.matches = matches
        self.pool = pool
        self.queues = matches.store.queues

    def assign_pending(self, queue: QueueConfig, now: float) -> AssignReport:
        """Allocate a server for each waiting match of ``queue``; requeue those waiting too long."""
        report = AssignReport()
        waiting: list[Match] = []
        requests: list[AllocationRequest] = []
        for pending in self.matches.pending(queue.name):
            if len(pending.failed_on) >= MAX_PLACEMENTS:  # the reaper stopped short of it
                self._requeue(pending.match, "start_expired", report)
                continue
            waiting.append(pending.match)
            requests.append(placement_request(queue, pending))
        if not waiting:
            return report
        outcomes = self.pool.allocate_many(requests, now=now)
        placed = [
            (p, outcome)
            for p, outcome in zip(waiting, outcomes, strict=True)
            if isinstance(outcome, Allocation)
        ]
        self._record_assignments(queue, placed, now, report)
        for match, outcome in zip(waiting, outcomes, strict=True):
            if not isinstance(outcome, Allocation):
                self._settle_unplaced(queue, match, outcome, now, report)
        return report

    def _record_assignments(
        self,
        queue: QueueConfig,
        placed: list[tuple[Match, Allocation]],
        now: float,
        report: AssignReport,
    ) -> None:
        """Give the placed matches their servers, in one round trip."""
        done = self.matches.assign_many([(m, address_of(a)) for m, a in placed])
        for (match, allocation), assigned in zip(placed, done, strict=True):
            if not assigned:  # the match moved on (requeued or ended) while the slot was taken
                self.pool.release(match.id, now=now)
                continue
            report.assigned += 1
            report.assigned_ids.append(match.id)
            log.info(
                "match assigned",
                extra={
                    "queue": queue.name,
                    "match_id": match.id,
                    "server_id": allocation.server_id,
                    "region": allocation.region,
                },
            )

    def _settle_unplaced(
        self,
        queue: QueueConfig,
        match: Match,
        outcome: NoCapacityError | AllocationStateError,
        now: float,
        report: AssignReport,
    ) -> None:
        if isinstance(outcome, NoCapacityError):
            report.no_capacity += 1
            if now - match.created_at >= queue.assign_timeout_s:
                self._requeue(match, "no_capacity", report)
            return
        # the pool already released this match: it ended; nothing to place
        log.warning("pending match already released", extra={"match_id": match.id})

    def _requeue(self, match: Match, why: str, report: AssignReport) -> None:
        count = self.matches.requeue(match, why)
        if count:
            report.requeued_matches += 1
            report.requeued_tickets += count
            log.info("match requeued", extra={"match_id": match.id, "why": why, "tickets": count})

    def reap(self, now: float | None = None, *, excuse: bool = False) -> AssignReport:
        """Reap the pool; requeue matches that had not started on lost or expired slots.

        A match on a server that died before it started goes back to the queue (its
        tickets keep their waiting time); one that had started is ``interrupted``; one
        whose server never confirmed the start is placed again on another server, or
        requeued after :data:`MAX_PLACEMENTS` failed placements. That server got a
        strike (the pool benches it after a few: see the pool's ``MAX_STRIKES``).
        ``excuse``: Redis was out of reach, see :meth:`ServerPool.reap`.
        """
        report = AssignReport()
        reaped = self.pool.reap(now=now, excuse=excuse)
        for server_id in reaped.benched:
            log.warning("game server benched: it let starts expire", extra={"server_id": server_id})
        for lost in reaped.lost_servers:
            log.warning(
                "game server lost",
                extra={"server_id": lost.server.id, "matches": len(lost.allocations)},
            )
            self._publish_lost(lost)
            for allocation in lost.allocations:
                self._on_lost(allocation, report)
        for allocation in reaped.expired:
            self._on_expired(allocation, report)
        return report

    def _on_expired(self, allocation: Allocation, report: AssignReport) -> None:
        """The server never confirmed the start: place the match elsewhere, or requeue it."""
        match = self._match_or_none(allocation.match_id)
        if match is None or match.status is not MatchStatus.ASSIGNED:
            return  # it moved on (e.g. a player left it): nothing to place
        failed = self.matches.retry_elsewhere(match, allocation.server_id)
        if failed is None:
            return
        log.warning(
            "match start expired",
            extra={"match_id": match.id, "server_id": allocation.server_id, "failed": failed},
        )
        if failed >= MAX_PLACEMENTS:
            self._requeue(match, "start_expired", report)
        else:
            report.reallocated += 1

    def _publish_lost(self, lost: LostServer) -> None:
        """One ``server_lost`` event on the pool's stream, naming the matches it held."""
        started = [a.match_id for a in lost.allocations if a.state is AllocationState.STARTED]
        waiting = [a.match_id for a in lost.allocations if a.state is not AllocationState.STARTED]
        fields = {
            "e": "server_lost",
            "srv": lost.server.id,
            "r": lost.server.region,
            "started": ",".join(started),
            "not_started": ",".join(waiting),
        }
        with redis_errors(self.pool.client):
            self.pool.client.xadd(
                self.pool.keys.events(),
                fields,  # type: ignore[arg-type]
                maxlen=self.matches.settings.events_maxlen,
                approximate=True,
            )

    def deregister(self, server_id: str) -> AssignReport:
        """Take a server out of the pool now, settling its matches as a lost server's are.

        :class:`NotFoundError` if the pool does not know the server.
        """
        report = AssignReport()
        for allocation in self.pool.deregister(server_id):
            self._on_lost(allocation, report)
        return report

    def _on_lost(self, allocation: Allocation, report: AssignReport) -> None:
        match = self._match_or_none(allocation.match_id)
        if match is None:
            return
        if allocation.state is AllocationState.STARTED or match.status is MatchStatus.STARTED:
            self.matches.finish(match, MatchStatus.INTERRUPTED, None)
            report.interrupted += 1
            log.warning("match interrupted", extra={"match_id": match.id})
        else:
            self._requeue(match, "server_lost", report)

    def _match_or_none(self, match_id: str) -> Match | None:
        try:
            return self.matches.get(match_id)
        except NotFoundError:
            return None

    def cancel_ticket(self, ticket_id: str) -> Ticket:
        """Cancel a ticket for a player; one in a match that has not started leaves it.

        See :meth:`MatchStore.cancel`. The slot the left match held, if any, is
        released; a worker that allocated one meanwhile releases it too, when it finds
        the match requeued. :class:`~caroud.errors.TicketStateError` once the match has
        started; :class:`NotFoundError` for an unknown ticket.
        """
        done = self.matches.cancel(ticket_id)
        if done.left_match is not None:
            with contextlib.suppress(NotFoundError):  # it never had a slot
                self.pool.release(done.left_match.id)
            log.info(
                "player left a match",
                extra={
                    "match_id": done.left_match.id,
                    "ticket_id": ticket_id,
                    "requeued": done.requeued_tickets,
                },
            )
        return done.ticket

    def match_started(self, match_id: str) -> Match:
        """The game server says the match started: confirm the slot, mark the match.

        If the match moved on between the two (a player left it), the slot just
        confirmed is released and the :class:`ValidationError` raised: do not run it.
        """
        match = self.matches.get(match_id)
        self.pool.confirm_started(match_id)
        try:
            return self.matches.mark_started(match.id)
        except ValidationError:
            self.pool.release(match_id)
            raise

    def match_ended(self, match_id: str, winner: int | None) -> MatchOutcome:
        """The game server reports the result: record it once, free the slot, free the players."""
        match = self.matches.get(match_id)
        checked = check_winner(match, winner)
        outcome = self.matches.finish(match, MatchStatus.ENDED, checked)
        self.pool.release(match_id)
        return outcome
