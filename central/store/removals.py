"""Templates removed on site (`template_removals`): stored once per template id, never updated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from central.store.tables import TemplateRemoval


def store_removal(session: Session, values: dict[str, Any]) -> bool:
    """Record a removal unless this template's removal is stored already; True when new.

    `ON CONFLICT DO NOTHING`: two ingest workers holding two copies of one message (a broker
    redelivery) both commit, and only one of them acts on it."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(TemplateRemoval)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["template_id"])
        .returning(TemplateRemoval.template_id)
    )
    return session.execute(statement).first() is not None


def removed_at_station(session: Session, *, station_id: str, template_ids: Sequence[str]) -> set[str]:
    """Which of `template_ids` this station has removed on site."""
    if not template_ids:
        return set()
    rows = session.scalars(
        select(TemplateRemoval.template_id).where(
            TemplateRemoval.template_id.in_(list(template_ids)), TemplateRemoval.station_id == station_id
        )
    )
    return set(rows)
