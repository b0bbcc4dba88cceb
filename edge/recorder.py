"""Writing every decision and door event to the local database, durably, from any thread.

`record` commits the event row and its outbox row in one transaction and returns only once SQLite
has fsynced them (WAL, synchronous=FULL): the caller drives the relay after that, so a power cut can
never leave an entry without a record. Each call uses its own session, so the decide thread and
gpiozero's callback threads can record concurrently (SQLite serialises the writers; busy_timeout
makes them wait rather than fail).

Listeners (the demo's printer, later the live view over MQTT) are called after the commit with the
event as JSON; a failing listener is logged and never affects the door.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from edge.disk_space import is_disk_full
from models import events as event_store

log = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]


class EventRecorder:
    def __init__(
        self, sessions: sessionmaker[Session], *, make_room: Callable[[], int] | None = None
    ) -> None:
        """`make_room` is called when a commit fails because the disk is full; it frees what it
        can (the oldest snapshots, then the disk reserve) and returns the bytes freed: the record
        is then tried once more, so a full disk costs pictures, not events."""
        self._sessions = sessions
        self._make_room = make_room
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self.failures = 0

    def subscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def record(
        self,
        *,
        kind: str,
        method: str | None = None,
        member_id: str | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        snapshot: str | None = None,
        event_id: str | None = None,
        ts_mono: float | None = None,
        ts_wall: float | None = None,
    ) -> dict[str, Any]:
        """Commit one event (and its outbox row); returns the event as JSON. Raises on failure."""
        event_id = event_id or str(uuid.uuid4())
        ts_mono = time.monotonic() if ts_mono is None else ts_mono
        ts_wall = time.time() if ts_wall is None else ts_wall

        def commit() -> dict[str, Any]:
            with self._sessions() as session, session.begin():
                event = event_store.record_event(
                    session,
                    kind=kind,
                    method=method,
                    member_id=member_id,
                    reason=reason,
                    details=details or {},
                    snapshot=snapshot,
                    event_id=event_id,
                    ts_mono=ts_mono,
                    ts_wall=ts_wall,
                )
                return event_store.event_to_json(event)

        try:
            try:
                payload = commit()
            except Exception as exc:
                if self._make_room is None or not is_disk_full(exc) or self._make_room() <= 0:
                    raise
                log.warning(
                    "disk full while recording: made room, recording again", extra={"fields": {"event": kind}}
                )
                payload = commit()
        except Exception:
            self.failures += 1
            log.exception("event not recorded", extra={"fields": {"event": kind, "member_id": member_id}})
            raise
        log.info(
            "event",
            extra={
                "fields": {
                    "event_id": event_id,
                    "kind": kind,
                    "method": method,
                    "member_id": member_id,
                    "reason": reason,
                }
            },
        )
        self._notify(payload)
        return payload

    def set_latency(self, event_id: str, latency_ms: float) -> None:
        try:
            with self._sessions() as session, session.begin():
                event_store.set_latency(session, event_id, latency_ms)
        except Exception:
            log.exception("latency not recorded", extra={"fields": {"event_id": event_id}})

    def _notify(self, payload: dict[str, Any]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(payload)
            except Exception:
                log.exception("event listener failed", extra={"fields": {"event_id": payload.get("id")}})
