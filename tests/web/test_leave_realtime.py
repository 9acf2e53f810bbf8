"""Leaving a match before its start, as the players' WebSockets see it (relay on real Redis).

Runs like ``test_realtime.py``: one event loop per scenario, the API called through
``sync_to_async`` so the consumer and the test share the database.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing.websocket import WebsocketCommunicator

from caroud.context import Context
from caroud.project.asgi import application
from caroud.web.relay import Relay

pytestmark = pytest.mark.django_db(transaction=True)

TICKETS = "/api/v1/tickets"
SERVER = {"address": "10.9.8.7", "port": 7777, "region": "eu-west", "capacity": 4}


@pytest.fixture
def relay(ctx: Context) -> Iterator[Relay]:
    r = Relay(ctx, block_ms=100)
    r.ensure_groups()
    thread = threading.Thread(target=r.run, name="relay", daemon=True)
    thread.start()
    yield r
    r.stop()
    thread.join(5)
    assert not thread.is_alive()


async def call(fn: Any, *args: Any) -> Any:
    return await sync_to_async(fn)(*args)


async def socket(token: str) -> WebsocketCommunicator:
    headers = [(b"authorization", f"Bearer {token}".encode())]
    ws = WebsocketCommunicator(application, "/ws/matchmaking", headers=headers)
    connected, _ = await ws.connect(timeout=5)
    assert connected
    return ws


async def frames_until(ws: WebsocketCommunicator, event: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while not out or out[-1]["event"] != event:
        out.append(dict(json.loads(await ws.receive_from(5))))
    return out


def test_both_players_are_pushed_when_one_leaves_before_the_start(
    api: Any, make_player: Any, server_key: str, run_worker: Any, relay: Relay
) -> None:
    alice, bob = make_player(rating=1500), make_player(rating=1510)

    async def scenario() -> None:
        server = (await call(api.post, "/api/v1/servers", SERVER, server_key)).json()
        await call(api.post, f"/api/v1/servers/{server['id']}/heartbeat", {}, server_key)
        wa, wb = await socket(alice.token), await socket(bob.token)
        ta = (await call(api.post, TICKETS, {"queue": "ranked-1v1"}, alice.token)).json()
        tb = (await call(api.post, TICKETS, {"queue": "ranked-1v1"}, bob.token)).json()
        assert (await call(run_worker)).assigned == 1
        await frames_until(wa, "assigned")
        await frames_until(wb, "assigned")

        left = await call(api.delete, f"{TICKETS}/{ta['id']}", alice.token)
        assert left.status_code == 204

        [mine] = await frames_until(wa, "cancelled")
        assert mine["ticket"]["id"] == ta["id"]
        assert (mine["ticket"]["status"], mine["ticket"]["match"]) == ("cancelled", None)
        [theirs] = await frames_until(wb, "queued")
        assert theirs["ticket"]["id"] == tb["id"]
        assert (theirs["ticket"]["status"], theirs["ticket"]["match"]) == ("queued", None)
        assert await wa.receive_nothing(0.3), "bob's requeue is not pushed to alice"
        for ws in (wa, wb):
            await ws.disconnect()

    async_to_sync(scenario)()
