"""The faults of a chaos run, in order, and the windows they made.

Each fault is injected, held, undone, then the system is left alone for a while so
that its recovery (and the first match after Redis is back) is measured before
the next one. A long run repeats the cycle.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from caroud.chaos.stack import Proc, Stack

log = logging.getLogger("caroud.chaos")


@dataclass(frozen=True, slots=True)
class Window:
    """A fault from ``start`` to ``end`` (monotonic); ``redis``: Redis was unreachable."""

    name: str
    start: float
    end: float
    redis: bool


@dataclass(frozen=True, slots=True)
class Fault:
    """One step: ``inject`` holds the fault for ``hold_s``; then ``settle_s`` of quiet."""

    name: str
    hold_s: float
    settle_s: float
    redis: bool = False


CYCLE: tuple[Fault, ...] = (
    Fault("worker SIGKILL (restarted 1 s later) and a game server vanishes", 1.0, 5.0),
    Fault("worker SIGSTOP 5 s (beyond its 3 s lease)", 5.0, 5.0),
    Fault("relay SIGKILL (restarted 1 s later)", 1.0, 2.0),
    Fault("results applier SIGKILL (restarted 1 s later)", 1.0, 2.0),
    Fault("Redis SIGSTOP 5 s", 5.0, 8.0, redis=True),
    Fault("Redis SIGSTOP 12 s", 12.0, 8.0, redis=True),
    Fault("Redis SIGTERM, restarted", 1.0, 8.0, redis=True),
    Fault("Redis SIGKILL, restarted", 1.0, 8.0, redis=True),
)
"""One cycle of faults: about 90 s."""


class Injector:
    """Runs :data:`CYCLE` against a :class:`Stack`; ``vanish`` makes a game server vanish."""

    def __init__(self, stack: Stack, vanish: Callable[[], None]) -> None:
        self.stack = stack
        self.vanish = vanish
        self.windows: list[Window] = []
        self.sigkills: list[float] = []
        """When Redis was SIGKILLed (monotonic): AOF everysec may lose the second before."""

    def run(self, faults: tuple[Fault, ...], stop: Callable[[], bool]) -> None:
        for i, fault in enumerate(faults):
            if stop():
                return
            log.info("fault: %s", fault.name)
            start = time.monotonic()
            self._inject(i % len(CYCLE), fault)
            self.windows.append(Window(fault.name, start, time.monotonic(), fault.redis))
            time.sleep(fault.settle_s)

    def _inject(self, step: int, fault: Fault) -> None:
        stack = self.stack
        worker_a, worker_b = stack.workers[0], stack.workers[1 % len(stack.workers)]
        if step == 0:
            self.vanish()
            self._kill_and_restart(worker_a, fault.hold_s)
        elif step == 1:
            self._pause(worker_b, fault.hold_s)
        elif step == 2:
            self._kill_and_restart(stack.relay, fault.hold_s)
        elif step == 3:
            self._kill_and_restart(stack.applier, fault.hold_s)
        elif step in (4, 5):
            self._pause(stack.redis, fault.hold_s)
        elif step == 6:
            stack.redis.signal(signal.SIGTERM)
            stack.redis.wait_exit()
            time.sleep(fault.hold_s)
            stack.redis.start()
            stack.wait_redis()
        else:
            self.sigkills.append(time.monotonic())
            stack.redis.signal(signal.SIGKILL)
            stack.redis.wait_exit()
            time.sleep(fault.hold_s)
            stack.redis.start()
            stack.wait_redis()

    @staticmethod
    def _kill_and_restart(proc: Proc, hold_s: float) -> None:
        proc.signal(signal.SIGKILL)
        time.sleep(hold_s)
        proc.restart()

    @staticmethod
    def _pause(proc: Proc, hold_s: float) -> None:
        proc.signal(signal.SIGSTOP)
        time.sleep(hold_s)
        proc.signal(signal.SIGCONT)


def cycles(duration_s: float) -> tuple[Fault, ...]:
    """As many whole cycles as fit in ``duration_s``; at least one."""
    length = sum(f.hold_s + f.settle_s for f in CYCLE)
    return CYCLE * max(1, int(duration_s // length))
