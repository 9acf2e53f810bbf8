"""The ranking reference (pure) and the allocate script held to it (property-based)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caroud.errors import NoCapacityError
from caroud.redis.client import Redis
from caroud.servers import ServerPool, Strategy
from caroud.servers.strategies import Candidate, choose, fill, rank

T0 = 1_000_000.0


def test_packed_ranks_fullest_first() -> None:
    candidates = [Candidate("a", 1, 4), Candidate("b", 3, 4), Candidate("c", 0, 2)]
    assert rank(candidates, Strategy.PACKED) == ["b", "a", "c"]


def test_distributed_ranks_emptiest_first() -> None:
    candidates = [Candidate("a", 1, 4), Candidate("b", 3, 4), Candidate("c", 0, 2)]
    assert rank(candidates, Strategy.DISTRIBUTED) == ["c", "a", "b"]


def test_full_servers_are_not_ranked() -> None:
    assert rank([Candidate("a", 2, 2)], Strategy.PACKED) == []
    assert choose([Candidate("a", 2, 2)], Strategy.DISTRIBUTED) is None


def test_ties_go_by_id() -> None:
    tied = [Candidate("b", 1, 2), Candidate("a", 2, 4), Candidate("c", 0, 1)]
    assert rank(tied, Strategy.PACKED) == ["b", "a", "c"]
    assert rank(tied, Strategy.DISTRIBUTED) == ["c", "a", "b"]


def test_fill_is_exact() -> None:
    assert fill(1, 3) == fill(2, 6) == Fraction(1, 3)


servers_strategy = st.lists(
    st.tuples(st.integers(1, 6), st.integers(0, 6)), min_size=1, max_size=8
).map(lambda specs: [(cap, min(used, cap)) for cap, used in specs])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    servers=servers_strategy,
    strategy=st.sampled_from(list(Strategy)),
    picks=st.integers(1, 12),
    avoided=st.sets(st.integers(0, 7), max_size=3),
)
def test_allocate_script_follows_the_reference(
    pool: ServerPool,
    client: Redis,
    servers: list[tuple[int, int]],
    strategy: Strategy,
    picks: int,
    avoided: set[int],
) -> None:
    client.flushdb()
    model: dict[str, Candidate] = {}
    for i, (capacity, used) in enumerate(servers):
        sid = f"s{i}"
        pool.register("10.0.0.1", 7000, "eu", capacity, {"sid": sid}, server_id=sid, now=T0)
        pool.heartbeat(sid, now=T0)
        for n in range(used):
            pool.allocate(f"pre-{sid}-{n}", "eu", selector={"sid": sid}, now=T0)
        model[sid] = Candidate(sid, used, capacity)
    avoid = sorted(f"s{i}" for i in avoided)
    for n in range(picks):
        expected = choose((c for c in model.values() if c.id not in avoid), strategy)
        if expected is None:
            with pytest.raises(NoCapacityError):
                pool.allocate(f"m{n}", "eu", strategy=strategy, avoid=avoid, now=T0)
            break
        chosen = pool.allocate(f"m{n}", "eu", strategy=strategy, avoid=avoid, now=T0)
        assert chosen.server_id == expected
        c = model[expected]
        model[expected] = Candidate(c.id, c.used + 1, c.capacity)
    assert pool.audit().ok
