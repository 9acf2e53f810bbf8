"""Durable records: players and their ratings, server keys, parties, finished matches.

Live state (tickets, matches being played, the server pool) is in Redis; what must
outlive it is here. Public ids (``Player.public_id``, ``Party.public_id``) are random
and match the engine's id rule (1-64 of letters, digits, ``._-``), so a player's id
is what tickets and matches in Redis carry; database keys never leave the database.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from caroud.ids import new_id

DEFAULT_RATING = 1500.0
INVITE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
"""Invite codes: no 0/O or 1/I, so they read and type unambiguously."""


def new_player_id() -> str:
    return "p" + new_id()


def new_party_id() -> str:
    return "y" + new_id()


def new_invite_code() -> str:
    return "".join(secrets.choice(INVITE_ALPHABET) for _ in range(10))


class Player(models.Model):
    """A player: a Django user with a rating, a token, and a history of rating changes."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="caroud_player"
    )
    public_id = models.CharField(max_length=64, unique=True, default=new_player_id)
    rating = models.FloatField(default=DEFAULT_RATING)
    games_played = models.PositiveIntegerField(default=0)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("pk",)

    @property
    def name(self) -> str:
        return str(self.user.get_username())

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"


class ServerKey(models.Model):
    """A key game servers authenticate with; revoking it locks its servers out."""

    name = models.CharField(max_length=64, unique=True)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class GameServer(models.Model):
    """Which server key registered which pool server: a key acts only on its own servers."""

    server_id = models.CharField(max_length=64, unique=True)
    key = models.ForeignKey(ServerKey, on_delete=models.CASCADE, related_name="servers")
    address = models.CharField(max_length=253)
    port = models.PositiveIntegerField()
    region = models.CharField(max_length=64)
    registered_at = models.DateTimeField(auto_now_add=True)
    deregistered_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.server_id} {self.address}:{self.port} ({self.region})"


class Party(models.Model):
    """A group that queues together: its leader queues it, with the members who joined."""

    public_id = models.CharField(max_length=64, unique=True, default=new_party_id)
    leader = models.ForeignKey(Player, on_delete=models.CASCADE, related_name="led_parties")
    invite_code = models.CharField(max_length=16, default=new_invite_code)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "parties"

    def __str__(self) -> str:
        return self.public_id


class PartyMember(models.Model):
    """A player in a party (a player is in one party at most)."""

    party = models.ForeignKey(Party, on_delete=models.CASCADE, related_name="members")
    player = models.OneToOneField(Player, on_delete=models.CASCADE, related_name="party_member")
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("joined_at", "pk")


class MatchRecord(models.Model):
    """A match's durable history: queue, teams, server, start, end, result, rating changes.

    ``match_id`` is the engine's id and unique: the row is the lock that makes a
    result apply once. ``rated_at`` is set in the same transaction as the ratings.
    """

    match_id = models.CharField(max_length=64, unique=True)
    queue = models.CharField(max_length=64)
    teams = models.JSONField(default=list, help_text="player ids by team")
    players = models.ManyToManyField(Player, through="MatchPlayer", related_name="matches")
    server_id = models.CharField(max_length=64, blank=True, default="")
    server_address = models.CharField(max_length=253, blank=True, default="")
    server_port = models.PositiveIntegerField(null=True, blank=True)
    region = models.CharField(max_length=64, blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    winner = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="winning team index; empty with an end time: a draw"
    )
    rated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.match_id

    @property
    def result(self) -> str:
        """``"team N"``, ``"draw"``, or ``""`` while the match has no result."""
        if self.ended_at is None:
            return ""
        return "draw" if self.winner is None else f"team {self.winner}"


class MatchPlayer(models.Model):
    """A registered player's place in a match."""

    match = models.ForeignKey(MatchRecord, on_delete=models.CASCADE)
    player = models.ForeignKey(Player, on_delete=models.CASCADE)
    team = models.PositiveSmallIntegerField()

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=("match", "player"), name="caroud_one_seat_per_match"),
        )


class RatingHistory(models.Model):
    """One rating change: which match, from what to what. At most one per player and match."""

    player = models.ForeignKey(Player, on_delete=models.CASCADE, related_name="rating_history")
    match = models.ForeignKey(MatchRecord, on_delete=models.CASCADE, related_name="rating_changes")
    team = models.PositiveSmallIntegerField()
    rating_before = models.FloatField()
    rating_after = models.FloatField()
    games_before = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("pk",)
        verbose_name_plural = "rating history"
        constraints = (
            models.UniqueConstraint(fields=("player", "match"), name="caroud_one_change_per_match"),
        )

    @property
    def delta(self) -> float:
        return self.rating_after - self.rating_before
