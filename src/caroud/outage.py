"""Riding out a dependency that stopped answering (Redis, the database): backoff and quiet logs.

Every long-running process (the worker, the relay, the results applier) loops on
its work; when a call fails because Redis or the database is away, it waits and
tries again, forever. :class:`Outage` keeps the two things that loop needs:
how long to wait (exponential, with jitter, capped) and what to log — one line
when the outage starts, a reminder every :data:`REMIND_S` while it lasts, one
line when it is over with how long it took. Not a line per failed attempt.
"""

from __future__ import annotations

import logging
import random
import time

FIRST_DELAY_S = 0.1
MAX_DELAY_S = 5.0
REMIND_S = 60.0


class Outage:
    """The state of one process's dependency: up, or down since when."""

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        *,
        first_delay_s: float = FIRST_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
        remind_s: float = REMIND_S,
        extra: dict[str, object] | None = None,
    ) -> None:
        self.log = log
        self.what = what
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.remind_s = remind_s
        self.extra = dict(extra or {})
        self.since: float | None = None
        """When the outage began (monotonic), or None while all is well."""
        self.failures = 0
        self._delay = first_delay_s
        self._reminded = 0.0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException) -> float:
        """Record a failed attempt; how long to wait before the next one (seconds)."""
        now = time.monotonic()
        self.failures += 1
        if self.since is None:
            self.since, self._reminded = now, now
            self._delay = self.first_delay_s
            self.log.warning(
                f"{self.what} failed, retrying until it is back: {error}",
                extra=self.extra | {"error": str(error)},
            )
        else:
            if now - self._reminded >= self.remind_s:
                self._reminded = now
                self.log.warning(
                    f"{self.what} still failing after {now - self.since:.0f} s "
                    f"({self.failures} attempts): {error}",
                    extra=self.extra | {"error": str(error)},
                )
            self._delay = min(self._delay * 2, self.max_delay_s)
        return self._delay * random.uniform(0.5, 1.0)

    def ok(self) -> None:
        """Record a successful attempt (logs the end of an outage, if there was one)."""
        if self.since is None:
            return
        lasted = time.monotonic() - self.since
        self.log.warning(
            f"{self.what} works again after {lasted:.1f} s ({self.failures} failed attempts)",
            extra=self.extra | {"outage_s": round(lasted, 1)},
        )
        self.since = None
        self.failures = 0
        self._delay = self.first_delay_s
