"""The ASGI application: ``caroud.project.asgi:application`` (e.g. ``uvicorn`` or ``daphne``).

Plain Django for now; static files (the admin's, the API docs' Swagger UI) are served
by Django's own static handler so the project runs with no web server in front.
"""

from __future__ import annotations

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "caroud.project.settings")

django_application = get_asgi_application()
application = ASGIStaticFilesHandler(django_application)
