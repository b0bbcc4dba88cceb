"""Events for staff, newest first, limited to the stations this account may see."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from central.store import events as event_store
from central.web.deps import CurrentStaff, DbSession, current_staff, scoped_stations, station_in_scope
from central.web.schemas import EventOut

router = APIRouter(prefix="/api/v1/events", tags=["events"], dependencies=[Depends(current_staff)])


@router.get("", response_model=list[EventOut])
def list_events(
    staff: CurrentStaff,
    db: DbSession,
    station_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9._-]{1,64}$")] = None,
    since: dt.datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EventOut]:
    if station_id is not None:
        stations = [station_in_scope(db, staff, station_id).station_id]
    elif staff.district_scope is None:
        stations = None
    else:
        stations = [s.station_id for s in scoped_stations(db, staff)]
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.UTC)
    return [
        EventOut.of(e) for e in event_store.list_events(db, station_ids=stations, since=since, limit=limit)
    ]
