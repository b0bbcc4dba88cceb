"""The one place the dashboard's routes tell the roster that staff changed a member or a station.

Seam 4 of the centre's plan: the roster master (`central/roster/`, the ingest engineer's) turns a
change into versioned `roster_changes` rows for every affected station, inside the request's
transaction, so the staff action, its roster rows and its audit entry commit together. The routes
call only these three functions.

Until `central.roster` exists in this tree, the changes stay at the centre (what the dashboard
shows is right; stations learn of it once the roster code is merged and computes their state):
`erase_member` then does the centre's half of an erasure itself (templates and the member row
deleted, snapshots of the member's events deleted from disk, an `erasures` row without the data).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.store.tables import Erasure, Event, FaceTemplate, Member, Snapshot
from central.web.snapshot_files import resolve_snapshot
from common.db_types import utc_now

log = logging.getLogger(__name__)

try:  # the roster master lands with the ingest branch
    from central import roster as _roster  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on what is merged
    _roster = None


@dataclass(frozen=True, slots=True)
class ErasureOutcome:
    templates_deleted: int
    snapshots_deleted: int
    stations_pending: list[str]


def member_changed(db: Session, member_id: str) -> None:
    """A member's data, status, validity, groups or consents changed: tell every affected station."""
    if _roster is not None:
        _roster.member_changed(db, member_id)


def station_changed(db: Session, station_id: str) -> None:
    """A station's groups or hours changed: its roster (who may enter) may have changed."""
    if _roster is not None:
        _roster.station_changed(db, station_id)


def erase_member(
    db: Session, member_id: str, staff: str, *, reason: str, snapshots_dir: Path
) -> ErasureOutcome:
    """Erase a member everywhere: the roster removes them from every station; the centre keeps
    only the fact of the erasure (who asked, when, how much went), never the person."""
    if _roster is not None:
        erasure = _roster.erase_member(db, member_id, staff)
        return ErasureOutcome(
            int(getattr(erasure, "templates_deleted", 0) or 0),
            int(getattr(erasure, "snapshots_deleted", 0) or 0),
            list(getattr(erasure, "stations_pending", []) or []),
        )
    return _erase_at_centre(db, member_id, staff, reason=reason, snapshots_dir=snapshots_dir)


def _erase_at_centre(
    db: Session, member_id: str, staff: str, *, reason: str, snapshots_dir: Path
) -> ErasureOutcome:
    member = db.get(Member, member_id)
    if member is None:
        return ErasureOutcome(0, 0, [])
    templates = len(
        db.scalars(select(FaceTemplate.template_id).where(FaceTemplate.member_id == member_id)).all()
    )
    snapshots = db.scalars(
        select(Snapshot)
        .join(Event, (Event.id == Snapshot.event_id) & (Event.ts == Snapshot.event_ts))
        .where(Event.member_id == member_id, Snapshot.deleted_at.is_(None))
    ).all()
    now = utc_now()
    for snapshot in snapshots:
        path = resolve_snapshot(snapshots_dir, snapshot.path)
        if path is not None:
            path.unlink(missing_ok=True)
        snapshot.deleted_at = now
    db.delete(member)
    db.add(
        Erasure(
            member_id=member_id,
            requested_by=staff[:100],
            reason=reason,
            templates_deleted=templates,
            snapshots_deleted=len(snapshots),
            stations_pending=[],
            completed_at=now,
        )
    )
    db.flush()
    log.warning(
        "member erased at the centre only: the roster code is not merged, stations were not told",
        extra={"fields": {"event": "erasure_centre_only", "member_id": member_id}},
    )
    return ErasureOutcome(templates, len(snapshots), [])
