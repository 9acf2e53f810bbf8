"""The Django side of Caroud: players, Elo ratings, match history, and the HTTP API.

Add it to a Django project with::

    INSTALLED_APPS += ["ninja", "caroud.web"]
    urlpatterns += [path("", include("caroud.web.urls"))]   # /api/v1/..., /healthz, /readyz

Live state (tickets, matches, the game-server pool) stays in Redis, behind the
engine (:class:`caroud.context.Context`, built once per process by the app config);
durable history (players, ratings, finished matches) goes to the database.
:mod:`caroud.project` is a ready project that does exactly this.
"""
