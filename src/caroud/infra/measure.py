"""Measure what Caroud's state costs in Redis memory, for :mod:`caroud.infra.sizing`.

``measure()`` runs the real code paths against a real server - the embedded Valkey,
started for the purpose in a temporary directory, or an empty database named by URL -
and reads INFO ``used_memory`` before and after each step:

1. enqueue ``count`` one-player tickets in ``ranked-1v1`` (player ids of 36 characters,
   a UUID's length, and a latency for every region of the queue), then trim the event
   stream: the two deltas are the bytes of a queued ticket and of one stream entry;
2. claim them in pairs as matches (the worker's claim script): the delta is a match's
   bytes beyond its two tickets;
3. register ``count`` game servers and heartbeat each once: bytes per server;
4. allocate ``count`` match slots on them: bytes per allocation.

Before each step one record of its kind is written and left, so script loading and
first-key overheads are not counted as per-record costs. Deltas include the allocator's
rounding and the amortised growth of the key space's hash table, as production would.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

from caroud.context import Context
from caroud.errors import ConfigError, ConflictError
from caroud.ids import new_id
from caroud.infra.sizing import MeasuredBytes
from caroud.keys import PoolKeys
from caroud.matchmaking.models import ProposedMatch, Ticket
from caroud.redis.client import Redis, connect, redact_url, redis_errors, url_of
from caroud.redis.embedded import embedded_url, stop_embedded
from caroud.servers.pool import ServerPool
from caroud.settings import Settings

QUEUE = "ranked-1v1"
PLAYER_ID_LENGTH = 36
"""A UUID's length: shorter player ids make a ticket smaller, so this errs on the large side."""
LATENCY_MS = 40.0
SERVER_CAPACITY = 4
SERVER_ADDRESS = "10.0.12.34"
DEFAULT_COUNT = 2000
"""Records per step: enough that one hash-table resize or allocator page is noise."""


def used_memory(client: Redis) -> int:
    """INFO memory ``used_memory``: the bytes the server's allocator holds."""
    with redis_errors(client):
        return int(client.info("memory")["used_memory"])


def server_version(client: Redis) -> str:
    """``valkey 9.1.2`` or ``redis 7.0.15``, from INFO server."""
    with redis_errors(client):
        info = client.info("server")
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']}"
    return f"redis {info.get('redis_version', '?')}"


def player_id(i: int) -> str:
    return f"player-{i:0{PLAYER_ID_LENGTH - 7}d}"


@contextmanager
def measuring_settings(redis_url: str | None) -> Iterator[Settings]:
    """Settings on an empty database: a fresh embedded Valkey, or ``redis_url`` if given."""
    if redis_url is not None:
        yield Settings.from_mapping({"CAROUD_REDIS_URL": redis_url})
        return
    with TemporaryDirectory(prefix="caroud-measure-") as tmp:
        data_dir = Path(tmp)
        try:
            url = embedded_url(data_dir)
            yield Settings.from_mapping({"CAROUD_REDIS_URL": url, "CAROUD_DATA_DIR": tmp})
        finally:
            stop_embedded(data_dir)


def measure(redis_url: str | None = None, count: int = DEFAULT_COUNT) -> MeasuredBytes:
    """Bytes per ticket, stream entry, match, server and allocation (see the module docstring).

    With ``redis_url`` the database must be empty (:class:`ConfigError` otherwise): the
    deltas would be meaningless on a busy one, and every key written is deleted after.
    """
    if count < 2 or count % 2:
        raise ConfigError(f"count must be an even number of at least 2, got {count}")
    with measuring_settings(redis_url) as settings:
        client = connect(settings)
        try:
            with redis_errors(client):
                keys = int(client.dbsize())
            if keys:
                raise ConfigError(
                    f"the database at {redact_url(url_of(client))} has {keys} keys: measuring "
                    "needs an empty one (or no URL, for a fresh embedded Valkey)"
                )
            try:
                return _measure(client, settings, count)
            finally:
                _delete_keys(client, settings.key_prefix)
        finally:
            client.close()


def _measure(client: Redis, settings: Settings, count: int) -> MeasuredBytes:
    ctx = Context.build(settings, client)
    store = ctx.matchmaking
    queue = ctx.queues.get(QUEUE)
    latencies = {region: LATENCY_MS for region in queue.regions}

    def enqueue(player: str) -> Ticket:
        return store.enqueue(QUEUE, [(player, 1500)], latencies)

    # warm-up: load the scripts and create the queue's keys, so they are not counted per record
    _claim_pairs(ctx, [enqueue("warm-up-a"), enqueue("warm-up-b")])
    _trim_events(client, ctx)
    baseline = used_memory(client)
    tickets = [enqueue(player_id(i)) for i in range(count)]
    queued = used_memory(client)
    _trim_events(client, ctx)
    trimmed = used_memory(client)
    _claim_pairs(ctx, tickets)
    _trim_events(client, ctx)
    claimed = used_memory(client)
    server_bytes, allocation_bytes = _measure_pool(client, ctx, count)
    return MeasuredBytes(
        server=server_version(client),
        count=count,
        baseline_bytes=baseline,
        ticket_bytes=round((trimmed - baseline) / count, 1),
        event_bytes=round((queued - trimmed) / count, 1),
        match_bytes=round((claimed - trimmed) / (count // 2), 1),
        server_bytes=server_bytes,
        allocation_bytes=allocation_bytes,
    )


def _measure_pool(client: Redis, ctx: Context, count: int) -> tuple[float, float]:
    """Bytes per registered (and heartbeating) game server, and per allocated match slot."""
    regions = sorted({r for q in ctx.queues for r in q.regions})
    pool = ServerPool(client, PoolKeys(ctx.settings.key_prefix), regions, ctx.settings)
    region = ctx.queues.get(QUEUE).regions[0]

    def add_server(port: int) -> None:
        server = pool.register(SERVER_ADDRESS, port, region, SERVER_CAPACITY)
        pool.heartbeat(server.id)

    add_server(7777)  # warm-up, as above
    pool.allocate(new_id(), region)
    before = used_memory(client)
    for i in range(count):
        add_server(7000 + i % 1000)
    registered = used_memory(client)
    for _ in range(count):
        pool.allocate(new_id(), region)
    allocated = used_memory(client)
    return round((registered - before) / count, 1), round((allocated - registered) / count, 1)


def _trim_events(client: Redis, ctx: Context) -> None:
    with redis_errors(client):
        client.xtrim(ctx.keys.events(QUEUE), maxlen=0, approximate=False)


def _claim_pairs(ctx: Context, tickets: Sequence[Ticket]) -> None:
    """Claim the tickets two by two, as the worker does after matching them."""
    store = ctx.matchmaking
    queue = ctx.queues.get(QUEUE)
    token = secrets.token_hex(8)
    if QUEUE not in store.hold_leases([QUEUE], token, ttl_s=600):
        raise ConflictError(f"another worker holds the lease of {QUEUE!r}: stop it to measure")
    region = queue.regions[0]
    proposals = [
        ProposedMatch(((a.id,), (b.id,)), region, 0.0)
        for a, b in zip(tickets[::2], tickets[1::2], strict=True)
    ]
    store.claim(queue, token, proposals, {t.id: t for t in tickets})
    store.release_leases([QUEUE], token)
    left = store.count(QUEUE)
    if left:
        raise ConflictError(f"claiming the measured tickets left {left} of them queued")


def _delete_keys(client: Redis, prefix: str) -> None:
    with redis_errors(client):
        batch: list[str] = []
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
