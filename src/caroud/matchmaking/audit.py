"""An audit of exactly-once: no ticket in two live matches, every match agreeing with its tickets.

A match that was requeued (no server in time, or its server died before the start)
gave its tickets back to the queue, so it no longer counts as holding them.

Reads every match record (SCAN, in bounded chunks), so it is for tests,
benchmarks and operators' spot checks, not for a hot path.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from caroud.keys import Keys
from caroud.matchmaking import codec
from caroud.redis.client import Redis, redis_errors


@dataclass
class AuditReport:
    """What the audit found; ``ok`` when every list is empty."""

    matches: int = 0
    tickets: int = 0
    double_matched: list[str] = field(default_factory=list)
    disagreeing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.double_matched and not self.disagreeing


def audit_matches(client: Redis, keys: Keys, chunk: int = 500) -> AuditReport:
    """Check every stored match against the tickets it lists."""
    report = AuditReport()
    seen: dict[str, list[str]] = defaultdict(list)
    pattern = keys.match("*")
    with redis_errors(client):
        match_keys = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(match_keys), chunk):
            batch = match_keys[start : start + chunk]
            pipe = client.pipeline(transaction=False)
            for key in batch:
                pipe.hmget(key, "tm", "s")
            for key, (teams, status) in zip(batch, pipe.execute(), strict=True):
                if teams is None or status == "requeued":  # a requeued match holds no tickets
                    continue
                match_id = key.rsplit(":", 1)[1]
                report.matches += 1
                for tid in (t for team in codec.decode_teams(teams) for t in team):
                    seen[tid].append(match_id)
        tickets = list(seen)
        for start in range(0, len(tickets), chunk):
            batch = tickets[start : start + chunk]
            pipe = client.pipeline(transaction=False)
            for tid in batch:
                pipe.hget(keys.ticket(tid), "m")
            for tid, match_id in zip(batch, pipe.execute(), strict=True):
                if match_id is not None and match_id not in seen[tid]:
                    report.disagreeing.append(tid)
    report.tickets = len(seen)
    report.double_matched = sorted(t for t, ms in seen.items() if len(ms) > 1)
    return report
