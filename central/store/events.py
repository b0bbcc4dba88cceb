"""Events from the stations: stored once (idempotent on id), read newest first."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from central.store.tables import Event, Snapshot


def store_event(session: Session, **values: Any) -> bool:
    """Insert one event unless it is already stored; True when it was new.

    `values` are `Event` columns (`id`, `ts`, `station_id`, `kind`, ...). A station re-sending the
    same event (at-least-once delivery) sends the same id and ts, which hit the primary key
    (id, ts): the insert does nothing and this returns False.
    """
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    values.setdefault("details", {})
    statement = insert(Event).values(**values).on_conflict_do_nothing(index_elements=["id", "ts"])
    # RETURNING, not rowcount: psycopg reports -1 for an insert into a partitioned table.
    return session.execute(statement.returning(Event.id)).first() is not None


def list_events(
    session: Session,
    *,
    station_ids: Collection[str] | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
    kinds: Collection[str] | None = None,
    member_id: str | None = None,
) -> Sequence[Event]:
    """Newest first; `station_ids` limits them (district scoping), `since`/`until` bound `ts`,
    `kinds` and `member_id` filter."""
    query = select(Event).order_by(Event.ts.desc(), Event.id).limit(limit)
    if kinds is not None:
        query = query.where(Event.kind.in_(list(kinds)))
    if member_id is not None:
        query = query.where(Event.member_id == member_id)
    if station_ids is not None:
        query = query.where(Event.station_id.in_(list(station_ids)))
    if since is not None:
        query = query.where(Event.ts >= since)
    if until is not None:
        query = query.where(Event.ts < until)
    return session.scalars(query).all()


def received_since(
    session: Session, *, since: dt.datetime, station_ids: Collection[str] | None = None, limit: int = 500
) -> Sequence[Event]:
    """Events the centre stored after `since` (by `received_at`, oldest first): what a live view
    that was away since then has not seen, whatever time the station's clock gave them."""
    query = select(Event).where(Event.received_at > since).order_by(Event.received_at, Event.id).limit(limit)
    if station_ids is not None:
        query = query.where(Event.station_id.in_(list(station_ids)))
    return session.scalars(query).all()


def snapshots_received_since(session: Session, *, since: dt.datetime, limit: int = 500) -> Sequence[Snapshot]:
    query = select(Snapshot).where(Snapshot.received_at > since).order_by(Snapshot.received_at).limit(limit)
    return session.scalars(query).all()


def get_event(session: Session, *, event_id: str) -> Event | None:
    return session.scalars(select(Event).where(Event.id == event_id).limit(1)).first()
