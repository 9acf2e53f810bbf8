"""What ``caroud doctor`` concludes: the guide's troubleshooting cases, their steps, exit codes.

Pure functions over plain data (error texts, ``INFO`` dicts, worker heartbeats), so
every conclusion is tested without a server. :mod:`caroud.ops.doctor` gathers the data.

Exit codes (one per troubleshooting case; 2 is left to command-line usage errors)::

    0  ok: every check passed (notes and warnings are printed, the code stays 0)
    1  warnings, with --strict only
    3  timeout       security group, VPC and subnets, cluster status, same VPC
    4  refused       endpoint, port, cluster running (also: the host name does not resolve)
    5  auth          NOAUTH / WRONGPASS: the AUTH token
    6  oom           the write was refused: maxmemory reached
    7  tls           redis:// against a TLS-only endpoint, rediss:// against a plain one,
                     or a certificate that does not verify
    8  other         an invalid URL or setting, a cluster-mode or replica endpoint, any
                     other error reply
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from caroud import errors


class Case(StrEnum):
    """The outcome of the connection test: ok, or which troubleshooting case of the guide."""

    OK = "ok"
    TIMEOUT = "timeout"
    REFUSED = "refused"
    AUTH = "auth"
    OOM = "oom"
    TLS = "tls"
    OTHER = "other"


EXIT_CODES: dict[Case, int] = {
    Case.OK: 0,
    Case.TIMEOUT: 3,
    Case.REFUSED: 4,
    Case.AUTH: 5,
    Case.OOM: 6,
    Case.TLS: 7,
    Case.OTHER: 8,
}
EXIT_STRICT_WARNINGS = 1
"""``--strict`` and at least one warning (the connection test itself passed)."""

EXIT_TABLE = (
    "0 ok (warnings do not count without --strict), 1 warnings with --strict, "
    "3 timeout, 4 refused, 5 auth (NOAUTH/WRONGPASS), 6 oom, 7 tls mismatch, 8 other"
)


def classify(error: errors.CaroudError) -> Case:
    """The troubleshooting case of a Caroud error (as :func:`caroud.redis.client.translate`)."""
    for cls, case in (
        (errors.RedisTimeoutError, Case.TIMEOUT),
        (errors.RedisUnavailableError, Case.REFUSED),
        (errors.RedisAuthError, Case.AUTH),
        (errors.RedisOutOfMemoryError, Case.OOM),
        (errors.RedisTLSError, Case.TLS),
    ):
        if isinstance(error, cls):
            return case
    return Case.OTHER


def exit_code(case: Case, warnings: int, strict: bool) -> int:
    """The process exit code: the case's, or 1 for warnings under ``--strict``."""
    if case is not Case.OK:
        return EXIT_CODES[case]
    return EXIT_STRICT_WARNINGS if strict and warnings else 0


# -- what to do ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """A failed connection test: its case, what happened, and the steps to take, in order."""

    case: Case
    title: str
    error: str
    steps: tuple[str, ...]

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.case]


def _endpoint(url: str) -> tuple[str, str, bool]:
    parts = urlsplit(url)
    return parts.hostname or "HOST", str(parts.port or 6379), parts.scheme == "rediss"


def _cli(url: str) -> str:
    host, port, tls = _endpoint(url)
    return f"redis-cli {'--tls ' if tls else ''}-h {host} -p {port} PING"


DNS_FAILURES = ("Name or service not known", "nodename nor servname", "name resolution")
PLAIN_SERVER_SIGNS = ("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure")
CERTIFICATE_SIGNS = (
    "CERTIFICATE_VERIFY_FAILED",
    "certificate verify failed",
    "self-signed certificate",
    "self signed certificate",
    "unable to get local issuer",
    "Hostname mismatch",
    "doesn't match",
)


def tls_direction(url: str, error_text: str, probe: str | None) -> str:
    """``plain_to_tls``, ``tls_to_plain`` or ``certificate``: which TLS mismatch this is.

    ``probe`` is what the doctor found by speaking the other protocol to the port
    (``"tls"`` or ``"plain"``), when it did; it is the strongest evidence, then the
    error's own words, then the URL's scheme.
    """
    if probe == "plain":
        return "tls_to_plain"
    if probe == "tls":
        return "plain_to_tls"
    if any(s in error_text for s in CERTIFICATE_SIGNS):
        return "certificate"
    if any(s in error_text for s in PLAIN_SERVER_SIGNS):
        return "tls_to_plain"
    return "tls_to_plain" if url.startswith("rediss://") else "plain_to_tls"


def diagnose(case: Case, error_text: str, url: str, *, probe: str | None = None) -> Diagnosis:
    """The steps of the guide's troubleshooting for ``case``, made specific to this error.

    ``url`` must be redacted already; it is only used to name host, port and scheme.
    """
    host, port, tls = _endpoint(url)
    builder = _STEPS[case]
    title, steps = builder(url, error_text, host, port, tls, probe)
    return Diagnosis(case, title, error_text, tuple(steps))


def _timeout_steps(
    url: str, text: str, host: str, port: str, tls: bool, probe: str | None
) -> tuple[str, list[str]]:
    return "Connection timeout", [
        f"Check the security group (e.g. caroud-redis-sg) allows inbound TCP {port} from this "
        "host's security group (or, for a test from a workstation, from YOUR_IP/32).",
        "Verify the VPC and subnet configuration: the cache subnet group's subnets must be "
        "routable from this host (route tables, network ACLs).",
        "Check the cluster status is 'available' (ElastiCache console, or `aws elasticache "
        "describe-replication-groups`).",
        "Ensure this backend runs in the same VPC as the cache: ElastiCache has no public "
        "endpoint.",
        f"If it answers from elsewhere, try `{_cli(url)}` from this host.",
    ]


def _refused_steps(
    url: str, text: str, host: str, port: str, tls: bool, probe: str | None
) -> tuple[str, list[str]]:
    steps = [
        f"Check the Redis endpoint is correct: {host} should be the Primary Endpoint "
        "(caroud-redis.xxxxx.cache.amazonaws.com), not a node or reader endpoint.",
        f"Verify port {port} is the one the cluster listens on (6379 by default) and is open.",
        "Check the Redis cluster (or local server) is running.",
        f"Test with redis-cli first: `{_cli(url)}`.",
    ]
    if any(s in text for s in DNS_FAILURES):
        steps.insert(0, f"The host name {host} does not resolve: copy the endpoint again.")
        return "Endpoint not found", steps
    return "Connection refused", steps


def _auth_steps(
    url: str, text: str, host: str, port: str, tls: bool, probe: str | None
) -> tuple[str, list[str]]:
    scheme = "rediss" if tls else "redis"
    if "NOAUTH" in text or "Authentication required" in text:
        first = (
            "The server requires an AUTH token and the URL has none: put it in the URL, "
            f"{scheme}://:TOKEN@{host}:{port} (CAROUD_REDIS_URL)."
        )
    else:
        first = (
            "The server rejected the token (WRONGPASS): copy the current AUTH token (it may "
            f"have been rotated) into {scheme}://:TOKEN@{host}:{port}; with ACL users, "
            f"{scheme}://USER:TOKEN@{host}:{port}."
        )
    return "Authentication error", [
        first,
        f"Check AUTH by hand: `{_cli(url).replace(' PING', '')} --askpass`, then PING "
        "(--askpass keeps the token out of the shell history).",
        "Special characters in the token must be percent-encoded in the URL (@ : / %).",
    ]


def _oom_steps(
    url: str, text: str, host: str, port: str, tls: bool, probe: str | None
) -> tuple[str, list[str]]:
    return "Out of memory", [
        "Scale up to a larger node type (the write was refused: maxmemory is reached).",
        "Do not switch to allkeys-lru as generic advice says: it would evict queued tickets "
        "and player locks. Keep noeviction (writes fail loudly, as now) or volatile-ttl.",
        "Clean up: check ended tickets and matches expire (CAROUD_ENDED_TTL, "
        "CAROUD_MATCH_TTL) and event streams are trimmed (CAROUD_EVENTS_MAXLEN); "
        f"find big keys with `{_cli(url).replace(' PING', '')} --bigkeys`.",
        "Monitor memory in CloudWatch: alarm on DatabaseMemoryUsagePercentage > 85 % "
        "(`caroud stats --check` does the same from INFO).",
    ]


def _tls_steps(
    url: str, text: str, host: str, port: str, tls: bool, probe: str | None
) -> tuple[str, list[str]]:
    direction = tls_direction(url, text, probe)
    if direction == "certificate":
        return "TLS certificate not trusted", [
            "The server's certificate does not verify against the trusted CAs.",
            "ElastiCache certificates are signed by Amazon's public CA: install the system "
            "CA bundle (ca-certificates) in the image.",
            "For a private CA, add ?ssl_ca_certs=/path/ca.pem to the URL.",
            "Connect to the endpoint's DNS name (the certificate names it), not an IP.",
        ]
    if direction == "tls_to_plain":
        return "TLS mismatch: rediss:// against a plain-text endpoint", [
            f"{host}:{port} speaks plain text (in-transit encryption is off), but the URL is "
            "rediss://.",
            f"Use redis://{host}:{port}, or turn on in-transit encryption on the cluster and "
            "keep rediss:// (production should encrypt: the AUTH token crosses the network).",
        ]
    return "TLS mismatch: redis:// against a TLS-only endpoint", [
        f"{host}:{port} requires TLS (ElastiCache in-transit encryption is on), but the URL is "
        "redis://.",
        f"Use rediss://:TOKEN@{host}:{port} (TLS and the AUTH token go together on ElastiCache).",
    ]


def _other_steps(
    url: str, text: str, host: str, port: str, tls: bool, probe: str | None
) -> tuple[str, list[str]]:
    if text.startswith(("MOVED", "ASK ", "CLUSTERDOWN")) or "MOVED" in text:
        return "Cluster-mode endpoint", [
            "The endpoint is a cluster-mode-enabled configuration endpoint: keys live on "
            "several shards and Caroud's client talks to one node.",
            "Use a cluster-mode-disabled replication group (its Primary Endpoint), as the "
            "guide sets up.",
        ]
    if "READONLY" in text:
        return "Read-only replica", [
            f"{host} is a replica (the reader endpoint or a replica node): it refuses writes.",
            "Use the replication group's Primary Endpoint.",
        ]
    return "Redis failed", [
        "Read the error above; it says what the server or the URL got wrong.",
        f"Check the URL (CAROUD_REDIS_URL): {url}",
        f"Test with redis-cli: `{_cli(url)}`.",
    ]


_STEPS = {
    Case.TIMEOUT: _timeout_steps,
    Case.REFUSED: _refused_steps,
    Case.AUTH: _auth_steps,
    Case.OOM: _oom_steps,
    Case.TLS: _tls_steps,
    Case.OTHER: _other_steps,
}


# -- findings from INFO and the worker heartbeats -------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing the doctor found: ``level`` is ok, note or warning; ``topic`` groups it."""

    level: str
    topic: str
    text: str


WHY_NOT_ALLKEYS = (
    "queued tickets, queue indexes, player locks and game-server pools have no TTL by "
    "design (they live until matched, cancelled or timed out), and an allkeys-* policy may "
    "evict any of them when memory runs out: an evicted ticket is lost without an event "
    "(the player waits forever), an evicted player lock lets the player queue twice "
    "(double queueing). The guide's OOM advice (allkeys-lru) is for caches, not for "
    "matchmaking state. Set maxmemory-policy to noeviction (writes then fail loudly with "
    "OOM, which Caroud reports) or volatile-ttl (only keys with a TTL, such as ended "
    "tickets, finished matches and leases, are evicted, nearest expiry first), in a custom "
    "parameter group on ElastiCache, and alarm on memory > 85 %."
)


def eviction_finding(policy: str | None) -> Finding:
    """Whether ``maxmemory-policy`` can silently drop live matchmaking state."""
    if policy is None:
        return Finding("note", "eviction", "maxmemory-policy unknown (not in INFO)")
    if policy.startswith("allkeys-"):
        return Finding("warning", "eviction", f"maxmemory-policy is {policy}: {WHY_NOT_ALLKEYS}")
    if policy in ("noeviction", "volatile-ttl"):
        return Finding(
            "ok", "eviction", f"maxmemory-policy {policy}: queued tickets are never evicted"
        )
    if policy.startswith("volatile-"):
        return Finding(
            "note",
            "eviction",
            f"maxmemory-policy {policy}: queued tickets have no TTL and are never evicted, but "
            "a matched ticket's player lock (CAROUD_MATCH_TTL) may be evicted before ended "
            "tickets, letting a player in a live match queue again; volatile-ttl evicts the "
            "keys nearest expiry first (ElastiCache's default.redis7 uses volatile-lru)",
        )
    return Finding("note", "eviction", f"maxmemory-policy {policy}: not a policy Caroud knows")


def server_facts(info: Mapping[str, Any]) -> dict[str, Any]:
    """Engine (Redis or Valkey), version, mode (standalone or cluster), role and replicas."""
    valkey = info.get("server_name") == "valkey" or "valkey_version" in info
    mode = info.get("server_mode") or info.get("redis_mode") or "standalone"
    if int(info.get("cluster_enabled") or 0):
        mode = "cluster"
    return {
        "engine": "Valkey" if valkey else "Redis",
        "version": str(info.get("valkey_version") if valkey else info.get("redis_version")),
        "mode": str(mode),
        "role": str(info.get("role", "unknown")),
        "replicas": int(info.get("connected_slaves") or 0),
        "uptime_s": int(info.get("uptime_in_seconds") or 0),
    }


MEMORY_WARNING_PERCENT = 85.0
"""The setup guide's alarm: DatabaseMemoryUsagePercentage over 85 %."""


def memory_findings(info: Mapping[str, Any]) -> list[Finding]:
    """maxmemory (and what 0 means), the eviction policy, and any evictions so far."""
    maxmemory = int(info.get("maxmemory") or 0)
    used = int(info.get("used_memory") or 0)
    out: list[Finding] = []
    if maxmemory:
        percent = 100 * used / maxmemory
        text = f"maxmemory {_size(maxmemory)}, used {_size(used)} ({percent:.1f} %)"
        if percent >= 100:
            text += ": full, writes fail with OOM (new tickets are refused); add memory now"
        elif percent > MEMORY_WARNING_PERCENT:
            text += (
                f": over the guide's {MEMORY_WARNING_PERCENT:g} % alarm; scale up before "
                "writes start failing"
            )
        level = "warning" if percent > MEMORY_WARNING_PERCENT else "ok"
        out.append(Finding(level, "memory", text))
    else:
        system = int(info.get("total_system_memory") or 0)
        out.append(
            Finding(
                "note",
                "memory",
                f"maxmemory 0 (no limit): Redis grows until the machine ({_size(system)}) runs "
                f"out; used {_size(used)}. ElastiCache always sets one per node type.",
            )
        )
    out.append(eviction_finding(info.get("maxmemory_policy")))
    evicted = int(info.get("evicted_keys") or 0)
    if evicted:
        out.append(
            Finding(
                "warning",
                "eviction",
                f"{evicted} keys were evicted since the server started: with an allkeys-* "
                "policy tickets may have been lost; add memory",
            )
        )
    return out


def persistence_finding(info: Mapping[str, Any], save_config: str | None, now: float) -> Finding:
    """AOF and RDB as the server reports them (``save_config`` None: CONFIG is disabled)."""
    aof = int(info.get("aof_enabled") or 0) == 1
    last_save = float(info.get("rdb_last_save_time") or 0)
    changes = int(info.get("rdb_changes_since_last_save") or 0)
    parts = ["AOF on" if aof else "AOF off"]
    if save_config is None:
        parts.append(
            "RDB schedule unknown (CONFIG is disabled, as on ElastiCache: backups "
            "are the cluster's snapshot setting)"
        )
    elif save_config.strip():
        parts.append(f"RDB save {save_config!r}")
    else:
        parts.append("RDB snapshots off")
    if last_save:
        parts.append(f"last save {max(now - last_save, 0):.0f} s ago, {changes} changes since")
    text = ", ".join(parts)
    if not aof and save_config is not None and not save_config.strip():
        return Finding(
            "note",
            "persistence",
            f"{text}: a restart loses every queued ticket and the pools (fine in development; "
            "in production keep a replica with Multi-AZ failover, and automatic backups)",
        )
    return Finding("ok", "persistence", text)


@dataclass(frozen=True, slots=True)
class WorkerSeen:
    """A matchmaker worker's heartbeat, as the doctor read it."""

    id: str
    queues: tuple[str, ...]
    seen_age_s: float | None
    cycles: int
    matches: int
    ttl_ms: int | None


def parse_worker(record: Mapping[str, Any], ttl_ms: int | None, now: float) -> WorkerSeen:
    """A worker's heartbeat JSON (see ``Worker.heartbeat``) as :class:`WorkerSeen`."""
    seen = record.get("seen_at")
    queues = record.get("queues") or []
    return WorkerSeen(
        id=str(record.get("id", "?")),
        queues=tuple(str(q) for q in queues) if isinstance(queues, list) else (),
        seen_age_s=max(now - float(seen), 0.0) if isinstance(seen, int | float) else None,
        cycles=int(record.get("cycles") or 0),
        matches=int(record.get("matches") or 0),
        ttl_ms=ttl_ms,
    )


def worker_findings(workers: Sequence[WorkerSeen], queues: Sequence[str]) -> list[Finding]:
    """Whether a matchmaker worker is alive, and whether every queue is held by one."""
    if not workers:
        return [
            Finding(
                "warning",
                "worker",
                "no matchmaker worker is alive (no heartbeat key): tickets queue but are "
                "never matched; start `caroud worker`",
            )
        ]
    out = []
    for w in sorted(workers, key=lambda w: w.id):
        age = f"{w.seen_age_s:.1f} s ago" if w.seen_age_s is not None else "at an unknown time"
        held = ", ".join(w.queues) or "no queue yet"
        out.append(
            Finding(
                "ok",
                "worker",
                f"worker {w.id} seen {age}, holds {held} ({w.cycles} cycles, {w.matches} matches)",
            )
        )
    held_by_any = {q for w in workers for q in w.queues}
    if missing := [q for q in queues if q not in held_by_any]:
        out.append(
            Finding(
                "warning",
                "worker",
                f"no worker holds {', '.join(missing)}: nothing matches there (a worker takes "
                "a queue within one lease TTL of starting; check the workers' --queue options)",
            )
        )
    return out


def _size(n: float) -> str:
    if abs(n) < 1024:
        return f"{n:.0f} B"
    for unit in ("KiB", "MiB"):
        n /= 1024
        if abs(n) < 1024:
            return f"{n:.1f} {unit}"
    return f"{n / 1024:.1f} GiB"
