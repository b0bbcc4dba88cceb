"""The dashboard page itself (static files under /dashboard/) and the settings it reads at start.

No build step and no CDN: the files in central/web/static are served as they are (plain ES
modules, the vendored ECharts and Leaflet). `/` sends a browser to the dashboard.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from central.web.deps import ContextDep, current_staff

STATIC = Path(__file__).resolve().parent.parent / "static"

public = APIRouter(tags=["dashboard"], include_in_schema=False)
router = APIRouter(prefix="/api/v1/dashboard", tags=["dashboard"], dependencies=[Depends(current_staff)])


class MapSettings(BaseModel):
    tile_url: str
    tile_subdomains: str
    tile_attribution: str
    tile_datum: str
    tile_max_zoom: int
    center: list[float]
    zoom: int


class DashboardSettings(BaseModel):
    map: MapSettings
    offline_after_s: int
    export_max_days: int
    languages: list[str]


@public.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard/", status_code=302)


@router.get("/settings", response_model=DashboardSettings)
def settings(ctx: ContextDep) -> DashboardSettings:
    """The map's tile source and what the page needs to judge health (from the centre's config)."""
    config = ctx.config.dashboard
    return DashboardSettings(
        map=MapSettings(
            tile_url=config.tile_url,
            tile_subdomains=config.tile_subdomains,
            tile_attribution=config.tile_attribution,
            tile_datum=config.tile_datum,
            tile_max_zoom=config.tile_max_zoom,
            center=list(config.map_center),
            zoom=config.map_zoom,
        ),
        offline_after_s=ctx.config.alarms.offline_after_s,
        export_max_days=config.export_max_days,
        languages=["zh-CN", "en"],
    )


def mount_static(app: FastAPI, tiles_dir: Path | None) -> None:
    """The page's files at /dashboard/, and a local tile set at /tiles/ when one is configured."""
    app.mount("/dashboard", StaticFiles(directory=STATIC, html=True), name="dashboard")
    if tiles_dir is not None:
        app.mount("/tiles", StaticFiles(directory=tiles_dir, check_dir=False), name="tiles")
