"""The relay: ticket events from the queues' streams to the players' WebSockets.

One relay (``caroud relay``, or the thread ``caroud up`` runs) follows every queue's
event stream for all the web processes, instead of one Redis reader per connection.
It reads through a consumer group (:meth:`caroud.keys.Keys.relay_group`), so several
relays share the events and each event is pushed by one of them; an event is
acknowledged once pushed, and one that a dead relay left unacknowledged is claimed
by another after :data:`CLAIM_IDLE_MS`. For each event it re-reads the ticket (so the
push carries the match and its server) and ``group_send``\\ s the frame
(:mod:`caroud.web.realtime`) to the Channels group of every player in the event.

Order: one relay pushes a player's frames in stream order. With several relays, two
events of one ticket may be pushed by different relays and arrive out of order;
``event_id`` (growing per ticket) tells a client which is newer. Events older than
:data:`MAX_AGE_S` when read (a relay that was down) are acknowledged without a push:
a client that reconnects gets the current state anyway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from caroud.context import Context
from caroud.errors import CaroudError, ConfigError
from caroud.events import Event, parse_event
from caroud.outage import Outage
from caroud.redis.client import redis_errors, translate, url_of
from caroud.web.realtime import MESSAGE_TYPE, api_ticket, frame, player_group

log = logging.getLogger("caroud.web.relay")

CLAIM_IDLE_MS = 5_000
"""An event another relay has held unacknowledged this long is taken over (it died)."""
CLAIM_EVERY_S = 1.0
"""How often a relay looks for such events."""
MAX_AGE_S = 60.0
"""Events older than this when read are not pushed (acknowledged all the same)."""
READ_COUNT = 500
"""Entries read per stream per call."""


@dataclass
class RelayTotals:
    """What a relay did: events read, frames pushed, events too old or whose ticket was gone."""

    events: int = 0
    frames: int = 0
    stale: int = 0
    gone: int = 0
    errors: int = 0


def entry_ms(entry_id: str) -> int:
    """The time part (ms) of a stream entry id."""
    return int(entry_id.partition("-")[0])


class Relay:
    """Pushes every queue's ticket events to the Channels groups of the players in them."""

    def __init__(
        self,
        ctx: Context,
        *,
        layer: Any = None,
        consumer: str | None = None,
        block_ms: int = 500,
        claim_idle_ms: int = CLAIM_IDLE_MS,
        max_age_s: float = MAX_AGE_S,
        read_count: int = READ_COUNT,
    ) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.group = ctx.keys.relay_group()
        self.streams = {ctx.keys.events(q.name): q.name for q in ctx.queues}
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.max_age_s = max_age_s
        self.read_count = read_count
        self.totals = RelayTotals()
        self._layer = layer
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._claimed_at = 0.0
        self._own_pending = True
        """Read this consumer's unacknowledged entries first (after a start or a failure)."""

    # -- reading ------------------------------------------------------------------------

    def ensure_groups(self) -> None:
        """Create the group on every stream, at its end (what happened before is not pushed)."""
        with redis_errors(self.client):
            pipe = self.client.pipeline(transaction=False)
            for stream in self.streams:
                pipe.xgroup_create(stream, self.group, id="$", mkstream=True)
            replies = pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception) and "BUSYGROUP" not in str(reply):
                raise translate(reply, url_of(self.client))  # type: ignore[arg-type]

    def read(self, block_ms: int | None = None) -> list[Event]:
        """The next events: this relay's unacknowledged ones, a dead relay's, then new ones."""
        if self._own_pending:
            events = self._read_group("0", None)
            self._own_pending = bool(events)
            if events:
                return events
        now = time.monotonic()
        if now - self._claimed_at >= CLAIM_EVERY_S:
            self._claimed_at = now
            events = self._claim()
            if events:
                return events
        return self._read_group(">", self.block_ms if block_ms is None else block_ms)

    def _read_group(self, start: str, block_ms: int | None) -> list[Event]:
        streams: dict[Any, Any] = dict.fromkeys(self.streams, start)
        with redis_errors(self.client):
            reply: Any = self.client.xreadgroup(
                self.group, self.consumer, streams, count=self.read_count, block=block_ms
            )
        events: list[Event] = []
        for stream, entries in reply or []:
            events += self._parse(stream, entries)
        return events

    def _claim(self) -> list[Event]:
        events: list[Event] = []
        for stream in self.streams:
            with redis_errors(self.client):
                reply: Any = self.client.xautoclaim(
                    stream,
                    self.group,
                    self.consumer,
                    self.claim_idle_ms,
                    "0-0",
                    count=self.read_count,
                )
            events += self._parse(stream, reply[1])
        if events:
            log.info("claimed events of a stalled relay", extra={"events": len(events)})
        return events

    def _parse(self, stream: str, entries: Sequence[Any]) -> list[Event]:
        """Events of ``entries``; entries trimmed away meanwhile (no fields) are acknowledged."""
        queue = self.streams[stream]
        gone = [entry_id for entry_id, fields in entries if not fields]
        if gone:
            with redis_errors(self.client):
                self.client.xack(stream, self.group, *gone)
        return [parse_event(queue, entry_id, fields) for entry_id, fields in entries if fields]

    # -- pushing ------------------------------------------------------------------------

    def relay(self, events: Sequence[Event]) -> int:
        """Push ``events`` to their players, then acknowledge them; how many frames were sent."""
        if not events:
            return 0
        now = self.ctx.matchmaking.server_time()
        fresh = [e for e in events if now * 1000 - entry_ms(e.id) <= self.max_age_s * 1000]
        self.totals.events += len(events)
        self.totals.stale += len(events) - len(fresh)
        tickets = self.ctx.matchmaking.get_many(list({e.ticket_id for e in fresh}))
        rendered: dict[str, dict[str, Any]] = {}
        frames: defaultdict[str, list[str]] = defaultdict(list)
        for event in fresh:
            ticket = tickets.get(event.ticket_id)
            if ticket is None:  # expired already
                self.totals.gone += 1
                continue
            if ticket.id not in rendered:
                rendered[ticket.id] = api_ticket(self.ctx, ticket, now)
            text = frame(event.type, rendered[ticket.id], event.id)
            for player_id in event.player_ids:
                frames[player_id].append(text)
        sent = self._push(frames)
        self._ack(events)
        self.totals.frames += sent
        return sent

    def _push(self, frames: dict[str, list[str]]) -> int:
        if not frames:
            return 0
        layer = self._channel_layer()

        async def to_player(player_id: str, texts: list[str]) -> None:
            group = player_group(player_id)
            for text in texts:  # in order, one after the other
                await layer.group_send(group, {"type": MESSAGE_TYPE, "text": text})

        async def to_all() -> None:
            await asyncio.gather(*(to_player(p, texts) for p, texts in frames.items()))

        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(to_all())
        except (redis.RedisError, OSError) as e:
            raise translate(e, url_of(self.client)) from e  # type: ignore[arg-type]
        return sum(len(texts) for texts in frames.values())

    def _channel_layer(self) -> Any:
        if self._layer is None:
            from channels.layers import get_channel_layer

            self._layer = get_channel_layer()
            if self._layer is None:
                raise ConfigError("CHANNEL_LAYERS has no default layer: the relay cannot push")
        return self._layer

    def _ack(self, events: Sequence[Event]) -> None:
        by_stream: defaultdict[str, list[str]] = defaultdict(list)
        streams = {q: s for s, q in self.streams.items()}
        for event in events:
            by_stream[streams[event.queue]].append(event.id)
        with redis_errors(self.client):
            pipe = self.client.pipeline(transaction=False)
            for stream, ids in by_stream.items():
                pipe.xack(stream, self.group, *ids)
            pipe.execute()

    # -- the loop -----------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to return (within ``block_ms``)."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        """Stop cleanly on SIGTERM and SIGINT."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def run(self) -> RelayTotals:
        """Relay until stopped; Redis failures are logged and retried with a backoff."""
        log.info("relay started", extra={"consumer": self.consumer, "streams": len(self.streams)})
        outage = Outage(log, "relaying events", extra={"consumer": self.consumer})
        try:
            while not self._stop.is_set():
                try:
                    if self._own_pending:
                        self.ensure_groups()
                    self.relay(self.read())
                    outage.ok()
                except CaroudError as e:
                    self.totals.errors += 1
                    self._own_pending = True  # unacknowledged entries are read again
                    self._stop.wait(outage.failed(e))
        finally:
            self.close()
        log.info("relay stopped", extra={"consumer": self.consumer, "frames": self.totals.frames})
        return self.totals

    def close(self) -> None:
        """Close the relay's event loop (and with it the layer's connections on that loop)."""
        if self._loop is not None:
            loop, self._loop = self._loop, None
            loop.close()


def run_relay() -> RelayTotals:
    """``caroud relay``: relay until SIGTERM or Ctrl-C (Django is set up: see ``setup_django``)."""
    from caroud.web.apps import get_context

    relay = Relay(get_context())
    relay.install_signal_handlers()
    return relay.run()
