"""Alarms, their acknowledgement, the events the engine handled, and the notifier's delivery queue.

Keyword-only functions on a `Session` that never commit (the caller owns the transaction): the
engine applies a rule's `Raise` / `Clear` and queues the fan-out that tells people in the same
transaction, so an alarm is never stored without its notification or notified without being
stored. Times are passed in (`now`), never read here, so tests control them.

How a `Raise` lands (docs/ALARMS.md): at most one *open* alarm per `dedup_key` (the partial unique
index `uq_alarms_open_dedup_key`, so two processes racing to raise the same alarm end with one);
a further occurrence while it is open is counted on it (`details.repeats`), a condition that had
cleared re-opens it (`details.occurrences`), a higher severity escalates it. A condition that an
acknowledged alarm already covers (`cleared_at` still empty) is not raised again by a heartbeat,
only by a transition event.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import and_, delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from central.alarms.rules import CONDITIONS, SEVERITY_RANK, Clear, Raise
from central.store.tables import Alarm, AlarmDelivery, AlarmEvent, AlarmNotification, Staff
from common.errors import ValidationError

Change = Literal["raised", "counted", "reoccurred", "escalated", "cleared", "acknowledged"]
#: Which changes tell people, and as what (`alarm_deliveries.purpose`).
NOTIFY: Final[dict[str, str]] = {
    "raised": "raised",
    "reoccurred": "again",
    "escalated": "escalated",
    "cleared": "cleared",
    "acknowledged": "acknowledged",
}
NOTE_MAX = 1000
_OPEN = text("state = 'open'")


class AlarmNotFoundError(ValidationError, LookupError):
    """No such alarm (or not in the caller's districts)."""


class AlarmStateError(ValidationError):
    """The alarm cannot change that way (already acknowledged)."""


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """What happened to one alarm, for the live bus and the notifier (read after the commit)."""

    alarm_id: int
    change: Change
    data: dict[str, Any]
    station_id: str | None
    district_id: str | None

    @property
    def notify(self) -> str | None:
        return NOTIFY.get(self.change)


def public(alarm: Alarm) -> dict[str, Any]:
    """The alarm's fields as the live bus and the API show them (JSON-ready)."""
    return {
        "id": alarm.id,
        "station_id": alarm.station_id,
        "district_id": alarm.district_id,
        "kind": alarm.kind,
        "severity": alarm.severity,
        "state": alarm.state,
        "dedup_key": alarm.dedup_key,
        "event_id": alarm.event_id,
        "raised_at": _iso(alarm.raised_at),
        "cleared_at": _iso(alarm.cleared_at),
        "acknowledged_at": _iso(alarm.acknowledged_at),
        "note": alarm.note,
        "details": dict(alarm.details or {}),
    }


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _change(alarm: Alarm, change: Change) -> AlarmChange:
    data = public(alarm)
    data["change"] = change
    return AlarmChange(alarm.id, change, data, alarm.station_id, alarm.district_id)


# -- events the engine has handled ----------------------------------------------------------------


def mark_event_handled(session: Session, *, station_id: str, event_id: str, now: dt.datetime) -> bool:
    """Record that the engine handles this event now; False if it was handled before (a no-op then)."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(AlarmEvent)
        .values(station_id=station_id, event_id=event_id, handled_at=now)
        .on_conflict_do_nothing(index_elements=["station_id", "event_id"])
        .returning(AlarmEvent.event_id)
    )
    return session.execute(statement).first() is not None


def link_event(session: Session, *, station_id: str, event_id: str, alarm_id: int) -> None:
    session.execute(
        update(AlarmEvent)
        .where(AlarmEvent.station_id == station_id, AlarmEvent.event_id == event_id)
        .values(alarm_id=alarm_id)
    )


def prune_handled_events(session: Session, *, before: dt.datetime) -> int:
    result = session.execute(delete(AlarmEvent).where(AlarmEvent.handled_at < before))
    return int(getattr(result, "rowcount", 0) or 0)


# -- raising and clearing -------------------------------------------------------------------------


def _open_alarm(session: Session, key: str) -> Alarm | None:
    return session.scalars(
        select(Alarm).where(Alarm.dedup_key == key, Alarm.state == "open").with_for_update()
    ).first()


def raise_alarm(
    session: Session, spec: Raise, *, now: dt.datetime, district_id: str | None
) -> AlarmChange | None:
    """Apply a rule's `Raise`; the change made, or None when nothing changed (already known)."""
    key = spec.dedup_key
    existing = _open_alarm(session, key)
    if existing is not None:
        return _count_on(existing, spec, now)
    if spec.condition and not spec.transition:
        known = session.scalars(
            select(Alarm.severity).where(
                Alarm.dedup_key == key, Alarm.state == "acknowledged", Alarm.cleared_at.is_(None)
            )
        ).all()
        if any(SEVERITY_RANK.get(s, 0) >= SEVERITY_RANK[spec.severity] for s in known):
            return None  # someone acknowledged this very condition (as bad) and it has not cleared since
    if spec.quiet_s > 0:
        recent = session.scalar(
            select(func.count())
            .select_from(Alarm)
            .where(Alarm.dedup_key == key, Alarm.raised_at > now - dt.timedelta(seconds=spec.quiet_s))
        )
        if recent:
            return None
    if spec.condition:
        # A new occurrence supersedes an acknowledged alarm of the same condition: close its book.
        session.execute(
            update(Alarm)
            .where(Alarm.dedup_key == key, Alarm.state == "acknowledged", Alarm.cleared_at.is_(None))
            .values(cleared_at=now)
        )
    details = {**dict(spec.details), "repeats": 0, "occurrences": 1}
    if spec.occurred_at is not None:
        details.setdefault("occurred_at", spec.occurred_at.isoformat())
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(Alarm)
        .values(
            station_id=spec.station_id,
            district_id=district_id,
            kind=spec.kind,
            severity=spec.severity,
            state="open",
            dedup_key=key,
            event_id=spec.event_id,
            details=details,
            raised_at=now,
        )
        .on_conflict_do_nothing(index_elements=["dedup_key"], index_where=_OPEN)
        .returning(Alarm.id)
    )
    new_id = session.execute(statement).scalar()
    if new_id is None:  # another process raised it a moment ago: count on theirs
        existing = _open_alarm(session, key)
        return None if existing is None else _count_on(existing, spec, now)
    alarm = session.get(Alarm, new_id)
    assert alarm is not None
    return _change(alarm, "raised")


def _count_on(alarm: Alarm, spec: Raise, now: dt.datetime) -> AlarmChange | None:
    details = dict(alarm.details or {})
    change: Change | None = None
    if alarm.cleared_at is not None:
        alarm.cleared_at = None
        details["occurrences"] = int(details.get("occurrences", 1)) + 1
        details.pop("cleared", None)
        change = "reoccurred"
    elif spec.transition:
        details["repeats"] = int(details.get("repeats", 0)) + 1
        change = "counted"
    if SEVERITY_RANK.get(spec.severity, 0) > SEVERITY_RANK.get(alarm.severity, 0):
        alarm.severity = spec.severity
        details.update({k: v for k, v in spec.details.items() if k not in ("repeats", "occurrences")})
        change = "escalated"
    if change is None:
        return None  # the same level seen again: nothing to write
    details["last_at"] = now.isoformat()
    if spec.event_id is not None:
        details["last_event_id"] = spec.event_id
    alarm.details = details
    return _change(alarm, change)


def clear_alarm(session: Session, spec: Clear, *, now: dt.datetime) -> list[AlarmChange]:
    """Mark the condition over on its alarm(s) not yet cleared; they stay open until acknowledged."""
    alarms = session.scalars(
        select(Alarm).where(Alarm.dedup_key == spec.dedup_key, Alarm.cleared_at.is_(None)).with_for_update()
    ).all()
    changes = []
    for alarm in alarms:
        alarm.cleared_at = now
        cleared = {**dict(spec.details), "at": now.isoformat()}
        if spec.event_id is not None:
            cleared["event_id"] = spec.event_id
        if spec.occurred_at is not None:
            cleared["occurred_at"] = spec.occurred_at.isoformat()
        alarm.details = {**dict(alarm.details or {}), "cleared": cleared}
        changes.append(_change(alarm, "cleared"))
    return changes


@dataclass(frozen=True, slots=True)
class Active:
    """An alarm in force, as the engine's filter needs it."""

    state: str
    cleared: bool
    severity: str


def active_keys(session: Session, *, station_ids: Collection[str] | None = None) -> dict[str, Active]:
    """dedup_key -> the alarm that is open, or the condition not yet cleared, under that key.

    The engine filters a station's level observations against it, so a quiet fleet costs one query
    per sweep: a `Raise` already in force and a `Clear` of nothing are not sent to the store.
    """
    query = select(Alarm.dedup_key, Alarm.state, Alarm.cleared_at, Alarm.severity).where(
        or_(Alarm.state == "open", and_(Alarm.cleared_at.is_(None), Alarm.kind.in_(sorted(CONDITIONS))))
    )
    if station_ids is not None:
        query = query.where(Alarm.station_id.in_(list(station_ids)))
    found: dict[str, Active] = {}
    for key, state, cleared_at, severity in session.execute(query):
        if key not in found or state == "open":
            found[key] = Active(state, cleared_at is not None, severity)
    return found


# -- reading and acknowledging --------------------------------------------------------------------


def get_alarm(session: Session, *, alarm_id: int, district_ids: Collection[str] | None = None) -> Alarm:
    alarm = session.get(Alarm, alarm_id)
    if alarm is None or (district_ids is not None and alarm.district_id not in district_ids):
        raise AlarmNotFoundError(f"no alarm {alarm_id}")
    return alarm


def list_alarms(
    session: Session,
    *,
    district_ids: Collection[str] | None = None,
    state: str | None = None,
    station_id: str | None = None,
    kind: str | None = None,
    severity: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> Sequence[Alarm]:
    """Newest first; `district_ids` limits them (district staff), `before_id` pages back."""
    query = select(Alarm).order_by(Alarm.id.desc()).limit(limit)
    if district_ids is not None:
        query = query.where(Alarm.district_id.in_(list(district_ids)))
    for column, value in (
        (Alarm.state, state),
        (Alarm.station_id, station_id),
        (Alarm.kind, kind),
        (Alarm.severity, severity),
    ):
        if value is not None:
            query = query.where(column == value)
    if before_id is not None:
        query = query.where(Alarm.id < before_id)
    return session.scalars(query).all()


def acknowledge(
    session: Session,
    *,
    alarm_id: int,
    staff_id: int | None,
    note: str,
    now: dt.datetime,
    district_ids: Collection[str] | None = None,
) -> AlarmChange:
    """Acknowledge with a note (required: what was done about it). `AlarmStateError` if already."""
    cleaned = note.strip() if isinstance(note, str) else ""
    if not cleaned or len(cleaned) > NOTE_MAX:
        raise ValidationError(f"note must be 1 to {NOTE_MAX} characters: say what was done")
    if any(ord(c) < 32 and c not in "\t\n\r" for c in cleaned):
        raise ValidationError("note must not contain control characters")
    try:
        cleaned.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from JSON "\ud800": no database can store it
        raise ValidationError("note must be valid Unicode text") from None
    alarm = get_alarm(session, alarm_id=alarm_id, district_ids=district_ids)
    session.refresh(alarm, with_for_update=True)
    if alarm.state != "open":
        raise AlarmStateError(f"alarm {alarm_id} was already acknowledged")
    alarm.state = "acknowledged"
    alarm.acknowledged_at = now
    alarm.acknowledged_by = staff_id
    alarm.note = cleaned
    session.flush()
    return _change(alarm, "acknowledged")


def acknowledger_name(session: Session, alarm: Alarm) -> str | None:
    if alarm.acknowledged_by is None:
        return None
    return session.scalar(select(Staff.username).where(Staff.id == alarm.acknowledged_by))


# -- the delivery queue ---------------------------------------------------------------------------


def queue_fanout(
    session: Session,
    *,
    alarm_id: int,
    purpose: str,
    now: dt.datetime,
    due_at: dt.datetime | None = None,
    round: int = 0,
) -> AlarmDelivery:
    """Ask the notifier to tell every target concerned about `alarm_id` (at `due_at`, default now)."""
    delivery = AlarmDelivery(
        alarm_id=alarm_id,
        purpose=purpose,
        round=round,
        channel="fanout",
        target="",
        due_at=due_at or now,
        created_at=now,
    )
    session.add(delivery)
    return delivery


def queue_delivery(
    session: Session, *, alarm_id: int, purpose: str, round: int, channel: str, target: str, now: dt.datetime
) -> AlarmDelivery:
    delivery = AlarmDelivery(
        alarm_id=alarm_id,
        purpose=purpose,
        round=round,
        channel=channel,
        target=target[:200],
        due_at=now,
        created_at=now,
    )
    session.add(delivery)
    return delivery


def due_deliveries(session: Session, *, now: dt.datetime, limit: int = 100) -> Sequence[AlarmDelivery]:
    """Pending rows that are due and not claimed by a live sender, oldest due first."""
    return session.scalars(
        select(AlarmDelivery)
        .where(
            AlarmDelivery.done_at.is_(None),
            AlarmDelivery.due_at <= now,
            or_(AlarmDelivery.claimed_until.is_(None), AlarmDelivery.claimed_until < now),
        )
        .order_by(AlarmDelivery.due_at, AlarmDelivery.id)
        .limit(limit)
    ).all()


def next_due_at(session: Session) -> dt.datetime | None:
    return session.scalar(select(func.min(AlarmDelivery.due_at)).where(AlarmDelivery.done_at.is_(None)))


def claim_delivery(session: Session, *, delivery_id: int, now: dt.datetime, until: dt.datetime) -> bool:
    """Take the row for sending (compare-and-set, so one sender among several processes wins)."""
    result = session.execute(
        update(AlarmDelivery)
        .where(
            AlarmDelivery.id == delivery_id,
            AlarmDelivery.done_at.is_(None),
            or_(AlarmDelivery.claimed_until.is_(None), AlarmDelivery.claimed_until < now),
        )
        .values(claimed_until=until)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def finish_delivery(
    session: Session, *, delivery_id: int, now: dt.datetime, outcome: str, error: str | None = None
) -> None:
    session.execute(
        update(AlarmDelivery)
        .where(AlarmDelivery.id == delivery_id)
        .values(done_at=now, outcome=outcome, claimed_until=None, last_error=_cut(error))
    )


def retry_delivery(
    session: Session, *, delivery_id: int, attempts: int, due_at: dt.datetime, error: str | None
) -> None:
    session.execute(
        update(AlarmDelivery)
        .where(AlarmDelivery.id == delivery_id)
        .values(attempts=attempts, due_at=due_at, claimed_until=None, last_error=_cut(error))
    )


def record_attempt(
    session: Session,
    *,
    alarm_id: int,
    channel: str,
    target: str,
    now: dt.datetime,
    ok: bool,
    status_code: int | None,
    error: str | None,
) -> None:
    session.add(
        AlarmNotification(
            alarm_id=alarm_id,
            channel=channel,
            target=target[:200],
            attempted_at=now,
            ok=ok,
            status_code=status_code,
            error=_cut(error),
        )
    )


def notifications(session: Session, *, alarm_id: int, limit: int = 200) -> Sequence[AlarmNotification]:
    return session.scalars(
        select(AlarmNotification)
        .where(AlarmNotification.alarm_id == alarm_id)
        .order_by(AlarmNotification.id)
        .limit(limit)
    ).all()


def deliveries(session: Session, *, alarm_id: int, limit: int = 200) -> Sequence[AlarmDelivery]:
    return session.scalars(
        select(AlarmDelivery)
        .where(AlarmDelivery.alarm_id == alarm_id, AlarmDelivery.channel != "fanout")
        .order_by(AlarmDelivery.id)
        .limit(limit)
    ).all()


def _cut(error: str | None) -> str | None:
    return None if error is None else error[:500]
