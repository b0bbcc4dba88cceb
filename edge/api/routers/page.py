"""The installer page: one HTML file and its static assets, served without a build step.

Everything is local (no CDN): a station may have no internet at all. The shell holds no data, so it
is served without login; every piece of data comes from /api/v1 after the page's login form.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"}
    )
