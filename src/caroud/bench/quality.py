"""``caroud bench quality``: how good the matches are, against what the population allows.

Each scenario (:mod:`caroud.bench.population`) is a trace of simulated arrivals,
fed through the real store and the real worker in simulated time: a ticket is
enqueued with its arrival time as ``created_at``, and the worker runs one cycle
per tick of the configured ``CAROUD_WORKER_TICK`` with ``now`` advanced by that
tick, so a day of queueing takes the machine's time for the Redis calls and the
matching, not a day. The queues are the built-in ``ranked-1v1`` and
``ranked-5v5`` with their defaults. The same seed gives the same trace and,
since the matcher is deterministic, the same figures.

What it reports per scenario (:mod:`caroud.bench.quality_figures`), and the
targets it holds them to (:data:`TARGETS`): the rating gap of the matches, the
waits (overall, by rating band, by party size), steady-state time-outs among the
tickets the population could serve, tickets that *starved* (timed out although a
group every member's window accepted was there), for 1v1 the cost against the
exact offline optimum, for teams the Elo win chance of the teams and how often a
stack met a team of solos.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from caroud.bench._server import bench_target, delete_own_keys, server_version
from caroud.bench.population import SCENARIOS, Arrival, Scenario, make_trace
from caroud.bench.quality_figures import Figures, Outcome, PlayedMatch, figures
from caroud.context import Context
from caroud.errors import CaroudError, ConfigError
from caroud.matchmaking.models import QueueConfig, TicketStatus
from caroud.matchmaking.queues import QueueRegistry
from caroud.matchmaking.store import MatchmakingStore
from caroud.matchmaking.worker import Worker
from caroud.redis.client import redis_errors
from caroud.settings import Settings

DEFAULT_SEED = 1

TARGETS: dict[str, tuple[str, float]] = {
    "cost_ratio": ("<=", 1.25),
    "pwin_deviation_mean": ("<=", 0.02),
    "stack_vs_solos_pct": ("<=", 1.0),
    "starved": ("<=", 0),
    "steady_timeout_pct": ("<=", 0.5),
    "wait_p95_vs_before": ("<=", 1.2),
}
"""What each figure is held to, where a scenario has it (see docs/benchmarks.md)."""

BEFORE_WAIT_P95_S: dict[str, float] = {
    "1v1-low": 10.78,
    "1v1-medium": 1.76,
    "1v1-high": 0.25,
    "5v5-low": 46.91,
    "5v5-medium": 10.17,
    "5v5-high": 1.30,
}
"""p95 wait of each scenario (default seed), measured by this benchmark with the matcher
this one replaced (commit 8d24a50): the wait target is "no more than 20 % above" these."""


class QualityBenchmarkError(CaroudError):
    """The simulation did not drain: a bug in the benchmark or the engine."""


def run_quality_benchmark(
    settings: Settings, seed: int = DEFAULT_SEED, names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Run the scenarios (all by default) against a fresh embedded Valkey (or the configured
    Redis, under the benchmark's own key prefix); the figures and the targets' verdicts."""
    chosen = list(names) if names else list(SCENARIOS)
    if unknown := [n for n in chosen if n not in SCENARIOS]:
        raise ConfigError(
            f"bench quality: unknown scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}"
        )
    started = time.monotonic()
    result: dict[str, Any] = {
        "seed": seed,
        "machine": f"{os.cpu_count()} CPUs, {platform.platform()}, Python "
        f"{platform.python_version()}",
        "host_load_1m_at_start": round(os.getloadavg()[0], 2),
    }
    scenarios: dict[str, Figures] = {}
    with bench_target(settings, "") as target:
        ctx = Context.build(target.settings, queues=QueueRegistry.defaults())
        with redis_errors(ctx.client):
            result["server"] = server_version(ctx.client)
            if not target.own_server:
                delete_own_keys(ctx.client, ctx.keys)
            for name in chosen:
                figs = run_scenario(ctx, SCENARIOS[name], seed, target.settings)
                scenarios[name] = figs | compare_with_before(name, figs, seed)
            if not target.own_server:
                delete_own_keys(ctx.client, ctx.keys)
    result["scenarios"] = scenarios
    result["verdicts"] = verdicts(scenarios)
    result["all_met"] = all(ok for v in result["verdicts"].values() for ok in v.values())
    result["bench_wall_s"] = round(time.monotonic() - started, 1)
    return result


def run_scenario(ctx: Context, scenario: Scenario, seed: int, settings: Settings) -> Figures:
    """Simulate one scenario through the store and the worker; its figures."""
    started = time.monotonic()
    queue = ctx.queues.get(scenario.queue)
    trace = make_trace(scenario, seed)
    if not trace:
        raise ConfigError(f"bench quality: scenario {scenario.name} has no arrivals")
    outcome = simulate(ctx.matchmaking, queue, scenario, trace, seed, settings.worker_tick_s)
    simulated = time.monotonic() - started
    out = figures(queue, scenario, trace, outcome)
    out["rate_per_s"] = scenario.rate_per_s
    out["duration_s"] = scenario.duration_s
    out["simulate_wall_s"] = round(simulated, 1)
    out["figures_wall_s"] = round(time.monotonic() - started - simulated, 1)
    return out


def simulate(
    store: MatchmakingStore,
    queue: QueueConfig,
    scenario: Scenario,
    trace: Sequence[Arrival],
    seed: int,
    tick_s: float,
) -> Outcome:
    """Feed ``trace`` to ``queue`` and run the worker one tick at a time until it drains."""
    worker = Worker(
        store,
        tick_s=tick_s,
        lease_ttl_s=60.0,
        queue_names=[queue.name],
        worker_id=f"quality-{scenario.name}",
    )
    base = float(math.floor(store.server_time()))
    ids = [f"{scenario.name}.{seed}.{a.index}" for a in trace]
    last = scenario.duration_s + queue.max_wait_s + 10 * tick_s
    step, k = 0, 0
    while True:
        now = step * tick_s
        while k < len(trace) and trace[k].at <= now:
            arrival = trace[k]
            players = [(f"{ids[k]}.{i}", r) for i, r in enumerate(arrival.ratings)]
            store.enqueue(queue.name, players, ticket_id=ids[k], created_at=base + arrival.at)
            k += 1
        worker.run_cycle(now=base + now)
        if k == len(trace) and store.count(queue.name) == 0:
            break
        if now > last:
            raise QualityBenchmarkError(
                f"{scenario.name}: tickets still queued {now:.0f} s into the simulation"
            )
        step += 1
    store.release_leases([queue.name], worker.token)
    return collect(store, queue, trace, ids, base, tick_s)


def collect(
    store: MatchmakingStore,
    queue: QueueConfig,
    trace: Sequence[Arrival],
    ids: Sequence[str],
    base: float,
    tick_s: float,
) -> Outcome:
    """Read back what became of every ticket: its match and team, or its time-out."""
    index = {tid: i for i, tid in enumerate(ids)}
    tickets = store.get_many(ids)
    if len(tickets) != len(ids):
        raise QualityBenchmarkError(f"{len(ids) - len(tickets)} tickets vanished from Redis")
    left = [math.nan] * len(ids)
    timed_out = [False] * len(ids)
    match_ids: set[str] = set()
    for tid, ticket in tickets.items():
        i = index[tid]
        if ticket.status is TicketStatus.TIMED_OUT:
            timed_out[i] = True
            # the first tick at or past its deadline
            left[i] = math.ceil((trace[i].at + queue.max_wait_s) / tick_s - 1e-9) * tick_s
        elif ticket.status is TicketStatus.MATCHED and ticket.match_id:
            match_ids.add(ticket.match_id)
        else:
            raise QualityBenchmarkError(f"ticket {tid} ended {ticket.status}, not matched")
    played: list[PlayedMatch] = []
    for match in store.get_matches(sorted(match_ids)).values():
        teams = tuple(tuple(index[t] for t in team) for team in match.teams)
        at = match.created_at - base
        for team in teams:
            for i in team:
                left[i] = at
        played.append(PlayedMatch(teams, at))
    if any(math.isnan(x) for x in left):
        raise QualityBenchmarkError("a matched ticket's match record is missing")
    played.sort(key=lambda m: (m.at, m.teams))
    return Outcome(played, left, timed_out)


def compare_with_before(name: str, figs: Figures, seed: int) -> Figures:
    """The scenario's p95 wait against the matcher before (known for the default seed)."""
    before = BEFORE_WAIT_P95_S.get(name) if seed == DEFAULT_SEED else None
    if not before:
        return {}
    return {
        "wait_p95_before_s": before,
        "wait_p95_vs_before": round(float(figs["wait_s_p95"]) / before, 3),
    }


def verdicts(scenarios: dict[str, Figures]) -> dict[str, dict[str, bool]]:
    """Each scenario's targets, met or not (those of its figures that have one)."""
    return {
        name: {
            key: _met(key, figs[key]) for key in TARGETS if key in figs and figs[key] == figs[key]
        }
        for name, figs in scenarios.items()
    }


def _met(key: str, value: float | int | str) -> bool:
    op, bound = TARGETS[key]
    number = float(value)
    return number <= bound if op == "<=" else number >= bound


# -- output ------------------------------------------------------------------------------

SHOWN = (
    "tickets",
    "matches",
    "rating_gap_mean",
    "rating_gap_p95",
    "rating_spread_mean",
    "cost_ratio",
    "cost_ratio_steady",
    "cost_ratio_with_waits",
    "optimum_rating_gap_mean",
    "pwin_deviation_mean",
    "team_gap_mean",
    "stack_vs_solos_pct",
    "wait_s_p50",
    "wait_s_p95",
    "wait_max_s",
    "wait_p95_vs_before",
    "optimum_wait_p95_s",
    "wait_centre_p95_s",
    "wait_tails_p95_s",
    "steady_timeout_pct",
    "starved",
    "timed_out",
)


def print_quality_table(result: dict[str, Any]) -> None:
    """The main figures of every scenario side by side, targets marked."""
    scenarios: dict[str, Figures] = result["scenarios"]
    table = Table(title=f"caroud bench quality (seed {result['seed']})")
    table.add_column("figure")
    for name in scenarios:
        table.add_column(name, justify="right")
    table.add_column("target")
    for key in SHOWN:
        if not any(key in figs for figs in scenarios.values()):
            continue
        row = [key]
        for name, figs in scenarios.items():
            value = figs.get(key, "")
            ok = result["verdicts"][name].get(key)
            text = str(value)
            row.append(text if ok is None else f"[{'green' if ok else 'red'}]{text}[/]")
        op_bound = TARGETS.get(key)
        row.append(f"{op_bound[0]} {op_bound[1]:g}" if op_bound else "")
        table.add_row(*row)
    console = Console()
    console.print(table)
    verdict = "every target met" if result["all_met"] else "[red]some targets missed[/]"
    console.print(f"{verdict}; full figures with --json ({result['bench_wall_s']} s)")
