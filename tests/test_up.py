"""End to end: ``caroud up`` as a subprocess, played over HTTP and WebSocket like a real game.

A fresh data directory (so a fresh embedded Valkey and SQLite database) and a free
port; players and a server key from the ``caroud`` command line; a 1v1 and a 5v5
with two parties, through server assignment (pushed over the WebSocket with the
server's address), the start, the result and the Elo change; then SIGINT, and the
whole tree must be gone. Every process it started is killed even if the test fails.
No player token may appear in anything it printed, though browsers' WebSockets send
theirs in the query string. Also the README's production command, uvicorn with the
shipped logging configuration, must log request paths without their tokens.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from caroud.web.up import stop_process, wait_ready

pytestmark = pytest.mark.slow

CAROUD = str(Path(sys.executable).with_name("caroud"))
SERVER = {"address": "10.20.30.40", "port": 7777, "region": "eu-west", "capacity": 2}
TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc), whatever its session."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Backend:
    """A running ``caroud up``: its process, output, URL and environment."""

    proc: subprocess.Popen[str]
    env: dict[str, str]
    base: str
    log: Path
    lines: list[str] = field(default_factory=list)
    seen: set[int] = field(default_factory=set)

    def wait_for_line(self, text: str, timeout_s: float = 60.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            assert self.proc.poll() is None, f"caroud up exited: {self.lines}"
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} in the output of caroud up: {self.lines}")

    def caroud(self, *args: str) -> Any:
        out = subprocess.run(
            [CAROUD, *args], env=self.env, capture_output=True, text=True, timeout=60, check=False
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def remember_children(self) -> None:
        self.seen |= descendants(self.proc.pid)


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CAROUD_", "DJANGO_")) and k != "DATABASE_URL"
    }
    env |= {
        "CAROUD_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'caroud.sqlite3'}",
        "SECRET_KEY": "e2e-tests-only",
    }
    log = open(tmp_path / "caroud-up.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [CAROUD, "up", "--port", str(port), "--log-level", "info"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
    )
    b = Backend(proc, env, f"http://127.0.0.1:{port}", tmp_path / "caroud-up.log")

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            b.lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield b
    finally:
        b.remember_children()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)
        for pid in [proc.pid, *b.seen]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
        reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()
        log.close()


class Player:
    """A player of the e2e game: its token, an HTTP client and its WebSocket."""

    def __init__(
        self,
        b: Backend,
        stack: contextlib.ExitStack,
        name: str,
        account: dict[str, str],
        query: bool,
    ) -> None:
        self.name = name
        self.id = account["id"]
        self.token = account["token"]
        self.party: str | None = None
        self.http = stack.enter_context(
            httpx.Client(base_url=b.base, headers=self.auth, timeout=TIMEOUT_S)
        )
        ws_base = b.base.replace("http", "ws", 1) + "/ws/matchmaking"
        if query:  # as a browser would
            ws = connect(f"{ws_base}?token={self.token}")
        else:
            ws = connect(ws_base, additional_headers=self.auth)
        self.ws: ClientConnection = stack.enter_context(ws)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def frame(self) -> dict[str, Any]:
        return dict(json.loads(self.ws.recv(timeout=TIMEOUT_S)))

    def until(self, event: str) -> dict[str, Any]:
        while (f := self.frame())["event"] != event:
            pass
        return f

    def post(self, path: str, body: Any = None, status: int = 201) -> Any:
        r = self.http.post(path, json=body)
        assert r.status_code == status, r.text
        return r.json()

    def rating(self) -> float:
        return float(self.http.get("/api/v1/players/me").json()["rating"])


def play_match(
    server: httpx.Client, players: list[Player], leaders: list[Player], queue: str
) -> tuple[str, list[list[str]]]:
    """Leaders queue; every player is pushed the assignment; the server starts and reports."""
    for p in players:
        first = p.frame()
        assert first["event"] == "current" and first["ticket"] is None
    for leader in leaders:
        body = {"queue": queue} | ({"party_id": leader.party} if leader.party else {})
        assert leader.post("/api/v1/tickets", body)["status"] == "queued"
    assigned = [p.until("assigned")["ticket"] for p in players]
    match = assigned[0]["match"]
    for p, ticket in zip(players, assigned, strict=True):
        assert p.id in ticket["players"]
        assert ticket["match"]["id"] == match["id"]
        assert ticket["match"]["server"] == {k: SERVER[k] for k in ("address", "port", "region")}
    r = server.post(f"/api/v1/matches/{match['id']}/started")
    assert r.status_code == 200 and r.json()["status"] == "started", r.text
    r = server.post(f"/api/v1/matches/{match['id']}/result", json={"winner": 0})
    assert r.status_code == 200, r.text
    # the changes, whichever road applied them (the API, or the results applier's poll)
    assert {c["player_id"] for c in r.json()["changes"]} == {p.id for p in players}
    for p in players:
        ended = p.until("ended")
        assert ended["ticket"]["match"]["status"] == "ended"
    return match["id"], match["teams"]


def test_caroud_up_plays_a_1v1_and_a_5v5_with_parties_then_stops_cleanly(
    backend: Backend,
) -> None:
    banner = backend.wait_for_line("the backend is running")
    assert backend.base in banner
    backend.wait_for_line("/ws/matchmaking")
    backend.remember_children()
    assert backend.seen, "uvicorn and the Valkey keeper run as children"

    names = ["alice", "bob"] + [f"p{i}" for i in range(10)]
    with ThreadPoolExecutor(6) as pool:
        accounts = dict(
            zip(
                names, pool.map(lambda n: backend.caroud("player", "create", n), names), strict=True
            )
        )
    key = backend.caroud("server-key", "create", "e2e-servers")["key"]
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(
            httpx.Client(
                base_url=backend.base,
                headers={"Authorization": f"Bearer {key}"},
                timeout=TIMEOUT_S,
            )
        )
        r = server.post("/api/v1/servers", json=SERVER)
        assert r.status_code == 201, r.text
        assert server.post(f"/api/v1/servers/{r.json()['id']}/heartbeat").status_code == 200

        # -- a 1v1 ---------------------------------------------------------------------
        alice = Player(backend, stack, "alice", accounts["alice"], query=False)
        bob = Player(backend, stack, "bob", accounts["bob"], query=True)
        _, teams = play_match(server, [alice, bob], [alice, bob], "ranked-1v1")
        winner, loser = (alice, bob) if teams[0] == [alice.id] else (bob, alice)
        assert winner.rating() == pytest.approx(1520.0)  # K 40, equal ratings: +-20
        assert loser.rating() == pytest.approx(1480.0)

        # -- a 5v5: a party of 3, a party of 2, five solos -------------------------------
        ps = [
            Player(backend, stack, n, accounts[n], query=i % 2 == 0)
            for i, n in enumerate(names[2:])
        ]
        for lead, members in ((ps[0], ps[1:3]), (ps[3], ps[4:5])):
            party = lead.post("/api/v1/parties")
            lead.party = party["id"]
            code = {"invite_code": party["invite_code"]}
            for m in members:
                m.post(f"/api/v1/parties/{party['id']}/join", code, 200)
        _, teams = play_match(server, ps, [ps[0], ps[3], *ps[5:]], "ranked-5v5")
        assert sorted(len(t) for t in teams) == [5, 5]
        by_team = [set(team) for team in teams]
        for party_ids in ({ps[0].id, ps[1].id, ps[2].id}, {ps[3].id, ps[4].id}):
            assert any(party_ids <= team for team in by_team), "a party plays on one team"
        for p in ps:
            expected = 1520.0 if p.id in by_team[0] else 1480.0
            assert p.rating() == pytest.approx(expected), p.name

    # -- Ctrl-C ------------------------------------------------------------------------
    backend.remember_children()
    started = time.monotonic()
    backend.proc.send_signal(signal.SIGINT)
    assert backend.proc.wait(15) == 0, backend.lines
    assert time.monotonic() - started < 10, "stops within a few seconds"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(pid) for pid in backend.seen):
        time.sleep(0.1)
    assert not [pid for pid in backend.seen if alive(pid)], "no process left behind"

    # -- its output: request paths at --log-level info, never a token ----------------------
    printed = "\n".join(backend.lines) + "\n" + backend.log.read_text()
    for account in accounts.values():
        assert secret_of(account["token"]) not in printed, "a player token was logged"
    assert secret_of(key) not in printed, "the server key was logged"
    assert '"WebSocket /ws/matchmaking?token=***" [accepted]' in printed
    assert '"POST /api/v1/tickets HTTP/1.1" 201' in printed, "the access log is on"


def secret_of(token: str) -> str:
    """The random part of a token (what a leak would show, whatever hid its prefix)."""
    return token.split("_", 1)[1]


def test_readme_uvicorn_command_logs_paths_without_tokens(tmp_path: Path, redis_url: str) -> None:
    """``uvicorn caroud.project.asgi:application --log-config FILE`` (README), 2 workers."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CAROUD_", "DJANGO_")) and k != "DATABASE_URL"
    }
    env |= {
        "CAROUD_DATA_DIR": str(tmp_path / "data"),
        "CAROUD_REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'caroud.sqlite3'}",
        "SECRET_KEY": "uvicorn-tests-only",
    }
    created = subprocess.run(
        [CAROUD, "player", "create", "alice"], env=env, capture_output=True, text=True, check=True
    )
    token = json.loads(created.stdout)["token"]
    written = subprocess.run(
        [sys.executable, "-m", "caroud.web.accesslog", str(tmp_path / "uvicorn-log.json")],
        capture_output=True,
        text=True,
        check=True,
    )
    port = free_port()
    base, ws_base = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws/matchmaking"
    command = [sys.executable, "-m", "uvicorn", "caroud.project.asgi:application"]
    command += ["--port", str(port), "--workers", "2", "--lifespan", "off"]
    command += ["--log-config", written.stdout.strip(), "--log-level", "debug"]  # info and more
    with open(tmp_path / "uvicorn.out", "w") as out:
        proc = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_ready(f"{base}/healthz", proc)
            assert httpx.get(f"{base}/healthz?token={token}&probe=1").status_code == 200
            assert httpx.get(f"{base}/missing/{token}").status_code == 404
            with connect(f"{ws_base}?token={token}") as ws:  # as a browser
                assert json.loads(ws.recv(timeout=TIMEOUT_S))["event"] == "current"
            with connect(ws_base, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
                assert json.loads(ws.recv(timeout=TIMEOUT_S))["event"] == "current"
        finally:
            code = stop_process(proc)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    printed = (tmp_path / "uvicorn.out").read_text()
    assert code == 0, printed
    assert secret_of(token) not in printed, "the player token was logged"
    assert '"GET /healthz?token=***&probe=1 HTTP/1.1" 200' in printed, "the path is logged"
    assert '"WebSocket /ws/matchmaking?token=***" [accepted]' in printed
    assert '"GET /missing/cpt_*** HTTP/1.1" 404' in printed, "a token in the path too"
    assert "< authorization: ***" in printed.lower(), "debug lines list headers: hidden"
