"""Events from the stations: stored once (idempotent on id), read newest first."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from central.store.tables import Event


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
) -> Sequence[Event]:
    """Newest first; `station_ids` limits them (district scoping), `since`/`until` bound `ts`."""
    query = select(Event).order_by(Event.ts.desc(), Event.id).limit(limit)
    if station_ids is not None:
        query = query.where(Event.station_id.in_(list(station_ids)))
    if since is not None:
        query = query.where(Event.ts >= since)
    if until is not None:
        query = query.where(Event.ts < until)
    return session.scalars(query).all()
