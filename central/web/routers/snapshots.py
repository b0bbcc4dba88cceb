"""`GET /api/v1/snapshots/{event_id}`: an event's entry photo (JPEG), for staff of its district.

The live feed and event lists name this URL (`central.ingest.batch.SNAPSHOT_URL`). A snapshot
removed by retention, the disk budget or an erasure answers 410 ("expired"), one never received 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import FileResponse

from central.snapshot_files import SnapshotFiles, SnapshotPathError
from central.store import snapshots as snapshot_store
from central.web.deps import ContextDep, CurrentStaff, DbSession, current_staff, station_in_scope
from central.web.errors import ApiError

router = APIRouter(prefix="/api/v1/snapshots", tags=["snapshots"], dependencies=[Depends(current_staff)])
EventId = Annotated[str, Path(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]


@router.get("/{event_id}", response_class=FileResponse, responses={200: {"content": {"image/jpeg": {}}}})
def get_snapshot(event_id: EventId, staff: CurrentStaff, ctx: ContextDep, db: DbSession) -> FileResponse:
    row = snapshot_store.get_snapshot(db, event_id=event_id)
    if row is None:
        raise ApiError(404, "no snapshot for this event", "snapshot_not_found")
    try:
        station_in_scope(db, staff, row.station_id)
    except ApiError:
        raise ApiError(404, "no snapshot for this event", "snapshot_not_found") from None
    if row.deleted_at is not None:
        raise ApiError(
            410, "the snapshot was deleted (retention, disk budget or erasure)", "snapshot_expired"
        )
    try:
        path = SnapshotFiles(ctx.config.storage.snapshots_dir).resolve(row.path)
    except SnapshotPathError:
        raise ApiError(404, "no snapshot for this event", "snapshot_not_found") from None
    if not path.is_file():
        raise ApiError(410, "the snapshot file is gone", "snapshot_expired")
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})
