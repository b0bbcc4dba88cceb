"""`create_app(services)`: the FastAPI app for one running station (kept tiny on purpose).

Middleware order, outermost first: request log + security headers, the authentication gate (so an
unauthenticated request never reaches body parsing or routing), the body size limit, then FastAPI.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from common.asgi import BodyLimit
from edge.api.context import ApiContext
from edge.api.errors import install_error_handlers
from edge.api.middleware import AuthGate, RequestLog
from edge.api.routers import auth, camera, door, enrol, events, health, lockouts, members, page, schedule
from edge.api.routers.page import STATIC_DIR
from edge.api.services import StationServices
from recognizer.encoder import FaceModel

UPLOAD_PATHS = frozenset({"/api/v1/captures/upload"})
MULTIPART_OVERHEAD = 64 * 1024


def create_app(services: StationServices, *, face_model: FaceModel | None = None) -> FastAPI:
    """The app for `services` (a running `StationDaemon`); subscribes its metrics to the recorder.

    `face_model` is for tests that preload one; it must never be the decide loop's model (see
    `edge.api.faces`). By default the API loads its own on the first face job.
    """
    ctx = ApiContext.build(services, face_model=face_model)
    app = FastAPI(
        title="yizhan station API",
        version="1",
        description="Local API of a union rest station door. Log in with POST /auth/login, then send "
        "the token as `Authorization: Bearer ...` (or use the cookie and the X-CSRF-Token header).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    for router in (
        auth.public,
        auth.router,
        members.router,
        enrol.router,
        events.router,
        camera.router,
        door.router,
        lockouts.router,
        schedule.router,
        health.public,
        health.router,
        page.router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    settings = ctx.settings
    app.add_middleware(
        BodyLimit,
        default_bytes=settings.max_json_kb * 1024,
        upload_bytes=settings.max_upload_mb * 1024 * 1024 + MULTIPART_OVERHEAD,
        upload_paths=UPLOAD_PATHS,
    )
    app.add_middleware(AuthGate, ctx=ctx)
    app.add_middleware(RequestLog, ctx=ctx)
    return app
