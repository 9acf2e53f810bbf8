"""Routes anyone may call: queue figures, liveness and readiness."""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.http import HttpRequest, JsonResponse
from ninja import Router
from ninja.responses import codes_4xx, codes_5xx

from caroud.errors import CaroudError
from caroud.redis.client import redis_errors
from caroud.redis.deadline import deadline
from caroud.web.api.schemas import ErrorOut, HealthOut, QueuesOut
from caroud.web.apps import get_context
from caroud.web.errors import with_retry_after
from caroud.web.services import queue_stats

router = Router(tags=["public"])


READY_REDIS_S = 0.8
"""How long readiness waits for Redis: a probe must get an answer within a second."""


def readiness() -> tuple[bool, dict[str, str]]:
    """Whether Redis and the database both answer, and what each said."""
    checks: dict[str, str] = {}
    try:
        ctx = get_context()
        with deadline(READY_REDIS_S), redis_errors(ctx.client):
            ctx.client.ping()
        checks["redis"] = "ok"
    except CaroudError as e:
        checks["redis"] = str(e)
    except Exception as e:  # a broken configuration must read as "not ready", not crash
        checks["redis"] = f"{type(e).__name__}: {e}"
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        checks["database"] = "ok"
    except Exception as e:  # any driver error: the database is not usable
        checks["database"] = f"{type(e).__name__}: {e}"
    return all(v == "ok" for v in checks.values()), checks


def healthz_view(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers (it checks nothing else)."""
    return JsonResponse({"status": "ok"})


def readyz_view(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when Redis and the database answer, else 503 saying which did not."""
    ready, checks = readiness()
    body = {"status": "ok" if ready else "unavailable", "checks": checks}
    return with_retry_after(JsonResponse(body, status=200 if ready else 503))


@router.get("/queues", response={200: QueuesOut, codes_4xx: ErrorOut, codes_5xx: ErrorOut})
def queues(request: HttpRequest) -> dict[str, Any]:
    """Every queue: its shape, how many wait, the oldest wait, p50/p95 of current waits."""
    return {"queues": queue_stats(get_context())}


@router.get("/healthz", response={200: HealthOut})
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness (also at ``/healthz``)."""
    return healthz_view(request)


@router.get("/readyz", response={200: HealthOut, 503: HealthOut})
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness (also at ``/readyz``): Redis and the database reachable, else 503."""
    return readyz_view(request)
