"""``dashboard`` (the page) and ``dashboard/data`` (its JSON). Included at the site root."""

from __future__ import annotations

from django.urls import path

from caroud.web.dashboard.views import dashboard_data_view, dashboard_view

urlpatterns = [
    path("dashboard", dashboard_view, name="caroud-dashboard"),
    path("dashboard/data", dashboard_data_view, name="caroud-dashboard-data"),
]
