"""The `caroud` command line, run as a real process against the test server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from caroud.redis.client import Redis

Caroud = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(redis_url: str, tmp_path: Path, client: Redis) -> Caroud:
    env = {**os.environ, "CAROUD_REDIS_URL": redis_url, "CAROUD_DATA_DIR": str(tmp_path)}

    def caroud(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "caroud", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return caroud


def test_ticket_commands(run: Caroud) -> None:
    made = run(
        "ticket", "enqueue", "ranked-5v5", "alice=1510", "bob=1490", "--latency", "eu-west=35"
    )
    assert made.returncode == 0, made.stderr
    ticket = json.loads(made.stdout)
    assert ticket["status"] == "queued" and [p["id"] for p in ticket["players"]] == ["alice", "bob"]
    got = json.loads(run("ticket", "get", ticket["id"]).stdout)
    assert got["id"] == ticket["id"] and got["latencies"] == {"eu-west": 35.0}
    queues = {q["name"]: q for q in json.loads(run("queues").stdout)}
    assert queues["ranked-5v5"]["waiting"] == 1
    assert queues["ranked-5v5"]["recent_matches"]["matches"] == 0
    assert queues["ranked-1v1"]["window"]["adaptive"] == 0.7  # the built-in default
    cancelled = json.loads(run("ticket", "cancel", ticket["id"]).stdout)
    assert cancelled["status"] == "cancelled"
    again = run("ticket", "cancel", ticket["id"])
    assert again.returncode == 1 and "cancelled: cannot cancel" in again.stderr
    assert "Traceback" not in again.stderr


def test_bad_input_is_one_line(run: Caroud) -> None:
    bad = run("ticket", "enqueue", "ranked-1v1", "alice=strong")
    assert bad.returncode == 1 and "expected NAME=NUMBER" in bad.stderr
    unknown = run("ticket", "enqueue", "casual", "alice=1500")
    assert unknown.returncode == 1 and "configured queues" in unknown.stderr


@pytest.mark.slow
def test_demo_forms_and_assigns_matches(run: Caroud) -> None:
    done = run("demo", "--rate", "60", "--duration", "6", timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    formed = [x for x in lines if x.get("msg") == "match formed"]
    assigned = [x for x in lines if x.get("msg") == "match assigned"]
    assert formed and assigned
    assert {x["match_id"] for x in assigned} <= {x["match_id"] for x in formed}
    servers = json.loads(run("servers").stdout)
    assert servers["servers"] == [], "the demo's servers deregister when it stops"
