"""``manage.py caroud_server_key_create NAME``: prints ``{"key"}`` as JSON."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from caroud.errors import CaroudError
from caroud.web.services import create_server_key


class Command(BaseCommand):
    help = "Create a key for game servers; prints it (shown only once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            created = create_server_key(options["name"])
        except CaroudError as e:
            raise CommandError(str(e)) from e
        self.stdout.write(json.dumps({"key": created.token}))
