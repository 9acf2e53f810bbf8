"""The admin: players, ratings and match history to look at (tokens are never shown)."""

from __future__ import annotations

from django.contrib import admin

from caroud.web.models import GameServer, MatchRecord, Party, Player, RatingHistory, ServerKey


@admin.register(Player)
class PlayerAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("public_id", "user", "rating", "games_played", "created_at")
    search_fields = ("public_id", "user__username")
    exclude = ("token_hash",)
    readonly_fields = ("public_id",)


@admin.register(RatingHistory)
class RatingHistoryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("player", "match", "team", "rating_before", "rating_after", "created_at")
    list_select_related = ("player__user", "match")


@admin.register(MatchRecord)
class MatchRecordAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("match_id", "queue", "region", "started_at", "ended_at", "winner", "rated_at")
    list_filter = ("queue",)
    search_fields = ("match_id",)


@admin.register(ServerKey)
class ServerKeyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "created_at", "revoked_at")
    exclude = ("token_hash",)


@admin.register(GameServer)
class GameServerAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("server_id", "key", "address", "port", "region", "registered_at")


@admin.register(Party)
class PartyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("public_id", "leader", "created_at")
