"""Snapshot rows: where an event's JPEG is on the centre's disk, its size and hash, whether it is gone.

The file itself is written by `central.snapshot_files` before the row's transaction commits (so a
committed row always has its file); retention and the disk budget delete files and set
`deleted_at`, keeping the row, so the dashboard can say "expired" rather than show a broken image.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from central.store.tables import Event, Snapshot


def add_snapshot(
    session: Session,
    *,
    event_id: str,
    event_ts: dt.datetime,
    station_id: str,
    path: str,
    size_bytes: int,
    sha256: str,
    received_at: dt.datetime,
) -> bool:
    """Record a stored JPEG; False when this event already had one (a re-send: nothing changes)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(Snapshot)
        .values(
            event_id=event_id,
            event_ts=event_ts,
            station_id=station_id,
            path=path,
            size_bytes=size_bytes,
            sha256=sha256,
            received_at=received_at,
        )
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(Snapshot.event_id)
    )
    return session.execute(statement).first() is not None


def get_snapshot(session: Session, *, event_id: str) -> Snapshot | None:
    return session.get(Snapshot, event_id)


def stored(session: Session, *, event_ids: Sequence[str]) -> dict[str, Snapshot]:
    """The snapshot rows of these events (deleted ones included)."""
    if not event_ids:
        return {}
    rows = session.scalars(select(Snapshot).where(Snapshot.event_id.in_(list(event_ids))))
    return {row.event_id: row for row in rows}


def live_bytes(session: Session) -> int:
    """Bytes of the snapshot files that still exist."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(Snapshot.size_bytes), 0)).where(Snapshot.deleted_at.is_(None))
        )
        or 0
    )


def oldest_live(
    session: Session, *, limit: int, received_before: dt.datetime | None = None
) -> Sequence[Snapshot]:
    """Existing snapshots, oldest received first (what retention and the budget delete first)."""
    query = select(Snapshot).where(Snapshot.deleted_at.is_(None))
    if received_before is not None:
        query = query.where(Snapshot.received_at < received_before)
    return session.scalars(query.order_by(Snapshot.received_at, Snapshot.event_id).limit(limit)).all()


def mark_deleted(session: Session, *, event_ids: Sequence[str], at: dt.datetime) -> None:
    if event_ids:
        session.execute(
            update(Snapshot)
            .where(Snapshot.event_id.in_(list(event_ids)), Snapshot.deleted_at.is_(None))
            .values(deleted_at=at)
        )


def of_member(session: Session, *, member_id: str) -> Sequence[Snapshot]:
    """Existing snapshots of the member's events (an erasure deletes them)."""
    return session.scalars(
        select(Snapshot)
        .join(Event, (Event.id == Snapshot.event_id) & (Event.ts == Snapshot.event_ts))
        .where(Event.member_id == member_id, Snapshot.deleted_at.is_(None))
    ).all()
