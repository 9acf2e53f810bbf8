"""Checks on caller input to the pool, before anything is written: each names the field and rule."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from caroud.errors import ConfigError, ValidationError
from caroud.matchmaking.queues import NAME_RE
from caroud.matchmaking.validation import check_id
from caroud.servers.models import REPORTED_STATES, ServerState, Strategy

MAX_CAPACITY = 1024
"""Match slots of one server, at most: bounds the work of removing a server in one call."""
MAX_LABELS = 32
ADDRESS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}\Z")
LABEL_VALUE_RE = re.compile(r"^[A-Za-z0-9_.:/+@-]{1,128}\Z")

__all__ = [
    "check_address",
    "check_avoid",
    "check_id",
    "check_int",
    "check_labels",
    "check_load",
    "check_pool_config",
    "check_region",
    "check_regions",
    "check_state",
    "check_strategy",
    "clock_arg",
]


def check_pool_config(pool: str, regions: Sequence[str]) -> tuple[str, ...]:
    """The pool's regions, if its name and regions are usable in keys; else ConfigError."""
    if not NAME_RE.match(pool):
        raise ConfigError(f"pool name {pool!r}: use 1-64 letters, digits, '.', '_' or '-'")
    if isinstance(regions, str) or not regions:
        raise ConfigError("a server pool needs a non-empty list of region names")
    for region in regions:
        if not isinstance(region, str) or not NAME_RE.match(region):
            raise ConfigError(f"region {region!r}: use 1-64 letters, digits, '.', '_' or '-'")
    if len(set(regions)) != len(regions):
        raise ConfigError(f"regions {list(regions)} name a region twice")
    return tuple(regions)


def clock_arg(now: float | None) -> str:
    """The clock argument of a pool script: ``now`` in ms, or "" for the Redis server's clock."""
    if now is None:
        return ""
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise ValidationError("now", f"must be a number of seconds, got {now!r}")
    return str(round(now * 1000))


def check_int(field: str, value: Any, low: int, high: int) -> int:
    """A whole number (not a bool) from ``low`` to ``high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(field, f"must be a whole number from {low} to {high}, got {value!r}")
    return value


def check_address(address: Any) -> str:
    """A host name or an IP address (v4 or v6)."""
    if not isinstance(address, str) or not ADDRESS_RE.match(address):
        raise ValidationError(
            "address", f"must be a host name or IP address (letters, digits, .:-), got {address!r}"
        )
    return address


def check_region(field: str, region: Any, known: Sequence[str]) -> str:
    """One of the pool's regions."""
    if not isinstance(region, str) or region not in known:
        raise ValidationError(
            field, f"unknown region {region!r}; the pool's regions: {', '.join(known)}"
        )
    return region


def check_regions(regions: Any, known: Sequence[str]) -> tuple[str, ...]:
    """A match's regions in fallback order: one or more of the pool's, each once."""
    wanted = (regions,) if isinstance(regions, str) else tuple(regions)
    if not wanted:
        raise ValidationError("regions", "name at least one region")
    for i, region in enumerate(wanted):
        check_region(f"regions[{i}]", region, known)
    if len(set(wanted)) != len(wanted):
        raise ValidationError("regions", f"{list(wanted)} names a region twice")
    return wanted


MAX_AVOID = 64
"""Servers one allocation may be told to avoid, at most (a match avoids a few)."""


def check_avoid(avoid: Any) -> tuple[str, ...]:
    """Server ids an allocation must not use: at most :data:`MAX_AVOID` ids."""
    wanted = (avoid,) if isinstance(avoid, str) else tuple(avoid)
    if len(wanted) > MAX_AVOID:
        raise ValidationError("avoid", f"at most {MAX_AVOID} servers, got {len(wanted)}")
    return tuple(check_id(f"avoid[{i}]", sid) for i, sid in enumerate(wanted))


def check_labels(field: str, labels: Any) -> dict[str, str]:
    """Labels (or a selector): at most 32 pairs of an id-like name and a plain-text value."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise ValidationError(field, "must be an object of label name to value")
    if len(labels) > MAX_LABELS:
        raise ValidationError(field, f"at most {MAX_LABELS} labels, got {len(labels)}")
    out: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not NAME_RE.match(key):
            raise ValidationError(
                field, f"label names are 1-64 letters, digits, '.', '_' or '-', got {key!r}"
            )
        if not isinstance(value, str) or not LABEL_VALUE_RE.match(value):
            raise ValidationError(
                f"{field}.{key}",
                f"must be 1-128 letters, digits or any of _ . : / + @ -, got {value!r}",
            )
        out[key] = value
    return out


def check_state(state: Any) -> ServerState:
    """A state a heartbeat may report: ``ready`` or ``draining`` (the others are the pool's)."""
    for reported in REPORTED_STATES:
        if state == reported.value:
            return reported
    raise ValidationError("state", f"must be 'ready' or 'draining', got {state!r}")


def check_load(load: Any) -> float:
    """A reported load: a finite, non-negative number."""
    if isinstance(load, bool) or not isinstance(load, int | float) or not math.isfinite(load):
        raise ValidationError("load", f"must be a finite number, got {load!r}")
    if load < 0:
        raise ValidationError("load", f"must not be negative, got {load!r}")
    return float(load)


def check_strategy(strategy: Any) -> Strategy:
    """``packed`` or ``distributed``."""
    try:
        return Strategy(strategy)
    except ValueError:
        raise ValidationError(
            "strategy", f"must be 'packed' or 'distributed', got {strategy!r}"
        ) from None
