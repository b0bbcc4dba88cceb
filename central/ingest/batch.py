"""One ingest batch: check every message, store what passes in one transaction, say what follows.

`prepare` checks a message without the database (topic, registered station, size, strict JSON, the
reading models of `central.ingest.messages`, a snapshot's JPEG and hash); a refusal is final.
`apply` writes a batch of prepared messages in **one transaction** and returns `Handled`: what to
PUBACK, which `seq`s to acknowledge per station, what to put on the live bus, which roster
requests to answer. The worker does those things only after `apply` returned, i.e. after the
commit (docs/CENTRAL.md, "Ingest: the hot path"). If `apply` raises, nothing was stored and nothing
is acknowledged: the worker retries the same batch.

Idempotence makes re-delivery harmless: an event is stored once per (id, ts) and a re-send is
acknowledged again; an enrolment once per id; a snapshot once per event; a result once per ref.

A snapshot for an event the centre does not have: usually the event is in another worker's batch
that has not committed yet (the station publishes the picture as soon as the broker, or the
centre, took the event), so the snapshot is **parked** in memory for up to `snapshot_park_s` and
tried again with later batches. Still unknown after that, it is refused and *not* acknowledged: a
station delivering by the centre's ack publishes it again later (by then the event is stored, or
it really does not exist and is refused again). Parking is bounded in count and bytes; beyond that
a snapshot is refused at once, the same way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from central.config import CentralConfig
from central.ingest.directory import StationDirectory, StationInfo
from central.ingest.messages import (
    EnrolmentIn,
    EventIn,
    Refusal,
    ResultIn,
    RosterRequestIn,
    SnapshotMetaIn,
    StatusIn,
    TemplateRemovalIn,
    UpMessage,
    parse_json_message,
    parse_snapshot_meta,
)
from central.ingest.refusals import RefusalLog
from central.roster.enrolments import enrolment_received
from central.roster.erasure import confirm_applied_many
from central.roster.removals import RemovalRefused, template_removal_received
from central.snapshot_files import JPEG_MAGIC, SNAPSHOT_URL, SnapshotFiles
from central.store import ingest as ingest_store
from central.store import removals as removal_store
from central.store import snapshots as snapshot_store
from central.store.status import apply_status, clock_skew_s
from central.store.tables import Station
from common.errors import StoreError
from common.template_cipher import TemplateCipher
from contract.topics import UP_SNAPSHOT, UpTopic, parse_up

log = logging.getLogger(__name__)

PARK_MAX = 2000
PARK_MAX_BYTES = 256 * 1024 * 1024
ROSTER_REF_TYPES = frozenset({"roster_change", "roster_snapshot", "roster_status"})


@dataclass(slots=True)
class Inbound:
    """One message as paho delivered it. `payload` is None when it was over the size limit (only
    its size is kept); `generation` is the connection it came on (PUBACKs go only on that one)."""

    topic: str
    payload: bytes | None
    size: int
    mid: int
    qos: int
    generation: int
    received_wall: float  # time.time() when paho handed it over (a datetime only when one is needed)
    received_mono: float
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def received_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.received_wall, dt.UTC)


@dataclass(slots=True)
class Prepared:
    item: Inbound
    topic: UpTopic
    station: StationInfo
    message: UpMessage | SnapshotMetaIn
    park_until: float | None = None

    @property
    def kind(self) -> str:
        return self.topic.kind


@dataclass
class Handled:
    """What to do once the batch is committed."""

    done: list[Inbound] = field(default_factory=list)  # PUBACK these (stored, duplicate or refused)
    parked: list[Prepared] = field(default_factory=list)  # snapshots waiting for their event
    stored: dict[str, list[int]] = field(default_factory=dict)  # station -> seqs to acknowledge
    live: list[tuple[str, dict[str, Any], str | None, str | None]] = field(default_factory=list)
    requests: list[tuple[str, RosterRequestIn]] = field(default_factory=list)
    refused: list[tuple[str, str, str | None, str]] = field(
        default_factory=list
    )  # kind, reason, station, detail
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    roster_written: bool = False
    parked_bytes: int = 0

    def ack(self, station_id: str, seq: int) -> None:
        self.stored.setdefault(station_id, []).append(seq)


def _template_ids(batch: list[Prepared]) -> list[str]:
    """The template ids the batch's enrolments and removals name."""
    ids: list[str] = []
    for prepared in batch:
        if isinstance(prepared.message, EnrolmentIn):
            ids.extend(t.template_id for t in prepared.message.templates)
        elif isinstance(prepared.message, TemplateRemovalIn):
            ids.append(prepared.message.template_id)
    return ids


class BatchProcessor:
    def __init__(
        self,
        *,
        db: sessionmaker[Session],
        directory: StationDirectory,
        files: SnapshotFiles,
        config: CentralConfig,
        cipher: TemplateCipher,
        refusals: RefusalLog,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._directory = directory
        self._files = files
        self._config = config
        self._cipher = cipher
        self._refusals = refusals
        self._clock = clock
        self._max_bytes = config.mqtt.max_payload_bytes
        self._park_s = config.mqtt.snapshot_park_s
        self._last_history: dict[str, dt.datetime] = {}  # station -> its last status history row

    # -- checks without the database ----------------------------------------------------------

    def prepare(self, items: Iterable[Inbound]) -> tuple[list[Prepared], list[Inbound]]:
        """(messages to store, messages refused: PUBACK them). Refusals are counted and logged."""
        items = list(items)
        topics = [(item, parse_up(item.topic)) for item in items]
        stations = self._directory.lookup({t.station_id for _, t in topics if t is not None})
        ready: list[Prepared] = []
        refused: list[Inbound] = []
        for item, topic in topics:
            try:
                ready.append(self._prepare_one(item, topic, stations))
            except Refusal as exc:
                kind = topic.kind if topic is not None else "unknown"
                self._refusals.refuse(kind, exc.reason, topic.station_id if topic else None, exc.detail)
                refused.append(item)
        return ready, refused

    def _prepare_one(
        self, item: Inbound, topic: UpTopic | None, stations: dict[str, StationInfo | None]
    ) -> Prepared:
        if topic is None:
            raise Refusal("bad_topic", item.topic[:200])
        station = stations.get(topic.station_id)
        if station is None:
            raise Refusal("unknown_station", "not registered at the centre (yizhan-central stations add)")
        if not station.active:
            raise Refusal("station_inactive", "the station is deactivated")
        if item.payload is None:
            raise Refusal("too_large", f"{item.size} bytes, the limit is {self._max_bytes}")
        if topic.kind == UP_SNAPSHOT:
            assert topic.event_id is not None
            meta = parse_snapshot_meta(topic.station_id, topic.event_id, item.properties)
            data = item.payload
            if len(data) > self._config.snapshots.max_bytes:
                raise Refusal("too_large", f"snapshot of {len(data)} bytes, [snapshots] max_bytes is lower")
            if meta.bytes != len(data):
                raise Refusal(
                    "invalid_payload", f"properties say {meta.bytes} bytes, the payload has {len(data)}"
                )
            if not data.startswith(JPEG_MAGIC):
                raise Refusal("not_jpeg", "the payload does not start like a JPEG")
            if hashlib.sha256(data).hexdigest() != meta.sha256:
                raise Refusal("bad_checksum", "sha256 of the payload differs from its properties")
            return Prepared(item, topic, station, meta)
        message = parse_json_message(topic.kind, topic.station_id, item.payload, self._max_bytes)
        return Prepared(item, topic, station, message)

    # -- the transaction ------------------------------------------------------------------------

    def apply(self, batch: list[Prepared]) -> Handled:
        """Store `batch` in one transaction (see the module doc). Raises when nothing was stored."""
        handled = Handled()
        with self._db.begin() as session:
            self._events(session, [p for p in batch if p.kind == "event"], handled)
            # Every template id the batch touches, locked at once in sorted order before any of
            # them: taken message by message, a batch [removal of B, enrolment with A] in one worker
            # and [enrolment with A, removal of B] in another could each hold one and wait for the
            # other (PostgreSQL detects it, but the batch then fails and is retried). Re-taking a
            # held transaction lock later (each message takes its own) does not wait.
            removal_store.lock_templates(session, _template_ids(batch))
            for prepared in batch:
                if prepared.kind == "enrolment":
                    self._enrolment(session, prepared, handled)
                elif prepared.kind == "template_removal":
                    self._template_removal(session, prepared, handled)
            self._snapshots(session, [p for p in batch if p.kind == UP_SNAPSHOT], handled)
            self._stations(session, batch, handled)
            for prepared in batch:
                if prepared.kind == "roster_request":
                    assert isinstance(prepared.message, RosterRequestIn)
                    handled.requests.append((prepared.station.station_id, prepared.message))
                    handled.done.append(prepared.item)
                    handled.outcomes["roster_request", "stored"] += 1
        return handled

    def refused_after_commit(self, handled: Handled) -> None:
        """Count and log the refusals decided inside the (now committed) transaction."""
        for kind, reason, station_id, detail in handled.refused:
            self._refusals.refuse(kind, reason, station_id, detail)

    def _refuse(self, handled: Handled, prepared: Prepared, reason: str, detail: str = "") -> None:
        handled.refused.append((prepared.kind, reason, prepared.station.station_id, detail))
        handled.done.append(prepared.item)

    def _events(self, session: Session, events: list[Prepared], handled: Handled) -> None:
        if not events:
            return
        # `received_at` of an event is when the centre stored it: this batch, one clock reading.
        stored_at = dt.datetime.now(dt.UTC)
        stored_iso = stored_at.isoformat()
        rows = []
        for prepared in events:
            message = prepared.message
            assert isinstance(message, EventIn)
            rows.append(
                {
                    "id": message.id,
                    "ts": message.ts,
                    "station_id": message.station_id,
                    "seq": message.seq,
                    "kind": message.kind,
                    "method": message.method,
                    "member_id": message.member_id,
                    "reason": message.reason,
                    "details": message.details,
                    "snapshot": message.snapshot,
                    "latency_ms": message.latency_ms,
                    "received_at": stored_at,
                }
            )
        outcomes = ingest_store.store_events(session, rows)
        for prepared, outcome in zip(events, outcomes, strict=True):
            message = prepared.message
            assert isinstance(message, EventIn)
            if outcome == ingest_store.FOREIGN:
                self._refuse(
                    handled, prepared, "event_id_taken", f"event {message.id} belongs to another station"
                )
                continue
            handled.done.append(prepared.item)
            handled.ack(message.station_id, message.seq)
            handled.outcomes["event", outcome == ingest_store.NEW and "stored" or "duplicate"] += 1
            if outcome == ingest_store.NEW:
                handled.live.append(
                    (
                        "event",
                        self._event_live(message, stored_iso),
                        message.station_id,
                        prepared.station.district_id,
                    )
                )

    @staticmethod
    def _event_live(message: EventIn, stored_iso: str) -> dict[str, Any]:
        return {
            "id": message.id,
            "station_id": message.station_id,
            "ts": message.ts.isoformat(),
            "kind": message.kind,
            "method": message.method,
            "member_id": message.member_id,
            "reason": message.reason,
            "granted": message.kind == "entry",
            "details": message.details,
            "snapshot": None,
            "snapshot_expected": message.snapshot is not None,
            "latency_ms": message.latency_ms,
            "received_at": stored_iso,
        }

    def _enrolment(self, session: Session, prepared: Prepared, handled: Handled) -> None:
        message = prepared.message
        assert isinstance(message, EnrolmentIn)
        try:
            with session.begin_nested():
                outcome = enrolment_received(
                    session,
                    self._cipher,
                    station_id=prepared.station.station_id,
                    message=message,
                    received_at=prepared.item.received_at,
                )
        except (StoreError, ValueError) as exc:
            self._refuse(handled, prepared, "invalid_payload", str(exc))
            return
        handled.done.append(prepared.item)
        handled.ack(message.station_id, message.seq)
        handled.outcomes["enrolment", "stored" if outcome.new else "duplicate"] += 1
        if outcome.templates_refused or outcome.member_refused:
            handled.refused.append(
                (
                    "enrolment",
                    outcome.member_refused or "templates_refused",
                    message.station_id,
                    f"enrolment {message.id}: {outcome.templates_refused} template(s) not kept",
                )
            )
        if outcome.new:
            handled.roster_written = handled.roster_written or outcome.stations > 0
            handled.live.append(
                (
                    "enrolment",
                    {
                        "id": message.id,
                        "station_id": message.station_id,
                        "member_id": outcome.member_id,
                        "templates_stored": outcome.templates_stored,
                        "templates_withheld": message.templates_withheld,
                        "templates_refused": outcome.templates_refused,
                        "stations": outcome.stations,
                    },
                    message.station_id,
                    prepared.station.district_id,
                )
            )

    def _template_removal(self, session: Session, prepared: Prepared, handled: Handled) -> None:
        """A template removed on site: withdrawn everywhere (`central.roster.removals`)."""
        message = prepared.message
        assert isinstance(message, TemplateRemovalIn)
        station = session.get(Station, prepared.station.station_id)
        if station is None:
            self._refuse(handled, prepared, "unknown_station", "deleted while the message was in flight")
            return
        try:
            with session.begin_nested():
                outcome = template_removal_received(
                    session, station=station, message=message, received_at=prepared.item.received_at
                )
        except RemovalRefused as exc:
            self._refuse(handled, prepared, exc.reason, exc.detail)
            return
        handled.done.append(prepared.item)
        handled.ack(message.station_id, message.seq)
        result = "duplicate" if not outcome.new else "stored" if outcome.held else "absent"
        handled.outcomes["template_removal", result] += 1
        if outcome.held:
            handled.roster_written = handled.roster_written or outcome.stations > 0

    def _snapshots(self, session: Session, snapshots: list[Prepared], handled: Handled) -> None:
        if not snapshots:
            return
        pairs = [(p.station.station_id, p.topic.event_id or "") for p in snapshots]
        known = ingest_store.events_known(session, pairs=pairs)
        existing = snapshot_store.stored(session, event_ids=[e for _, e in pairs])
        now_mono = self._clock()
        for prepared, pair in zip(snapshots, pairs, strict=True):
            meta = prepared.message
            assert isinstance(meta, SnapshotMetaIn)
            event_ts = known.get(pair)
            if event_ts is None:
                self._park_or_refuse(prepared, handled, now_mono)
                continue
            previous = existing.get(meta.event_id)
            if previous is not None and previous.station_id != prepared.station.station_id:
                self._refuse(handled, prepared, "event_id_taken", "another station's event")
                continue
            data = prepared.item.payload
            assert data is not None
            if previous is None:
                relative = self._files.relative_for(event_ts, meta.event_id)
                self._files.write(relative, data)
                snapshot_store.add_snapshot(
                    session,
                    event_id=meta.event_id,
                    event_ts=event_ts,
                    station_id=meta.station_id,
                    path=relative,
                    size_bytes=len(data),
                    sha256=meta.sha256,
                    received_at=prepared.item.received_at,
                )
                handled.live.append(
                    (
                        "snapshot",
                        {
                            "event_id": meta.event_id,
                            "station_id": meta.station_id,
                            "url": SNAPSHOT_URL.format(event_id=meta.event_id),
                            "bytes": len(data),
                        },
                        meta.station_id,
                        prepared.station.district_id,
                    )
                )
            handled.done.append(prepared.item)
            handled.ack(meta.station_id, meta.seq)
            handled.outcomes["snapshot", "stored" if previous is None else "duplicate"] += 1

    def _park_or_refuse(self, prepared: Prepared, handled: Handled, now: float) -> None:
        size = prepared.item.size
        if prepared.park_until is None:
            if (
                len(handled.parked) < PARK_MAX
                and handled.parked_bytes + size <= PARK_MAX_BYTES
                and self._park_s > 0
            ):
                prepared.park_until = now + self._park_s
                handled.parked.append(prepared)
                handled.parked_bytes += size
                return
        elif now < prepared.park_until:
            handled.parked.append(prepared)
            handled.parked_bytes += size
            return
        self._refuse(
            handled, prepared, "unknown_event", f"no event {prepared.topic.event_id} of this station"
        )

    def _stations(self, session: Session, batch: list[Prepared], handled: Handled) -> None:
        """Statuses and results: they touch station and command rows (locked in id order)."""
        touching = sorted({p.station.station_id for p in batch if p.kind in ("status", "result")})
        if not touching:
            return
        rows = {
            s.station_id: s
            for s in session.scalars(
                select(Station)
                .where(Station.station_id.in_(touching))
                .order_by(Station.station_id)
                .with_for_update()
            )
        }
        ordered = sorted(
            (p for p in batch if p.kind in ("status", "result")), key=lambda p: p.item.received_mono
        )
        results: list[dict[str, Any]] = []
        applied: dict[str, int] = {}
        for prepared in ordered:
            station = rows.get(prepared.station.station_id)
            if station is None:  # deleted meanwhile
                self._refuse(handled, prepared, "unknown_station", "deleted while the message was in flight")
                continue
            before = station.applied_version
            if isinstance(prepared.message, StatusIn):
                self._status(session, station, prepared, handled)
            elif isinstance(prepared.message, ResultIn):
                results.append(self._result(session, station, prepared, handled))
            if station.applied_version is not None and station.applied_version != before:
                applied[station.station_id] = station.applied_version
        ingest_store.store_results(session, results)
        if applied:
            confirm_applied_many(session, applied)

    def _status(self, session: Session, station: Station, prepared: Prepared, handled: Handled) -> None:
        message = prepared.message
        assert isinstance(message, StatusIn)
        change = apply_status(
            session,
            station=station,
            state=message.state,
            ts=message.ts,
            health=message.health,
            received_at=prepared.item.received_at,
            last_history=self._last_history,
        )
        handled.done.append(prepared.item)
        handled.outcomes["status", "stored"] += 1
        if change.applied:
            health = message.health or {}
            handled.live.append(
                (
                    "status",
                    {
                        "station_id": station.station_id,
                        "state": message.state,
                        "previous_state": change.previous_state,
                        "ts": message.ts.isoformat(),
                        "received_at": prepared.item.received_at.isoformat(),
                        "camera": (health.get("camera") or {}).get("state")
                        if isinstance(health.get("camera"), dict)
                        else None,
                        "disk": (health.get("disk") or {}).get("status")
                        if isinstance(health.get("disk"), dict)
                        else None,
                        "clock_skew_s": clock_skew_s(message.health, prepared.item.received_at),
                        "outbox_depth": health.get("outbox_depth"),
                        "roster_version": health.get("centre_roster_version"),
                    },
                    station.station_id,
                    station.district_id,
                )
            )

    def _result(
        self, session: Session, station: Station, prepared: Prepared, handled: Handled
    ) -> dict[str, Any]:
        """Act on one result; returns its row (the batch stores them together)."""
        message = prepared.message
        assert isinstance(message, ResultIn)
        now = prepared.item.received_at
        row = {
            "station_id": station.station_id,
            "ref": message.ref,
            "ref_type": message.ref_type[:16],
            "ok": message.ok,
            "error": message.error,
            "message": message.message,
            "data": message.data,
            "ts": message.ts,
            "received_at": now,
        }
        live: dict[str, Any] = {
            "station_id": station.station_id,
            "ref": message.ref,
            "ref_type": message.ref_type,
            "ok": message.ok,
            "code": message.error,
            "message": message.message,
            "data": message.data,
        }
        if message.ref_type == "command" and message.ref is not None:
            command = ingest_store.answer_command(
                session,
                station_id=station.station_id,
                command_id=message.ref,
                ok=message.ok,
                error=message.error,
                message=message.message,
                data=message.data,
                at=now,
            )
            if command is not None:
                live.update(command_id=command.id, name=command.name, state=command.state)
                if command.name == "set_schedule" and message.ok:
                    schedule = (command.params or {}).get("schedule")
                    if isinstance(schedule, dict):
                        station.schedule = schedule  # the station runs these hours now
        elif message.ref_type in ROSTER_REF_TYPES:
            applied = message.data.get("applied_version")
            if isinstance(applied, int) and not isinstance(applied, bool) and 0 <= applied < 2**53:
                station.applied_version = applied
        handled.done.append(prepared.item)
        handled.outcomes["result", "stored"] += 1
        handled.live.append(("result", live, station.station_id, station.district_id))
        return row
