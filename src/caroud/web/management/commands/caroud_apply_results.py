"""``manage.py caroud_apply_results [--follow]``: apply results from the Redis results stream."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from caroud.errors import CaroudError
from caroud.web.services import apply_pending_results


class Command(BaseCommand):
    help = "Apply match results not yet in the database (ratings, match history)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--follow", action="store_true", help="keep applying until Ctrl-C")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            total = apply_pending_results()
            while options["follow"]:
                close_old_connections()  # a long-lived loop: drop stale connections
                total += apply_pending_results(block_ms=1000)
        except CaroudError as e:
            raise CommandError(str(e)) from e
        except KeyboardInterrupt:
            pass
        self.stdout.write(f"{total} results applied")
