"""``manage.py caroud_apply_results [--follow]``: apply results from the Redis results stream."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from caroud.errors import CaroudError
from caroud.web.services import apply_pending_results, follow_results


class Command(BaseCommand):
    help = (
        "Apply match results not yet in the database (ratings, match history); with "
        "--follow, keep applying them as they come (through Redis and database outages) "
        "until SIGTERM or Ctrl-C."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--follow", action="store_true", help="keep applying until stopped")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["follow"]:
            stop = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            total = follow_results(stop)
        else:
            try:
                total = apply_pending_results()
            except (CaroudError, DatabaseError) as e:
                raise CommandError(str(e)) from e
        self.stdout.write(f"{total} results applied")
