"""The HTTP API, ``/api/v1``: django-ninja, OpenAPI at ``/api/openapi.json``, docs at ``/api/docs``.

Mount it with ``path("", include("caroud.web.urls"))`` (which also guards every
route, see :mod:`caroud.web.api.handlers`). The contract is in ``docs/api.md``.
"""

from __future__ import annotations

from ninja import NinjaAPI

from caroud.web.api import handlers, players, public, servers

api = NinjaAPI(
    title="Caroud",
    version="v1",
    description="Matchmaking and game-server pooling. Errors are "
    '`{"error": {"code": "...", "message": "..."}}`.',
    urls_namespace="caroud-api",
    docs_url="/docs",
    openapi_url="/openapi.json",
)
handlers.install(api)
api.add_router("/v1/", players.router)
api.add_router("/v1/", servers.router)
api.add_router("/v1/", public.router)

__all__ = ["api"]
