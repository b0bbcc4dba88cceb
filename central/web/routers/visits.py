"""Visits per station per day or week (station-local days), and their CSV / Excel export.

`first` and `last` are calendar days counted in each station's own time zone (the station's
opening-hours zone). Defaults: the 30 days up to today in China Standard Time. District staff get
their district's stations only; asking for another district's station is 404.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from central.store import visits as visit_store
from central.store.tables import Station
from central.web.deps import (
    ContextDep,
    CurrentStaff,
    DbSession,
    current_staff,
    scoped_stations,
    station_in_scope,
)
from central.web.errors import ApiError
from central.web.visits_export import StationLabel, table, to_csv, to_xlsx
from contract.schedule import DEFAULT_TIMEZONE, load_timezone

router = APIRouter(prefix="/api/v1/visits", tags=["visits"], dependencies=[Depends(current_staff)])
StationIds = Annotated[
    list[str] | None, Query(max_length=2000, description="Stations (default: all in scope).")
]
ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2100, 12, 31)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class VisitStation(BaseModel):
    station_id: str
    name: str
    district_id: str
    timezone: str


class VisitCount(BaseModel):
    station_id: str
    period: dt.date
    entries: int
    members: int
    refused: int
    emergencies: int


class VisitsOut(BaseModel):
    """`rows` leaves out periods without events; `periods` lists every period start."""

    first: dt.date
    last: dt.date
    period: str
    periods: list[dt.date]
    stations: list[VisitStation]
    rows: list[VisitCount]


def _range(ctx: ContextDep, first: dt.date | None, last: dt.date | None) -> tuple[dt.date, dt.date]:
    today = ctx.now().astimezone(load_timezone(DEFAULT_TIMEZONE)).date()
    last = last or today
    first = first or last - dt.timedelta(days=29)
    if not (EARLIEST <= first <= LATEST and EARLIEST <= last <= LATEST):
        raise ApiError(422, "days must be between 2000-01-01 and 2100-12-31", "invalid_value")
    if first > last:
        raise ApiError(422, "first must not be after last", "invalid_value")
    limit = ctx.config.dashboard.export_max_days
    if (last - first).days + 1 > limit:
        raise ApiError(422, f"at most {limit} days at once ([dashboard] export_max_days)", "invalid_value")
    return first, last


def _stations(db: DbSession, staff: CurrentStaff, station_id: list[str] | None) -> Sequence[Station]:
    if not station_id:
        return scoped_stations(db, staff)
    for value in station_id:
        if not (1 <= len(value) <= 64 and set(value) <= ID_CHARS):
            raise ApiError(422, "station ids are 1 to 64 of A-Z a-z 0-9 . _ -", "invalid_value")
    return [station_in_scope(db, staff, value) for value in dict.fromkeys(station_id)]


@router.get("", response_model=VisitsOut)
def visits(
    staff: CurrentStaff,
    ctx: ContextDep,
    db: DbSession,
    first: dt.date | None = None,
    last: dt.date | None = None,
    period: Literal["day", "week"] = "day",
    station_id: StationIds = None,
) -> VisitsOut:
    """Entries, distinct members, refusals and emergency calls per station per day or week."""
    first, last = _range(ctx, first, last)
    stations = _stations(db, staff, station_id)
    rows = visit_store.count_visits(db, stations=stations, first=first, last=last, period=period)
    return VisitsOut(
        first=first,
        last=last,
        period=period,
        periods=visit_store.periods(first, last, period),
        stations=[
            VisitStation(
                station_id=s.station_id,
                name=s.name,
                district_id=s.district_id,
                timezone=visit_store.station_timezone(s),
            )
            for s in stations
        ],
        rows=[
            VisitCount(
                station_id=r.station_id,
                period=r.period_start,
                entries=r.entries,
                members=r.members,
                refused=r.refused,
                emergencies=r.emergencies,
            )
            for r in rows
        ],
    )


@router.get(
    "/export",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, XLSX: {}}, "description": "The report file."}},
)
def export(
    staff: CurrentStaff,
    ctx: ContextDep,
    db: DbSession,
    format: Literal["csv", "xlsx"] = "xlsx",
    lang: Literal["zh-CN", "en"] = "zh-CN",
    first: dt.date | None = None,
    last: dt.date | None = None,
    period: Literal["day", "week"] = "day",
    station_id: StationIds = None,
) -> Response:
    """The same counts as a file: every station, every period (zeros included)."""
    first, last = _range(ctx, first, last)
    stations = _stations(db, staff, station_id)
    rows = visit_store.count_visits(db, stations=stations, first=first, last=last, period=period)
    labels = [StationLabel(s.station_id, s.name, s.district_id) for s in stations]
    header, body = table(rows, labels, visit_store.periods(first, last, period), period, lang)
    name = f"visits-{period}-{first.isoformat()}-{last.isoformat()}.{format}"
    if format == "csv":
        content, media = to_csv(header, body), "text/csv; charset=utf-8"
    else:
        content, media = to_xlsx(header, body, lang=lang, first=first, last=last), XLSX
    return Response(
        content, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
