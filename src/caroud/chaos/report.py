"""A chaos run's figures, each with its target, from what the clients saw and the audit found."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from caroud.chaos.audit import Findings
from caroud.chaos.faults import Window
from caroud.chaos.load import Observed, Request

DEADLINE_SLACK_S = 0.5


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    value: float
    target: str
    ok: bool


@dataclass
class Report:
    """Figures, the faults injected, and the raw findings for a human to follow up."""

    seconds: float
    faults: list[str]
    figures: list[Figure]
    findings: Findings
    recovery_s: dict[str, float | None]
    unexpected_exits: dict[str, list[str]]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.figures)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 1),
            "faults": self.faults,
            "figures": {
                f.name: {"value": f.value, "target": f.target, "ok": f.ok} for f in self.figures
            },
            "recovery_seconds": self.recovery_s,
            "findings": asdict(self.findings),
            "unexpected_exits": self.unexpected_exits,
            "notes": self.notes,
        }


def _during(r: Request, windows: Sequence[Window]) -> bool:
    end = r.started + r.seconds
    return any(r.started < w.end and end > w.start for w in windows)


def recovery(observed: Observed, windows: Sequence[Window]) -> dict[str, float | None]:
    """Per Redis fault: seconds from Redis back to the first match a player saw after it."""
    out: dict[str, float | None] = {}
    seen = sorted(observed.matches.values())
    for i, w in enumerate(x for x in windows if x.redis):
        first = next((t for t in seen if t > w.end), None)
        out[f"{i + 1}. {w.name}"] = None if first is None else round(first - w.end, 2)
    return out


def build(
    observed: Observed,
    findings: Findings,
    windows: Sequence[Window],
    unexpected: Mapping[str, list[str]],
    *,
    seconds: float,
    deadline_s: float,
    tickets: int,
    matches: int,
    match_statuses: Mapping[str, int] | None = None,
) -> Report:
    reqs = observed.requests
    outage = [w for w in windows if w.redis]
    in_outage = [r for r in reqs if _during(r, outage)]
    longest = max((r.seconds for r in in_outage if r.status), default=0.0)
    five = [r for r in reqs if r.status >= 500 and r.status != 503]
    no_retry = [r for r in reqs if r.status == 503 and not r.retry_after]
    back = recovery(observed, windows)
    slowest_back = max((v for v in back.values() if v is not None), default=0.0)
    never_back = sum(1 for v in back.values() if v is None)
    over = sum(1 for most, cap in observed.max_running.values() if most > cap)

    def fig(name: str, value: float, target: str, ok: bool) -> Figure:
        return Figure(name, round(value, 3), target, ok)

    figures = [
        fig("tickets acknowledged", len(observed.acked), "> 0", len(observed.acked) > 0),
        fig("tickets in Redis", tickets, "> 0", tickets > 0),
        fig("matches in Redis", matches, "> 0", matches > 0),
        fig("matches started", observed.started, "> 0", observed.started > 0),
        fig("results reported", len(observed.results), "> 0", len(observed.results) > 0),
        fig("requests", len(reqs), "> 0", len(reqs) > 0),
        fig("double matches", len(findings.double_matches), "0", not findings.double_matches),
        fig(
            "players with two active tickets",
            len(findings.two_active_tickets),
            "0",
            not findings.two_active_tickets,
        ),
        fig(
            "acknowledged tickets lost",
            len(findings.acked_lost)
            + len(observed.lost_tickets - set(findings.acked_lost_near_sigkill)),
            "0",
            not findings.acked_lost
            and not (observed.lost_tickets - set(findings.acked_lost_near_sigkill)),
        ),
        fig(
            "acknowledged tickets lost to Redis SIGKILL (AOF everysec)",
            len(findings.acked_lost_near_sigkill),
            "reported (at most the last second's)",
            True,
        ),
        fig(
            "slots over capacity",
            len(findings.slots_over_capacity) + over,
            "0",
            not findings.slots_over_capacity and not over,
        ),
        fig("results lost", len(findings.results_lost), "0", not findings.results_lost),
        fig(
            "ratings applied twice",
            len(findings.ratings_applied_twice),
            "0",
            not findings.ratings_applied_twice,
        ),
        fig("HTTP 5xx other than 503", len(five), "0", not five),
        fig("503s without Retry-After", len(no_retry), "0", not no_retry),
        fig(
            "longest request during a Redis outage (s)",
            longest,
            f"<= {deadline_s + DEADLINE_SLACK_S}",
            longest <= deadline_s + DEADLINE_SLACK_S,
        ),
        fig(
            "processes that needed a manual restart",
            sum(len(v) for v in unexpected.values()),
            "0",
            not unexpected,
        ),
        fig(
            "slowest recovery: Redis back to the first match (s)",
            slowest_back,
            "every Redis fault followed by a match",
            never_back == 0,
        ),
        fig("tickets given up on (followed > 90 s)", observed.stuck, "0", observed.stuck == 0),
    ]
    slowest = sorted((r for r in in_outage if r.status), key=lambda r: -r.seconds)[:3]
    notes = [
        *(f"slow during an outage: {r.what} {r.status} in {r.seconds:.2f} s" for r in slowest),
        *(
            f"game server {sid} ran {most} matches at once, capacity {cap}"
            for sid, (most, cap) in observed.max_running.items()
            if most > cap
        ),
        f"{sum(1 for r in reqs if r.status == 503)} answers were 503 (Retry-After on each)",
        f"{sum(1 for r in reqs if r.status == 0)} requests got no answer (connection errors)",
        f"{observed.cancelled} tickets cancelled by their players while queued",
        f"{observed.reregistered} game-server registrations lost and made again",
    ]
    if match_statuses:
        shown = ", ".join(f"{n} {status}" for status, n in sorted(match_statuses.items()))
        notes.append(f"matches by status at the end: {shown}")
    return Report(
        seconds, [w.name for w in windows], figures, findings, back, dict(unexpected), notes
    )
