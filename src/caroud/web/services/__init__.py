"""What the API, the management commands and ``caroud`` call: plain functions, no HTTP.

Each takes the engine :class:`~caroud.context.Context` (where it needs Redis) and
model instances, and raises :class:`~caroud.errors.CaroudError` subclasses.
"""

from caroud.web.services.accounts import Created, create_player, create_server_key, player_json
from caroud.web.services.parties import create_party, join_party, leave_party, party_json
from caroud.web.services.results import (
    AppliedResult,
    RatingChange,
    apply_pending_results,
    follow_results,
    record_result,
)
from caroud.web.services.servers import (
    deregister,
    heartbeat,
    match_result,
    match_started,
    register_server,
)
from caroud.web.services.stats import queue_stats
from caroud.web.services.tickets import cancel_ticket, queue_ticket, ticket_json, ticket_of

__all__ = [
    "AppliedResult",
    "Created",
    "RatingChange",
    "apply_pending_results",
    "cancel_ticket",
    "create_party",
    "create_player",
    "create_server_key",
    "deregister",
    "follow_results",
    "heartbeat",
    "join_party",
    "leave_party",
    "match_result",
    "match_started",
    "party_json",
    "player_json",
    "queue_stats",
    "queue_ticket",
    "record_result",
    "register_server",
    "ticket_json",
    "ticket_of",
]
