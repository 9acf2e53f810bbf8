"""The game-server pool: servers register and heartbeat, matches get slots atomically.

Start at :class:`ServerPool`; the records it returns are in :mod:`.models`, and how
a server is chosen is in :mod:`.strategies`.
"""

from caroud.servers.models import (
    Allocation,
    AllocationRequest,
    AllocationState,
    LostServer,
    PoolAudit,
    PoolStats,
    ReapReport,
    Server,
    ServerState,
    Strategy,
)
from caroud.servers.pool import AllocateOutcome, ServerPool

__all__ = [
    "AllocateOutcome",
    "Allocation",
    "AllocationRequest",
    "AllocationState",
    "LostServer",
    "PoolAudit",
    "PoolStats",
    "ReapReport",
    "Server",
    "ServerPool",
    "ServerState",
    "Strategy",
]
