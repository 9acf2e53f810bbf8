"""How tickets and matches are laid out in Redis hashes (short field names save memory).

Ticket hash: ``q`` queue, ``s`` status, ``p`` players ``id=rating,...``,
``l`` latencies ``region=ms,...``, ``c`` created (ms), and once matched ``m``
match id and ``tm`` team index. Match hash: ``q`` queue, ``s`` status, ``r``
region, ``rs`` acceptable regions best first, ``sp`` rating spread, ``ib`` imbalance
(``|P(win) - 0.5|``), ``tm`` teams ``t1,t2|t3,t4``, ``c`` created (ms); once assigned
``srv``, ``host``, ``port``, ``as`` (ms); ``st`` started and ``en`` ended (ms), ``w``
winner (team index, ``draw``, or empty when interrupted), ``why`` the reason of a requeue.
Ids and region names never contain ``=``, ``,`` or ``|`` (validation ensures it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from caroud.matchmaking.models import (
    Match,
    MatchStatus,
    PlayerEntry,
    ServerAddress,
    Ticket,
    TicketStatus,
)


def number(value: float) -> str:
    """A float in its shortest exact text (``1500`` rather than ``1500.0``)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def encode_players(players: Sequence[PlayerEntry]) -> str:
    return ",".join(f"{p.id}={number(p.rating)}" for p in players)


def decode_players(text: str) -> tuple[PlayerEntry, ...]:
    out = []
    for item in text.split(","):
        pid, _, rating = item.partition("=")
        out.append(PlayerEntry(pid, float(rating)))
    return tuple(out)


def encode_latencies(latencies: Mapping[str, float]) -> str:
    return ",".join(f"{r}={number(ms)}" for r, ms in latencies.items())


def decode_latencies(text: str) -> dict[str, float]:
    if not text:
        return {}
    return {r: float(ms) for r, _, ms in (item.partition("=") for item in text.split(","))}


def encode_teams(teams: Sequence[Sequence[str]]) -> str:
    return "|".join(",".join(team) for team in teams)


def decode_teams(text: str) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(team.split(",")) for team in text.split("|"))


def decode_ticket(ticket_id: str, fields: Mapping[str, str]) -> Ticket:
    """A :class:`Ticket` from its hash fields (as HGETALL returns them)."""
    team = fields.get("tm")
    return Ticket(
        id=ticket_id,
        queue=fields["q"],
        players=decode_players(fields["p"]),
        created_at=int(fields["c"]) / 1000.0,
        latencies=decode_latencies(fields.get("l", "")),
        status=TicketStatus(fields["s"]),
        match_id=fields.get("m") or None,
        team=int(team) if team is not None else None,
    )


TICKET_FIELDS = ("q", "s", "p", "l", "c", "m", "tm")
"""The fields of a ticket hash, in the order :func:`decode_ticket_values` expects."""


def decode_ticket_values(ticket_id: str, values: Sequence[str | None]) -> Ticket | None:
    """A ticket from an HMGET of :data:`TICKET_FIELDS`, or None if the hash is gone."""
    if values[0] is None:
        return None
    return decode_ticket(
        ticket_id, {k: v for k, v in zip(TICKET_FIELDS, values, strict=True) if v is not None}
    )


def _seconds(ms: str | None) -> float | None:
    return int(ms) / 1000.0 if ms else None


def decode_match(match_id: str, fields: Mapping[str, str]) -> Match:
    """A :class:`Match` from its hash fields (see the module docstring)."""
    server = None
    if fields.get("srv"):
        server = ServerAddress(fields["srv"], fields["host"], int(fields["port"]), fields["r"])
    winner = fields.get("w", "")
    return Match(
        id=match_id,
        queue=fields["q"],
        teams=decode_teams(fields["tm"]),
        region=fields["r"],
        spread=float(fields["sp"]),
        created_at=int(fields["c"]) / 1000.0,
        status=MatchStatus(fields["s"]),
        regions=tuple(fields["rs"].split(",")) if fields.get("rs") else (fields["r"],),
        server=server,
        started_at=_seconds(fields.get("st")),
        ended_at=_seconds(fields.get("en")),
        winner=int(winner) if winner.isdigit() else None,
        imbalance=float(fields["ib"]) if fields.get("ib") else None,
    )
