"""The audit log: who did what at the centre. Written in the same transaction as the action."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.store.tables import AuditEntry


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    district_id: str | None = None,
    client: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        actor=actor[:100],
        action=action[:64],
        target_type=target_type,
        target_id=target_id,
        district_id=district_id,
        client=client[:64] if client else None,
        details=details or {},
    )
    session.add(entry)
    return entry


def list_entries(
    session: Session,
    *,
    district_ids: Collection[str] | None = None,
    limit: int = 100,
    before_id: int | None = None,
    actor: str | None = None,
    action: str | None = None,
    target_id: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Sequence[AuditEntry]:
    """Newest first. `district_ids` scopes (a district's staff see their district's entries);
    `before_id` pages backwards; the other filters match exactly (`since`/`until` bound `at`)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if district_ids is not None:
        query = query.where(AuditEntry.district_id.in_(list(district_ids)))
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    if action is not None:
        query = query.where(AuditEntry.action == action)
    if target_id is not None:
        query = query.where(AuditEntry.target_id == target_id)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    return session.scalars(query).all()
