"""Plain data of matchmaking: queues, tickets, matches. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class TicketStatus(StrEnum):
    """Where a ticket is in its lifecycle: ``queued → matched → assigned``, or it ends early."""

    QUEUED = "queued"
    MATCHED = "matched"
    ASSIGNED = "assigned"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


ACTIVE_STATUSES = frozenset({TicketStatus.QUEUED, TicketStatus.MATCHED, TicketStatus.ASSIGNED})


@dataclass(frozen=True, slots=True)
class RatingWindow:
    """The accepted rating spread: ``initial`` widening by ``growth_per_s`` up to ``maximum``."""

    initial: float
    growth_per_s: float
    maximum: float

    def at(self, wait_s: float) -> float:
        """The window after waiting ``wait_s`` seconds."""
        return min(self.initial + self.growth_per_s * max(wait_s, 0.0), self.maximum)


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """One matchmaking queue: its shape (teams x team size), parties, window, timeout, regions."""

    name: str
    teams: int
    team_size: int
    party_sizes: tuple[int, ...]
    window: RatingWindow
    max_wait_s: float
    regions: tuple[str, ...]
    max_latency_ms: float

    @property
    def players_per_match(self) -> int:
        return self.teams * self.team_size


@dataclass(frozen=True, slots=True)
class PlayerEntry:
    """A player in a ticket, with the rating the ticket was queued with."""

    id: str
    rating: float


@dataclass(frozen=True, slots=True)
class Ticket:
    """One player or a party waiting in (or matched from) a queue."""

    id: str
    queue: str
    players: tuple[PlayerEntry, ...]
    created_at: float
    latencies: Mapping[str, float] = field(default_factory=dict)
    status: TicketStatus = TicketStatus.QUEUED
    match_id: str | None = None
    team: int | None = None

    @property
    def size(self) -> int:
        return len(self.players)

    @property
    def rating(self) -> float:
        """The ticket's rating for matching: the mean of its players' ratings."""
        return sum(p.rating for p in self.players) / len(self.players)

    @property
    def player_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.players)

    def wait_s(self, now: float) -> float:
        return max(now - self.created_at, 0.0)


@dataclass(frozen=True, slots=True)
class ProposedMatch:
    """A match the algorithm proposes: ticket ids grouped by team, a region, the rating spread."""

    teams: tuple[tuple[str, ...], ...]
    region: str
    spread: float

    @property
    def ticket_ids(self) -> tuple[str, ...]:
        return tuple(t for team in self.teams for t in team)


@dataclass(frozen=True, slots=True)
class Match:
    """A match as stored: what was proposed, with its id, queue and creation time."""

    id: str
    queue: str
    teams: tuple[tuple[str, ...], ...]
    region: str
    spread: float
    created_at: float
    status: str = "matched"

    @property
    def ticket_ids(self) -> tuple[str, ...]:
        return tuple(t for team in self.teams for t in team)
