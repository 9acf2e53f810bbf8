"""The relay on the real Redis: shared work, a dead relay's events, old events, a lost group.

The Channels layer here is a recorder (what would have been pushed, to which group);
the WebSocket side of the same path is in ``test_realtime.py``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from caroud.context import Context
from caroud.web.relay import Relay

QUEUE = "ranked-1v1"


class Recorder:
    """A channel layer that records ``group_send`` calls."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self.sent.append((group, json.loads(message["text"])))

    def tickets(self) -> list[str]:
        return [frame["ticket"]["id"] for _, frame in self.sent]


def enqueue(ctx: Context, n: int, prefix: str = "p") -> list[str]:
    return [ctx.matchmaking.enqueue(QUEUE, [(f"{prefix}{i}", 1500.0)]).id for i in range(n)]


def pending(ctx: Context) -> int:
    info: Any = ctx.client.xpending(ctx.keys.events(QUEUE), ctx.keys.relay_group())
    return int(info["pending"])


@pytest.fixture
def relays(ctx: Context) -> Iterator[list[tuple[Relay, Recorder]]]:
    made: list[tuple[Relay, Recorder]] = []
    for name in ("a", "b"):
        recorder = Recorder()
        made.append((Relay(ctx, layer=recorder, consumer=name, read_count=3), recorder))
    made[0][0].ensure_groups()
    yield made
    for relay, _ in made:
        relay.close()


def test_relays_share_the_events_and_each_is_pushed_once(
    ctx: Context, relays: list[tuple[Relay, Recorder]]
) -> None:
    ids = enqueue(ctx, 20)
    while True:
        read = 0
        for relay, _ in relays:
            events = relay.read(block_ms=None)
            read += len(events)
            relay.relay(events)
        if not read:
            break
    (_, a), (_, b) = relays
    assert a.sent and b.sent, "both relays took a share"
    assert sorted(a.tickets() + b.tickets()) == sorted(ids), "every event pushed exactly once"
    for group, frame in a.sent + b.sent:
        assert group == f"player.{frame['ticket']['players'][0]}"
        assert frame["event"] == "queued" and frame["ticket"]["status"] == "queued"
    assert pending(ctx) == 0, "all acknowledged"


def test_a_dead_relays_events_are_taken_over(ctx: Context) -> None:
    dead = Relay(ctx, layer=Recorder(), consumer="dead", read_count=100)
    dead.ensure_groups()
    ids = enqueue(ctx, 5)
    assert len(dead.read(block_ms=None)) == 5  # read, never pushed: it died
    assert pending(ctx) == 5
    recorder = Recorder()
    heir = Relay(ctx, layer=recorder, consumer="heir", claim_idle_ms=50)
    time.sleep(0.1)
    heir.relay(heir.read(block_ms=None))
    assert sorted(recorder.tickets()) == sorted(ids)
    assert pending(ctx) == 0
    heir.close()


def test_old_events_are_acknowledged_without_a_push(ctx: Context) -> None:
    recorder = Recorder()
    relay = Relay(ctx, layer=recorder, consumer="late", max_age_s=0.05)
    relay.ensure_groups()
    enqueue(ctx, 3)
    time.sleep(0.2)
    relay.relay(relay.read(block_ms=None))
    assert recorder.sent == []
    assert relay.totals.stale == 3 and pending(ctx) == 0


def test_a_running_relay_survives_its_group_being_lost(ctx: Context) -> None:
    recorder = Recorder()
    relay = Relay(ctx, layer=recorder, block_ms=50)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not ctx.client.exists(ctx.keys.events(QUEUE)) and time.monotonic() < deadline:
            time.sleep(0.01)
        ctx.client.flushdb()  # streams and group gone: NOGROUP until it makes them again
        while time.monotonic() < deadline and not recorder.sent:
            enqueue(ctx, 1, prefix=f"p{time.monotonic_ns()}-")
            time.sleep(0.2)
        assert recorder.sent, "the relay recreated its group and pushes again"
        assert relay.totals.errors >= 1
    finally:
        relay.stop()
        thread.join(5)
    assert not thread.is_alive()
