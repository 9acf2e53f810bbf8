"""The dashboard page and its JSON: thin views over :mod:`caroud.web.dashboard.data`."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_safe

from caroud.errors import CaroudError
from caroud.web.apps import app_config, get_context
from caroud.web.dashboard.data import DashboardState
from caroud.web.errors import error_body, status_of, with_retry_after

REFRESH_MS = 1000


def dashboard_state() -> DashboardState:
    """This process's :class:`DashboardState` (one per engine context, kept by the app)."""
    return app_config().derived("dashboard", lambda _ctx: DashboardState())


@require_safe
def dashboard_view(request: HttpRequest) -> HttpResponse:
    """The page: a shell the script fills from ``/dashboard/data``, every second."""
    context = {"data_url": reverse("caroud-dashboard-data"), "refresh_ms": REFRESH_MS}
    return render(request, "caroud/dashboard.html", context)


@require_safe
def dashboard_data_view(request: HttpRequest) -> JsonResponse:
    """The figures as JSON; Redis unreachable answers the API's error shape (503).

    A 503, not figures: nothing can be read, and a monitor must see a failure. The page
    turns the error's code (``redis_*``) into its first alarm, *Redis down*.
    """
    try:
        data = dashboard_state().snapshot(get_context())
    except CaroudError as e:
        response = with_retry_after(JsonResponse(error_body(e.code, str(e)), status=status_of(e)))
    else:
        response = JsonResponse(data)
    response["Cache-Control"] = "no-store"
    return response
