"""Child processes of the matchmaking benchmark: ticket loaders and workers, each its own client.

Children are started with ``spawn``, so each builds its own :class:`Context` (and
connection) from the settings it is handed, as a separately deployed process
would, and none inherits the parent's sockets. Every child puts exactly one
message on the results queue: ``("ok", result)`` or ``("error", text)``.
Times are ``time.monotonic()``, one clock for all processes of a Linux machine.
"""

from __future__ import annotations

import cProfile
import multiprocessing
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Barrier, Event
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

from caroud.context import Context
from caroud.errors import CaroudError
from caroud.matchmaking.store import MatchmakingStore
from caroud.matchmaking.worker import CycleReport, Worker
from caroud.settings import Settings

SPAWN = multiprocessing.get_context("spawn")
if TYPE_CHECKING:
    Results: TypeAlias = Queue[tuple[str, Any]]
    Progress: TypeAlias = SynchronizedArray[Any]
else:  # generic only to type checkers
    Results = Queue
    Progress = SynchronizedArray


class BenchmarkError(CaroudError):
    """A benchmark phase could not finish: a child process failed, died or timed out."""

    code = "benchmark"


def random_rating(rng: random.Random) -> int:
    """A rating ~N(1500, 300), whole, kept in [0, 4000]."""
    return round(min(max(rng.gauss(1500, 300), 0.0), 4000.0))


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one loader sent: tickets, seconds from its start to its last send, its worst lag."""

    sent: int
    elapsed_s: float
    max_lag_s: float = 0.0


@dataclass(frozen=True, slots=True)
class CycleTiming:
    """One cycle of a worker that held the queue."""

    started: float
    ended: float
    matched_tickets: int
    lease_lost: bool = False


@dataclass(frozen=True, slots=True)
class WorkerResult:
    """A worker process's cycles (only those that held a lease) and its error count."""

    worker_id: str
    cycles: tuple[CycleTiming, ...]
    idle_cycles: int
    errors: int


HELD_CYCLES, MATCHED_TICKETS = 0, 1
"""Slots of a worker's shared progress array, read by the parent while the worker runs."""


def new_progress() -> Progress:
    """A worker's shared progress counters (cycles that held the queue, tickets matched)."""
    return SPAWN.Array("q", 2)


class TimedWorker(Worker):
    """The real worker and its loop, with each cycle timed and its progress shared."""

    def __init__(self, store: MatchmakingStore, queue_name: str, progress: Progress) -> None:
        super().__init__(store, queue_names=[queue_name])
        self.queue_name = queue_name
        self.progress = progress
        self.timings: list[CycleTiming] = []
        self.idle_cycles = 0

    def run_cycle(self, now: float | None = None) -> CycleReport:
        started = time.monotonic()
        report = super().run_cycle(now)
        if not report.queues:
            self.idle_cycles += 1
            return report
        lost = self.queue_name not in self.views  # dropped when the lease went mid-cycle
        self.timings.append(CycleTiming(started, time.monotonic(), report.matched_tickets, lost))
        with self.progress.get_lock():
            self.progress[HELD_CYCLES] += 1
            self.progress[MATCHED_TICKETS] += report.matched_tickets
        return report


def _report(out: Results, work: Callable[[], Any]) -> None:
    try:
        out.put(("ok", work()))
    except BaseException as e:  # the parent must hear of any failure, or it waits in vain
        out.put(("error", f"{type(e).__name__}: {e}"))


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """What one loader sends: 1v1 tickets of players ``<ids><n>`` into ``queue_name``.

    Either ``count`` tickets back to back, or ``rate_per_s`` for ``duration_s``
    offset by ``phase`` (a fraction of the interval, so that loaders interleave).
    """

    settings: Settings
    queue_name: str
    ids: str
    seed: int
    count: int = 0
    rate_per_s: float = 0.0
    duration_s: float = 0.0
    phase: float = 0.0


def _enqueue_fast(plan: LoadPlan) -> LoadResult:
    store = Context.build(plan.settings).matchmaking
    rng = random.Random(plan.seed)
    started = time.monotonic()
    for n in range(plan.count):
        store.enqueue(plan.queue_name, [(f"{plan.ids}{n}", random_rating(rng))])
    return LoadResult(plan.count, time.monotonic() - started)


def enqueue_main(plan: LoadPlan, out: Results) -> None:
    """Child: enqueue ``plan.count`` tickets back to back."""
    _report(out, lambda: _enqueue_fast(plan))


def _enqueue_paced(plan: LoadPlan, start: Barrier) -> LoadResult:
    store = Context.build(plan.settings).matchmaking
    rng = random.Random(plan.seed)
    interval = 1.0 / plan.rate_per_s
    count = int(plan.duration_s * plan.rate_per_s)
    start.wait(timeout=60)
    # Ticket n is due at t0 + n * interval whatever happened before: a loader that
    # fell behind catches up instead of quietly lowering the offered rate.
    t0 = time.monotonic() + plan.phase * interval
    max_lag = 0.0
    for n in range(count):
        lag = time.monotonic() - (t0 + n * interval)
        if lag < 0:
            time.sleep(-lag)
        else:
            max_lag = max(max_lag, lag)
        store.enqueue(plan.queue_name, [(f"{plan.ids}{n}", random_rating(rng))])
    return LoadResult(count, time.monotonic() - t0, max_lag)


def paced_main(plan: LoadPlan, start: Barrier, out: Results) -> None:
    """Child: once every loader is at ``start``, enqueue at ``plan.rate_per_s``."""
    _report(out, lambda: _enqueue_paced(plan, start))


def _stop_when_set(stop: Event, worker: Worker) -> None:
    stop.wait()
    worker.stop()


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """One worker process: its settings, its queue, and where to dump a cProfile (or None)."""

    settings: Settings
    queue_name: str
    profile_path: str | None = None


def _work(plan: WorkerPlan, stop: Event, progress: Progress) -> WorkerResult:
    worker = TimedWorker(Context.build(plan.settings).matchmaking, plan.queue_name, progress)
    threading.Thread(target=_stop_when_set, args=(stop, worker), daemon=True).start()
    profiler = cProfile.Profile() if plan.profile_path else None
    if profiler is not None:
        profiler.enable()
    totals = worker.run()
    if profiler is not None and plan.profile_path:
        profiler.disable()
        profiler.dump_stats(plan.profile_path)
    return WorkerResult(worker.id, tuple(worker.timings), worker.idle_cycles, totals.errors)


def worker_main(plan: WorkerPlan, stop: Event, progress: Progress, out: Results) -> None:
    """Child: run :class:`TimedWorker` on ``plan.queue_name`` until ``stop`` is set."""
    _report(out, lambda: _work(plan, stop, progress))


class Children:
    """Child processes of one phase, and the queue they report on; ended on exit if still alive."""

    def __init__(self) -> None:
        self.out: Results = SPAWN.Queue()
        self.procs: list[SpawnProcess] = []

    def start(self, target: Callable[..., None], *args: Any) -> None:
        proc = SPAWN.Process(target=target, args=(*args, self.out), daemon=True)
        proc.start()
        self.procs.append(proc)

    def results(self, timeout_s: float) -> list[Any]:
        """One result per child, in arrival order; :class:`BenchmarkError` if any failed."""
        deadline = time.monotonic() + timeout_s
        found: list[Any] = []
        while len(found) < len(self.procs):
            try:
                status, value = self.out.get(timeout=0.5)
            except queue.Empty:
                self._check_alive(deadline)
                continue
            if status != "ok":
                raise BenchmarkError(f"a benchmark process failed: {value}")
            found.append(value)
        for proc in self.procs:
            proc.join(timeout=10)
        return found

    def _check_alive(self, deadline: float) -> None:
        dead = [p for p in self.procs if p.exitcode not in (None, 0)]
        if dead:
            raise BenchmarkError(f"a benchmark process died (exit code {dead[0].exitcode})")
        if time.monotonic() > deadline:
            raise BenchmarkError("benchmark processes did not finish in time")

    def __enter__(self) -> Children:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        self.out.close()
