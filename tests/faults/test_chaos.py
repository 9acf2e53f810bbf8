"""The fault suite: ``caroud chaos`` end to end, every figure at its target.

Real processes (redis-server with AOF everysec, uvicorn, three workers, the relay,
the results applier), players and game servers on the public API, one cycle of
faults (workers killed and paused past their lease, relay and applier killed, Redis
paused 5 s and 12 s, terminated and killed), then the independent audit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.faults, pytest.mark.timeout(360)]


def test_one_cycle_of_faults_leaves_every_figure_at_target(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "caroud", "chaos", "--json", "--keep", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=340,
        check=False,
    )
    assert done.stdout, done.stderr[-3000:]
    report = json.loads(done.stdout)
    missed = {k: v for k, v in report["figures"].items() if not v["ok"]}
    assert not missed, (missed, report["findings"], report["notes"], report["unexpected_exits"])
    assert done.returncode == 0
    figures = report["figures"]
    assert figures["double matches"]["value"] == 0
    assert figures["players with two active tickets"]["value"] == 0
    assert figures["acknowledged tickets lost"]["value"] == 0
    assert figures["HTTP 5xx other than 503"]["value"] == 0
    assert figures["503s without Retry-After"]["value"] == 0
    assert figures["processes that needed a manual restart"]["value"] == 0
    assert figures["matches started"]["value"] >= 20, "the run played enough to mean something"
    assert len(report["faults"]) == 8
    assert all(v is not None for v in report["recovery_seconds"].values())
