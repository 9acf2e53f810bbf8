"""The app config: owns the one engine :class:`~caroud.context.Context` of the process.

The context is built on first use (never at import or in ``ready()``, so ``manage.py``
commands that do not touch Redis never connect), from :func:`caroud.web.conf.engine_settings`.
Changing a ``CAROUD_*`` setting (``override_settings`` in tests) drops it, and the
next use builds a new one. Code reaches it through :func:`get_context`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.apps import AppConfig, apps
from django.core.signals import setting_changed

from caroud.context import Context
from caroud.settings import Settings

T = TypeVar("T")


class CaroudWebConfig(AppConfig):
    """Caroud's Django app: models, API, and the engine context of this process."""

    name = "caroud.web"
    label = "caroud"
    verbose_name = "Caroud matchmaking"
    default_auto_field = "django.db.models.BigAutoField"

    def __init__(self, app_name: str, app_module: Any) -> None:
        super().__init__(app_name, app_module)
        self._lock = threading.Lock()
        self._context: Context | None = None
        self._settings: Settings | None = None
        self._built = False
        self._derived: dict[str, Any] = {}

    def ready(self) -> None:
        setting_changed.connect(self._on_setting_changed, dispatch_uid="caroud.web.settings")

    def _on_setting_changed(self, *, setting: str, **kwargs: Any) -> None:
        from caroud.web.conf import WEB_ONLY_SETTINGS

        if setting.startswith("CAROUD_") and setting not in WEB_ONLY_SETTINGS:
            self.set_context(None)

    def engine_settings(self) -> Settings:
        """The engine's settings, read once (until a ``CAROUD_*`` setting changes)."""
        from caroud.web.conf import engine_settings

        with self._lock:
            if self._settings is None:
                self._settings = engine_settings()
            return self._settings

    def context(self) -> Context:
        """The process's engine context, built on first use."""
        settings = self.engine_settings()
        with self._lock:
            if self._context is None:
                self._context = Context.build(settings)
                self._built = True
            return self._context

    def derived(self, name: str, build: Callable[[Context], T]) -> T:
        """``build(context)``, made once per context and dropped with it (a metrics registry).

        ``build`` must not do I/O: it runs under the app's lock.
        """
        context = self.context()
        with self._lock:
            if self._context is context:
                if name not in self._derived:
                    self._derived[name] = build(context)
                return cast(T, self._derived[name])
        return build(context)  # the context changed meanwhile: use this one's, keep none

    def set_context(self, context: Context | None) -> None:
        """Use ``context`` from now on (None: build a fresh one from settings on next use).

        For a process that already has a context (``caroud up``, tests). The previous
        context's client is closed only if this app built it.
        """
        with self._lock:
            old, built = self._context, self._built
            self._context, self._built = context, False
            self._derived = {}
            self._settings = context.settings if context is not None else None
        if old is not None and built and old is not context:
            old.client.close()


def app_config() -> CaroudWebConfig:
    return cast(CaroudWebConfig, apps.get_app_config("caroud"))


def get_context() -> Context:
    """The engine context of this process (see :class:`CaroudWebConfig`)."""
    return app_config().context()
