"""Ticket events: one Redis Stream per queue, appended inside the same Lua script as the change.

Why Streams and not pub/sub: an entry is written atomically with the state change
it reports, so its order is the order of the changes; a subscriber that was away
(a restarting web process, a reconnecting WebSocket) resumes from the last id it
saw instead of losing what happened meanwhile; and the matchmaker's worker
follows its queue's stream to keep its view of the pool current without
re-reading it. Streams are trimmed to ``CAROUD_EVENTS_MAXLEN`` entries
(approximately), so they do not pile up.

Each entry has ``e`` (the new status: queued, matched, assigned, cancelled,
timed_out), ``t`` the ticket id, ``p`` the player ids (comma-separated) and,
once matched, ``m`` the match id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from caroud.keys import Keys
from caroud.redis.client import Redis, redis_errors


@dataclass(frozen=True, slots=True)
class Event:
    """One ticket status change, as read from a queue's stream."""

    id: str
    queue: str
    type: str
    ticket_id: str
    player_ids: tuple[str, ...]
    match_id: str | None = None


def parse_event(queue: str, entry_id: str, fields: Mapping[str, str]) -> Event:
    players = fields.get("p", "")
    return Event(
        id=entry_id,
        queue=queue,
        type=fields.get("e", ""),
        ticket_id=fields.get("t", ""),
        player_ids=tuple(players.split(",")) if players else (),
        match_id=fields.get("m") or None,
    )


class EventReader:
    """Follows the event streams of several queues, remembering where it is in each."""

    def __init__(self, client: Redis, keys: Keys, queues: Sequence[str], start: str = "$") -> None:
        self._client = client
        self._keys = keys
        self._names = {keys.events(q): q for q in queues}
        # "$" means "only what comes after now": resolve it once to a concrete id.
        self._cursors = {stream: start for stream in self._names}
        if start == "$":
            with redis_errors(client):
                pipe = client.pipeline(transaction=False)
                for stream in self._names:
                    pipe.xrevrange(stream, count=1)
                for stream, last in zip(self._names, pipe.execute(), strict=True):
                    self._cursors[stream] = last[0][0] if last else "0-0"

    def read(self, block_ms: int | None = 1000, count: int = 1000) -> list[Event]:
        """The next events of any followed queue (waiting up to ``block_ms`` for one)."""
        streams: dict[Any, Any] = dict(self._cursors)
        with redis_errors(self._client):
            reply: Any = self._client.xread(streams, count=count, block=block_ms)
        events: list[Event] = []
        for stream, entries in reply or []:
            queue = self._names[stream]
            for entry_id, fields in entries:
                events.append(parse_event(queue, entry_id, fields))
                self._cursors[stream] = entry_id
        return events
