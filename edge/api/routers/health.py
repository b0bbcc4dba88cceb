"""Health for humans and machines: `/healthz` (open), `/api/v1/health`, `/metrics`, the schema.

`/healthz` is the one open route: it answers 200 whenever the API runs (a load balancer or a
watchdog needs no password) and says only whether the station is ok, nothing about its members.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from edge.api.deps import ContextDep, current_installer
from edge.api.metrics import CONTENT_TYPE
from edge.api.services import StationServices, sync_status
from models import events as event_store

public = APIRouter(tags=["health"])
router = APIRouter(tags=["health"], dependencies=[Depends(current_installer)])

LOOP_STALE_S = 5.0


def _ok(services: StationServices) -> tuple[bool, dict[str, Any]]:
    camera = services.camera.status.state if services.camera is not None else None
    loop = services.loop
    loop_alive = loop is not None and time.monotonic() - loop.heartbeat < LOOP_STALE_S
    return camera in ("up", "ended") and loop_alive, {"camera": camera, "loop_alive": loop_alive}


@public.get("/healthz")
def healthz(ctx: ContextDep) -> dict[str, Any]:
    """Always 200 while the API runs; `status` is "ok" or "degraded" (camera or decide loop)."""
    ok, checks = _ok(ctx.services)
    return {"status": "ok" if ok else "degraded", **checks}


@router.get("/api/v1/health")
def health(ctx: ContextDep) -> dict[str, Any]:
    """Everything an installer checks on site: camera, loop, door, roster, outbox, MQTT, API."""
    services = ctx.services
    ok, _ = _ok(services)
    result: dict[str, Any] = {"status": "ok" if ok else "degraded", **services.health()}
    camera = services.camera
    if camera is not None:
        status = camera.status
        result["camera"] = {
            "state": status.state,
            "reason": status.reason,
            "fps": round(status.fps, 1),
            "reconnects": status.reconnects,
            "frames_read": status.frames_read,
            "frames_dropped": status.frames_dropped,
        }
    loop = services.loop
    if loop is not None:
        stats = loop.stats
        result["loop"] = {
            "frames": stats.frames,
            "detections": stats.detections,
            "encodings": stats.encodings,
            "decisions": stats.decisions,
            "record_failures": stats.record_failures,
        }
    station = services.station
    if station is not None:
        roster = station.roster.current
        result["roster"] = {
            "version": roster.version,
            "members": len(roster.members),
            "templates": len(roster.owners),
            "faces_unavailable": roster.faces_unavailable,
        }
        with station.sessions() as session:
            result["outbox_depth"] = event_store.outbox_depth(session)
    result["mqtt"] = sync_status(services)
    result["api"] = {
        "uptime_s": round(time.monotonic() - ctx.started_mono, 1),
        "sessions": len(ctx.auth.sessions),
        "previews": ctx.previews,
        "captures": len(ctx.captures),
    }
    return result


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(ctx: ContextDep) -> Response:
    """Prometheus exposition; Prometheus can authenticate with `basic_auth` (an installer account)."""
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/api/v1/openapi.json", include_in_schema=False)
def openapi(request: Request) -> JSONResponse:
    """The OpenAPI schema of this API (served behind login like the rest of /api/v1)."""
    return JSONResponse(request.app.openapi())
