"""Players and game servers on the public HTTP API, recording every request and answer.

Players (solos and parties of two; ``ranked-1v1`` and ``ranked-2v2``) queue, poll
their ticket, "join" the server they are sent to (the server learns the match from
them, as real ones do), sometimes cancel while queued, and queue again once their
match has ended. Game servers register, heartbeat, confirm starts and report results;
one never confirms a start, and one can be made to vanish mid-match. A server whose
registration was lost (a 404 on its heartbeat) registers again, as a real one would.

Nothing here trusts an answer it did not get: a request that failed is retried the
way a client would (after ``Retry-After`` on a 503), and a ticket created by a
request whose answer was lost is found again through ``409 player_busy``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

LATENCIES = {"eu-west": 20}
POLL_S = 0.4
FOLLOW_LIMIT_S = 90.0
"""A ticket followed longer than this is given up on (and counted as stuck)."""
CANCEL_SHARE = 0.1
"""Share of queued tickets their players cancel after a short wait."""
MATCH_S = (1.5, 3.0)
ENDS = frozenset({"cancelled", "timed_out"})
MATCH_ENDS = frozenset({"ended", "interrupted"})


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    id: str
    token: str


@dataclass(frozen=True, slots=True)
class Request:
    """One API call: when (monotonic), how long, the status (0: no answer), Retry-After."""

    started: float
    seconds: float
    status: int
    retry_after: bool
    what: str


@dataclass
class Unit:
    queue: str
    members: list[Account]
    party_id: str | None = None

    @property
    def leader(self) -> Account:
        return self.members[0]


@dataclass
class Observed:
    """What the players and servers saw, for the report and the audit."""

    requests: list[Request] = field(default_factory=list)
    acked: dict[str, float] = field(default_factory=dict)
    """Ticket id → when its 201 arrived."""
    matches: dict[str, float] = field(default_factory=dict)
    """Match id → when a player first saw it."""
    results: dict[str, bool] = field(default_factory=dict)
    """Match id → ``already`` of its first 200 to a result report."""
    started: int = 0
    stuck: int = 0
    cancelled: int = 0
    lost_tickets: set[str] = field(default_factory=set)
    """Acknowledged tickets that later answered 404."""
    reregistered: int = 0
    max_running: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Server → (most matches it ran at once, its capacity)."""


class Api:
    """An HTTP client that records every call in ``observed``."""

    def __init__(self, http: httpx.AsyncClient, observed: Observed) -> None:
        self.http = http
        self.observed = observed

    async def call(
        self, method: str, path: str, token: str, body: Any = None, what: str = ""
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            r = await self.http.request(
                method, path, json=body, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError:
            self.observed.requests.append(
                Request(started, time.monotonic() - started, 0, False, what or path)
            )
            return None
        self.observed.requests.append(
            Request(
                started,
                time.monotonic() - started,
                r.status_code,
                "retry-after" in r.headers,
                what or f"{method} {path.split('/')[3]}",
            )
        )
        return r


class SimServer:
    """A game server on the API. ``confirms``: False for one that never confirms a start."""

    def __init__(self, load: Load, port: int, capacity: int, *, confirms: bool = True) -> None:
        self.load = load
        self.body = {
            "address": "127.0.0.1",
            "port": port,
            "region": "eu-west",
            "capacity": capacity,
            "labels": {"build": "chaos"},
        }
        self.capacity = capacity
        self.confirms = confirms
        self.id: str | None = None
        self.running: set[str] = set()
        self.known: set[str] = set()
        self.vanished = False

    @property
    def port(self) -> int:
        return int(str(self.body["port"]))

    async def register(self) -> bool:
        r = await self.load.api.call("POST", "/api/v1/servers", self.load.key, self.body)
        if r is None or r.status_code != 201:
            return False
        self.id = str(r.json()["id"])
        return True

    async def beat(self) -> None:
        while not self.load.stop.is_set() and not self.vanished:
            if self.id is None:
                await self.register()
            else:
                r = await self.load.api.call(
                    "POST", f"/api/v1/servers/{self.id}/heartbeat", self.load.key, {"load": 0.3}
                )
                if r is not None and r.status_code == 404:  # the pool lost it: register again
                    self.id = None
                    self.running.clear()
                    self.load.observed.reregistered += 1
                    continue
            await asyncio.sleep(1.0)

    async def arrive(self, match_id: str) -> None:
        """A player of ``match_id`` connected: the first one starts it."""
        if match_id in self.known or not self.confirms or self.vanished:
            return
        self.known.add(match_id)
        while not self.load.stop.is_set() and not self.vanished:
            r = await self.load.api.call(
                "POST", f"/api/v1/matches/{match_id}/started", self.load.key
            )
            if r is not None and r.status_code == 200:
                break
            if r is not None and r.status_code != 503:
                return  # 409: placed elsewhere, or a player left; 404: not ours
            await asyncio.sleep(0.5)
        else:
            return
        self.running.add(match_id)
        self.load.observed.started += 1
        most, _ = self.load.observed.max_running.get(str(self.id), (0, self.capacity))
        self.load.observed.max_running[str(self.id)] = (
            max(most, len(self.running)),
            self.capacity,
        )
        await asyncio.sleep(self.load.rng.uniform(*MATCH_S))
        await self.finish(match_id)

    async def finish(self, match_id: str) -> None:
        winner = None if self.load.rng.random() < 0.1 else self.load.rng.randrange(2)
        while not self.vanished:
            r = await self.load.api.call(
                "POST", f"/api/v1/matches/{match_id}/result", self.load.key, {"winner": winner}
            )
            if r is not None and r.status_code == 200:
                self.load.observed.results.setdefault(match_id, bool(r.json()["already"]))
                break
            if r is not None and r.status_code not in (503, 429):
                break  # 409: interrupted meanwhile (the pool lost this server)
            if self.load.stop.is_set():
                break
            await asyncio.sleep(0.5)
        self.running.discard(match_id)


class Load:
    """The players and servers of a run; :meth:`run` until ``stop`` is set."""

    def __init__(
        self, base_url: str, accounts: list[Account], server_key: str, seed: int = 7
    ) -> None:
        self.base_url = base_url
        self.accounts = accounts
        self.key = server_key
        self.rng = random.Random(seed)
        self.observed = Observed()
        self.stop = asyncio.Event()
        self.servers: dict[int, SimServer] = {}
        self.api: Api
        self._spawned: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Any) -> None:
        """Run ``coro`` on its own, keeping a reference until it is done."""
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    def plan(self) -> list[Unit]:
        """Half solos in 1v1; the rest parties of two (and a few solos) in 2v2."""
        n = len(self.accounts)
        half = n // 2
        units = [Unit("ranked-1v1", [a]) for a in self.accounts[:half]]
        rest = self.accounts[half:]
        pairs = len(rest) // 2 - 2
        units += [Unit("ranked-2v2", rest[2 * i : 2 * i + 2]) for i in range(max(pairs, 0))]
        units += [Unit("ranked-2v2", [a]) for a in rest[2 * max(pairs, 0) :]]
        return units

    async def run(self, servers: list[SimServer], ready: threading.Event) -> Observed:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=15, limits=limits) as http:
            self.api = Api(http, self.observed)
            for server in servers:
                self.servers[server.port] = server
                while not await server.register():
                    await asyncio.sleep(0.5)
            units = self.plan()
            await self._form_parties(units)
            tasks = [asyncio.create_task(s.beat()) for s in servers]
            await asyncio.sleep(1.2)  # a first heartbeat each: ready
            tasks += [asyncio.create_task(self.play(u)) for u in units]
            ready.set()
            await self.stop.wait()
            tasks += self._spawned
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return self.observed

    async def _form_parties(self, units: list[Unit]) -> None:
        for unit in units:
            if len(unit.members) < 2:
                continue
            r = await self.api.call("POST", "/api/v1/parties", unit.leader.token)
            assert r is not None and r.status_code == 201, "the party is formed before any fault"
            unit.party_id = str(r.json()["id"])
            for member in unit.members[1:]:
                body = {"invite_code": r.json()["invite_code"]}
                await self.api.call(
                    "POST", f"/api/v1/parties/{unit.party_id}/join", member.token, body
                )

    async def play(self, unit: Unit) -> None:
        while not self.stop.is_set():
            ticket_id = await self.enqueue(unit)
            if ticket_id is not None:
                await self.follow(unit, ticket_id)
            await asyncio.sleep(self.rng.uniform(0.2, 1.0))

    async def enqueue(self, unit: Unit) -> str | None:
        body: dict[str, Any] = {"queue": unit.queue, "latencies": LATENCIES}
        if unit.party_id is not None:
            body["party_id"] = unit.party_id
        r = await self.api.call("POST", "/api/v1/tickets", unit.leader.token, body)
        if r is None:
            return None
        if r.status_code == 201:
            ticket_id = str(r.json()["id"])
            self.observed.acked[ticket_id] = time.monotonic()
            return ticket_id
        if r.status_code == 409 and r.json()["error"]["code"] == "player_busy":
            return str(r.json()["error"]["details"]["ticket_id"])  # created, answer lost
        await asyncio.sleep(_retry_after(r))
        return None

    async def follow(self, unit: Unit, ticket_id: str) -> None:
        """Poll the ticket until it ends or its match does; join the server it names."""
        token = unit.leader.token
        since = time.monotonic()
        cancel_after = 1.0 if self.rng.random() < CANCEL_SHARE else None
        while not self.stop.is_set():
            if time.monotonic() - since > FOLLOW_LIMIT_S:
                self.observed.stuck += 1
                await self.api.call("DELETE", f"/api/v1/tickets/{ticket_id}", token)
                return
            r = await self.api.call("GET", f"/api/v1/tickets/{ticket_id}", token)
            if r is not None and r.status_code == 404:
                if ticket_id in self.observed.acked:
                    self.observed.lost_tickets.add(ticket_id)
                return
            if r is not None and r.status_code == 200:
                ticket = r.json()
                if ticket["status"] in ENDS:
                    return
                match = ticket["match"]
                if match is not None:
                    self.observed.matches.setdefault(match["id"], time.monotonic())
                    if match["status"] in MATCH_ENDS:
                        return
                    server = match["server"]
                    if ticket["status"] == "assigned" and server is not None:
                        sim = self.servers.get(int(server["port"]))
                        if sim is not None:
                            self.spawn(sim.arrive(match["id"]))
                elif cancel_after is not None and time.monotonic() - since > cancel_after:
                    d = await self.api.call("DELETE", f"/api/v1/tickets/{ticket_id}", token)
                    if d is not None and d.status_code == 204:
                        self.observed.cancelled += 1
                        return
                    cancel_after = None
            await asyncio.sleep(POLL_S)


def _retry_after(r: httpx.Response) -> float:
    with contextlib.suppress(ValueError):
        return min(float(r.headers.get("retry-after", "0.5")), 2.0)
    return 0.5
