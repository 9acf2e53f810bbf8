"""Random ids for tickets, matches, players and servers: letters and digits only.

Ids appear in Redis keys and in the encoded fields of records, so they never contain
the separators those use (``=``, ``,``, ``|``, ``:``), and they are short: a queued
ticket stores its id four times.
"""

from __future__ import annotations

import secrets


def new_id(nbytes: int = 9) -> str:
    """A random id of ``nbytes`` bytes (72 bits by default: 12 characters)."""
    return secrets.token_urlsafe(nbytes).replace("-", "A").replace("_", "B")
