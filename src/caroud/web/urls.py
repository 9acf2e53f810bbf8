"""URLs of the app: ``api/`` (the API, its docs and schema), ``healthz``, ``readyz``,
``metrics`` (Prometheus) and ``dashboard`` (with ``dashboard/data``).

Include at the site root: ``path("", include("caroud.web.urls"))``. Every API view
is wrapped by :func:`caroud.web.api.handlers.guard`, and any other path under
``api/`` answers a JSON 404, so nothing under ``/api/`` is ever an HTML page.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path, re_path

from caroud.web.api import api
from caroud.web.api.handlers import guard, json_not_found
from caroud.web.api.public import healthz_view, readyz_view
from caroud.web.metrics_view import metrics_view


def _guarded(
    patterns: list[URLPattern | URLResolver],
) -> list[URLPattern | URLResolver]:
    out: list[URLPattern | URLResolver] = []
    for p in patterns:
        if isinstance(p, URLPattern):
            out.append(URLPattern(p.pattern, guard(p.callback), p.default_args, p.name))
        else:
            out.append(p)
    return out


_patterns, _app_name, _namespace = api.urls

urlpatterns = [
    path("api/", include((_guarded(_patterns), _app_name), namespace=_namespace)),
    re_path(r"^api(?:/.*)?$", json_not_found),
    path("healthz", healthz_view, name="caroud-healthz"),
    path("readyz", readyz_view, name="caroud-readyz"),
    path("metrics", metrics_view, name="caroud-metrics"),
    path("", include("caroud.web.dashboard.urls")),
]
