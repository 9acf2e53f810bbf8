"""The matchmaker worker: leases queues, forms matches, times tickets out, every tick.

Each queue is worked by one worker at a time under an expiring lease (renewed
every cycle); when a worker dies its leases lapse and another worker takes them
on its next cycle. Exactly-once does not rest on the lease: every claim is an
atomic Lua check-and-set of ticket states, fenced by the lease token.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from caroud.errors import CaroudError, LeaseLostError
from caroud.matchmaking.algorithm import find_matches
from caroud.matchmaking.assignment import Assigner
from caroud.matchmaking.models import QueueConfig
from caroud.matchmaking.pool import QueueView
from caroud.matchmaking.store import ClaimResult, MatchmakingStore
from caroud.outage import Outage
from caroud.redis.client import redis_errors

if TYPE_CHECKING:
    from caroud.ops.metrics import WorkerMetrics

log = logging.getLogger("caroud.worker")

CLOCK_REUSE_S = 1.0
"""How long a reading of the Redis clock is carried forward before it is read again."""
CLAIM_CHUNK_TICKETS = 2000
"""Tickets claimed per pipelined round trip; the lease is renewed between chunks if due."""


@dataclass
class CycleReport:
    """What one cycle did."""

    queues: list[str] = field(default_factory=list)
    matches: int = 0
    matched_tickets: int = 0
    timed_out: int = 0
    stale: int = 0
    assigned: int = 0
    no_capacity: int = 0
    requeued_tickets: int = 0
    interrupted: int = 0


@dataclass
class WorkerTotals:
    cycles: int = 0
    matches: int = 0
    matched_tickets: int = 0
    timed_out: int = 0
    assigned: int = 0
    errors: int = 0


class Worker:
    """Runs matching cycles for the configured queues."""

    def __init__(
        self,
        store: MatchmakingStore,
        *,
        tick_s: float | None = None,
        lease_ttl_s: float | None = None,
        queue_names: Sequence[str] | None = None,
        worker_id: str | None = None,
        assigner: Assigner | None = None,
        reap_every_s: float = 1.0,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.assigner = assigner
        self.reap_every_s = reap_every_s
        self._reaped_at = 0.0
        self._excuse = False
        """Set by a failed cycle: the next reap excuses the servers (they could not reach
        Redis either, see :meth:`caroud.servers.pool.ServerPool.reap`)."""
        settings = store.settings
        self.tick_s = tick_s if tick_s is not None else settings.worker_tick_s
        self.lease_ttl_s = lease_ttl_s if lease_ttl_s is not None else settings.lease_ttl_s
        self.queue_names = list(queue_names) if queue_names else [q.name for q in store.queues]
        for name in self.queue_names:
            store.queues.get(name)
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.token = f"{self.id}:{secrets.token_hex(8)}"
        self.views: dict[str, QueueView] = {}
        self._renewed: dict[str, float] = {}
        self._rotation = 0
        self.live_workers = 1
        """Workers seen alive at the last heartbeat (this one included)."""
        self.totals = WorkerTotals()
        self.started_at: float | None = None
        """When this worker first heartbeat, on the Redis clock."""
        self._clock: tuple[float, float] | None = None  # (Redis time, monotonic time) read
        self._stop = threading.Event()

    # -- one cycle ----------------------------------------------------------------------

    def run_cycle(self, now: float | None = None) -> CycleReport:
        """Renew leases, then match and time out tickets in every held queue."""
        renewed = time.monotonic()
        held = self.store.hold_leases(self._wanted_queues(), self.token, self.lease_ttl_s)
        self._renewed = dict.fromkeys(held, renewed)
        for name in set(self.views) - held:
            log.info("lease lost", extra={"queue": name, "worker_id": self.id})
            del self.views[name]
        report = CycleReport(queues=sorted(held))
        if not held:
            return report
        if now is None:
            now = self.store.server_time()
            self._clock = (now, time.monotonic())
        self._reap_if_due(now, report)
        for name in report.queues:
            if name not in self.views:
                log.info("lease taken", extra={"queue": name, "worker_id": self.id})
                self.views[name] = QueueView(self.store, name)
            try:
                self._work(self.store.queues.get(name), self.views[name], now, report)
            except LeaseLostError:
                log.warning("lease lost mid-cycle", extra={"queue": name, "worker_id": self.id})
                self.views.pop(name, None)
        self.totals.cycles += 1
        self.totals.matches += report.matches
        self.totals.matched_tickets += report.matched_tickets
        self.totals.timed_out += report.timed_out
        self.totals.assigned += report.assigned
        return report

    def _wanted_queues(self) -> list[str]:
        """The queues to hold this cycle: those held, then free ones up to a fair share.

        The share is ceil(queues / live workers), so several workers spread the queues.
        A worker over its share (others joined) hands one queue back per cycle; the
        order of the others rotates, so the free ones are found.
        """
        held = [n for n in self.queue_names if n in self.views]
        share = -(-len(self.queue_names) // max(self.live_workers, 1))
        if len(held) > share:
            extra = held.pop()
            self.store.release_leases([extra], self.token)
            del self.views[extra]
            log.info("lease handed back", extra={"queue": extra, "worker_id": self.id})
        self._rotation = (self._rotation + 1) % len(self.queue_names)
        order = self.queue_names[self._rotation :] + self.queue_names[: self._rotation]
        free = [n for n in order if n not in held]
        return held + free[: max(share - len(held), 0)]

    def _work(self, queue: QueueConfig, view: QueueView, now: float, report: CycleReport) -> None:
        view.refresh()
        cutoff = now - queue.max_wait_s
        expired = [t for t in view.tickets.values() if t.created_at <= cutoff]
        if expired:
            timed_out = self.store.time_out(queue, self.token, expired, cutoff)
            report.timed_out += timed_out
            if self.metrics is not None:
                self.metrics.observe_timed_out(queue.name, timed_out)
            view.drop([t.id for t in expired])
            for t in expired:
                log.info("ticket timed out", extra={"queue": queue.name, "ticket_id": t.id})
        proposals = find_matches(queue, view.tickets.values(), now, view.arrivals.snapshot(now))
        per_chunk = max(1, CLAIM_CHUNK_TICKETS // queue.players_per_match)
        for start in range(0, len(proposals), per_chunk):
            self._keep_lease(queue.name)
            claims = self.store.claim(
                queue,
                self.token,
                proposals[start : start + per_chunk],
                view.tickets,
                assign=self.assigner is not None,
                now=now,
            )
            self._record_claims(queue, view, claims.results, report, now)
            if claims.lease_lost:
                raise LeaseLostError(f"the lease of queue {queue.name!r} passed to another worker")
        if self.assigner is not None:
            started = time.perf_counter()
            done = self.assigner.assign_pending(queue, now)
            if self.metrics is not None:
                self.metrics.observe_assignment(queue.name, done, time.perf_counter() - started)
            report.assigned += done.assigned
            report.no_capacity += done.no_capacity
            report.requeued_tickets += done.requeued_tickets

    def _reap_if_due(self, now: float, report: CycleReport) -> None:
        """Reap the game-server pool about every ``reap_every_s`` (any worker may)."""
        if self.assigner is None or now - self._reaped_at < self.reap_every_s:
            return
        self._reaped_at = now
        done = self.assigner.reap(now=now, excuse=self._excuse)
        self._excuse = False
        report.requeued_tickets += done.requeued_tickets
        report.interrupted += done.interrupted

    def _keep_lease(self, queue_name: str) -> None:
        """Renew the queue's lease if a third of its TTL has passed since the last renewal."""
        if time.monotonic() - self._renewed.get(queue_name, 0.0) < self.lease_ttl_s / 3:
            return
        renewed = time.monotonic()
        if queue_name not in self.store.hold_leases([queue_name], self.token, self.lease_ttl_s):
            raise LeaseLostError(f"the lease of queue {queue_name!r} passed to another worker")
        self._renewed[queue_name] = renewed

    def _record_claims(
        self,
        queue: QueueConfig,
        view: QueueView,
        results: Sequence[ClaimResult],
        report: CycleReport,
        now: float,
    ) -> None:
        for result in results:
            if result.claimed:
                ids = result.proposal.ticket_ids
                if self.metrics is not None:
                    waits = [now - view.tickets[t].created_at for t in ids if t in view.tickets]
                    self.metrics.observe_match(
                        queue.name, result.proposal.spread, waits, region=result.proposal.region
                    )
                report.matches += 1
                report.matched_tickets += len(ids)
                view.drop(ids)
                if log.isEnabledFor(logging.INFO):
                    log.info(
                        "match formed",
                        extra={
                            "queue": queue.name,
                            "match_id": result.match_id,
                            "ticket_ids": ",".join(ids),
                            "region": result.proposal.region,
                            "spread": round(result.proposal.spread, 1),
                        },
                    )
            else:
                report.stale += len(result.stale_tickets)
                view.drop(result.stale_tickets)

    # -- the loop -----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current cycle."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """Stop cleanly on SIGTERM and SIGINT."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def run(self, max_cycles: int | None = None) -> WorkerTotals:
        """Cycle every ``tick_s`` until stopped; Redis hiccups are logged and retried."""
        log.info(
            "worker started", extra={"worker_id": self.id, "queues": ",".join(self.queue_names)}
        )
        outage = Outage(log, "matchmaking cycle", extra={"worker_id": self.id})
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    report = self.run_cycle()
                    if self.metrics is not None:
                        self.metrics.observe_cycle(report, time.monotonic() - started)
                    self.heartbeat()
                    outage.ok()
                except CaroudError as e:
                    self.totals.errors += 1
                    self._excuse = True
                    if self.metrics is not None:
                        self.metrics.observe_error()
                    self.views.clear()  # reload from Redis once it is back
                    self._stop.wait(outage.failed(e))
                    continue
                if max_cycles is not None and self.totals.cycles >= max_cycles:
                    break
                self._stop.wait(max(self.tick_s - (time.monotonic() - started), 0.0))
        finally:
            self._shutdown()
        return self.totals

    def redis_now(self) -> float:
        """The Redis clock: the last reading carried forward by the local monotonic clock,
        read afresh when older than :data:`CLOCK_REUSE_S` (the registry must not depend
        on this host's wall clock, which may be seconds off the others')."""
        if self._clock is not None:
            read, at = self._clock
            elapsed = time.monotonic() - at
            if elapsed < CLOCK_REUSE_S:
                return read + elapsed
        now = self.store.server_time()
        self._clock = (now, time.monotonic())
        return now

    def heartbeat(self) -> None:
        """Refresh this worker's health key (read by operators' tooling)."""
        now = self.redis_now()
        if self.started_at is None:
            self.started_at = now
        info = {
            "id": self.id,
            "pid": os.getpid(),
            "queues": sorted(self.views),
            "cycles": self.totals.cycles,
            "matches": self.totals.matches,
            "started_at": round(self.started_at, 3),
            "seen_at": round(now, 3),
        }
        ttl_ms = int(max(self.lease_ttl_s, self.tick_s * 3) * 1000)
        now_ms = int(now * 1000)
        registry = self.store.keys.workers()
        with redis_errors(self.store.client):
            pipe = self.store.client.pipeline(transaction=False)
            pipe.set(self.store.keys.worker(self.id), json.dumps(info), px=ttl_ms)
            pipe.zadd(registry, {self.id: now_ms + ttl_ms})
            pipe.zremrangebyscore(registry, "-inf", now_ms)
            pipe.zcard(registry)
            pipe.pexpire(registry, ttl_ms * 10)
            self.live_workers = max(int(pipe.execute()[3]), 1)

    def _shutdown(self) -> None:
        try:
            self.store.release_leases(self.queue_names, self.token)
            with redis_errors(self.store.client):
                self.store.client.delete(self.store.keys.worker(self.id))
                self.store.client.zrem(self.store.keys.workers(), self.id)
        except CaroudError as e:
            log.warning("could not release leases on exit", extra={"error": str(e)})
        log.info(
            "worker stopped",
            extra={
                "worker_id": self.id,
                "cycles": self.totals.cycles,
                "matches": self.totals.matches,
            },
        )
