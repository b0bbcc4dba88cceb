"""Alarms for staff: the list (open / acknowledged, district-scoped), one alarm with its
notification log, and acknowledging one with a note (audited, published on the live bus)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from central import live
from central.store import alarms as alarm_store
from central.store import audit
from central.store.tables import Alarm
from central.web.deps import (
    Actor,
    ClientAddress,
    ContextDep,
    CurrentStaff,
    DbSession,
    current_staff,
    station_in_scope,
)
from central.web.errors import ApiError

router = APIRouter(prefix="/api/v1/alarms", tags=["alarms"], dependencies=[Depends(current_staff)])
AlarmId = Annotated[int, Path(ge=1, le=2**62)]


class AlarmOut(BaseModel):
    id: int
    station_id: str | None
    district_id: str | None
    kind: str
    severity: str
    state: str
    raised_at: dt.datetime
    cleared_at: dt.datetime | None
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    note: str | None
    event_id: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, alarm: Alarm, acknowledged_by: str | None) -> AlarmOut:
        return cls(
            id=alarm.id,
            station_id=alarm.station_id,
            district_id=alarm.district_id,
            kind=alarm.kind,
            severity=alarm.severity,
            state=alarm.state,
            raised_at=alarm.raised_at,
            cleared_at=alarm.cleared_at,
            acknowledged_at=alarm.acknowledged_at,
            acknowledged_by=acknowledged_by,
            note=alarm.note,
            event_id=alarm.event_id,
            details=dict(alarm.details or {}),
        )


class AttemptOut(BaseModel):
    channel: str
    target: str
    attempted_at: dt.datetime
    ok: bool
    status_code: int | None
    error: str | None


class DeliveryOut(BaseModel):
    purpose: str
    round: int
    channel: str
    target: str
    due_at: dt.datetime
    attempts: int
    outcome: str | None
    last_error: str | None


class AlarmDetailOut(AlarmOut):
    deliveries: list[DeliveryOut]
    attempts: list[AttemptOut]


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=alarm_store.NOTE_MAX, description="What was done about it.")


@router.get("", response_model=list[AlarmOut])
def list_alarms(
    staff: CurrentStaff,
    db: DbSession,
    state: Literal["open", "acknowledged"] | None = None,
    station_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9._-]{1,64}$")] = None,
    kind: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None,
    severity: Literal["emergency", "critical", "warning"] | None = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlarmOut]:
    """Newest first. District staff see their district's alarms only; `before_id` pages back."""
    if station_id is not None:
        station_in_scope(db, staff, station_id)  # 404 for another district's station
    alarms = alarm_store.list_alarms(
        db,
        district_ids=staff.district_scope,
        state=state,
        station_id=station_id,
        kind=kind,
        severity=severity,
        before_id=before_id,
        limit=limit,
    )
    return [AlarmOut.of(a, alarm_store.acknowledger_name(db, a)) for a in alarms]


@router.get("/{alarm_id}", response_model=AlarmDetailOut)
def get_alarm(alarm_id: AlarmId, staff: CurrentStaff, db: DbSession) -> AlarmDetailOut:
    """One alarm with its queued messages and every notification attempt."""
    alarm = alarm_store.get_alarm(db, alarm_id=alarm_id, district_ids=staff.district_scope)
    base = AlarmOut.of(alarm, alarm_store.acknowledger_name(db, alarm))
    return AlarmDetailOut(
        **base.model_dump(),
        deliveries=[
            DeliveryOut(
                purpose=d.purpose,
                round=d.round,
                channel=d.channel,
                target=d.target,
                due_at=d.due_at,
                attempts=d.attempts,
                outcome=d.outcome,
                last_error=d.last_error,
            )
            for d in alarm_store.deliveries(db, alarm_id=alarm.id)
        ],
        attempts=[
            AttemptOut(
                channel=n.channel,
                target=n.target,
                attempted_at=n.attempted_at,
                ok=n.ok,
                status_code=n.status_code,
                error=n.error,
            )
            for n in alarm_store.notifications(db, alarm_id=alarm.id)
        ],
    )


@router.post("/{alarm_id}/ack", response_model=AlarmOut)
def acknowledge(
    alarm_id: AlarmId, body: AckIn, staff: Actor, ctx: ContextDep, db: DbSession, client: ClientAddress
) -> AlarmOut:
    """Acknowledge an open alarm with a note (what was done). 409 if it was acknowledged already."""
    try:
        change = alarm_store.acknowledge(
            db,
            alarm_id=alarm_id,
            staff_id=staff.id,
            note=body.note,
            now=ctx.now(),
            district_ids=staff.district_scope,
        )
    except alarm_store.AlarmStateError as exc:
        raise ApiError(409, str(exc), "already_acknowledged") from None
    alarm = alarm_store.get_alarm(db, alarm_id=alarm_id)
    audit.record(
        db,
        actor=staff.actor,
        action="alarm_acknowledged",
        target_type="alarm",
        target_id=str(alarm_id),
        district_id=alarm.district_id,
        client=client,
        details={"kind": alarm.kind, "station_id": alarm.station_id, "note": alarm.note},
    )
    if ctx.config.alarms.notify_acknowledged:
        alarm_store.queue_fanout(db, alarm_id=alarm_id, purpose="acknowledged", now=ctx.now())
    out = AlarmOut.of(alarm, staff.username)
    db.commit()  # publish only what is committed (the live bus's rule)
    ctx.live.publish(live.ALARM, change.data, station_id=change.station_id, district=change.district_id)
    return out
