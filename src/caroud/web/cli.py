"""What ``caroud`` calls for the Django side: set Django up, migrate, create players and keys.

Each function configures Django itself (``DJANGO_SETTINGS_MODULE``, default
``caroud.project.settings``) and brings the database's tables up to date first, so
``caroud player create alice`` works on a fresh checkout.
"""

from __future__ import annotations

import io
import os

DEFAULT_SETTINGS_MODULE = "caroud.project.settings"


def setup_django() -> None:
    """Configure Django once per process (a no-op when it is already set up)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", DEFAULT_SETTINGS_MODULE)
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()


def migrate() -> list[str]:
    """Apply the migrations the database lacks; the names of those applied."""
    setup_django()
    from django.core.management import call_command
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections["default"])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        call_command("migrate", interactive=False, verbosity=0, stdout=io.StringIO())
    return [f"{m.app_label}.{m.name}" for m, _ in plan]


def player_create(name: str, rating: float | None = None) -> dict[str, str]:
    """Create a player; ``{"id", "token"}`` (the token is shown only now).

    :class:`~caroud.errors.ValidationError` for a bad name or rating,
    :class:`~caroud.errors.ConflictError` if the name is taken.
    """
    migrate()
    from caroud.web.models import DEFAULT_RATING
    from caroud.web.services import create_player

    created = create_player(name, DEFAULT_RATING if rating is None else rating)
    return {"id": created.id, "token": created.token}


def server_key_create(name: str) -> dict[str, str]:
    """Create a key for game servers; ``{"key"}`` (shown only now). ConflictError if taken."""
    migrate()
    from caroud.web.services import create_server_key

    return {"key": create_server_key(name).token}


def apply_results(block_ms: int | None = None) -> int:
    """Apply results waiting on the results stream (see ``services.apply_pending_results``)."""
    migrate()
    from caroud.web.services import apply_pending_results

    return apply_pending_results(block_ms=block_ms)
