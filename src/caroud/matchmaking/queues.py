"""Queue definitions: built-in defaults, or a TOML file (``CAROUD_QUEUES_FILE``).

A file holds one table per queue; every key is optional except the shape::

    [queues.ranked-1v1]
    teams = 2              # number of teams (N for a free-for-all of N)
    team_size = 1          # players per team
    party_sizes = [1]      # allowed ticket sizes (default: 1..team_size)
    window = { initial = 50, growth_per_s = 10, max = 400, adaptive = 0.7 }
                           # rating spread: starts at `initial` (tighter where the queue
                           # is busy: `adaptive`, 0 = off; default 0.7 for teams of one,
                           # 0 otherwise), grows `growth_per_s` per second up to `max`
    max_wait_s = 300       # then the ticket times out
    regions = ["eu-west", "us-east", "ap-southeast"]
    max_latency_ms = 120
    strategy = "packed"    # game servers: "packed" (fewest servers) or "distributed"
    fallback_regions = []  # where to look for a server when the players' regions are full
    selector = { build = "1.4" }  # labels a server must have
    assign_timeout_s = 60  # no server by then: the tickets go back to the queue
    stack_size = 4         # parties this big don't face a team of solos until their
                           # window is fully open (default team_size - 1 from 3 up; 0 = off)
    team_balance = 0.2     # team averages differ by at most this fraction of the
                           # group's window (default 0.2 for teams of 2+, 1 = any)
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caroud.errors import ConfigError, UnknownQueueError
from caroud.matchmaking.models import QueueConfig, RatingWindow

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
"""Queue, region, player and ticket ids: what may appear in keys and encoded fields."""

DEFAULT_REGIONS = ("eu-west", "us-east", "ap-southeast")

DEFAULTS: dict[str, dict[str, Any]] = {
    "ranked-1v1": {"teams": 2, "team_size": 1},
    "ranked-2v2": {"teams": 2, "team_size": 2},
    "ranked-5v5": {"teams": 2, "team_size": 5},
    "ffa-8": {"teams": 8, "team_size": 1, "window": {"initial": 100, "max": 600}},
}


def _number(name: str, key: str, value: Any, low: float, high: float = float("inf")) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ConfigError(
            f"queue {name!r}: {key} must be a number in [{low}, {high}], got {value!r}"
        )
    return float(value)


def _count(name: str, key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(
            f"queue {name!r}: {key} must be a whole number in [{low}, {high}], got {value!r}"
        )
    return value


def parse_queue(name: str, spec: Mapping[str, Any]) -> QueueConfig:
    """One validated :class:`QueueConfig` from its table."""
    if not NAME_RE.match(name):
        raise ConfigError(f"queue name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
    known = {
        "teams",
        "team_size",
        "party_sizes",
        "window",
        "max_wait_s",
        "regions",
        "max_latency_ms",
        "strategy",
        "fallback_regions",
        "selector",
        "assign_timeout_s",
        "stack_size",
        "team_balance",
    }
    if unknown := set(spec) - known:
        raise ConfigError(
            f"queue {name!r}: unknown keys {sorted(unknown)}; allowed: {sorted(known)}"
        )
    teams = _count(name, "teams", spec.get("teams"), 2, 100)
    team_size = _count(name, "team_size", spec.get("team_size"), 1, 50)
    parties = spec.get("party_sizes", list(range(1, team_size + 1)))
    if not isinstance(parties, list) or not parties:
        raise ConfigError(f"queue {name!r}: party_sizes must be a non-empty list")
    party_sizes = tuple(sorted({_count(name, "party_sizes", p, 1, team_size) for p in parties}))
    window = spec.get("window", {})
    if not isinstance(window, Mapping) or set(window) - {
        "initial",
        "growth_per_s",
        "max",
        "adaptive",
    }:
        raise ConfigError(f"queue {name!r}: window takes initial, growth_per_s, max and adaptive")
    initial = _number(name, "window.initial", window.get("initial", 50), 0)
    maximum = _number(name, "window.max", window.get("max", 400), initial)
    growth = _number(name, "window.growth_per_s", window.get("growth_per_s", 10), 0)
    adaptive = _number(
        name, "window.adaptive", window.get("adaptive", 0.7 if team_size == 1 else 0.0), 0, 10
    )
    stack = _count(
        name,
        "stack_size",
        spec.get("stack_size", team_size - 1 if team_size >= 3 else 0),
        0,
        team_size,
    )
    if stack == 1:
        raise ConfigError(
            f"queue {name!r}: stack_size 1 would call every solo a stack; "
            f"use 0 (off) or 2-{team_size}"
        )
    balance = _number(
        name, "team_balance", spec.get("team_balance", 0.2 if team_size > 1 else 1.0), 0, 1
    )
    regions = spec.get("regions", list(DEFAULT_REGIONS))
    if (
        not isinstance(regions, list)
        or not regions
        or not all(isinstance(r, str) and NAME_RE.match(r) for r in regions)
    ):
        raise ConfigError(f"queue {name!r}: regions must be a non-empty list of region names")
    if len(set(regions)) != len(regions):
        raise ConfigError(f"queue {name!r}: regions lists a region twice")
    strategy = spec.get("strategy", "packed")
    if strategy not in ("packed", "distributed"):
        raise ConfigError(f"queue {name!r}: strategy must be 'packed' or 'distributed'")
    fallback = spec.get("fallback_regions", [])
    if not isinstance(fallback, list) or not all(
        isinstance(r, str) and NAME_RE.match(r) for r in fallback
    ):
        raise ConfigError(f"queue {name!r}: fallback_regions must be a list of region names")
    selector = spec.get("selector", {})
    if not isinstance(selector, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) and NAME_RE.match(k) and NAME_RE.match(v)
        for k, v in selector.items()
    ):
        raise ConfigError(f"queue {name!r}: selector must map label names to label values")
    return QueueConfig(
        name=name,
        teams=teams,
        team_size=team_size,
        party_sizes=party_sizes,
        window=RatingWindow(initial, growth, maximum, adaptive),
        max_wait_s=_number(name, "max_wait_s", spec.get("max_wait_s", 300), 1),
        regions=tuple(regions),
        max_latency_ms=_number(name, "max_latency_ms", spec.get("max_latency_ms", 150), 1),
        strategy=strategy,
        fallback_regions=tuple(fallback),
        selector=dict(selector),
        assign_timeout_s=_number(name, "assign_timeout_s", spec.get("assign_timeout_s", 60), 1),
        stack_size=stack,
        team_balance=balance,
    )


@dataclass(frozen=True)
class QueueRegistry:
    """The configured queues by name."""

    queues: Mapping[str, QueueConfig]

    def get(self, name: str) -> QueueConfig:
        """The queue called ``name``; :class:`UnknownQueueError` naming the known ones if none."""
        try:
            return self.queues[name]
        except KeyError:
            raise UnknownQueueError(
                f"queue: unknown queue {name!r}; "
                f"configured queues: {', '.join(sorted(self.queues))}"
            ) from None

    def __iter__(self) -> Iterator[QueueConfig]:
        return iter(self.queues.values())

    def __len__(self) -> int:
        return len(self.queues)

    def all_regions(self) -> tuple[str, ...]:
        """Every region a queue names (its own or as a fallback), in first-seen order."""
        seen: dict[str, None] = {}
        for q in self.queues.values():
            seen.update(dict.fromkeys(q.regions + q.fallback_regions))
        return tuple(seen)

    @classmethod
    def from_specs(cls, specs: Mapping[str, Mapping[str, Any]]) -> QueueRegistry:
        if not specs:
            raise ConfigError("no queues are defined: add at least one [queues.NAME] table")
        return cls({name: parse_queue(name, spec) for name, spec in specs.items()})

    @classmethod
    def defaults(cls) -> QueueRegistry:
        return cls.from_specs(DEFAULTS)

    @classmethod
    def from_file(cls, path: Path) -> QueueRegistry:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise ConfigError(f"cannot read the queues file {path}: {e}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"the queues file {path} is not valid TOML: {e}") from e
        specs = data.get("queues")
        if not isinstance(specs, dict):
            raise ConfigError(f"the queues file {path} has no [queues.NAME] tables")
        return cls.from_specs(specs)

    @classmethod
    def load(cls, path: Path | None) -> QueueRegistry:
        """From ``path`` if given, else the built-in defaults."""
        return cls.from_file(path) if path is not None else cls.defaults()
