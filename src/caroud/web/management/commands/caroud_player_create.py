"""``manage.py caroud_player_create NAME [--rating R]``: prints ``{"id", "token"}`` as JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from caroud.errors import CaroudError
from caroud.web.models import DEFAULT_RATING
from caroud.web.services import create_player


class Command(BaseCommand):
    help = "Create a player; prints its id and bearer token (shown only once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--rating", type=float, default=DEFAULT_RATING)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            created = create_player(options["name"], options["rating"])
        except CaroudError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(json.dumps({"id": created.id, "token": created.token}))
