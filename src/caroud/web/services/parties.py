"""Parties: a leader creates one, friends join with its invite code, the leader queues it.

A player is in at most one party. A party is only ever seen by its members: to
anyone else it does not exist (404), except that joining needs its id and code.
Leaving hands the lead to the longest-standing member; the last one out ends it.
A ticket already queued is not changed by later joins or leaves.

Two requests may race past the "already in a party" check (the same player creating
two parties, or joining two, at once); the one-party-per-player constraint then
refuses the second, whose transaction is rolled back and answered as the same 409.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.db import IntegrityError, transaction

from caroud.errors import ConflictError, NotFoundError
from caroud.matchmaking.queues import QueueRegistry
from caroud.matchmaking.validation import check_id
from caroud.web.errors import ForbiddenError
from caroud.web.models import Party, PartyMember, Player


def max_party_size(queues: QueueRegistry) -> int:
    """The largest party any queue takes: a party never grows past what it could queue as."""
    return max(size for q in queues for size in q.party_sizes)


def _not_found(party_id: str) -> NotFoundError:
    return NotFoundError(f"party {party_id!r} does not exist, or you are not in it")


def members_of(party: Party) -> list[Player]:
    """The party's players, in the order they joined (the leader first)."""
    return [m.player for m in party.members.select_related("player__user").order_by("joined_at")]


def party_json(party: Party) -> dict[str, Any]:
    """``{"id", "invite_code", "leader", "members"}`` (member ids, in join order)."""
    return {
        "id": party.public_id,
        "invite_code": party.invite_code,
        "leader": party.leader.public_id,
        "members": [p.public_id for p in members_of(party)],
    }


def _current_party(player: Player) -> Party | None:
    member = PartyMember.objects.select_related("party").filter(player=player).first()
    return member.party if member is not None else None


def _already_in(party: Party) -> ConflictError:
    return ConflictError(f"you are in party {party.public_id!r} already: leave it first")


def _raced(player: Player) -> ConflictError:
    """The refusal for a write the database's constraints turned down (the transaction
    rolled back): another request of ``player`` changed its party at the same time."""
    current = _current_party(player)
    if current is not None:
        return _already_in(current)
    return ConflictError(
        "another request changed your party at the same time and this one was undone: try again"
    )


def create_party(player: Player) -> Party:
    """A new party led by ``player``; :class:`ConflictError` if already in one."""
    try:
        with transaction.atomic():
            current = _current_party(player)
            if current is not None:
                raise _already_in(current)
            party = Party.objects.create(leader=player)
            PartyMember.objects.create(party=party, player=player)
    except IntegrityError as e:
        raise _raced(player) from e
    return party


def party_of_member(player: Player, party_id: str) -> Party:
    """The party if ``player`` is in it; :class:`NotFoundError` otherwise."""
    check_id("party_id", party_id)
    party = (
        Party.objects.select_related("leader")
        .filter(public_id=party_id, members__player=player)
        .first()
    )
    if party is None:
        raise _not_found(party_id)
    return party


def join_party(player: Player, party_id: str, invite_code: str, max_size: int) -> Party:
    """Add ``player`` to the party (idempotent for a member).

    :class:`NotFoundError` for an unknown party, :class:`ForbiddenError` for a wrong
    invite code, :class:`ConflictError` if in another party or the party is full.
    """
    check_id("party_id", party_id)
    try:
        return _add_member(player, party_id, invite_code, max_size)
    except IntegrityError as e:
        raise _raced(player) from e


def _add_member(player: Player, party_id: str, invite_code: str, max_size: int) -> Party:
    # The party's row lock serialises joins and leaves of one party (its last seat);
    # joins of one player to two parties meet at the one-party-per-player constraint.
    with transaction.atomic():
        party = Party.objects.select_for_update().filter(public_id=party_id).first()
        if party is None:
            raise _not_found(party_id)
        if not hmac.compare_digest(party.invite_code.encode(), invite_code.encode()):
            raise ForbiddenError(f"that invite code is not the code of party {party_id!r}")
        current = _current_party(player)
        if current is not None and current.pk == party.pk:
            return party
        if current is not None:
            raise _already_in(current)
        if party.members.count() >= max_size:
            raise ConflictError(
                f"party {party_id!r} is full: no queue takes parties larger than {max_size}"
            )
        PartyMember.objects.create(party=party, player=player)
    return party


def leave_party(player: Player, party_id: str) -> None:
    """Take ``player`` out of the party; :class:`NotFoundError` if not in it."""
    check_id("party_id", party_id)
    with transaction.atomic():
        party = (
            Party.objects.select_for_update()
            .filter(public_id=party_id, members__player=player)
            .first()
        )
        if party is None:
            raise _not_found(party_id)
        PartyMember.objects.filter(party=party, player=player).delete()
        rest = party.members.order_by("joined_at", "pk").first()
        if rest is None:
            party.delete()
        elif party.leader_id == player.pk:
            party.leader = rest.player
            party.save(update_fields=["leader"])
