"""One chaos run: the stack up, players and servers on it, the faults, the audit, the report."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import redis
from caroud.chaos import audit
from caroud.chaos.faults import Injector, cycles
from caroud.chaos.load import Account, Load, Observed, SimServer
from caroud.chaos.report import Report, build
from caroud.chaos.stack import Stack
from caroud.keys import Keys, PoolKeys

log = logging.getLogger("caroud.chaos")

PLAYERS = 36
GOOD_SERVERS = 4
SETTLE_S = 4.0
"""Quiet after the last fault and the load's stop, before the audit reads."""


@dataclass(frozen=True, slots=True)
class ChaosOptions:
    duration_s: float = 90.0
    players: int = PLAYERS
    keep: Path | None = None
    """Keep the run's folder (logs, AOF, database) here instead of a temporary one."""
    seed: int = 7


def run_chaos(options: ChaosOptions) -> Report:
    """Run it all; the report (``report.ok`` when every figure is at target)."""
    run_dir = options.keep or Path(tempfile.mkdtemp(prefix="caroud-chaos-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(run_dir)
    began = time.monotonic()
    try:
        stack.start_redis()
        accounts, key = _prepare_database(stack, options)
        stack.start_rest()
        observed, injector = _drive(stack, accounts, key, options)
        time.sleep(SETTLE_S)
        snap = _snapshot(stack)
        findings = audit.check(snap, observed.acked, observed.results, injector.sigkills)
        from caroud.web.conf import web_settings

        return build(
            observed,
            findings,
            injector.windows,
            stack.unexpected_exits(),
            seconds=time.monotonic() - began,
            deadline_s=web_settings().request_deadline_s,
            tickets=len(snap.tickets),
            matches=len(snap.matches),
            match_statuses=Counter(m.status for m in snap.matches.values()),
        )
    finally:
        stack.stop()
        if options.keep is None:
            shutil.rmtree(run_dir, ignore_errors=True)


def _prepare_database(stack: Stack, options: ChaosOptions) -> tuple[list[Account], str]:
    """Point this process's Django at the run's database; migrate; players and a key."""
    os.environ.update(stack.env)
    os.environ.pop("DATABASE_URL", None)  # as in the stack's processes: the run's SQLite
    from caroud.web.cli import migrate

    migrate()
    from caroud.web.services import create_player, create_server_key

    rng = random.Random(options.seed)
    accounts = []
    for i in range(options.players):
        created = create_player(f"chaos-{i:03d}", round(rng.gauss(1500, 40)))
        accounts.append(Account(f"chaos-{i:03d}", created.id, created.token))
    return accounts, create_server_key("chaos-servers").token


def _drive(
    stack: Stack, accounts: list[Account], key: str, options: ChaosOptions
) -> tuple[Observed, Injector]:
    load = Load(stack.base_url, accounts, key, seed=options.seed)
    port = 7000
    servers = [SimServer(load, port + i, capacity=4) for i in range(GOOD_SERVERS)]
    servers.append(SimServer(load, port + 90, capacity=2, confirms=False))
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    result: list[Observed] = []

    def play() -> None:
        async def main() -> None:
            result.append(await load.run(servers, ready))

        loop.run_until_complete(main())

    thread = threading.Thread(target=play, name="chaos-load", daemon=True)
    thread.start()
    if not ready.wait(60):
        raise RuntimeError(f"the players never started: see {stack.run_dir}")
    time.sleep(8.0)  # warm up: matches running before the first fault

    def vanish() -> None:
        busiest = max(servers[:GOOD_SERVERS], key=lambda s: len(s.running))
        busiest.vanished = True  # no more heartbeats, starts or results

    injector = Injector(stack, vanish)
    injector.run(cycles(options.duration_s), stop=lambda: not thread.is_alive())
    loop.call_soon_threadsafe(load.stop.set)
    thread.join(30)
    return (result[0] if result else load.observed), injector


def _snapshot(stack: Stack) -> audit.Snapshot:
    client = redis.Redis(port=stack.redis_port, decode_responses=True, socket_timeout=10)
    try:
        tickets, matches, slots, capacity = audit.read_redis(
            client, Keys(), PoolKeys("caroud", "default")
        )
    finally:
        client.close()
    rated, players = audit.read_database()
    return audit.Snapshot(tickets, matches, slots, capacity, rated, players)
