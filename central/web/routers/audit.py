"""`GET /api/v1/audit`: who did what at the centre, newest first, scoped to the account's district.

District staff and district viewers see the entries of their district (actions on its stations
and members); admins and unscoped viewers see everything, including logins and staff management.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from central.store import audit
from central.store.tables import AuditEntry
from central.web.deps import CurrentStaff, DbSession, current_staff

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], dependencies=[Depends(current_staff)])


class AuditOut(BaseModel):
    id: int
    at: dt.datetime
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    district_id: str | None
    client: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditOut:
        return cls(
            id=entry.id,
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            target_type=entry.target_type,
            target_id=entry.target_id,
            district_id=entry.district_id,
            client=entry.client,
            details=entry.details if isinstance(entry.details, dict) else {},
        )


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=dt.UTC) if value is not None and value.tzinfo is None else value


@router.get("", response_model=list[AuditOut])
def list_audit(
    staff: CurrentStaff,
    db: DbSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    target_id: Annotated[str | None, Query(max_length=64)] = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[AuditOut]:
    """Page back with `before_id` = the last entry's id."""
    entries = audit.list_entries(
        db,
        district_ids=staff.district_scope,
        limit=limit,
        before_id=before_id,
        actor=actor,
        action=action,
        target_id=target_id,
        since=_aware(since),
        until=_aware(until),
    )
    return [AuditOut.of(e) for e in entries]
