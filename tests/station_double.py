"""A small `sync.port.StationPort` for tests: a real station store, a pretend door.

Everything sync reads or writes goes to a real `Station` (SQLite, template cipher, outbox), so
roster application, the outbox and command replay memory are the production code. The door's
actions are recorded instead of driving GPIO: `opens` lists every `remote_open`, `schedules`
every `set_schedule`. No camera and no dlib: the face model is named, never loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from common.template_cipher import TemplateCipher
from contract.messages import FaceModelInfo
from contract.schedule import ScheduleConfig
from edge.config import Config
from edge.recorder import EventRecorder
from edge.station import Station
from sync.config import MqttConfig
from sync.port import EventListener

DLIB = FaceModelInfo(name="dlib_resnet_v1", dim=128)


class StationDouble:
    def __init__(self, config: Config, station: Station | None = None, model: FaceModelInfo = DLIB) -> None:
        self.config = config
        self.station = station or Station(config, env={})
        self.recorder = EventRecorder(self.station.sessions)
        self.model = model
        self.opens: list[dict[str, Any]] = []
        self.schedules: list[ScheduleConfig] = []
        self.reloads = 0

    def close(self) -> None:
        self.station.close()

    @property
    def station_id(self) -> str:
        return self.config.mqtt.effective_station_id(self.config.station.station_id)

    @property
    def mqtt(self) -> MqttConfig:
        return self.config.mqtt

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.station.sessions

    @property
    def write_sessions(self) -> sessionmaker[Session]:
        return self.station.write_sessions

    def cipher(self) -> TemplateCipher:
        return self.station.cipher

    def face_model(self) -> FaceModelInfo:
        return self.model

    def bump_roster(self, session: Session) -> None:
        self.station._bump_roster_version(session)

    def resolve_snapshot(self, relative: str) -> Path:
        raise FileNotFoundError(relative)

    def subscribe_events(self, listener: EventListener) -> None:
        self.recorder.subscribe(listener)

    def health(self) -> dict[str, Any]:
        return {"door": "double"}

    def record_event(
        self,
        *,
        kind: str,
        method: str | None = None,
        details: Mapping[str, Any] | None = None,
        snapshot: str | None = None,
        event_id: str | None = None,
        ts_wall: float | None = None,
    ) -> dict[str, Any]:
        return self.recorder.record(
            kind=kind,
            method=method,
            details=dict(details or {}),
            snapshot=snapshot,
            event_id=event_id,
            ts_wall=ts_wall,
        )

    def remote_open(
        self, *, seconds: float | None, member_id: str | None, by: str, details: Mapping[str, Any]
    ) -> dict[str, Any]:
        event = self.record_event(kind="entry", method="remote", details={"by": by, **details})
        self.opens.append({"seconds": seconds, "member_id": member_id, "by": by, **details})
        return event

    def reload_roster(self) -> int:
        self.reloads += 1
        return self.station.door_roster().version

    def latest_frame(self) -> object | None:
        return None

    def snapshot_path(self, event_id: str, when: float) -> str | None:
        return None

    def write_snapshot(self, event_id: str, frame: object, when: float) -> None:
        raise AssertionError("no frames in the double")

    def set_schedule(self, schedule: ScheduleConfig) -> None:
        self.schedules.append(schedule)
