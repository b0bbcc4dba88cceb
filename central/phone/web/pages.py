"""The worker's pages, `/m/...`: one HTML shell, one script, one stylesheet; no build step, no CDN.

Every page path serves the same shell (`static/phone.html`); the script reads the path and shows
the view: `/m/s/<station>` (what a poster's QR code opens: register, or the big open button),
`/m/pass` (我的通行码), `/m/me` (my data), `/m/nearby` (stations near me), `/m/login`, `/m/`.
Serving the shell also sets the anonymous CSRF cookie the script echoes (see `gate`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse
from starlette.staticfiles import StaticFiles

from central.phone.web.routes import PhoneDep, ensure_anon_csrf

STATIC = Path(__file__).resolve().parent / "static"
SHELL = STATIC / "phone.html"

pages = APIRouter(include_in_schema=False)


def _shell(request: Request, phone: PhoneDep) -> FileResponse:
    response = FileResponse(SHELL, media_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = "no-cache"
    ensure_anon_csrf(request, response, phone.web.config.web.cookie_secure)
    return response


@pages.get("/m")
def root() -> RedirectResponse:
    return RedirectResponse("/m/", status_code=308)


for path in ("/m/", "/m/pass", "/m/me", "/m/nearby", "/m/login", "/m/s/{station_id}"):
    pages.add_api_route(path, _shell, methods=["GET"])


def mount_static(app: FastAPI) -> None:
    app.mount("/m/static", StaticFiles(directory=STATIC), name="phone-static")
