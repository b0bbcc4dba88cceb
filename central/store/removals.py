"""Templates removed on site (`template_removals`): stored once per template id, never updated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from central.store.tables import TemplateRemoval

#: The advisory lock space of template ids (the first argument of the two-key lock; the fan-out
#: and the schema upgrade use single-key locks, which never collide with two-key ones).
_TEMPLATE_LOCKS = 0x797A


def lock_templates(session: Session, template_ids: Sequence[str]) -> None:
    """Serialise an enrolment and a removal of the same template in two ingest workers.

    Without it, on PostgreSQL (READ COMMITTED) a removal could look for the template before the
    enrolment carrying it committed, and the enrolment look for the removal before that committed:
    both would miss each other and the removed face would be sent to every station. Holding a
    transaction-scoped lock per template id, taken in sorted order (no deadlock), the second waits
    for the first to commit and then sees it. SQLite has one writer at a time already."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for template_id in sorted(set(template_ids)):
        session.execute(
            text("SELECT pg_advisory_xact_lock(:space, hashtext(:id))"),
            {"space": _TEMPLATE_LOCKS, "id": template_id},
        )


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
