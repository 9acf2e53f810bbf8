"""``caroud doctor`` against real servers: every troubleshooting case, and the checks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from caroud.context import Context
from caroud.matchmaking.worker import Worker
from caroud.ops.cli import ops_app
from caroud.ops.diagnosis import Case, Diagnosis
from caroud.ops.doctor import DoctorReport, run_doctor
from caroud.redis.client import Redis
from caroud.settings import Settings

Doctor = Callable[[str], DoctorReport]


@pytest.fixture
def doctor(quick: Callable[[str], Settings]) -> Doctor:
    """``doctor(url)``: the report on ``url``, with short timeouts, queue duel configured."""
    return lambda url: run_doctor(quick(url), queues=("duel",))


def diag(report: DoctorReport) -> Diagnosis:
    assert report.diagnosis is not None, report.to_json()
    return report.diagnosis


def topics(report: DoctorReport, level: str) -> list[str]:
    return [f.topic for f in report.findings if f.level == level]


def test_a_healthy_server_passes_the_step_4_test(
    settings: Settings, client: Redis, redis_url: str
) -> None:
    report = run_doctor(settings, queues=("duel",))
    assert report.case is Case.OK and report.diagnosis is None
    assert report.test["rtt_ms"]["median_ms"] > 0
    assert report.test["set_get_del_ms"] > 0
    assert client.exists(report.test["key"]) == 0  # the probe key was deleted
    assert report.server["engine"] in ("Valkey", "Redis") and report.server["version"]
    assert report.server["mode"] == "standalone"
    assert report.tls == {"enabled": False, "certificate_verified": None}
    assert report.auth == {"token_in_url": False, "required": False}
    # no worker runs: the one warning, and exit 0 unless --strict
    assert topics(report, "warning") == ["worker"]
    assert report.exit_code() == 0 and report.exit_code(strict=True) == 1


def test_alive_workers_are_listed_with_their_queues(ctx: Context) -> None:
    worker = Worker(ctx.matchmaking, queue_names=["duel"], worker_id="w-doctor")
    worker.run_cycle()
    worker.heartbeat()
    report = run_doctor(ctx.settings, queues=("duel", "squad"))
    [seen] = report.workers
    assert seen.id == "w-doctor" and seen.queues == ("duel",)
    assert seen.seen_age_s is not None and 0 <= seen.seen_age_s < 5
    assert seen.ttl_ms is not None and seen.ttl_ms > 0
    texts = [f.text for f in report.findings if f.topic == "worker"]
    assert any("w-doctor" in t for t in texts)
    assert any("no worker holds squad" in t for t in texts)  # squad is configured, not held


def test_refused(doctor: Doctor, closed_port: int) -> None:
    report = doctor(f"redis://:s3cret@127.0.0.1:{closed_port}")
    assert report.case is Case.REFUSED and report.exit_code() == 4
    d = diag(report)
    assert "endpoint" in d.steps[0] and any("redis-cli" in s for s in d.steps)
    assert "s3cret" not in json.dumps(report.to_json())


def test_timeout_on_a_port_that_never_answers(doctor: Doctor, silent_port: int) -> None:
    report = doctor(f"redis://127.0.0.1:{silent_port}")
    assert report.case is Case.TIMEOUT and report.exit_code() == 3
    steps = " ".join(diag(report).steps)
    for needle in ("security group", "VPC", "available", "same VPC"):
        assert needle in steps


def test_auth_missing_wrong_and_right(doctor: Doctor, auth_server: tuple[int, str]) -> None:
    port, token = auth_server
    base = f"127.0.0.1:{port}"
    missing = doctor(f"redis://{base}")
    assert missing.case is Case.AUTH and missing.exit_code() == 5
    assert "has none" in diag(missing).steps[0]
    wrong = doctor(f"redis://:wrong-token@{base}")
    assert wrong.case is Case.AUTH
    assert "WRONGPASS" in diag(wrong).steps[0]
    assert "wrong-token" not in json.dumps(wrong.to_json())
    right = doctor(f"redis://:{token}@{base}")
    assert right.case is Case.OK
    assert right.auth == {"token_in_url": True, "required": True}


def test_oom_when_the_write_is_refused(doctor: Doctor, scratch: tuple[str, Redis]) -> None:
    url, c = scratch
    c.config_set("maxmemory-policy", "noeviction")
    c.config_set("maxmemory", 1)  # below what is used: every write is refused
    report = doctor(url)
    assert report.case is Case.OOM and report.exit_code() == 6
    assert "Scale up" in diag(report).steps[0]
    # reads still work: the report says what the memory is
    assert report.server["maxmemory"] == 1
    assert report.server["maxmemory_policy"] == "noeviction"


def test_allkeys_policy_is_a_warning_that_explains_why(
    doctor: Doctor, scratch: tuple[str, Redis]
) -> None:
    url, c = scratch
    c.config_set("maxmemory", 64 * 1024 * 1024)
    c.config_set("maxmemory-policy", "allkeys-lru")
    report = doctor(url)
    assert report.case is Case.OK
    [warning] = [f for f in report.findings if f.topic == "eviction"]
    assert warning.level == "warning"
    for needle in ("no TTL by design", "double queueing", "volatile-ttl", "noeviction", "85 %"):
        assert needle in warning.text
    c.config_set("maxmemory-policy", "volatile-ttl")
    again = doctor(url)
    [ok] = [f for f in again.findings if f.topic == "eviction"]
    assert ok.level == "ok"


def test_tls_with_token_passes_and_says_so(
    doctor: Doctor, tls_server: tuple[int, Path, str]
) -> None:
    port, ca, token = tls_server
    report = doctor(f"rediss://:{token}@127.0.0.1:{port}?ssl_ca_certs={ca}")
    assert report.case is Case.OK
    assert report.tls == {"enabled": True, "certificate_verified": True}
    assert report.auth["required"] is True
    assert report.server["engine"] == "Redis"


def test_plain_url_against_a_tls_endpoint(
    doctor: Doctor, tls_server: tuple[int, Path, str]
) -> None:
    port, _, token = tls_server
    report = doctor(f"redis://:{token}@127.0.0.1:{port}")
    assert report.case is Case.TLS and report.exit_code() == 7
    d = diag(report)
    assert "redis:// against a TLS-only endpoint" in d.title
    assert "rediss://" in d.steps[1]


def test_tls_url_against_a_plain_endpoint(doctor: Doctor, redis_url: str) -> None:
    # rediss:// to a plain server hangs rather than fails: the doctor tells it apart
    plain = redis_url.replace("redis://", "rediss://")
    report = doctor(plain)
    assert report.case is Case.TLS and report.exit_code() == 7
    assert "rediss:// against a plain-text endpoint" in diag(report).title


def test_untrusted_certificate(doctor: Doctor, tls_server: tuple[int, Path, str]) -> None:
    port, _, token = tls_server
    report = doctor(f"rediss://:{token}@127.0.0.1:{port}")
    assert report.case is Case.TLS
    assert "certificate" in diag(report).title
    assert any("ssl_ca_certs" in s for s in diag(report).steps)


def test_bad_url_is_case_other(doctor: Doctor) -> None:
    report = doctor("http://127.0.0.1:6379")
    assert report.case is Case.OTHER and report.exit_code() == 8


# -- the command ------------------------------------------------------------------------------


def test_command_exit_codes_and_json(
    closed_port: int, redis_url: str, client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAROUD_RETRIES", "0")
    runner = CliRunner()
    failed = runner.invoke(
        ops_app, ["doctor", "--url", f"redis://127.0.0.1:{closed_port}", "--timeout", "0.3"]
    )
    assert failed.exit_code == 4, failed.output
    assert "Connection refused" in failed.output and "What to check" in failed.output
    ok = runner.invoke(ops_app, ["doctor", "--url", redis_url, "--json"])
    assert ok.exit_code == 0, ok.output
    body = json.loads(ok.output)
    assert body["case"] == "ok" and body["exit_code"] == 0
    strict = runner.invoke(ops_app, ["doctor", "--url", redis_url, "--strict"])
    assert strict.exit_code == 1  # no worker alive is a warning
    assert "Exit codes" in runner.invoke(ops_app, ["doctor", "--help"]).output


def test_without_a_url_it_checks_the_embedded_server_and_says_so(tmp_path: Path) -> None:
    from caroud.redis.embedded import stop_embedded

    try:
        report = run_doctor(Settings.from_mapping({"CAROUD_DATA_DIR": str(tmp_path)}))
        assert report.case is Case.OK
        assert report.findings[0].topic == "server" and "embedded" in report.findings[0].text
    finally:
        stop_embedded(tmp_path)
