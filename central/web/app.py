"""`create_app(ctx)`: the centre's FastAPI app (kept tiny on purpose: routers do the work).

Middleware order, outermost first: security headers, the staff gate (an unauthenticated
`/api/v1/` request never reaches body parsing or routing), the body size limit, then FastAPI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from central.phone.web import install as install_phone
from central.web.context import WebContext
from central.web.errors import install_error_handlers
from central.web.middleware import SecurityHeaders, StaffGate
from central.web.routers import (
    alarms,
    audit,
    auth,
    commands,
    dashboard,
    events,
    health,
    live,
    members,
    metrics,
    public,
    registrations,
    snapshots,
    staff,
    stations,
    visits,
)
from common.asgi import BodyLimit


def create_app(ctx: WebContext) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        ctx.close()

    app = FastAPI(
        lifespan=lifespan,
        title="yizhan centre API",
        version="1",
        description="Union rest stations: fleet, roster, events, alarms. Log in with POST /api/auth/login, "
        "then send `Authorization: Bearer <token>` (or use the cookie and the X-CSRF-Token header).",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    for router in (
        health.public,
        public.public,
        auth.public,
        auth.router,
        stations.router,
        members.router,
        events.router,
        registrations.router,
        commands.router,
        snapshots.router,
        metrics.router,
        live.router,
        visits.router,
        audit.router,
        staff.router,
        dashboard.router,
        dashboard.public,
        alarms.router,
    ):
        app.include_router(router)
    dashboard.mount_static(app, ctx.config.dashboard.tiles_dir)
    limit = ctx.config.web.max_json_kb * 1024
    install_phone(app, ctx)  # the workers' pages /m/ and their API /api/m/ (issue 11)
    app.add_middleware(BodyLimit, default_bytes=limit, upload_bytes=limit, upload_paths=frozenset())
    app.add_middleware(StaffGate, sessions=ctx.auth.sessions)
    tiles = ctx.config.dashboard.tile_origin
    app.add_middleware(SecurityHeaders, img_origins=(tiles,) if tiles else ())
    return app
