"""The pool's Lua files: each registered, each with its header, keys only from KEYS."""

from __future__ import annotations

import itertools
import re
from importlib import resources

import pytest

from caroud.redis.client import Redis
from caroud.redis.scripts import PoolScripts, source

LUA = resources.files("caroud").joinpath("lua")
POOL_FILES = sorted(
    p.name.removesuffix(".lua")
    for p in LUA.iterdir()
    if p.name.startswith("pool_") and p.name != "pool_lib.lua"
)


def test_every_pool_script_is_registered(client: Redis) -> None:
    scripts = PoolScripts.register(client)
    assert sorted(f"pool_{name}" for name in PoolScripts.__dataclass_fields__) == POOL_FILES
    for name in PoolScripts.__dataclass_fields__:
        text = getattr(scripts, name).script
        assert text.startswith(source("pool_lib")) and text.endswith(source(f"pool_{name}"))


@pytest.mark.parametrize("name", [*POOL_FILES, "pool_lib"])
def test_header_names_keys_arguments_and_replies(name: str) -> None:
    text = source(name)
    header = "\n".join(itertools.takewhile(lambda line: line.startswith("--"), text.splitlines()))
    assert header.startswith(f"-- {name}.lua: ")
    assert "KEYS[" in header and "ARGV[" in header
    if name != "pool_lib":
        assert "Returns" in header


@pytest.mark.parametrize("name", [*POOL_FILES, "pool_lib"])
def test_keys_come_from_keys(name: str) -> None:
    """No key is built in Lua: the first argument of every redis.call is a KEYS-derived name."""
    code = "\n".join(line for line in source(name).splitlines() if not line.startswith("--"))
    key_names = {"SRV", "HB", "ALLOC", "PENDING", "RUNNING", "DONE", "STATS", "EVENTS", "key"}
    for command, first in re.findall(r"redis\.call\('(\w+)',\s*([^,)]+)", code):
        if command == "TIME":
            continue
        assert first in key_names or re.fullmatch(r"FREE\[.+\]|KEYS\[\d\]", first), (
            f"{name}: {command} on {first}"
        )
