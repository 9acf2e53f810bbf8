"""A fixed-window rate limit on the shared Redis, so every web process counts together.

One key per (scope, caller) — :meth:`caroud.keys.Keys.rate_limit` — created with the
window as its TTL and incremented in the same MULTI, so the count and its expiry
can never part (a plain INCR then EXPIRE could leave a key without a TTL).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from caroud.keys import Keys
from caroud.redis.client import Redis, redis_errors
from caroud.web.errors import RateLimitedError

RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*s?\s*$")


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``limit`` requests per ``window_s`` seconds."""

    limit: int
    window_s: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"10/10"`` (or ``"10/10s"``): 10 requests per 10 seconds; ValueError if malformed."""
        found = RATE_RE.match(text)
        if found is None or int(found[1]) < 1 or int(found[2]) < 1:
            raise ValueError(f"{text!r} is not a rate: write LIMIT/SECONDS, e.g. 10/10")
        return cls(int(found[1]), int(found[2]))


def hit(client: Redis, keys: Keys, scope: str, who: str, rate: Rate, what: str) -> int:
    """Count one request of ``who``; :class:`RateLimitedError` once over ``rate``. The count."""
    key = keys.rate_limit(scope, who)
    pipe = client.pipeline(transaction=True)
    pipe.set(key, 0, ex=rate.window_s, nx=True)
    pipe.incr(key)
    pipe.ttl(key)
    with redis_errors(client):
        _, count, ttl = pipe.execute()
    if int(count) > rate.limit:
        raise RateLimitedError(what, rate.limit, rate.window_s, max(int(ttl), 1))
    return int(count)
