"""Events for staff, newest first, limited to the stations this account may see.

`day` (with `station_id`) is a station-local calendar day: the station page's "today" is the
station's today, in the station's time zone, wherever the staff member sits.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from central.store import events as event_store
from central.store.visits import local_day_bounds, station_timezone
from central.web.deps import CurrentStaff, DbSession, current_staff, scoped_stations, station_in_scope
from central.web.errors import ApiError
from central.web.event_views import row_fields, views
from central.web.schemas import EventView
from contract.schedule import load_timezone

router = APIRouter(prefix="/api/v1/events", tags=["events"], dependencies=[Depends(current_staff)])
ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


@router.get("", response_model=list[EventView])
def list_events(
    staff: CurrentStaff,
    db: DbSession,
    station_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    day: Annotated[dt.date | None, Query(description="A station-local day (needs station_id).")] = None,
    kind: Annotated[list[str] | None, Query(max_length=20)] = None,
    member_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EventView]:
    """Events by station time, newest first; page back with `until` = the last one's `ts`."""
    if station_id is not None:
        station = station_in_scope(db, staff, station_id)
        stations: list[str] | None = [station.station_id]
        if day is not None:
            if not dt.date(2000, 1, 1) <= day <= dt.date(2100, 1, 1):
                raise ApiError(422, "day must be between 2000-01-01 and 2100-01-01", "invalid_value")
            start, end = local_day_bounds(load_timezone(station_timezone(station)), day, day)
            since = max(start, _aware(since) or start)
            until = min(end, _aware(until) or end)
    elif day is not None:
        raise ApiError(422, "day needs station_id (a day is a station's local day)", "invalid_value")
    elif staff.district_scope is None:
        stations = None
    else:
        stations = [s.station_id for s in scoped_stations(db, staff)]
    if kind is not None and any(len(k) > 64 for k in kind):
        raise ApiError(422, "an event kind is at most 64 characters", "invalid_value")
    rows = event_store.list_events(
        db,
        station_ids=stations,
        since=_aware(since),
        until=_aware(until),
        limit=limit,
        kinds=kind,
        member_id=member_id,
    )
    return views(db, [row_fields(r) for r in rows])
