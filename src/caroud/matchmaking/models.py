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
    """The accepted rating spread: ``initial`` widening by ``growth_per_s`` up to ``maximum``.

    With ``adaptive`` > 0 a ticket's window starts tighter than ``initial`` where the
    queue is busy near its rating (see :mod:`caroud.matchmaking.density`).
    """

    initial: float
    growth_per_s: float
    maximum: float
    adaptive: float = 0.0

    def at(self, wait_s: float, start: float | None = None) -> float:
        """The window after waiting ``wait_s`` seconds, from ``start`` (default ``initial``)."""
        begin = self.initial if start is None else start
        return min(begin + self.growth_per_s * max(wait_s, 0.0), self.maximum)


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
    strategy: str = "packed"
    """How a game server is chosen: ``packed`` (fullest first) or ``distributed``."""
    fallback_regions: tuple[str, ...] = ()
    """Regions to try, in order, when no region every player accepts has a free server."""
    selector: Mapping[str, str] = field(default_factory=dict)
    """Labels a game server must carry to host this queue's matches."""
    assign_timeout_s: float = 60.0
    """How long a match waits for a server before its tickets go back to the queue."""
    stack_size: int = 0
    """Parties this big are not put against a team of solos while anyone can wait (0: off)."""
    team_balance: float = 1.0
    """Team averages may differ by at most this fraction of the group's window (1: any)."""

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
    regions: tuple[str, ...] = ()
    """Every region all players accept, best first (``region`` leads): allocation fallbacks."""
    imbalance: float = 0.0
    """How far from a coin flip the match is: ``|P(win) - 0.5|`` of the strongest team
    against the weakest, from the Elo curve on their mean ratings (0 is even)."""

    @property
    def ticket_ids(self) -> tuple[str, ...]:
        return tuple(t for team in self.teams for t in team)


class MatchStatus(StrEnum):
    """A match's life: ``matched → assigned → started → ended``, or requeued / interrupted."""

    MATCHED = "matched"
    ASSIGNED = "assigned"
    STARTED = "started"
    ENDED = "ended"
    REQUEUED = "requeued"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """Where the players of a match connect."""

    server_id: str
    address: str
    port: int
    region: str


@dataclass(frozen=True, slots=True)
class Match:
    """A match as stored: what was proposed, its server once assigned, its result once over."""

    id: str
    queue: str
    teams: tuple[tuple[str, ...], ...]
    region: str
    spread: float
    created_at: float
    status: MatchStatus = MatchStatus.MATCHED
    regions: tuple[str, ...] = ()
    server: ServerAddress | None = None
    started_at: float | None = None
    ended_at: float | None = None
    imbalance: float | None = None
    """``|P(win) - 0.5|`` between its strongest and weakest team when formed (see
    :class:`ProposedMatch`); None for matches recorded before it was kept."""
    winner: int | None = None
    """The winning team's index once ended (None for a draw, or while running)."""

    def team_of(self, ticket_id: str) -> int | None:
        return next((i for i, team in enumerate(self.teams) if ticket_id in team), None)

    @property
    def ticket_ids(self) -> tuple[str, ...]:
        return tuple(t for team in self.teams for t in team)
