"""``caroud doctor``: the setup guide's step-4 connection test, then what the server says.

The test is the guide's: PING, then SET / GET / DEL of a unique key, timing the
round trip. On failure the error is classified into one of the guide's
troubleshooting cases (:mod:`caroud.ops.diagnosis`); a timeout is probed further,
because a TLS mismatch in one direction (``rediss://`` against a plain-text port)
hangs instead of failing: the doctor then speaks the other protocol to the port to
tell which it is. When the write is refused for memory, the server is still asked
for its facts, since they explain why.

Then: server version and kind, TLS, AUTH, maxmemory and the eviction policy,
persistence, and the matchmaker workers' heartbeats. Reads only, plus the one
probe key (which expires in a minute if the DEL never runs).
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import ssl
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis
from caroud.errors import CaroudError, ConfigError
from caroud.keys import Keys
from caroud.ops.diagnosis import (
    Case,
    Diagnosis,
    Finding,
    WorkerSeen,
    classify,
    diagnose,
    exit_code,
    memory_findings,
    parse_worker,
    persistence_finding,
    server_facts,
    worker_findings,
)
from caroud.redis.client import Redis, connect, redact_url, redis_errors, resolve_url
from caroud.settings import Settings

PINGS = 5
"""PINGs timed for the round trip (the first also opens the connection)."""
MAX_WORKERS = 1000


def probe_key(keys: Keys, token: str) -> str:
    """The doctor's throwaway key: outside the ``{mm}`` and pool tags, it touches no state."""
    return keys.doctor(token)


@dataclass
class DoctorReport:
    """Everything ``caroud doctor`` found; :meth:`exit_code` turns it into the process code."""

    url: str
    case: Case = Case.OK
    diagnosis: Diagnosis | None = None
    test: dict[str, Any] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)
    tls: dict[str, Any] = field(default_factory=dict)
    auth: dict[str, Any] = field(default_factory=dict)
    workers: list[WorkerSeen] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    def exit_code(self, strict: bool = False) -> int:
        return exit_code(self.case, len(self.warnings), strict)

    def fail(self, error: CaroudError, probe: str | None = None) -> None:
        """Record the failure: its case, and the steps to take."""
        case = classify(error)
        text = str(error).replace(", and try `caroud doctor`", "")  # we are the doctor
        if case is Case.TIMEOUT and probe is not None:
            case = Case.TLS  # the port answered the other protocol: a scheme mismatch
            spoken = "plain-text Redis" if probe == "plain" else "TLS"
            text = f"the client timed out, but the port answers {spoken}. Client error: {text}"
        self.case = case
        self.diagnosis = diagnose(case, text, self.url, probe=probe)

    def to_json(self, strict: bool = False) -> dict[str, Any]:
        return {
            "url": self.url,
            "case": self.case.value,
            "exit_code": self.exit_code(strict),
            "diagnosis": None
            if self.diagnosis is None
            else {
                "title": self.diagnosis.title,
                "error": self.diagnosis.error,
                "steps": list(self.diagnosis.steps),
            },
            "test": self.test,
            "server": self.server,
            "tls": self.tls,
            "auth": self.auth,
            "workers": [
                {
                    "id": w.id,
                    "queues": list(w.queues),
                    "seen_age_s": None if w.seen_age_s is None else round(w.seen_age_s, 3),
                    "cycles": w.cycles,
                    "matches": w.matches,
                    "ttl_ms": w.ttl_ms,
                }
                for w in self.workers
            ],
            "findings": [
                {"level": f.level, "topic": f.topic, "text": f.text} for f in self.findings
            ],
        }


def run_doctor(
    settings: Settings,
    url: str | None = None,
    *,
    queues: Sequence[str] = (),
    timeout_s: float | None = None,
) -> DoctorReport:
    """Test the connection to ``url`` (default: the configured one) and check the server.

    ``queues`` are the configured queue names (each should be held by a worker).
    Never raises a :class:`CaroudError`: failures are in the report's ``case``.
    """
    embedded = url is None and settings.redis_url is None
    try:
        url = url or resolve_url(settings)  # may start the embedded server
    except ConfigError as e:
        report = DoctorReport(url="<embedded>")
        report.fail(e)
        return report
    report = DoctorReport(url=redact_url(url))
    timeout = timeout_s if timeout_s is not None else settings.connect_timeout_s
    quick = replace(settings, retries=0, connect_timeout_s=timeout, socket_timeout_s=timeout)
    try:
        client = connect(quick, url)
    except ConfigError as e:
        report.fail(e)
        return report
    try:
        _check(report, client, quick, url, queues)
    finally:
        client.close()
    if embedded and report.case is Case.OK:
        report.findings.insert(
            0,
            Finding(
                "note",
                "server",
                "no CAROUD_REDIS_URL: this is the embedded Valkey (development); set it to "
                "check ElastiCache",
            ),
        )
    return report


def _check(
    report: DoctorReport, client: Redis, settings: Settings, url: str, queues: Sequence[str]
) -> None:
    try:
        report.test["rtt_ms"] = _ping(client)
    except CaroudError as e:
        report.fail(e, _probe_other_protocol(url, settings.connect_timeout_s, e))
        return
    try:
        report.test.update(_write_test(client, Keys(settings.key_prefix)))
    except CaroudError as e:
        report.fail(e)
        if report.case is not Case.OOM:  # with OOM, reads still work and explain it
            return
    _server_checks(report, client, url)
    _auth_check(report, settings, url)
    _worker_checks(report, client, Keys(settings.key_prefix), queues)


def _ping(client: Redis) -> dict[str, float]:
    times = []
    with redis_errors(client):
        for _ in range(PINGS):
            started = time.perf_counter()
            client.ping()
            times.append((time.perf_counter() - started) * 1000)
    steady = times[1:] or times  # the first PING also connected (and did the TLS handshake)
    return {
        "connect_ms": round(times[0], 3),
        "median_ms": round(statistics.median(steady), 3),
        "max_ms": round(max(steady), 3),
    }


def _write_test(client: Redis, keys: Keys) -> dict[str, Any]:
    token = secrets.token_hex(8)
    key = probe_key(keys, token)
    value = f"Hello from caroud doctor {token}"
    started = time.perf_counter()
    with redis_errors(client):
        wrote = client.set(key, value, px=60_000)
        read = client.get(key)
        deleted = client.delete(key)
    if not wrote or read != value or deleted != 1:
        raise CaroudError(
            f"the SET / GET / DEL test of {key} read back {read!r} (deleted {deleted}): "
            "another client is changing the doctor's key, or this is not a Redis server"
        )
    return {"set_get_del_ms": round((time.perf_counter() - started) * 1000, 3), "key": key}


def _server_checks(report: DoctorReport, client: Redis, url: str) -> None:
    try:
        with redis_errors(client):
            info: dict[str, Any] = client.info("all")
    except CaroudError as e:
        report.findings.append(Finding("warning", "server", f"could not read INFO: {e}"))
        return
    report.server = server_facts(info)
    report.server["maxmemory"] = int(info.get("maxmemory") or 0)
    report.server["maxmemory_policy"] = info.get("maxmemory_policy")
    report.server["used_memory"] = int(info.get("used_memory") or 0)
    if report.server["mode"] == "cluster":
        report.findings.append(
            Finding(
                "warning",
                "server",
                "cluster mode is enabled: Caroud's client talks to one node, so keys of "
                "other shards answer MOVED; use a cluster-mode-disabled replication group",
            )
        )
    report.findings.extend(memory_findings(info))
    report.findings.append(persistence_finding(info, _save_config(client), time.time()))
    report.findings.append(_tls_finding(report, url))
    if report.server["replicas"] == 0 and report.server["role"] == "master":
        report.findings.append(
            Finding(
                "note",
                "replication",
                "no replica: fine in development; production wants one in another AZ "
                "(Multi-AZ automatic failover)",
            )
        )


def _save_config(client: Redis) -> str | None:
    """The RDB ``save`` schedule, or None where CONFIG is disabled (ElastiCache renames it)."""
    try:
        value = client.config_get("save")
    except (redis.RedisError, ssl.SSLError):
        return None
    return str(value.get("save", "")) if isinstance(value, dict) else None


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tls_finding(report: DoctorReport, url: str) -> Finding:
    parts = urlsplit(url)
    on = parts.scheme == "rediss"
    reqs = parse_qs(parts.query).get("ssl_cert_reqs", ["required"])[0].lower()
    verified = on and reqs not in ("none", "cert_none")
    report.tls = {"enabled": on, "certificate_verified": verified if on else None}
    if on and verified:
        return Finding("ok", "tls", "TLS on, certificate verified")
    if on:
        return Finding(
            "warning",
            "tls",
            f"TLS on but ssl_cert_reqs={reqs}: the certificate is not checked, so a man in "
            "the middle can read the AUTH token; drop ssl_cert_reqs from the URL",
        )
    if _is_local(url):
        return Finding("ok", "tls", "TLS off (local server)")
    return Finding(
        "warning",
        "tls",
        "TLS off: the AUTH token and every ticket cross the network in clear text; turn on "
        "in-transit encryption and use rediss://",
    )


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def _auth_check(report: DoctorReport, settings: Settings, url: str) -> None:
    has_token = urlsplit(url).password is not None
    required: bool | None = None if has_token else False
    if has_token:
        bare = connect(settings, _without_credentials(url))
        try:
            with redis_errors(bare):
                bare.ping()
            required = False
        except CaroudError as e:
            required = True if classify(e) is Case.AUTH else None
        finally:
            bare.close()
    report.auth = {"token_in_url": has_token, "required": required}
    if required:
        report.findings.append(Finding("ok", "auth", "AUTH required, token accepted"))
    elif required is None:
        report.findings.append(
            Finding(
                "note", "auth", "token accepted; could not tell whether the server requires one"
            )
        )
    elif _is_local(url):
        report.findings.append(Finding("ok", "auth", "AUTH not required (local server)"))
    else:
        report.findings.append(
            Finding(
                "warning",
                "auth",
                "the server accepts clients without an AUTH token: anyone who reaches the port "
                "can read and delete every ticket; set an AUTH token (with TLS)",
            )
        )


def _worker_checks(report: DoctorReport, client: Redis, keys: Keys, queues: Sequence[str]) -> None:
    try:
        with redis_errors(client):
            # the registry of live workers names their heartbeat keys: no keyspace scan
            ids: Any = client.zrange(keys.workers(), 0, MAX_WORKERS - 1)
            names = [keys.worker(str(i)) for i in ids]
            pipe = client.pipeline(transaction=False)
            for name in names:
                pipe.get(name)
                pipe.pttl(name)
            replies = pipe.execute() if names else []
            seconds, micros = client.time()  # heartbeats carry the Redis clock (seen_at)
    except CaroudError as e:
        report.findings.append(Finding("warning", "worker", f"could not read heartbeats: {e}"))
        return
    now = seconds + micros / 1e6
    for raw, ttl in zip(replies[::2], replies[1::2], strict=True):
        try:
            record = json.loads(raw) if raw else None
        except ValueError:
            record = None
        if isinstance(record, dict):
            report.workers.append(parse_worker(record, int(ttl) if ttl >= 0 else None, now))
    report.workers.sort(key=lambda w: w.id)
    report.findings.extend(worker_findings(report.workers, queues))


# -- telling a TLS mismatch from a timeout ---------------------------------------------------

RESP_PING = b"*1\r\n$4\r\nPING\r\n"


def _probe_other_protocol(url: str, timeout_s: float, error: CaroudError) -> str | None:
    """``"plain"`` or ``"tls"`` if the port speaks the protocol the URL did not ask for.

    Only for timeouts and TLS failures (a refused port speaks nothing). ``rediss://``
    against a plain-text Redis hangs: Redis reads the TLS hello as a command and waits
    for its end. ``redis://`` against a TLS port may hang or reset.
    """
    case = classify(error)
    parts = urlsplit(url)
    if case not in (Case.TIMEOUT, Case.TLS) or parts.scheme == "unix" or not parts.hostname:
        return None
    host, port = parts.hostname, parts.port or 6379
    if parts.scheme == "rediss":
        return "plain" if _speaks_plain_resp(host, port, timeout_s) else None
    return "tls" if _speaks_tls(host, port, timeout_s) else None


def _speaks_plain_resp(host: str, port: int, timeout_s: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(RESP_PING)
            reply = sock.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH", b"-ERR", b"-WRONGPASS"))


def _speaks_tls(host: str, port: int, timeout_s: float) -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only asking whether it speaks TLS at all
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False
