"""`GET /api/v1/events/{event_id}/snapshot`: the photo of an entry (or a thumbnail of it).

The live feed and event lists name this URL (`central.snapshot_files.SNAPSHOT_URL`). Only for
events at stations the account may see (404 otherwise, like every scoped id). A snapshot removed by
retention, the disk budget or an erasure answers 410 ("expired"), one never received 404. A stored
path is only ever opened through `SnapshotFiles.resolve` (a damaged or hostile row cannot point the
web app at another file). Responses are never cached by the browser: they are people's faces.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import FileResponse

from central.snapshot_files import SnapshotFiles, SnapshotPathError
from central.store import snapshots as snapshot_store
from central.web.deps import ContextDep, CurrentStaff, DbSession, current_staff, station_in_scope
from central.web.errors import ApiError

router = APIRouter(prefix="/api/v1/events", tags=["events"], dependencies=[Depends(current_staff)])
EventId = Annotated[str, Path(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
JPEG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}}, "description": "The JPEG."},
    404: {},
    410: {},
}
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/{event_id}/snapshot", response_class=Response, responses=JPEG)
def snapshot(
    event_id: EventId,
    staff: CurrentStaff,
    ctx: ContextDep,
    db: DbSession,
    size: Annotated[Literal["full", "thumb"], Query()] = "full",
) -> Response:
    """The snapshot JPEG the station took at this event (`size=thumb`: at most 320 px)."""
    row = snapshot_store.get_snapshot(db, event_id=event_id)
    if row is None:
        raise ApiError(404, "this event has no snapshot at the centre", "snapshot_not_found")
    try:
        station_in_scope(db, staff, row.station_id)
    except ApiError:
        raise ApiError(404, "this event has no snapshot at the centre", "snapshot_not_found") from None
    if row.deleted_at is not None:
        raise ApiError(
            410, "the snapshot was deleted (retention, disk budget or erasure)", "snapshot_expired"
        )
    try:
        path = SnapshotFiles(ctx.config.storage.snapshots_dir).resolve(row.path)
    except SnapshotPathError:
        raise ApiError(404, "this event has no snapshot at the centre", "snapshot_not_found") from None
    if not path.is_file():
        raise ApiError(410, "the snapshot file is gone", "snapshot_expired")
    if size == "thumb":
        try:
            return Response(ctx.thumbnails.get(event_id, path), media_type="image/jpeg", headers=NO_STORE)
        except ValueError:
            raise ApiError(404, "the snapshot file is not a usable image", "snapshot_not_found") from None
    return FileResponse(path, media_type="image/jpeg", headers=NO_STORE)
