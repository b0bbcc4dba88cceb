"""`GET /api/v1/events/{event_id}/snapshot`: the photo of an entry (or a thumbnail of it).

Only for events at stations the account may see (404 otherwise, like every scoped id). An
expired snapshot (retention or the disk budget removed it) is 410, so the page can say so.
Responses are never cached by the browser: they are people's faces.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import FileResponse

from central.store import events as event_store
from central.web.deps import ContextDep, CurrentStaff, DbSession, current_staff, station_in_scope
from central.web.errors import ApiError
from central.web.snapshot_files import resolve_snapshot

router = APIRouter(prefix="/api/v1/events", tags=["events"], dependencies=[Depends(current_staff)])
EventId = Annotated[str, Path(pattern=r"^[0-9a-fA-F-]{36}$")]
JPEG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}}, "description": "The JPEG."},
    404: {},
    410: {},
}


@router.get("/{event_id}/snapshot", response_class=Response, responses=JPEG)
def snapshot(
    event_id: EventId,
    staff: CurrentStaff,
    ctx: ContextDep,
    db: DbSession,
    size: Annotated[Literal["full", "thumb"], Query()] = "full",
) -> Response:
    """The snapshot JPEG the station took at this event (`size=thumb`: at most 320 px)."""
    row = event_store.snapshots_for(db, event_ids=[event_id]).get(event_id)
    if row is None:
        raise ApiError(404, "this event has no snapshot at the centre", "snapshot_not_found")
    station_in_scope(db, staff, row.station_id)
    if row.deleted_at is not None:
        raise ApiError(410, "the snapshot was deleted by the retention policy", "snapshot_expired")
    path = resolve_snapshot(ctx.config.storage.snapshots_dir, row.path)
    if path is None or not path.is_file():
        raise ApiError(404, "the snapshot file is missing", "snapshot_not_found")
    if size == "thumb":
        try:
            return Response(ctx.thumbnails.get(event_id, path), media_type="image/jpeg")
        except ValueError:
            raise ApiError(404, "the snapshot file is not a usable image", "snapshot_not_found") from None
    return FileResponse(path, media_type="image/jpeg")
