"""The access log (append-only events) and the outbox of messages for the centre.

Transactions: `record_event` writes the event and its outbox row in the caller's transaction and
only flushes. **The caller commits**, and nothing is durable (or acknowledged) before that commit;
with synchronous=FULL a committed event survives a power cut. Because both rows go in the same
transaction there is never an event the centre will not hear about, nor an outbox message about an
event that does not exist. Rolling back removes both.

Events cannot be updated or deleted (database triggers, see `models.tables`). The outbox is drained
by the sync side: `pending_outbox` in `seq` order, then `mark_sent`.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from models.database import ValidationError
from models.members import json_safe, validate_identifier, validate_text
from models.tables import MEMBER_ID_MAX, Event, OutboxItem

LIST_LIMIT_MAX = 100_000
REASON_MAX = 200
SNAPSHOT_MAX = 500
TS_MAX = 253_402_300_799.0  # 9999-12-31T23:59:59Z: the last instant an ISO-8601 "ts" can show
_CHUNK = 500  # well under SQLite's bound-parameter limit


def _finite(
    value: object, field: str, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{field} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValidationError(f"{field} must be finite, got {value!r}")
    if minimum is not None and number < minimum:
        raise ValidationError(f"{field} must be at least {minimum}, got {value!r}")
    if maximum is not None and number > maximum:
        raise ValidationError(f"{field} must be at most {maximum}, got {value!r}")
    return number


def _optional_text(value: object, field: str, max_len: int) -> str | None:
    return None if value is None else validate_text(value, field, max_len=max_len)


def _details(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValidationError("details must be a dict with string keys")
    result: dict[str, Any] = json_safe(value, "details")
    return result


def record_event(
    session: Session,
    *,
    kind: str,
    method: str | None = None,
    member_id: str | None = None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
    snapshot: str | None = None,
    latency_ms: float | None = None,
    ts_wall: float | None = None,
    ts_mono: float | None = None,
    outbox_topic: str | None = "event",
    event_id: str | None = None,
) -> Event:
    """Append an event and, unless `outbox_topic` is None, its outbox message; flushed, NOT committed.

    `ts_wall` (unix seconds) and `ts_mono` (time.monotonic) default to now; both are kept because the
    wall clock of a Pi without RTC can jump, while the monotonic one orders events within a boot.
    Invalid input raises `ValidationError` before anything is written. `event_id` lets the caller
    name the event up front (its snapshot file is named after it); it must be a UUID.
    """
    if event_id is None:
        event_id = str(uuid.uuid4())
    else:
        try:
            event_id = str(uuid.UUID(event_id))
        except (ValueError, TypeError, AttributeError):
            raise ValidationError(f"event_id must be a UUID, got {event_id!r}") from None
    event = Event(
        id=event_id,
        ts_wall=time.time() if ts_wall is None else _finite(ts_wall, "ts_wall", minimum=0.0, maximum=TS_MAX),
        ts_mono=time.monotonic() if ts_mono is None else _finite(ts_mono, "ts_mono"),
        kind=validate_identifier(kind, "kind"),
        method=None if method is None else validate_identifier(method, "method", max_len=32),
        member_id=_optional_text(member_id, "member_id", MEMBER_ID_MAX),
        reason=_optional_text(reason, "reason", REASON_MAX),
        details=_details(details),
        snapshot=_optional_text(snapshot, "snapshot", SNAPSHOT_MAX),
        latency_ms=None if latency_ms is None else _finite(latency_ms, "latency_ms", minimum=0.0),
    )
    topic = None if outbox_topic is None else validate_identifier(outbox_topic, "outbox_topic")
    with session.begin_nested():
        session.add(event)
        if topic is not None:
            session.add(
                OutboxItem(
                    event_id=event.id,
                    topic_kind=topic,
                    payload=event_to_json(event),
                    created_at=time.time(),
                    attempts=0,
                )
            )
    return event


def set_latency(session: Session, event_id: str, latency_ms: float) -> bool:
    """Fill an event's frame-to-relay latency once (the only update events allow), and its pending
    outbox payload. Flushed, not committed. False if the event is unknown or already has one.

    The UPDATE is the transaction's first statement on purpose: in WAL mode a transaction that read
    first cannot become a writer once another connection has committed in between, and fails at once
    with "database is locked" instead of waiting (the door thread commits events all the time). A
    transaction that starts by writing waits for the write lock (busy_timeout) like any writer.
    """
    value = _finite(latency_ms, "latency_ms", minimum=0.0)
    result = session.execute(
        update(Event)
        .where(Event.id == event_id, Event.latency_ms.is_(None))
        .values(latency_ms=value)
        .execution_options(synchronize_session=False)
    )
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        return False
    for item in session.scalars(
        select(OutboxItem).where(OutboxItem.event_id == event_id, OutboxItem.sent_at.is_(None))
    ):
        item.payload = {**item.payload, "latency_ms": value}
    session.get(Event, event_id, populate_existing=True)  # an identity-mapped row shows the new value
    session.flush()
    return True


def event_to_json(e: Event) -> dict[str, Any]:
    """The event as JSON-ready data (the outbox payload and the export format)."""
    return {
        "id": e.id,
        "ts": dt.datetime.fromtimestamp(e.ts_wall, dt.UTC).isoformat(timespec="milliseconds"),
        "ts_wall": e.ts_wall,
        "ts_mono": e.ts_mono,
        "kind": e.kind,
        "method": e.method,
        "member_id": e.member_id,
        "reason": e.reason,
        "details": dict(e.details or {}),
        "snapshot": e.snapshot,
        "latency_ms": e.latency_ms,
    }


def list_events(
    session: Session,
    *,
    since: float | None = None,
    until: float | None = None,
    kind: str | None = None,
    member_id: str | None = None,
    limit: int = 1000,
    newest_first: bool = False,
) -> list[Event]:
    """Events with since <= ts_wall < until (unix seconds), optionally of one kind / member.

    Ordered by wall time (oldest first unless `newest_first`), ties broken by id for stability.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= LIST_LIMIT_MAX:
        raise ValidationError(f"limit must be an integer from 1 to {LIST_LIMIT_MAX}, got {limit!r}")
    query = select(Event)
    if since is not None:
        query = query.where(Event.ts_wall >= _finite(since, "since"))
    if until is not None:
        query = query.where(Event.ts_wall < _finite(until, "until"))
    if kind is not None:
        query = query.where(Event.kind == kind)
    if member_id is not None:
        query = query.where(Event.member_id == member_id)
    order = (Event.ts_wall.desc(), Event.id.desc()) if newest_first else (Event.ts_wall, Event.id)
    return list(session.scalars(query.order_by(*order).limit(limit)))


def enqueue(
    session: Session, *, topic_kind: str, payload: dict[str, Any], event_id: str | None = None
) -> OutboxItem:
    """Queue a message that is not an event (a status report, say); flushed, not committed."""
    if not isinstance(payload, dict):
        raise ValidationError("payload must be a dict")
    item = OutboxItem(
        event_id=event_id,
        topic_kind=validate_identifier(topic_kind, "topic_kind"),
        payload=json_safe(payload, "payload"),
        created_at=time.time(),
        attempts=0,
    )
    with session.begin_nested():
        session.add(item)
    return item


def pending_outbox(session: Session, limit: int) -> list[OutboxItem]:
    """The oldest unsent outbox items, in `seq` order (the order they were committed)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError(f"limit must be a positive integer, got {limit!r}")
    query = select(OutboxItem).where(OutboxItem.sent_at.is_(None)).order_by(OutboxItem.seq).limit(limit)
    return list(session.scalars(query))


def _chunks(seqs: Iterable[int]) -> Iterable[list[int]]:
    values = sorted({int(s) for s in seqs})
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def mark_sent(session: Session, seqs: Iterable[int], when: float) -> int:
    """Mark outbox items as delivered at `when`; already-sent items keep their first time. Returns count."""
    when = _finite(when, "when")
    count = 0
    for chunk in _chunks(seqs):
        result = session.execute(
            update(OutboxItem)
            .where(OutboxItem.seq.in_(chunk), OutboxItem.sent_at.is_(None))
            .values(sent_at=when)
        )
        count += int(getattr(result, "rowcount", 0) or 0)
    return count


def record_attempts(session: Session, seqs: Iterable[int]) -> int:
    """Count one delivery attempt on each of these unsent items (for back-off and alerts)."""
    count = 0
    for chunk in _chunks(seqs):
        result = session.execute(
            update(OutboxItem)
            .where(OutboxItem.seq.in_(chunk), OutboxItem.sent_at.is_(None))
            .values(attempts=OutboxItem.attempts + 1)
        )
        count += int(getattr(result, "rowcount", 0) or 0)
    return count


def outbox_depth(session: Session) -> int:
    """Number of unsent outbox items (a health metric: it grows while the centre is unreachable)."""
    query = select(func.count()).select_from(OutboxItem).where(OutboxItem.sent_at.is_(None))
    return int(session.scalar(query) or 0)


def prune_sent_outbox(session: Session, *, sent_before: float) -> int:
    """Delete outbox items delivered before `sent_before`; unsent items are never deleted."""
    cutoff = _finite(sent_before, "sent_before")
    result = session.execute(
        delete(OutboxItem).where(OutboxItem.sent_at.is_not(None), OutboxItem.sent_at < cutoff)
    )
    return int(getattr(result, "rowcount", 0) or 0)
