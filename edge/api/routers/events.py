"""The access log: filtered by time, kind and member, paged, newest first; snapshots as JPEG."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel

from edge.api.deps import ContextDep, StationDep, current_installer
from edge.api.errors import ApiError
from edge.api.schemas import EVENT_ID_PATTERN, KIND_PATTERN, MEMBER_ID_PATTERN, Instant
from edge.api.snapshot_files import Variant, snapshot_path, snapshot_store
from models import events as event_store
from models.tables import Event

router = APIRouter(prefix="/api/v1/events", tags=["events"], dependencies=[Depends(current_installer)])

MAX_WINDOW = 10_000  # offset + limit: paging deeper than this is what `yizhan events list` is for


class EventOut(BaseModel):
    id: str
    ts: str
    ts_wall: float
    kind: str
    method: str | None
    member_id: str | None
    reason: str | None
    details: dict[str, Any]
    latency_ms: float | None
    snapshot_url: str | None
    face_url: str | None


class EventPage(BaseModel):
    items: list[EventOut]
    offset: int
    limit: int
    next_offset: int | None


def _out(event: Event) -> EventOut:
    data = event_store.event_to_json(event)
    base = f"/api/v1/events/{event.id}/snapshot" if event.snapshot else None
    return EventOut(
        id=data["id"],
        ts=data["ts"],
        ts_wall=data["ts_wall"],
        kind=data["kind"],
        method=data["method"],
        member_id=data["member_id"],
        reason=data["reason"],
        details=data["details"],
        latency_ms=data["latency_ms"],
        snapshot_url=base,
        face_url=f"{base}?variant=face" if base else None,
    )


@router.get("", response_model=EventPage)
def list_events(
    station: StationDep,
    since: Annotated[Instant | None, Query(description="ISO 8601 with a time zone; inclusive")] = None,
    until: Annotated[Instant | None, Query(description="ISO 8601 with a time zone; exclusive")] = None,
    kind: Annotated[
        str | None, Query(pattern=KIND_PATTERN, description="entry, refused, exit, emergency, ...")
    ] = None,
    member_id: Annotated[str | None, Query(pattern=MEMBER_ID_PATTERN)] = None,
    order: Literal["desc", "asc"] = "desc",
    offset: Annotated[int, Query(ge=0, le=MAX_WINDOW)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> EventPage:
    """Events, newest first by default; `next_offset` fetches the following page."""
    if offset + limit > MAX_WINDOW:
        raise ApiError(
            422, f"offset + limit may not exceed {MAX_WINDOW}; narrow the time range", "invalid_request"
        )
    with station.sessions() as session:
        rows = event_store.list_events(
            session,
            since=since.timestamp() if since else None,
            until=until.timestamp() if until else None,
            kind=kind,
            member_id=member_id,
            limit=offset + limit + 1,
            newest_first=order == "desc",
        )
        items = [_out(e) for e in rows[offset : offset + limit]]
    more = len(rows) > offset + limit
    return EventPage(items=items, offset=offset, limit=limit, next_offset=offset + limit if more else None)


def _event(station: StationDep, event_id: str) -> Event:
    with station.sessions() as session:
        event = session.get(Event, event_id)
        if event is None:
            raise ApiError(404, f"no event {event_id}", "event_not_found")
        session.expunge(event)
        return event


EventId = Annotated[str, Path(pattern=EVENT_ID_PATTERN)]


@router.get("/{event_id}", response_model=EventOut, responses={404: {"description": "No such event"}})
def get_event(event_id: EventId, station: StationDep) -> EventOut:
    return _out(_event(station, event_id))


@router.get(
    "/{event_id}/snapshot",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No snapshot on disk"}},
)
def event_snapshot(
    event_id: EventId, station: StationDep, ctx: ContextDep, variant: Variant = "frame"
) -> FileResponse:
    """The event's camera frame (or, with variant=face, the crop around the face) as JPEG."""
    event = _event(station, event_id)
    store = snapshot_store(ctx.services)
    path = snapshot_path(store, event.snapshot, variant) if store is not None and event.snapshot else None
    if path is None:
        raise ApiError(
            404, "no snapshot on disk for this event (none taken, or pruned)", "snapshot_not_found"
        )
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})
