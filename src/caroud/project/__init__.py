"""A ready Django project serving :mod:`caroud.web` (``caroud.project.settings``).

``python -m caroud.project COMMAND`` is its ``manage.py``; ``caroud.project.asgi:application``
is the ASGI app (``caroud.project.wsgi:application`` the WSGI one).
"""
