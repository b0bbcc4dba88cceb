"""`RosterService`: publishes roster changes as they are written, and answers roster requests.

One thread per process ("roster") does both, through the process's one `DownLink`, so every
`down/roster` message this process sends leaves in the order it was decided: a roster status
never overtakes the changes it follows (docs/mqtt.md, "roster status").

Fan-out: every `poll_s`, the unsent `roster_changes` rows (oldest first, by the `sent_at, id`
index) are built (templates decrypted at that moment, `central.roster.messages`), signed,
published at QoS 1, and marked sent once the broker has acknowledged them. A row is marked sent
even if no station session takes it (PUBACK "no matching subscribers"): a station that was never
connected asks for its roster when it first connects. With several centre processes on
PostgreSQL, one fans out at a time (a transaction-scoped advisory lock per round); the others
stand by, and take over when it dies.

Requests: each `up/roster_request` an ingest worker received is queued here and answered in
order (`central.roster.requests`).

Every hour the QR keys are compared with what the stations were told (`keys_changed`): a
retiring key whose overlap has ended is revoked everywhere.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from central.data_key import DataKey
from central.ingest.downlink import DownLink
from central.ingest.messages import RosterRequestIn
from central.metrics import CentreMetrics
from central.roster import changes
from central.roster.messages import Templates, change_message, snapshot_messages
from central.roster.requests import answer_request
from central.roster.view import SNAPSHOT_OP
from central.signing import MessageSigner
from central.store.tables import RosterChange, Station
from contract.topics import StationTopics

log = logging.getLogger(__name__)

BATCH = 500
PUBACK_TIMEOUT_S = 15.0
KEYS_EVERY_S = 3600.0
_FANOUT_LOCK = 0x797A_726F  # "yzro": one roster fan-out at a time across centre processes


@dataclass(frozen=True, slots=True)
class Request:
    station_id: str
    request: RosterRequestIn
    received_mono: float


class RosterService:
    def __init__(
        self,
        *,
        db: sessionmaker[Session],
        data_key: DataKey,
        down: DownLink,
        signer: MessageSigner,
        metrics: CentreMetrics,
        poll_s: float = 0.2,
    ) -> None:
        self._db = db
        self._data_key = data_key
        self._down = down
        self._signer = signer
        self._metrics = metrics
        self._poll_s = poll_s
        self._requests: queue.Queue[Request] = queue.Queue(maxsize=10_000)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_keys = time.monotonic() + 30.0
        self.sent = 0
        self.answered = 0
        self.last_error: str | None = None

    # -- control ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="roster", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10.0)
            self._thread = None

    def wake(self) -> None:
        """Changes were just committed in this process: publish them now rather than at the next poll."""
        self._wake.set()

    def request(self, station_id: str, request: RosterRequestIn) -> bool:
        """Queue a station's roster request (from an ingest worker, after its batch committed)."""
        try:
            self._requests.put_nowait(Request(station_id, request, time.monotonic()))
        except queue.Full:
            log.warning("roster requests queue full: request dropped (the station asks again)")
            return False
        self._wake.set()
        return True

    # -- the thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            busy = False
            try:
                if self._down.connected:
                    busy = self._answer_requests() or busy
                    busy = self._fan_out() or busy
                    if time.monotonic() >= self._next_keys:
                        self._next_keys = time.monotonic() + KEYS_EVERY_S
                        with self._db.begin() as session:
                            if changes.keys_changed(session, now=dt.datetime.now(dt.UTC)):
                                busy = True
                self.last_error = None
            except Exception as exc:  # the database or the broker went away: try again shortly
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.exception("roster fan-out round failed; retrying")
                self._stop.wait(1.0)
            if not busy:
                self._wake.wait(self._poll_s)
                self._wake.clear()

    def _publish(self, messages: Sequence[dict[str, Any]]) -> bool:
        infos = []
        for message in messages:
            topic = StationTopics(message["station_id"]).roster
            info = self._down.publish(topic, self._signer.sign_bytes(message))
            if info is None:
                return False
            infos.append(info)
            self._metrics.down_messages.labels(message["type"]).inc()
        return self._down.wait_all(infos, PUBACK_TIMEOUT_S)

    def _answer_requests(self) -> bool:
        handled = False
        while not self._stop.is_set():
            try:
                item = self._requests.get_nowait()
            except queue.Empty:
                return handled
            handled = True
            now = dt.datetime.now(dt.UTC)
            try:
                with self._db.begin() as session:
                    answer = answer_request(
                        session,
                        self._data_key.templates,
                        station_id=item.station_id,
                        request=item.request,
                        now=now,
                    )
                    if answer is None:
                        continue
                    # Published inside the transaction: if it fails, nothing the answer decided
                    # (a snapshot marker, the station's basis) is kept, and the station asks again.
                    if not self._publish(answer.messages):
                        raise ConnectionError("the broker did not take the roster answer")
            except (SQLAlchemyError, ConnectionError):
                log.warning(
                    "roster request not answered (the station asks again)",
                    extra={"fields": {"station_id": item.station_id}},
                    exc_info=True,
                )
                continue
            self.answered += 1
            log.info(
                "roster request answered",
                extra={
                    "fields": {
                        "station_id": item.station_id,
                        "have_version": item.request.have_version,
                        "reason": item.request.reason,
                        "version": answer.version,
                        "snapshot": answer.snapshot,
                        "messages": len(answer.messages),
                    }
                },
            )
        return handled

    def _fan_out(self) -> bool:
        with self._db.begin() as session:
            if session.get_bind().dialect.name == "postgresql":
                got = session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _FANOUT_LOCK})
                if not got:
                    return False
            rows = list(
                session.scalars(
                    select(RosterChange)
                    .where(RosterChange.sent_at.is_(None))
                    .order_by(RosterChange.sent_at, RosterChange.id)
                    .limit(BATCH)
                )
            )
            if not rows:
                return False
            templates = Templates(session, self._data_key.templates)
            messages: list[dict[str, Any]] = []
            now = dt.datetime.now(dt.UTC)
            for row in rows:
                if any(op.get("op") == SNAPSHOT_OP for op in row.ops):
                    station = session.get(Station, row.station_id)
                    if station is None:
                        continue
                    changes.mark_built(session, station)
                    messages.extend(
                        snapshot_messages(session, self._data_key.templates, station, row.version, now=now)
                    )
                else:
                    messages.append(change_message(row, templates))
            if not self._publish(messages):
                raise ConnectionError("the broker did not acknowledge the roster changes")
            session.execute(
                update(RosterChange).where(RosterChange.id.in_([r.id for r in rows])).values(sent_at=now)
            )
        self.sent += len(rows)
        return len(rows) == BATCH
