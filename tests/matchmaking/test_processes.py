"""Several worker processes on one queue: exactly-once, everything matchable matched, SIGKILL."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from caroud.context import Context
from caroud.matchmaking.audit import audit_matches
from caroud.matchmaking.models import Ticket, TicketStatus
from caroud.matchmaking.store import MatchmakingStore
from caroud.matchmaking.worker import Worker
from caroud.redis.client import Redis
from caroud.settings import Settings

pytestmark = pytest.mark.slow

QUEUES_TOML = """
[queues.duel]
teams = 2
team_size = 1
window = { initial = 50, growth_per_s = 50, max = 400 }
max_wait_s = 600
regions = ["eu"]
"""


@pytest.fixture
def env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    queues = tmp_path / "queues.toml"
    queues.write_text(QUEUES_TOML)
    return {
        **os.environ,
        "CAROUD_REDIS_URL": redis_url,
        "CAROUD_QUEUES_FILE": str(queues),
        "CAROUD_LEASE_TTL": "1.0",
        "CAROUD_WORKER_TICK": "0.02",
        "CAROUD_DATA_DIR": str(tmp_path),
    }


@pytest.fixture
def duel_store(env: dict[str, str], client: Redis) -> MatchmakingStore:
    settings = Settings.from_mapping(env)
    return Context.build(settings, client).matchmaking


def start_workers(env: dict[str, str], n: int) -> list[subprocess.Popen[bytes]]:
    cmd = [sys.executable, "-m", "caroud", "worker", "--log-level", "warning"]
    return [subprocess.Popen(cmd, env=env) for _ in range(n)]


def enqueue_many(store: MatchmakingStore, n: int, start: int = 0) -> list[str]:
    # dense ratings: every ticket has partners within the initial window
    return [
        store.enqueue("duel", [(f"p{i}", 1000 + (i * 7919) % 1000)]).id
        for i in range(start, start + n)
    ]


def wait_drained(store: MatchmakingStore, timeout_s: float) -> None:
    """Until the queue is empty, or holds only what no window can ever pair."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = store.list_queued("duel", limit=1000)
        if not _pairable(store, left):
            return
        time.sleep(0.05)


def _pairable(store: MatchmakingStore, tickets: list[Ticket]) -> bool:
    widest = store.queues.get("duel").window.maximum
    ratings = sorted(t.rating for t in tickets)
    return any(b - a <= widest for a, b in itertools.pairwise(ratings))


def stop(procs: list[subprocess.Popen[bytes]]) -> list[int]:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    return [p.wait(timeout=10) for p in procs]


def assert_all_matched_once(store: MatchmakingStore, ticket_ids: list[str]) -> None:
    """Every ticket in at most one match, and every ticket left queued unpairable."""
    tickets = store.get_many(ticket_ids)
    assert len(tickets) == len(ticket_ids)
    left = [t for t in tickets.values() if t.status is TicketStatus.QUEUED]
    matched = [t for t in tickets.values() if t.status is TicketStatus.MATCHED]
    assert len(left) + len(matched) == len(ticket_ids)
    assert not _pairable(store, left), f"{len(left)} tickets left that could be paired"
    assert len(left) < 10
    report = audit_matches(store.client, store.keys)
    assert report.ok, report
    assert report.tickets == len(matched)
    assert report.matches == len(matched) // 2


def test_four_workers_ten_thousand_tickets(
    env: dict[str, str], duel_store: MatchmakingStore
) -> None:
    procs = start_workers(env, 4)
    try:
        ids = enqueue_many(duel_store, 10_000)
        wait_drained(duel_store, 60)
    finally:
        codes = stop(procs)
    assert codes == [0, 0, 0, 0], "workers must stop cleanly on SIGTERM"
    assert_all_matched_once(duel_store, ids)
    assert duel_store.client.get(duel_store.keys.lease("duel")) is None


def test_sigkill_of_the_lease_holder_mid_run(
    env: dict[str, str], duel_store: MatchmakingStore
) -> None:
    client = duel_store.client
    procs = start_workers(env, 4)
    try:
        ids = enqueue_many(duel_store, 3000)
        holder = _lease_holder_pid(duel_store)
        victim = next(p for p in procs if p.pid == holder)
        more = enqueue_many(duel_store, 3000, start=3000)
        victim.send_signal(signal.SIGKILL)
        victim.wait(5)
        more += enqueue_many(duel_store, 4000, start=6000)
        wait_drained(duel_store, 60)
        new_holder = _lease_holder_pid(duel_store)
        assert new_holder != holder
    finally:
        stop(procs)
    assert victim.returncode == -signal.SIGKILL
    assert client.get(duel_store.keys.worker(_worker_id_of(duel_store, holder) or "x")) is None
    assert_all_matched_once(duel_store, ids + more)


def _lease_holder_pid(store: MatchmakingStore, timeout_s: float = 10) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        token = store.client.get(store.keys.lease("duel"))
        if token:
            info = store.client.get(store.keys.worker(token.split(":")[0]))
            if info:
                return int(json.loads(info)["pid"])
        time.sleep(0.02)
    raise AssertionError("no worker took the lease")


def _worker_id_of(store: MatchmakingStore, pid: int) -> str | None:
    for key in store.client.scan_iter(match=store.keys.workers_pattern()):
        info = store.client.get(key)
        if info and json.loads(info)["pid"] == pid:
            return str(json.loads(info)["id"])
    return None


RACE = """
import sys, time
from caroud.context import Context
from caroud.matchmaking.worker import Worker
from caroud.settings import Settings

url, queues_file, token, seconds = sys.argv[1:]
settings = Settings.from_mapping({"CAROUD_REDIS_URL": url, "CAROUD_QUEUES_FILE": queues_file})
worker = Worker(Context.build(settings).matchmaking, tick_s=0.0)
worker.token = token  # every process holds "the" lease: only the Lua claim keeps them apart
end = time.monotonic() + float(seconds)
while time.monotonic() < end:
    worker.run_cycle()
"""


def test_claims_stay_exclusive_when_workers_share_a_queue_at_once(
    env: dict[str, str], duel_store: MatchmakingStore
) -> None:
    token = "shared-token"
    duel_store.hold_leases(["duel"], token, 60)
    ids = enqueue_many(duel_store, 4000)
    args = [env["CAROUD_REDIS_URL"], env["CAROUD_QUEUES_FILE"], token, "4"]
    procs = [subprocess.Popen([sys.executable, "-c", RACE, *args]) for _ in range(4)]
    ids += enqueue_many(duel_store, 4000, start=4000)
    assert [p.wait(30) for p in procs] == [0, 0, 0, 0]
    assert duel_store.count("duel") < len(ids) // 10, "the racers should have matched most"
    # pair what waited too little to reach the widest window, as a later cycle would
    finisher = Worker(duel_store)
    finisher.token = token
    finisher.run_cycle(now=duel_store.server_time() + 60)
    assert_all_matched_once(duel_store, ids)
