"""``caroud stats`` against the real server: a known load shows the right figures and alarms."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from caroud.context import Context
from caroud.errors import NoCapacityError
from caroud.matchmaking.worker import Worker
from caroud.ops import stats as stats_module
from caroud.ops.alarms import Thresholds
from caroud.ops.cli import ops_app
from caroud.ops.stats import StatsCollector, matched_ids, per_minute, servers_by_state
from caroud.servers import ServerPool
from caroud.settings import Settings


def load(ctx: Context, pool: ServerPool) -> None:
    """Two duel matches, one ticket left waiting 30 s; a full server, a draining one."""
    store = ctx.matchmaking
    now = store.server_time()
    for i, rating in enumerate((1500, 1510, 1700, 1705)):
        store.enqueue("duel", [(f"p{i}", rating)])
    store.enqueue("duel", [("loner", 3000)], created_at=now - 30)
    report = Worker(store, queue_names=["duel"], worker_id="w-stats").run_cycle()
    assert report.matches == 2
    pool.register("10.0.0.1", 7777, "eu", 1, server_id="s-eu")
    pool.register("10.0.0.2", 7777, "us", 2, server_id="s-us")
    for sid in ("s-eu", "s-us"):
        pool.heartbeat(sid)  # only a server that reported ready takes matches
    pool.allocate("m0", ["us"])
    pool.drain("s-us")  # it keeps running m0, takes no new match
    pool.allocate("m1", ["eu"])
    with pytest.raises(NoCapacityError):
        pool.allocate("m2", ["eu"])


def test_a_known_load_shows_the_right_figures(ctx: Context, pool: ServerPool) -> None:
    load(ctx, pool)
    snapshot = StatsCollector(ctx, [pool], interval_s=0.2).snapshot()
    figures = {q.name: q for q in snapshot.queues}
    duel = figures["duel"]
    assert duel.depth == 1 and duel.matches_per_min == 2.0 and not duel.estimated
    assert duel.oldest_wait_s is not None and 29 < duel.oldest_wait_s < 40
    assert figures["squad"].depth == 0 and figures["squad"].oldest_wait_s is None
    [p] = snapshot.pools
    assert p.stats.no_capacity == 1 and p.stats.used == 2
    assert p.servers == {"eu": {"ready": 1}, "us": {"draining": 1}}
    r = snapshot.redis
    assert r["connections"] >= 1 and r["memory_used_bytes"] > 0
    assert r["memory_limit_source"] in ("maxmemory", "total_system_memory")
    assert r["cpu_percent"] is not None and r["cpu_percent"] >= 0
    assert r["interval_s"] >= 0.2
    assert r["latency_ms"] is not None and r["latency_max_command"] is not None
    assert r["hits"] > 0  # the worker read ticket hashes
    body = snapshot.to_json()
    assert json.loads(json.dumps(body))["queues"][0]["name"] == "duel"


def test_matches_per_minute_extrapolates_when_the_read_is_capped(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ctx.matchmaking
    for i in range(8):
        store.enqueue("duel", [(f"p{i}", 1500 + i)])
    assert Worker(store, queue_names=["duel"]).run_cycle().matches == 4
    monkeypatch.setattr(stats_module, "EVENTS_PAGE", 2)
    monkeypatch.setattr(stats_module, "MAX_EVENTS_READ", 4)
    rate, estimated = stats_module.queue_matches_per_min(
        ctx.client, ctx.keys.events("duel"), store.server_time()
    )
    # the newest 4 entries are the matched events of the last 2 matches, all within a
    # second: too short a span to extrapolate, so the count read (a lower bound)
    assert estimated and rate == 2.0


def test_alarms_and_check(ctx: Context, settings: Settings) -> None:
    collector = StatsCollector(ctx, [], Thresholds(connections=0), interval_s=0.1)
    snapshot = collector.snapshot()
    assert [a.name for a in snapshot.firing] == ["connections"]
    assert ("scale_up", "connections") in {(t.kind, t.name) for t in snapshot.triggers}
    runner = CliRunner()
    env = {"CAROUD_REDIS_URL": settings.redis_url or ""}
    args = ["stats", "--check", "--interval", "0.1", "--json"]
    fired = runner.invoke(ops_app, [*args, "--alarm-connections", "0"], env=env)
    assert fired.exit_code == 1, fired.output
    assert any(a["firing"] for a in json.loads(fired.output)["alarms"])
    calm = runner.invoke(
        ops_app, [*args, "--alarm-cpu", "1000", "--alarm-latency-ms", "1000"], env=env
    )
    assert calm.exit_code == 0, calm.output
    by_env = runner.invoke(ops_app, args, env=env | {"CAROUD_ALARM_CONNECTIONS": "0"})
    assert by_env.exit_code == 1


def test_stats_exits_with_the_doctor_code_when_redis_is_down(closed_port: int) -> None:
    env = {"CAROUD_REDIS_URL": f"redis://127.0.0.1:{closed_port}", "CAROUD_RETRIES": "0"}
    result = CliRunner().invoke(ops_app, ["stats", "--check"], env=env)
    assert result.exit_code == 4, result.output


def test_pure_helpers() -> None:
    entries = [
        ("1-0", {"e": "queued", "t": "a"}),
        ("2-0", {"e": "matched", "t": "a", "m": "M1"}),
        ("2-1", {"e": "matched", "t": "b", "m": "M1"}),
        ("3-0", {"e": "matched", "t": "c", "m": "M2"}),
        ("4-0", {"e": "assigned", "t": "d", "m": "M0"}),  # formed earlier: not counted
    ]
    assert matched_ids(entries) == {"M1", "M2"}
    assert per_minute(5, 30.0) == 10.0 and per_minute(5, 0.0) == 0.0
    assert servers_by_state(
        [("eu", "ready", True), ("eu", "ready", False), ("us", "draining", True)]
    ) == {
        "eu": {"ready": 1, "unhealthy": 1},
        "us": {"draining": 1},
    }


# -- --watch, in a real terminal ------------------------------------------------------------


def spawn(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "caroud.ops.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "COLUMNS": "120", **env},
    )
    os.close(follower)
    return proc, leader


def read_until(fd: int, needle: bytes, timeout_s: float = 30.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout_s
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


@pytest.mark.parametrize(("extra", "needle"), [([], b"Queues"), (["--json"], b'"alarms"')])
def test_watch_refreshes_until_ctrl_c_then_exits_0(
    settings: Settings,
    client: Callable[..., object],
    extra: list[str],
    needle: bytes,
) -> None:
    env = {"CAROUD_REDIS_URL": settings.redis_url or ""}
    proc, fd = spawn(["stats", "--watch", "--refresh", "0.2", "--interval", "0.1", *extra], env)
    try:
        first = read_until(fd, needle)
        assert needle in first, first[-2000:]
        second = read_until(fd, needle)  # it refreshes
        assert needle in second
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(fd)


def test_a_bad_alarm_setting_is_one_line_and_exit_8(settings: Settings) -> None:
    env = {"CAROUD_REDIS_URL": settings.redis_url or "", "CAROUD_ALARM_CPU": "lots"}
    result = CliRunner().invoke(ops_app, ["stats", "--check"], env=env)
    assert result.exit_code == 8
    assert "CAROUD_ALARM_CPU" in result.output and "Traceback" not in result.output
