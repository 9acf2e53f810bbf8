"""A worker's view of one queue's waiting tickets, kept current from the queue's event stream.

Loaded once (in bounded chunks) when the worker takes the queue's lease, then
updated from the stream: each cycle reads only what changed. The view may lag,
never lie in a way that matters: claims re-check every ticket in Redis, and a
ticket found stale is dropped from the view.
"""

from __future__ import annotations

from caroud.matchmaking.density import ArrivalLog
from caroud.matchmaking.models import Ticket, TicketStatus
from caroud.matchmaking.store import MatchmakingStore

EVENTS_PER_READ = 5000


class QueueView:
    """The queued tickets of one queue, as this worker last saw them."""

    def __init__(self, store: MatchmakingStore, queue_name: str) -> None:
        self.store = store
        self.queue_name = queue_name
        self.tickets: dict[str, Ticket] = {}
        self.cursor: str | None = None
        self.position = 0  # how many stream entries were added up to the cursor
        self.reloads = 0
        self.arrivals = ArrivalLog()
        """Recent arrivals: where the queue is busy, windows start tighter."""

    def reload(self) -> None:
        """Read the whole queue again (chunked), then follow the stream from before the read."""
        self.cursor, self.position = self.store.stream_position(self.queue_name)
        self.tickets = {}
        for ids in self.store.iter_queued_ids(self.queue_name):
            for tid, ticket in self.store.get_many(ids).items():
                if ticket.status is TicketStatus.QUEUED:
                    self.tickets[tid] = ticket
        if not self.reloads:
            # Those still waiting are all a new view knows of the recent arrivals; it
            # underestimates the density (the matched ones are gone), so windows start
            # no tighter than they should.
            for ticket in sorted(self.tickets.values(), key=lambda t: t.created_at):
                self.arrivals.record(ticket.created_at, ticket.rating, ticket.size)
        self.reloads += 1

    def refresh(self) -> None:
        """Apply the events since the last refresh (reloading if some were trimmed unseen)."""
        if self.cursor is None:
            self.reload()
            return
        new: list[str] = []
        while True:
            events, trimmed = self.store.events_after(self.queue_name, self.cursor, EVENTS_PER_READ)
            if trimmed > self.position:  # entries we never read were trimmed away
                self.reload()
                return
            for event in events:
                if event.type == TicketStatus.QUEUED:
                    new.append(event.ticket_id)
                else:
                    self.tickets.pop(event.ticket_id, None)
                self.cursor = event.id
                self.position += 1
            if len(events) < EVENTS_PER_READ:
                break
        if new:
            for tid, ticket in self.store.get_many(new).items():
                self.arrivals.record(ticket.created_at, ticket.rating, ticket.size)
                if ticket.status is TicketStatus.QUEUED:
                    self.tickets[tid] = ticket

    def drop(self, ticket_ids: tuple[str, ...] | list[str]) -> None:
        for tid in ticket_ids:
            self.tickets.pop(tid, None)
