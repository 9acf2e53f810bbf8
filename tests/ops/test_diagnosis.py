"""The doctor's conclusions, pure: cases, exit codes, steps, findings from INFO and heartbeats."""

from __future__ import annotations

import pytest

from caroud import errors
from caroud.ops.diagnosis import (
    EXIT_CODES,
    Case,
    WorkerSeen,
    classify,
    diagnose,
    eviction_finding,
    exit_code,
    memory_findings,
    parse_worker,
    persistence_finding,
    server_facts,
    tls_direction,
    worker_findings,
)

URL = "rediss://:***@caroud-redis.abc.cache.amazonaws.com:6379"


def test_one_documented_exit_code_per_case() -> None:
    assert EXIT_CODES == {
        Case.OK: 0,
        Case.TIMEOUT: 3,
        Case.REFUSED: 4,
        Case.AUTH: 5,
        Case.OOM: 6,
        Case.TLS: 7,
        Case.OTHER: 8,
    }
    assert exit_code(Case.OK, warnings=2, strict=False) == 0
    assert exit_code(Case.OK, warnings=2, strict=True) == 1
    assert exit_code(Case.OK, warnings=0, strict=True) == 0
    assert exit_code(Case.AUTH, warnings=0, strict=False) == 5


@pytest.mark.parametrize(
    ("error", "case"),
    [
        (errors.RedisTimeoutError("t"), Case.TIMEOUT),
        (errors.RedisUnavailableError("u"), Case.REFUSED),
        (errors.RedisAuthError("a"), Case.AUTH),
        (errors.RedisOutOfMemoryError("o"), Case.OOM),
        (errors.RedisTLSError("s"), Case.TLS),
        (errors.RedisError("r"), Case.OTHER),
        (errors.ConfigError("c"), Case.OTHER),
    ],
)
def test_classify(error: errors.CaroudError, case: Case) -> None:
    assert classify(error) is case


def test_steps_name_the_endpoint() -> None:
    d = diagnose(Case.REFUSED, "Connection refused.", URL)
    assert "caroud-redis.abc.cache.amazonaws.com" in d.steps[0]
    assert any("redis-cli --tls -h caroud-redis.abc" in s for s in d.steps)
    dns = diagnose(Case.REFUSED, "Error -2 connecting: Name or service not known.", URL)
    assert dns.title == "Endpoint not found" and "does not resolve" in dns.steps[0]


def test_auth_steps_tell_noauth_from_wrongpass() -> None:
    assert "has none" in diagnose(Case.AUTH, "NOAUTH Authentication required.", URL).steps[0]
    wrong = diagnose(Case.AUTH, "WRONGPASS invalid username-password pair", URL)
    assert "rotated" in wrong.steps[0]


def test_tls_direction() -> None:
    assert tls_direction("redis://h:1", "Connection reset by peer", None) == "plain_to_tls"
    assert tls_direction("rediss://h:1", "Timeout", "plain") == "tls_to_plain"
    assert tls_direction("rediss://h:1", "[SSL: WRONG_VERSION_NUMBER]", None) == "tls_to_plain"
    assert tls_direction("rediss://h:1", "certificate verify failed", None) == "certificate"
    # the words of caroud.redis.client.translate ("... and check the certificate") are not
    # evidence of a certificate problem: the SSL error inside them is
    translated = (
        "TLS with Redis at rediss://h:1 failed (Error 1 connecting to h:1. [SSL: "
        "WRONG_VERSION_NUMBER] wrong version number). Use rediss:// only for TLS endpoints "
        "(in-transit encryption on) and redis:// for plain ones, and check the certificate."
    )
    assert tls_direction("rediss://h:1", translated, None) == "tls_to_plain"
    untrusted = translated.replace(
        "[SSL: WRONG_VERSION_NUMBER] wrong version number",
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate",
    )
    assert tls_direction("rediss://h:1", untrusted, None) == "certificate"


def test_cluster_and_replica_endpoints_are_explained() -> None:
    assert diagnose(Case.OTHER, "MOVED 1234 10.0.0.1:6379", URL).title == "Cluster-mode endpoint"
    readonly = diagnose(Case.OTHER, "READONLY You can't write against a read only replica.", URL)
    assert readonly.title == "Read-only replica"


def test_oom_steps_do_not_recommend_allkeys_lru() -> None:
    steps = " ".join(diagnose(Case.OOM, "OOM command not allowed", URL).steps)
    assert "Do not switch to allkeys-lru" in steps and "volatile-ttl" in steps


@pytest.mark.parametrize(
    ("policy", "level"),
    [
        ("allkeys-lru", "warning"),
        ("allkeys-lfu", "warning"),
        ("allkeys-random", "warning"),
        ("volatile-lru", "note"),
        ("volatile-ttl", "ok"),
        ("noeviction", "ok"),
        (None, "note"),
    ],
)
def test_eviction_policies(policy: str | None, level: str) -> None:
    assert eviction_finding(policy).level == level


def test_server_facts_tell_valkey_from_redis_and_cluster_mode() -> None:
    valkey = server_facts(
        {"server_name": "valkey", "valkey_version": "9.1.2", "redis_version": "7.2.4"}
    )
    assert (valkey["engine"], valkey["version"]) == ("Valkey", "9.1.2")
    redis7 = server_facts({"redis_version": "7.1.0", "redis_mode": "standalone"})
    assert (redis7["engine"], redis7["version"], redis7["mode"]) == ("Redis", "7.1.0", "standalone")
    assert server_facts({"redis_version": "7.1", "cluster_enabled": 1})["mode"] == "cluster"


def test_memory_findings_with_and_without_maxmemory() -> None:
    [limited, policy] = memory_findings(
        {"maxmemory": 1000, "used_memory": 500, "maxmemory_policy": "noeviction"}
    )
    assert limited.level == "ok" and "50.0 %" in limited.text and policy.level == "ok"
    unlimited = memory_findings({"maxmemory": 0, "used_memory": 1, "total_system_memory": 2**30})
    assert unlimited[0].level == "note" and "no limit" in unlimited[0].text
    evicted = memory_findings(
        {"maxmemory": 10, "maxmemory_policy": "allkeys-lru", "evicted_keys": 3}
    )
    assert [f.level for f in evicted] == ["ok", "warning", "warning"]


@pytest.mark.parametrize(
    ("used", "level", "says"),
    [
        (850, "ok", "85.0 %"),
        (860, "warning", "over the guide's 85 % alarm"),
        (1997, "warning", "full"),
    ],
)
def test_memory_near_or_past_maxmemory_is_a_warning(used: int, level: str, says: str) -> None:
    [finding, _] = memory_findings(
        {"maxmemory": 1000, "used_memory": used, "maxmemory_policy": "noeviction"}
    )
    assert finding.level == level and says in finding.text


def test_persistence() -> None:
    off = persistence_finding({"aof_enabled": 0}, "", now=100.0)
    assert off.level == "note" and "restart loses" in off.text
    aof = persistence_finding({"aof_enabled": 1, "rdb_last_save_time": 40}, "3600 1", now=100.0)
    assert aof.level == "ok" and "AOF on" in aof.text and "60 s ago" in aof.text
    elasticache = persistence_finding({"aof_enabled": 0}, None, now=100.0)
    assert elasticache.level == "ok" and "CONFIG is disabled" in elasticache.text


def test_worker_heartbeats() -> None:
    w = parse_worker({"id": "w1", "queues": ["duel"], "seen_at": 95.5, "cycles": 3}, 900, 100.0)
    assert w == WorkerSeen("w1", ("duel",), 4.5, 3, 0, 900)
    assert [f.level for f in worker_findings([w], ["duel"])] == ["ok"]
    missing = worker_findings([w], ["duel", "squad"])
    assert missing[-1].level == "warning" and "squad" in missing[-1].text
    none = worker_findings([], ["duel"])
    assert none[0].level == "warning" and "caroud worker" in none[0].text
    garbled = parse_worker({"queues": "x"}, None, 100.0)
    assert garbled.queues == () and garbled.seen_age_s is None
