"""The ASGI application: ``caroud.project.asgi:application`` (e.g. ``uvicorn`` or ``daphne``).

HTTP goes to Django: requests under ``/api/`` through its synchronous (WSGI) handler
on a thread pool (:mod:`caroud.web.wsgi_bridge`: half the CPU per request of its
ASGI handler for the API's sync views), everything else through its ASGI handler
(static files, the admin's and the API docs' Swagger UI, served by Django's own
static handler so the project runs with no web server in front). WebSockets go to
Channels: ``/ws/matchmaking`` (:mod:`caroud.web.consumers`); any other path is
closed with code 4404.

No origin check on WebSockets: the socket is authenticated by a bearer token that a
page must hold and send itself (never a cookie the browser attaches on its own), so
a foreign page gains nothing by connecting; and game clients send no ``Origin``.
"""

from __future__ import annotations

import os

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "caroud.project.settings")

# Django first: the consumers import models, which need the apps loaded.
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from caroud.web.consumers import MatchmakingConsumer, UnknownPathConsumer  # noqa: E402
from caroud.web.wsgi_bridge import WsgiBridge  # noqa: E402

websocket_urlpatterns = [
    path("ws/matchmaking", MatchmakingConsumer.as_asgi()),
    re_path(r"", UnknownPathConsumer.as_asgi()),
]

http_application = WsgiBridge(get_wsgi_application(), ASGIStaticFilesHandler(django_application))

application = ProtocolTypeRouter(
    {"http": http_application, "websocket": URLRouter(websocket_urlpatterns)}
)
