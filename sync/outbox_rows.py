"""From an outbox row to the MQTT message that carries it (topic, bytes, v5 properties).

Kept apart from the publisher, which only schedules: this module decides what a row becomes.
Events are validated against `EventMessage` (the contract's required fields); snapshots are read
from the snapshot folder through `SnapshotStore.resolve` (which refuses any path that is not a
snapshot of ours); enrolments are built at the moment of sending, so consent is checked then
(`sync.enrolment`). Other topic kinds go out as their JSON payload on `up/<kind>`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy.orm import Session, sessionmaker

from common.template_cipher import TemplateCipher
from contract.messages import EventMessage, FaceModelInfo, SnapshotMeta, TemplateRemovalMessage
from contract.topics import UP_EVENT, UP_SNAPSHOT, StationTopics
from sync.config import MqttConfig
from sync.enrolment import REMOVAL_KIND, build_enrolment
from sync.enrolment import TOPIC_KIND as ENROLMENT_KIND


@dataclass(slots=True)
class Row:
    """One outbox row as the publisher holds it."""

    seq: int
    event_id: str | None
    kind: str
    payload: dict[str, Any]
    created_at: float


@dataclass(slots=True)
class Ready:
    """A message ready to publish."""

    row: Row
    topic: str
    data: bytes
    properties: Properties | None = None
    snapshot: str | None = None  # an event's snapshot path, to queue its upload once acknowledged
    scrub: bool = False  # an enrolment row holding photos (dropped from the row once delivered)


@dataclass(frozen=True, slots=True)
class NotYet:
    """The snapshot file is not written yet: try again shortly."""


@dataclass(frozen=True, slots=True)
class Skip:
    """Nothing to send for this row, ever (`problem` says why; it is logged)."""

    problem: str


class MessageBuilder:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        topics: StationTopics,
        config: MqttConfig,
        resolve_snapshot: Callable[[str], Path] | None,
        cipher: Callable[[], TemplateCipher] | None,
        face_model: Callable[[], FaceModelInfo] | None = None,
    ) -> None:
        self._face_model = face_model
        self._sessions = sessions
        self._topics = topics
        self._config = config
        self._resolve_snapshot = resolve_snapshot
        self._cipher = cipher

    def build(self, row: Row) -> Ready | NotYet | Skip:
        """The message for `row`. Raises when the row cannot be turned into one (bad data)."""
        if row.kind == UP_EVENT:
            return self._event(row)
        if row.kind == UP_SNAPSHOT:
            return self._snapshot(row)
        if row.kind == ENROLMENT_KIND:
            return self._enrolment(row)
        if row.kind == REMOVAL_KIND:
            removal = TemplateRemovalMessage.model_validate(
                {**row.payload, "station_id": self._topics.station_id, "seq": row.seq}
            )
            return Ready(row, self._topics.template_removal, removal.model_dump_json().encode())
        body = {
            **row.payload,
            "v": 1,
            "type": row.kind,
            "station_id": self._topics.station_id,
            "seq": row.seq,
        }
        data = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        return Ready(row, self._topics.up(row.kind), data)

    def _event(self, row: Row) -> Ready:
        message = EventMessage.model_validate(
            {**row.payload, "station_id": self._topics.station_id, "seq": row.seq}
        )
        snapshot = row.payload.get("snapshot") if self._config.upload_snapshots else None
        return Ready(
            row,
            self._topics.event,
            message.model_dump_json().encode(),
            snapshot=snapshot if isinstance(snapshot, str) and snapshot else None,
        )

    def _snapshot(self, row: Row) -> Ready | NotYet | Skip:
        event_id = str(row.payload.get("event_id") or row.event_id or "")
        path = str(row.payload.get("path") or "")
        if self._resolve_snapshot is None:
            return Skip("no snapshot folder on this side")
        try:
            file = self._resolve_snapshot(path)
            size = file.stat().st_size
            if size > self._config.max_snapshot_bytes:
                return Skip(f"snapshot is {size} bytes, over max_snapshot_bytes")
            data = file.read_bytes()
        except FileNotFoundError:
            # Written by the snapshot thread after the door moved: wait for it a while.
            if time.time() - row.created_at < self._config.snapshot_wait_s:
                return NotYet()
            return Skip("snapshot file missing (not written, or pruned by the disk budget)")
        except (OSError, ValueError) as exc:
            return Skip(f"snapshot unusable: {exc}")
        meta = SnapshotMeta(
            station_id=self._topics.station_id,
            seq=row.seq,
            event_id=event_id,
            bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
        )
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ContentType = "image/jpeg"
        props.UserProperty = [(k, str(v)) for k, v in meta.model_dump().items()]
        return Ready(row, self._topics.snapshot(event_id), data, properties=props)

    def _enrolment(self, row: Row) -> Ready:
        if self._cipher is None or self._face_model is None:
            raise LookupError("no template key or face model on this side")
        with self._sessions() as session:
            message = build_enrolment(
                session,
                self._cipher,
                model=self._face_model().name,
                station_id=self._topics.station_id,
                seq=row.seq,
                created_at=row.created_at,
                payload=row.payload,
            )
        scrub = "photos_jpeg_b64" in row.payload
        return Ready(row, self._topics.enrolment, message.model_dump_json().encode(), scrub=scrub)
