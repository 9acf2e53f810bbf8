"""The project's URLs: the Caroud app at the root, the admin at ``/admin/``."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

handler400 = "caroud.web.api.handlers.bad_request"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("caroud.web.urls")),
]
