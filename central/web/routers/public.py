"""`GET /api/public/stations`: the station directory anyone may read (workers' phones, other
union platforms embedding it). No personal data, no health details, no credentials needed.

With `lat` and `lon` (the phone's WGS-84 position, sent only after the worker allowed the browser
to locate them; not stored, not logged) every station gets its distance and the list is sorted
nearest first. Every station with coordinates carries its position in GCJ-02 and BD-09 too and
navigation links for Amap, Baidu and Tencent Maps in each app's own datum (central.phone.geo).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from central.phone.geo import Point, check_point
from central.store import stations as station_store
from central.web.deps import ContextDep, DbSession
from central.web.errors import ApiError
from central.web.schemas import DirectoryStation

public = APIRouter(prefix="/api/public", tags=["public"])


@public.get("/stations", response_model=list[DirectoryStation])
def stations(
    ctx: ContextDep,
    db: DbSession,
    lat: Annotated[float | None, Query(ge=-90, le=90, allow_inf_nan=False)] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180, allow_inf_nan=False)] = None,
) -> list[DirectoryStation]:
    """Every station in service, whether it is open now, where it is and what it offers; with
    `lat`/`lon` (WGS-84) also how far away, nearest first."""
    if (lat is None) != (lon is None):
        raise ApiError(422, "give both lat and lon (WGS-84 degrees), or neither", "invalid_request")
    here: Point | None = check_point(lat, lon) if lat is not None and lon is not None else None
    now = ctx.now()
    rows = [DirectoryStation.of(s, now, here) for s in station_store.list_stations(db, active_only=True)]
    if here is not None:
        rows.sort(key=lambda s: (s.distance_m is None, s.distance_m or 0.0, s.station_id))
    return rows
