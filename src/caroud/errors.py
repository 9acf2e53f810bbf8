"""The one exception root of Caroud.

Every error the library raises on purpose derives from :class:`CaroudError`, so
callers (the CLI, the worker, the HTTP layer) can catch one class and show its
message, which always says what went wrong and what to check::

    CaroudError
    ├── ConfigError                 bad settings or queue definitions
    ├── ValidationError             bad input from a caller (field + rule)
    ├── NotFoundError               a ticket / match / queue / game server that does not exist
    │   └── UnknownQueueError
    ├── ConflictError               the request clashes with current state
    │   ├── PlayerBusyError         a player already has an active ticket
    │   ├── TicketStateError        e.g. cancelling a ticket that is matched
    │   ├── LeaseLostError          a worker lost its queue lease mid-cycle
    │   ├── NoCapacityError         no game server in the match's regions has a free slot
    │   └── AllocationStateError    e.g. confirming a match whose slot was already freed
    ├── RedisError                  the Redis server could not do what we asked
    │   ├── RedisUnavailableError   refused / unreachable / DNS
    │   ├── RedisTimeoutError       connect or read timed out
    │   ├── RedisAuthError          NOAUTH / WRONGPASS
    │   ├── RedisOutOfMemoryError   OOM: maxmemory reached
    │   └── RedisTLSError           TLS handshake or TLS/plain-text mismatch
    └── InfraError                  an AWS call or a CloudFormation template failed

:data:`HTTP_STATUS` maps each branch to the HTTP status an API should answer.
"""

from __future__ import annotations


class CaroudError(Exception):
    """Root of every error Caroud raises on purpose."""

    code = "error"


class ConfigError(CaroudError):
    """Settings or queue definitions are invalid; the message names the setting."""

    code = "config"


class ValidationError(CaroudError):
    """Input from a caller breaks a rule; ``field`` names what was wrong."""

    code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class NotFoundError(CaroudError):
    """The ticket, match or other record asked for does not exist (or has expired)."""

    code = "not_found"


class UnknownQueueError(NotFoundError):
    """The queue name is not one of the configured queues."""

    code = "unknown_queue"


class ConflictError(CaroudError):
    """The request clashes with the current state of a record."""

    code = "conflict"


class PlayerBusyError(ConflictError):
    """A player in the request already has an active ticket."""

    code = "player_busy"

    def __init__(self, player_id: str, ticket_id: str) -> None:
        super().__init__(
            f"player {player_id!r} already has an active ticket {ticket_id!r}: "
            "cancel it first or wait for it to end"
        )
        self.player_id = player_id
        self.ticket_id = ticket_id


class TicketStateError(ConflictError):
    """The ticket is not in a state that allows the operation."""

    code = "ticket_state"

    def __init__(self, ticket_id: str, status: str, operation: str) -> None:
        super().__init__(f"ticket {ticket_id!r} is {status}: cannot {operation} it")
        self.ticket_id = ticket_id
        self.status = status


class LeaseLostError(ConflictError):
    """This worker no longer holds the lease of a queue; another worker took it over."""

    code = "lease_lost"


class NoCapacityError(ConflictError):
    """No healthy, ready game server in any of the requested regions has a free slot."""

    code = "no_capacity"

    def __init__(self, match_id: str, regions: tuple[str, ...], selector: dict[str, str]) -> None:
        wanted = f" with labels {selector}" if selector else ""
        super().__init__(
            f"no game server{wanted} has a free slot for match {match_id!r} in "
            f"{', '.join(regions)}: register or scale up servers there, or retry later"
        )
        self.match_id = match_id
        self.regions = regions
        self.selector = selector


class AllocationStateError(ConflictError):
    """The match's allocation is not in a state that allows the operation."""

    code = "allocation_state"

    def __init__(self, match_id: str, state: str, operation: str) -> None:
        super().__init__(f"the allocation of match {match_id!r} is {state}: cannot {operation} it")
        self.match_id = match_id
        self.state = state


class RedisError(CaroudError):
    """Redis could not serve a request; the message names the (redacted) URL and what to check."""

    code = "redis"


class RedisUnavailableError(RedisError):
    """The Redis server refused the connection or could not be reached."""

    code = "redis_unavailable"


class RedisTimeoutError(RedisError):
    """Connecting to or reading from Redis timed out."""

    code = "redis_timeout"


class RedisAuthError(RedisError):
    """Redis rejected the credentials (NOAUTH, WRONGPASS)."""

    code = "redis_auth"


class RedisOutOfMemoryError(RedisError):
    """Redis refused a write because maxmemory is reached."""

    code = "redis_oom"


class RedisTLSError(RedisError):
    """The TLS handshake failed, or the URL scheme does not match the server (rediss vs redis)."""

    code = "redis_tls"


HTTP_STATUS: dict[type[CaroudError], int] = {
    ValidationError: 422,
    UnknownQueueError: 422,
    NotFoundError: 404,
    ConflictError: 409,
    ConfigError: 500,
    RedisError: 503,
    CaroudError: 500,
}


def http_status(error: CaroudError) -> int:
    """The HTTP status for ``error``: the entry of its nearest class in :data:`HTTP_STATUS`."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


class InfraError(CaroudError):
    """An AWS call or a CloudFormation template failed; the message says which and what to check."""

    code = "infra"
