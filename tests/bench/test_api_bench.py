"""``caroud bench api`` end to end, briefly: it runs, creates tickets, measures pushes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_bench_api_reports_its_figures(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CAROUD_", "DJANGO_")) and k != "DATABASE_URL"
    }
    caroud = str(Path(sys.executable).with_name("caroud"))
    out = subprocess.run(
        [caroud, "bench", "api", "--duration", "1", "--push-duration", "1.5", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["requests_per_s"] > 0 and result["requests"] > 0
    assert result["errors"] == 0, result["error_kinds"]
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert result["pushes"] > 0 and 0 < result["push_p50_ms"] <= result["push_p99_ms"]
    assert result["players_ran_out"] is False
