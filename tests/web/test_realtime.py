"""The WebSocket ``/ws/matchmaking`` through the ASGI app, with a relay on the real Redis.

Each scenario runs on one event loop (``async_to_sync``), so the consumer's database
lookups (thread-sensitive) run in the test's thread and see its transaction; the API
calls go through ``sync_to_async`` for the same reason.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing.websocket import WebsocketCommunicator

from caroud.context import Context
from caroud.project.asgi import application
from caroud.web.relay import Relay

# transaction=True: the consumer closes old connections around its lookup (as it must in
# production), which would end the transaction a plain django_db test runs in.
pytestmark = pytest.mark.django_db(transaction=True)

TICKETS = "/api/v1/tickets"
SERVER = {"address": "10.9.8.7", "port": 7777, "region": "eu-west", "capacity": 4}
WS = "/ws/matchmaking"


@pytest.fixture
def relay(ctx: Context) -> Iterator[Relay]:
    """A relay in a thread, as ``caroud up`` runs it."""
    r = Relay(ctx, block_ms=100)
    r.ensure_groups()
    thread = threading.Thread(target=r.run, name="relay", daemon=True)
    thread.start()
    yield r
    r.stop()
    thread.join(5)
    assert not thread.is_alive()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async_to_sync(scenario)()


async def call(fn: Callable[..., Any], *args: Any) -> Any:
    """A synchronous API call from the scenario (in the test's thread, with its database)."""
    return await sync_to_async(fn)(*args)


class Socket:
    """A connected WebSocket to the app."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator

    @classmethod
    async def open(cls, token: str | None = None, *, query: bool = False, path: str = WS) -> Socket:
        headers = []
        if token is not None and query:
            path = f"{path}?token={token}"
        elif token is not None:
            headers = [(b"authorization", f"Bearer {token}".encode())]
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        assert connected
        return cls(communicator)

    async def frame(self, timeout: float = 5) -> dict[str, Any]:
        return dict(json.loads(await self.communicator.receive_from(timeout)))

    async def frames_until(self, event: str, timeout: float = 5) -> list[dict[str, Any]]:
        """Frames up to and including the first of ``event``."""
        out: list[dict[str, Any]] = []
        while not out or out[-1]["event"] != event:
            out.append(await self.frame(timeout))
        return out

    async def closed_with(self) -> int:
        output = await self.communicator.receive_output(5)
        assert output["type"] == "websocket.close", output
        return int(output["code"])

    async def silent(self, seconds: float = 0.3) -> bool:
        return bool(await self.communicator.receive_nothing(seconds))

    async def close(self) -> None:
        await self.communicator.disconnect()


def without_wait(ticket: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ticket.items() if k != "wait_seconds"}


def test_the_first_frame_is_the_current_state(api: Any, make_player: Any, relay: Relay) -> None:
    alice, bob = make_player(), make_player()

    async def scenario() -> None:
        created = await call(api.post, TICKETS, {"queue": "ranked-1v1"}, alice.token)
        assert created.status_code == 201
        got = (await call(api.get, f"{TICKETS}/{created.json()['id']}", alice.token)).json()
        for query in (False, True):
            ws = await Socket.open(alice.token, query=query)
            first = await ws.frame()
            assert first["type"] == "ticket" and first["event"] == "current"
            assert first["event_id"] is None
            assert without_wait(first["ticket"]) == without_wait(got), "the API's ticket JSON"
            await ws.close()
        idle = await Socket.open(bob.token)
        assert await idle.frame() == {
            "type": "ticket",
            "event": "current",
            "event_id": None,
            "ticket": None,
        }, "no active ticket: null"
        await idle.close()

    run(scenario)


@pytest.mark.parametrize(
    "token",
    [None, "", "cpt_not-a-real-token", "nonsense", "cpt_" + "x" * 500],
)
def test_no_or_bad_token_is_closed_4401(token: str | None) -> None:
    async def scenario() -> None:
        for query in (False, True):
            ws = await Socket.open(token, query=query)
            assert await ws.closed_with() == 4401

    run(scenario)


def test_a_server_key_or_a_deactivated_player_is_closed_4401(
    make_player: Any, server_key: str
) -> None:
    alice = make_player()
    user = alice.player.user
    user.is_active = False
    user.save()

    async def scenario() -> None:
        for token in (server_key, alice.token):
            ws = await Socket.open(token)
            assert await ws.closed_with() == 4401

    run(scenario)


def test_another_websocket_path_is_closed_4404(make_player: Any) -> None:
    token = make_player().token

    async def scenario() -> None:
        ws = await Socket.open(token, path="/ws/nope")
        assert await ws.closed_with() == 4404

    run(scenario)


def test_a_tickets_life_is_pushed_in_order_and_only_to_its_players(
    api: Any, make_player: Any, server_key: str, run_worker: Any, ctx: Context, relay: Relay
) -> None:
    alice, bob, carol = make_player(rating=1500), make_player(rating=1510), make_player()

    async def scenario() -> None:
        server = await call(api.post, "/api/v1/servers", SERVER, server_key)
        assert server.status_code == 201
        beat = f"/api/v1/servers/{server.json()['id']}/heartbeat"
        assert (await call(api.post, beat, {}, server_key)).status_code == 200  # now ready
        wa, wb, wc = [await Socket.open(p.token) for p in (alice, bob, carol)]
        for ws in (wa, wb, wc):
            assert (await ws.frame())["ticket"] is None
        ta = (await call(api.post, TICKETS, {"queue": "ranked-1v1"}, alice.token)).json()
        queued = await wa.frame()
        assert queued["event"] == "queued" and queued["ticket"]["id"] == ta["id"]
        assert queued["ticket"]["players"] == [alice.id]
        await call(api.post, TICKETS, {"queue": "ranked-1v1"}, bob.token)
        assert (await wb.frame())["event"] == "queued"
        assert await wa.silent(), "bob's queueing is not pushed to alice"

        report = run_worker()
        assert report.matches == 1 and report.assigned == 1
        frames = await wa.frames_until("assigned")
        assert [f["event"] for f in frames] == ["matched", "assigned"]
        assigned = frames[-1]["ticket"]
        assert assigned["status"] == "assigned"
        assert assigned["match"]["server"] == {
            "address": SERVER["address"],
            "port": SERVER["port"],
            "region": SERVER["region"],
        }
        got = (await call(api.get, f"{TICKETS}/{ta['id']}", alice.token)).json()
        assert assigned == got, "the push carries the ticket exactly as GET shows it"
        match_id = assigned["match"]["id"]
        assert [f["event"] for f in await wb.frames_until("assigned")] == ["matched", "assigned"]

        key = server_key
        await call(api.post, f"/api/v1/matches/{match_id}/started", None, key)
        result = await call(api.post, f"/api/v1/matches/{match_id}/result", {"winner": 0}, key)
        assert result.status_code == 200
        ended = await wa.frame()
        assert ended["event"] == "ended" and ended["ticket"]["match"]["status"] == "ended"
        assert (await wb.frame())["event"] == "ended"

        ids = [queued["event_id"], *(f["event_id"] for f in frames), ended["event_id"]]
        stamps = [tuple(int(x) for x in i.split("-")) for i in ids]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        assert await wc.silent(), "carol is in none of it: nothing pushed"
        for ws in (wa, wb, wc):
            await ws.close()

    run(scenario)


def test_a_reconnecting_client_first_gets_where_its_ticket_is(
    api: Any, make_player: Any, server_key: str, run_worker: Any, relay: Relay
) -> None:
    alice, bob = make_player(), make_player()

    async def scenario() -> None:
        server = (await call(api.post, "/api/v1/servers", SERVER, server_key)).json()
        await call(api.post, f"/api/v1/servers/{server['id']}/heartbeat", {}, server_key)
        ws = await Socket.open(alice.token)
        await ws.frame()
        await call(api.post, TICKETS, {"queue": "ranked-1v1"}, alice.token)
        assert (await ws.frame())["event"] == "queued"
        await ws.close()
        # away while matched and assigned
        await call(api.post, TICKETS, {"queue": "ranked-1v1"}, bob.token)
        assert run_worker().assigned == 1
        back = await Socket.open(alice.token)
        first = await back.frame()
        assert first["event"] == "current"
        assert first["ticket"]["status"] == "assigned"
        assert first["ticket"]["match"]["server"]["port"] == SERVER["port"]
        await back.close()

    run(scenario)


def test_cancelling_and_a_party_ticket_are_pushed_to_every_member(
    api: Any, make_player: Any, relay: Relay
) -> None:
    lead, mate = make_player(), make_player()

    async def scenario() -> None:
        party = (await call(api.post, "/api/v1/parties", None, lead.token)).json()
        join = {"invite_code": party["invite_code"]}
        await call(api.post, f"/api/v1/parties/{party['id']}/join", join, mate.token)
        wl, wm = await Socket.open(lead.token), await Socket.open(mate.token)
        await wl.frame()
        await wm.frame()
        body = {"queue": "ranked-2v2", "party_id": party["id"]}
        ticket = (await call(api.post, TICKETS, body, lead.token)).json()
        for ws in (wl, wm):
            pushed = await ws.frame()
            assert pushed["event"] == "queued"
            assert sorted(pushed["ticket"]["players"]) == sorted([lead.id, mate.id])
        assert (await call(api.delete, f"{TICKETS}/{ticket['id']}", mate.token)).status_code == 204
        for ws in (wl, wm):
            cancelled = await ws.frame()
            assert cancelled["event"] == "cancelled"
            assert cancelled["ticket"]["status"] == "cancelled"
            await ws.close()

    run(scenario)


def test_a_push_arrives_soon_after_its_event(api: Any, make_player: Any, relay: Relay) -> None:
    """Behaviour only (a loaded CI machine has no latency to promise): it arrives, in time."""
    alice = make_player()

    async def scenario() -> None:
        ws = await Socket.open(alice.token)
        await ws.frame()
        await call(api.post, TICKETS, {"queue": "ranked-1v1"}, alice.token)
        pushed = await ws.frame(timeout=5)
        lag_ms = time.time() * 1000 - int(pushed["event_id"].split("-")[0])
        assert 0 <= lag_ms < 5000
        await ws.close()

    run(scenario)
