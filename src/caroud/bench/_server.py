"""The server side of the matchmaking benchmark: where it runs, and what it reads off Redis.

The benchmark runs against its own fresh embedded Valkey (in a temporary data
directory) unless ``CAROUD_REDIS_URL`` names a server; then it works under its
own key prefix, deletes only keys of that prefix, and puts back any server
setting it changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from redis.client import Pipeline
from redis.exceptions import RedisError, ResponseError

from caroud.errors import ConfigError
from caroud.keys import Keys
from caroud.redis.client import Redis
from caroud.redis.embedded import embedded_url, stop_embedded
from caroud.redis.scripts import MatchmakingScripts
from caroud.settings import Settings

BENCH_PREFIX = "bench"
"""Key prefix of everything the benchmark writes (never the deployment's own prefix)."""

SLOWLOG_THRESHOLD_US = 100
SLOWLOG_LEN = 1024
SLOWLOG_POLL_S = 0.2
"""How often the slow log is drained, so that its 1024 entries never overflow in a phase."""


@dataclass(frozen=True, slots=True)
class Target:
    """The server under test: settings pointing at it, and whether the benchmark started it."""

    settings: Settings
    own_server: bool


def queues_toml(names: Sequence[str], spec: Mapping[str, Any]) -> str:
    """A queues file defining each of ``names`` as the 1v1 queue ``spec`` (flat keys, a window)."""
    window = spec["window"]
    lines: list[str] = []
    for name in names:
        lines += [
            f"[queues.{name}]",
            f"teams = {spec['teams']}",
            f"team_size = {spec['team_size']}",
            f"party_sizes = {list(spec['party_sizes'])}",
            f"window = {{ initial = {window['initial']}, growth_per_s = "
            f"{window['growth_per_s']}, max = {window['max']} }}",
            f"max_wait_s = {spec['max_wait_s']}",
            "",
        ]
    return "\n".join(lines)


@contextmanager
def bench_target(settings: Settings, queues_file_text: str) -> Iterator[Target]:
    """Settings for the benchmark: its prefix, its queues, and a server (fresh if none is set)."""
    if settings.key_prefix == BENCH_PREFIX:
        raise ConfigError(
            f"CAROUD_KEY_PREFIX={BENCH_PREFIX!r} is the benchmark's own prefix, whose keys it "
            "deletes: use another prefix for real data"
        )
    with TemporaryDirectory(prefix="caroud-bench-") as tmp:
        data_dir = Path(tmp)
        queues_file = data_dir / "queues.toml"
        queues_file.write_text(queues_file_text, encoding="utf-8")
        own = settings.redis_url is None
        url = embedded_url(data_dir) if own else settings.redis_url
        try:
            yield Target(
                replace(
                    settings,
                    redis_url=url,
                    key_prefix=BENCH_PREFIX,
                    data_dir=data_dir,
                    queues_file=queues_file,
                ),
                own,
            )
        finally:
            if own:
                stop_embedded(data_dir)


def command(client: Redis | Pipeline, *args: Any) -> Any:
    """A raw command (redis-py leaves ``execute_command`` untyped)."""
    run: Callable[..., Any] = client.execute_command
    return run(*args)


# -- facts about the server --------------------------------------------------------------


def server_version(client: Redis) -> str:
    """``valkey 9.1.2`` or ``redis 7.2.4``, from INFO server."""
    info = client.info("server")
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']}"
    return f"redis {info.get('redis_version', '?')}"


def used_memory(client: Redis) -> int:
    """INFO memory ``used_memory``: bytes the server's allocator holds."""
    return int(client.info("memory")["used_memory"])


def memory_usage(client: Redis, key: str) -> int:
    """MEMORY USAGE of one key (its value, name and object header), 0 if it does not exist."""
    return int(command(client, "MEMORY", "USAGE", key, "SAMPLES", "0") or 0)


def latency_monitor_max(client: Redis) -> tuple[float, str]:
    """The worst latency spike (ms) LATENCY LATEST knows of, and its event; (0, "") if none."""
    try:
        rows = command(client, "LATENCY", "LATEST")
    except ResponseError:
        return 0.0, "unavailable"
    worst: tuple[float, str] = (0.0, "")
    for row in rows or []:
        worst = max(worst, (float(row[3]), str(row[0])))
    return worst


# -- the slow log ------------------------------------------------------------------------


def describe_call(args: Sequence[Any], script_names: Mapping[str, str]) -> str:
    """A slow-log command line made readable: scripts by name, long argument lists cut."""
    words = [str(a) for a in args]
    if len(words) >= 3 and words[0].upper() in ("EVALSHA", "EVALSHA_RO"):
        name = script_names.get(words[1], words[1][:12])
        return f"EVALSHA {name} ({words[2]} keys, {len(words) - 3} keys+args)"
    text = " ".join(words[:4])
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class SlowlogWatch:
    """Drains SLOWLOG in the background and keeps the longest call (threshold 100 µs).

    Entries are read and reset in one MULTI, so none is lost between the two; a
    poll every 0.2 s keeps the 1024-entry log from overflowing. Settings changed
    on a server the benchmark did not start are put back by :meth:`stop`.
    """

    client: Redis
    restore: bool
    script_names: dict[str, str] = field(default_factory=dict)
    max_us: int = 0
    max_cmd: str = ""
    entries: int = 0
    full_reads: int = 0
    error: str = ""
    _saved: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        scripts = MatchmakingScripts.register(self.client)
        self.script_names = {
            getattr(scripts, name).sha: name for name in MatchmakingScripts.__dataclass_fields__
        }
        wanted = {
            "slowlog-log-slower-than": str(SLOWLOG_THRESHOLD_US),
            "slowlog-max-len": str(SLOWLOG_LEN),
            "latency-monitor-threshold": "1",
        }
        try:
            for name, value in wanted.items():
                current = self.client.config_get(name).get(name)
                self.client.config_set(name, value)
                if current is not None:
                    self._saved[name] = str(current)
            command(self.client, "SLOWLOG", "RESET")
            command(self.client, "LATENCY", "RESET")
        except ResponseError as e:  # e.g. CONFIG disabled on a managed service
            self.error = f"slow log unavailable: {e}"
            return
        self._thread = threading.Thread(target=self._poll, name="slowlog", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        try:
            while not self._stop.wait(SLOWLOG_POLL_S):
                self.collect()
        except RedisError as e:  # reported with the figures rather than lost with the thread
            self.error = f"slow log polling failed: {e}"

    def collect(self) -> None:
        """Read and reset the slow log, keeping the longest entry."""
        if self.error:
            return
        with self._lock:
            self._read_and_reset()

    def _read_and_reset(self) -> None:
        pipe = self.client.pipeline(transaction=True)
        command(pipe, "SLOWLOG", "GET", SLOWLOG_LEN)
        command(pipe, "SLOWLOG", "RESET")
        rows = pipe.execute()[0] or []
        self.entries += len(rows)
        if len(rows) >= SLOWLOG_LEN:
            self.full_reads += 1
        for row in rows:
            duration_us, args = int(row[2]), row[3]
            if duration_us > self.max_us:
                self.max_us = duration_us
                self.max_cmd = describe_call(args, self.script_names)

    @contextmanager
    def excluded(self) -> Iterator[None]:
        """Leave out the calls made in the block (the benchmark's bookkeeping, not the engine)."""
        if self.error:
            yield
            return
        with self._lock:
            self._read_and_reset()
            try:
                yield
            finally:
                command(self.client, "SLOWLOG", "RESET")

    def stop(self) -> None:
        """Take the last entries, stop polling and restore the server's settings."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.collect()
        try:
            if self.restore:
                for name, value in self._saved.items():
                    self.client.config_set(name, value)
        finally:
            self.client.close()


# -- bookkeeping -------------------------------------------------------------------------


def own_key_patterns(keys: Keys) -> list[str]:
    """SCAN patterns matching every key the benchmark can have written (and only those)."""
    return [
        keys.ticket("*"),
        keys.player("*"),
        keys.queue("*"),
        keys.events("*"),
        keys.match("*"),
        keys.lease("*"),
        keys.pending("*"),
        keys.quality("*"),
        keys.workers_pattern(),
    ]


def delete_own_keys(client: Redis, keys: Keys) -> int:
    """UNLINK every key under the benchmark's prefix; how many went."""
    gone = 0
    for pattern in own_key_patterns(keys):
        batch: list[str] = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(str(key))
            if len(batch) >= 1000:
                gone += int(client.unlink(*batch))
                batch = []
        if batch:
            gone += int(client.unlink(*batch))
    return gone
