"""Request and response bodies of the API: the contract game clients and servers code against.

Request bodies are strict: an unknown field, or a value of the wrong JSON type (a
string for a number, ``true`` for a team index), is refused with 422 before any
code runs. The engine then checks what types cannot say (known queue and regions,
ranges) and names the field it refuses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ninja import Schema
from pydantic import ConfigDict, Field

MAX_REGIONS = 32
MAX_LABELS = 32


class Request(Schema):
    """A request body: unknown fields and loose types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True)


class TicketIn(Request):
    queue: str = Field(min_length=1, max_length=64)
    party_id: str | None = Field(default=None, min_length=1, max_length=64)
    latencies: dict[str, float] | None = Field(
        default=None, max_length=MAX_REGIONS, description="milliseconds by region"
    )


class JoinIn(Request):
    invite_code: str = Field(min_length=1, max_length=16)


class ServerIn(Request):
    address: str = Field(min_length=1, max_length=253, description="host name or IP address")
    port: int
    region: str = Field(min_length=1, max_length=64)
    capacity: int = Field(description="match slots")
    labels: dict[str, str] | None = Field(default=None, max_length=MAX_LABELS)


class HeartbeatIn(Request):
    state: Literal["ready", "draining"] = "ready"
    load: float = Field(default=0.0, ge=0)


class ResultIn(Request):
    winner: int | None = Field(description="the winning team's index, or null for a draw")


# -- responses ---------------------------------------------------------------------------


class ErrorDetail(Schema):
    code: str
    message: str
    details: dict[str, object] | None = None


class ErrorOut(Schema):
    error: ErrorDetail


class ServerAddressOut(Schema):
    address: str
    port: int
    region: str


class TicketMatchOut(Schema):
    id: str
    status: str
    team: int | None
    teams: list[list[str]] = Field(description="player ids by team")
    server: ServerAddressOut | None


class TicketOut(Schema):
    id: str
    queue: str
    status: str
    players: list[str]
    created_at: datetime
    wait_seconds: float
    match: TicketMatchOut | None


class PartyOut(Schema):
    id: str
    invite_code: str
    leader: str
    members: list[str]


class PlayerOut(Schema):
    id: str
    name: str
    rating: float
    games_played: int


class ServerOut(Schema):
    id: str
    address: str
    port: int
    region: str
    capacity: int
    labels: dict[str, str]
    state: str
    used: int
    load: float
    healthy_until: datetime
    strikes: int


class MatchStartedOut(Schema):
    id: str
    status: str
    started_at: datetime | None


class RatingChangeOut(Schema):
    player_id: str
    team: int
    rating_before: float
    rating_after: float
    delta: float


class ResultOut(Schema):
    match_id: str
    winner: int | None
    draw: bool
    already: bool = Field(description="true when an earlier report had recorded the result")
    changes: list[RatingChangeOut]


class RecentMatchesOut(Schema):
    matches: int = Field(description="how many of the queue's newest matches these cover")
    rating_gap_mean: float | None = Field(
        description="mean rating spread between a match's tickets (1v1: the gap)"
    )
    rating_gap_p95: float | None
    imbalance_mean: float | None = Field(
        description="mean |P(win) - 0.5| of the strongest team against the weakest (Elo on "
        "team mean ratings): 0 is a coin flip"
    )


class QueueOut(Schema):
    name: str
    teams: int
    team_size: int
    party_sizes: list[int]
    regions: list[str]
    waiting: int
    oldest_wait_seconds: float | None
    p50_wait_seconds: float | None
    p95_wait_seconds: float | None
    recent_matches: RecentMatchesOut


class QueuesOut(Schema):
    queues: list[QueueOut]


class HealthOut(Schema):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
