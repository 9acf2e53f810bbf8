"""``caroud up --demo``: simulated players and game servers on the public HTTP API and WebSocket.

Everything a real client does, over the network: players (solos and parties of two)
queue with ``POST /api/v1/tickets``, follow their ticket on ``/ws/matchmaking`` and,
once assigned, "connect" to the game server at the pushed address; game servers
register with ``POST /api/v1/servers``, heartbeat, confirm the start when the first
player of a match arrives, and report a result a few seconds later, which moves the
players' ratings. Players queue again a little after their match ends.

How a server learns its matches: the way real ones do, from the players who connect
to it with their match id (here an in-process call, :meth:`SimServer.arrive`), so no
API beyond the public contract is needed.

The demo's players (``demo-01``...) and server key (``demo-servers``) are created on
the first run and given fresh tokens on later ones, so their ratings carry over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

log = logging.getLogger("caroud.demo")

ENDS = frozenset({"ended", "interrupted", "cancelled", "timed_out"})
"""Events after which a player is free to queue again."""
QUEUES = ("ranked-1v1", "ranked-2v2", "ranked-5v5")
SERVER_KEY_NAME = "demo-servers"


@dataclass(frozen=True, slots=True)
class Account:
    """A demo player with a token valid for this run."""

    name: str
    id: str
    token: str


def demo_accounts(count: int, seed: int = 5) -> list[Account]:
    """``demo-01``..: created with a random rating the first time, re-keyed after that."""
    from caroud.errors import ConflictError
    from caroud.web.auth import PLAYER_TOKEN_PREFIX, new_token, token_hash
    from caroud.web.models import Player
    from caroud.web.services import create_player

    rng = random.Random(seed)
    out: list[Account] = []
    for i in range(1, count + 1):
        name = f"demo-{i:02d}"
        rating = round(min(max(rng.gauss(1500, 150), 1000), 2000))
        try:
            created = create_player(name, rating)
            out.append(Account(name, created.id, created.token))
        except ConflictError:
            token = new_token(PLAYER_TOKEN_PREFIX)
            player = Player.objects.get(user__username=name)
            player.token_hash = token_hash(token)
            player.save(update_fields=["token_hash"])
            _leave_parties(player)  # a run that was killed may have left one
            out.append(Account(name, player.public_id, token))
    return out


def _leave_parties(player: Any) -> None:
    from caroud.web.models import PartyMember
    from caroud.web.services import leave_party

    for member in PartyMember.objects.select_related("party").filter(player=player):
        leave_party(player, member.party.public_id)


def demo_server_key() -> str:
    """A key for the demo's game servers (``demo-servers``), fresh on every run."""
    from caroud.errors import ConflictError
    from caroud.web.auth import SERVER_KEY_PREFIX, new_token, token_hash
    from caroud.web.models import ServerKey
    from caroud.web.services import create_server_key

    try:
        return create_server_key(SERVER_KEY_NAME).token
    except ConflictError:
        token = new_token(SERVER_KEY_PREFIX)
        ServerKey.objects.filter(name=SERVER_KEY_NAME).update(
            token_hash=token_hash(token), revoked_at=None
        )
        return token


@dataclass
class Unit:
    """Who queues together: a solo player, or a party (the leader queues, first)."""

    queue: str
    members: list[Account]
    party_id: str | None = None
    ticket_id: str | None = None

    @property
    def leader(self) -> Account:
        return self.members[0]


def plan_units(accounts: list[Account]) -> list[Unit]:
    """Share the players out: 1v1 solos, 2v2 parties of two, and 5v5 solos (10 or more)."""
    n = len(accounts)
    big = 12 if n >= 20 else 0
    five = accounts[n - big :] if big else []
    rest = accounts[: n - big]
    half = len(rest) // 2
    units = [Unit("ranked-1v1", [a]) for a in rest[:half]]
    duos = rest[half:]
    units += [Unit("ranked-2v2", duos[i : i + 2]) for i in range(0, len(duos) - 1, 2)]
    if len(duos) % 2:
        units.append(Unit("ranked-2v2", [duos[-1]]))
    units += [Unit("ranked-5v5", [a]) for a in five]
    return units


@dataclass
class DemoStats:
    """What the demo saw: tickets queued, matches started and ended, recent rating changes."""

    queued: int = 0
    started: int = 0
    ended: int = 0
    errors: int = 0
    used_slots: dict[str, int] = field(default_factory=dict)
    capacity: int = 0
    changes: deque[str] = field(default_factory=lambda: deque(maxlen=3))


class SimServer:
    """A game server that talks to the API: register, heartbeat, start, report results."""

    def __init__(self, demo: ApiDemo, address: str, port: int, region: str, capacity: int):
        self.demo = demo
        self.body = {
            "address": address,
            "port": port,
            "region": region,
            "capacity": capacity,
            "labels": {"build": "demo"},
        }
        self.id: str | None = None
        self.matches: set[str] = set()

    @property
    def where(self) -> tuple[str, int]:
        return str(self.body["address"]), int(str(self.body["port"]))

    async def register(self) -> None:
        reply = await self.demo.call("POST", "/api/v1/servers", self.demo.key, self.body)
        self.id = str(reply["id"])
        self.demo.stats.capacity += int(str(self.body["capacity"]))

    async def heartbeat(self) -> None:
        reply = await self.demo.call(
            "POST", f"/api/v1/servers/{self.id}/heartbeat", self.demo.key, {"load": 0.3}
        )
        self.demo.stats.used_slots[str(self.id)] = int(reply["used"])

    async def arrive(self, match_id: str) -> None:
        """A player of ``match_id`` connected: the first one starts it, its end is scheduled."""
        if match_id in self.matches:
            return
        self.matches.add(match_id)
        await self.demo.call("POST", f"/api/v1/matches/{match_id}/started", self.demo.key)
        self.demo.stats.started += 1
        self.demo.spawn(self.finish(match_id, self.demo.rng.uniform(*self.demo.match_s)))

    async def finish(self, match_id: str, after_s: float) -> None:
        await asyncio.sleep(after_s)
        winner = None if self.demo.rng.random() < 0.1 else self.demo.rng.randrange(2)
        result = await self.demo.call(
            "POST", f"/api/v1/matches/{match_id}/result", self.demo.key, {"winner": winner}
        )
        self.matches.discard(match_id)
        self.demo.stats.ended += 1
        self.demo.note_result(result)

    async def leave(self) -> None:
        if self.id is not None:
            with contextlib.suppress(httpx.HTTPError):
                await self.demo.http.delete(
                    f"/api/v1/servers/{self.id}", headers=_auth(self.demo.key)
                )


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class ApiDemo:
    """Runs the simulated players and servers against ``base_url`` until ``stop`` is set."""

    def __init__(
        self,
        base_url: str,
        accounts: list[Account],
        server_key: str,
        stop: threading.Event,
        *,
        report: Callable[[str], None] | None = None,
        report_every_s: float = 5.0,
        servers_per_region: int = 2,
        match_s: tuple[float, float] = (3.0, 8.0),
        seed: int = 3,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ws_url = self.base_url.replace("http", "ws", 1) + "/ws/matchmaking"
        self.accounts = accounts
        self.key = server_key
        self.stop = stop
        self.report = report
        self.report_every_s = report_every_s
        self.servers_per_region = servers_per_region
        self.match_s = match_s
        self.rng = random.Random(seed)
        self.names = {a.id: a.name for a in accounts}
        self.stats = DemoStats()
        self.servers: dict[tuple[str, int], SimServer] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.http: httpx.AsyncClient

    # -- plumbing -----------------------------------------------------------------------

    async def call(self, method: str, path: str, token: str, body: Any = None) -> dict[str, Any]:
        """One API call; the JSON reply (an error reply raises :class:`httpx.HTTPStatusError`)."""
        r = await self.http.request(method, path, headers=_auth(token), json=body)
        r.raise_for_status()
        return dict(r.json()) if r.content else {}

    def spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(self._guard(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, coro: Any) -> None:
        try:
            await coro
        except (httpx.HTTPError, WebSocketException, OSError) as e:
            if not self.stop.is_set():
                self.stats.errors += 1
                log.warning("demo call failed", extra={"error": str(e)})

    def note_result(self, result: dict[str, Any]) -> None:
        moves = [
            f"{self.names.get(c['player_id'], c['player_id'])} "
            f"{c['rating_before']:.0f}→{c['rating_after']:.0f}"
            for c in result.get("changes", [])[:4]
        ]
        if moves:
            self.stats.changes.append(", ".join(moves))

    # -- the players --------------------------------------------------------------------

    async def form_parties(self, units: list[Unit]) -> None:
        for unit in units:
            if len(unit.members) < 2:
                continue
            party = await self.call("POST", "/api/v1/parties", unit.leader.token)
            unit.party_id = str(party["id"])
            for member in unit.members[1:]:
                body = {"invite_code": party["invite_code"]}
                await self.call("POST", f"/api/v1/parties/{unit.party_id}/join", member.token, body)

    async def queue(self, unit: Unit) -> None:
        body: dict[str, Any] = {"queue": unit.queue}
        if unit.party_id is not None:
            body["party_id"] = unit.party_id
        r = await self.http.post("/api/v1/tickets", json=body, headers=_auth(unit.leader.token))
        if r.status_code == 409 and r.json()["error"]["code"] == "player_busy":
            # left over from an earlier run: cancel it if still queued, else let it run out
            stale = r.json()["error"]["details"]["ticket_id"]
            await self.http.delete(f"/api/v1/tickets/{stale}", headers=_auth(unit.leader.token))
            r = await self.http.post("/api/v1/tickets", json=body, headers=_auth(unit.leader.token))
        if r.status_code == 201:
            unit.ticket_id = str(r.json()["id"])
            self.stats.queued += 1

    async def play(self, unit: Unit) -> None:
        """Play until stopped, reconnecting (after a pause) when the connection fails."""
        while not self.stop.is_set():
            try:
                await self.play_once(unit)
            except (httpx.HTTPError, WebSocketException, OSError) as e:
                if self.stop.is_set():
                    return
                self.stats.errors += 1
                log.warning("demo player reconnects", extra={"error": str(e)})
                await asyncio.sleep(1.0)

    async def play_once(self, unit: Unit) -> None:
        """Queue, follow the ticket over the WebSocket, join the server, queue again."""
        headers = _auth(unit.leader.token)
        async with connect(self.ws_url, additional_headers=headers, open_timeout=10) as ws:
            first = json.loads(await ws.recv())
            if first["ticket"] is None:
                await self.queue(unit)
            while not self.stop.is_set():
                frame = await self._next_frame(ws)
                if frame is not None:
                    await self.on_frame(unit, frame)

    async def _next_frame(self, ws: ClientConnection) -> dict[str, Any] | None:
        try:
            return dict(json.loads(await asyncio.wait_for(ws.recv(), 0.5)))
        except TimeoutError:
            return None

    async def on_frame(self, unit: Unit, frame: dict[str, Any]) -> None:
        event, ticket = frame["event"], frame["ticket"]
        if event == "assigned" and ticket and ticket["match"] and ticket["match"]["server"]:
            where = ticket["match"]["server"]
            server = self.servers.get((where["address"], where["port"]))
            if server is not None:
                self.spawn(server.arrive(ticket["match"]["id"]))
        elif event in ENDS and ticket and ticket["id"] == unit.ticket_id:
            unit.ticket_id = None
            await asyncio.sleep(self.rng.uniform(1.0, 3.0))
            await self.queue(unit)

    # -- the run ------------------------------------------------------------------------

    async def run(self) -> DemoStats:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10) as http:
            self.http = http
            await self._start_servers()
            units = plan_units(self.accounts)
            await self.form_parties(units)
            for unit in units:
                self.spawn(self.play(unit))
            self.spawn(self._heartbeats())
            reported = asyncio.get_running_loop().time()
            while not self.stop.is_set():
                await asyncio.sleep(0.2)
                now = asyncio.get_running_loop().time()
                if self.report is not None and now - reported >= self.report_every_s:
                    reported = now
                    self.report(self.summary())
            await self._wind_down(units)
        return self.stats

    async def _start_servers(self) -> None:
        queues = (await self.http.get("/api/v1/queues")).json()["queues"]
        regions = sorted({r for q in queues for r in q["regions"]})
        for r, region in enumerate(regions):
            for i in range(self.servers_per_region):
                server = SimServer(self, "127.0.0.1", 7000 + 10 * r + i, region, capacity=4)
                await server.register()
                await server.heartbeat()
                self.servers[server.where] = server

    async def _heartbeats(self) -> None:
        while not self.stop.is_set():
            for server in list(self.servers.values()):
                await self._guard(server.heartbeat())
            await asyncio.sleep(2.0)

    async def _wind_down(self, units: list[Unit]) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for unit in units:  # leave no ticket queued for the next run
            if unit.ticket_id is not None:
                with contextlib.suppress(httpx.HTTPError):
                    await self.http.delete(
                        f"/api/v1/tickets/{unit.ticket_id}", headers=_auth(unit.leader.token)
                    )
        for unit in units:
            if unit.party_id is not None:
                for member in unit.members:
                    with contextlib.suppress(httpx.HTTPError):
                        await self.http.delete(
                            f"/api/v1/parties/{unit.party_id}/members/me",
                            headers=_auth(member.token),
                        )
        for server in self.servers.values():
            await server.leave()

    def summary(self) -> str:
        s = self.stats
        used = sum(s.used_slots.values())
        line = (
            f"demo: {s.queued} tickets queued, {s.started} matches started, {s.ended} ended; "
            f"game servers {used}/{s.capacity} slots in use"
        )
        if s.changes:
            line += f"; ratings: {s.changes[-1]}"
        return line


def run_demo(demo: ApiDemo) -> DemoStats:
    """Run ``demo`` on a fresh event loop (the demo thread's target)."""
    return asyncio.run(demo.run())
