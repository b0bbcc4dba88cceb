"""The station's side of `sync.port.StationPort`: how sync reaches the store and the daemon.

`StorePort` is a station store with no door running (what `yizhan sync pull` / `sync flush`
use): the door's actions raise `DoorNotRunning`. `DaemonPort` adds the running daemon's door,
camera, snapshots and hours. The daemon builds one `DaemonPort` and hands it to `SyncService`;
nothing in `sync/` imports from `edge/`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from common.template_cipher import TemplateCipher
from contract.messages import FaceModelInfo
from contract.schedule import ScheduleConfig
from edge.config import Config
from edge.doctor import check_clock, check_disk
from edge.recorder import EventRecorder
from edge.snapshots import SnapshotStore
from edge.station import Station
from sync.config import MqttConfig
from sync.port import DoorNotRunning, EventListener

if TYPE_CHECKING:
    from edge.app import StationDaemon

CLOCK_CHECK_EVERY_S = 600.0


class StorePort:
    """The station's database, keys and face model; no door."""

    def __init__(self, config: Config, station: Station, recorder: EventRecorder | None = None) -> None:
        self._config = config
        self._station = station
        self._recorder = recorder
        self._clock_check: tuple[float, dict[str, str]] | None = None

    # -- read-only ---------------------------------------------------------------------------
    @property
    def station_id(self) -> str:
        return self._config.mqtt.effective_station_id(self._config.station.station_id)

    @property
    def mqtt(self) -> MqttConfig:
        return self._config.mqtt

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self._station.sessions

    @property
    def write_sessions(self) -> sessionmaker[Session]:
        return self._station.write_sessions

    def cipher(self) -> TemplateCipher:
        return self._station.cipher

    def face_model(self) -> FaceModelInfo:
        # The identity, not the loaded model: `yizhan sync pull` must not load dlib to name it.
        identity = self._station.model_identity
        return FaceModelInfo(name=identity.name, dim=identity.dim)

    def bump_roster(self, session: Session) -> None:
        self._station._bump_roster_version(session)

    @cached_property
    def _snapshot_store(self) -> SnapshotStore:
        return SnapshotStore(self._config.storage.data_dir / "snapshots", self._config.snapshots)

    def resolve_snapshot(self, relative: str) -> Path:
        return self._snapshot_store.resolve(relative)

    def subscribe_events(self, listener: EventListener) -> None:
        if self._recorder is not None:
            self._recorder.subscribe(listener)

    def health(self) -> dict[str, Any]:
        health: dict[str, Any] = {}
        try:
            health["disk"] = check_disk(self._config).to_json()
        except Exception as exc:
            health["disk"] = {"check": "disk", "status": "fail", "detail": str(exc)[:200]}
        now = time.monotonic()
        if self._clock_check is None or now - self._clock_check[0] > CLOCK_CHECK_EVERY_S:
            self._clock_check = (now, check_clock().to_json())
        health["clock"] = dict(self._clock_check[1])
        return health

    # -- actions -----------------------------------------------------------------------------
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
        recorder = self._recorder or EventRecorder(self._station.sessions)
        return recorder.record(
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
        raise DoorNotRunning("the station's daemon is not running in this process")

    def reload_roster(self) -> int:
        raise DoorNotRunning("the station's daemon is not running in this process")

    def latest_frame(self) -> object | None:
        return None

    def snapshot_path(self, event_id: str, when: float) -> str | None:
        return None

    def write_snapshot(self, event_id: str, frame: object, when: float) -> None:
        raise DoorNotRunning("the station's daemon is not running in this process")

    def set_schedule(self, schedule: ScheduleConfig) -> None:
        raise DoorNotRunning("the station's daemon is not running in this process")


class DaemonPort(StorePort):
    """A running `StationDaemon`: the door, the camera, the snapshot writer, the hours."""

    def __init__(self, daemon: StationDaemon) -> None:
        if daemon.station is None or daemon.recorder is None:
            raise RuntimeError("DaemonPort needs a started daemon (station and recorder)")
        super().__init__(daemon.config, daemon.station, daemon.recorder)
        self._daemon = daemon

    def health(self) -> dict[str, Any]:
        health: dict[str, Any] = {}
        try:
            health.update(self._daemon.health())
        except Exception as exc:
            health["daemon_error"] = str(exc)[:200]
        health.update(super().health())
        return health

    def resolve_snapshot(self, relative: str) -> Path:
        writer = self._daemon.snapshots
        return writer.store.resolve(relative) if writer is not None else super().resolve_snapshot(relative)

    def remote_open(
        self, *, seconds: float | None, member_id: str | None, by: str, details: Mapping[str, Any]
    ) -> dict[str, Any]:
        return self._daemon.remote_open(seconds=seconds, member_id=member_id, by=by, details=details)

    def reload_roster(self) -> int:
        return self._daemon.reload_roster()

    def latest_frame(self) -> object | None:
        return self._daemon.latest_frame()

    def snapshot_path(self, event_id: str, when: float) -> str | None:
        writer = self._daemon.snapshots
        return None if writer is None else writer.path_for(event_id, when)

    def write_snapshot(self, event_id: str, frame: object, when: float) -> None:
        writer = self._daemon.snapshots
        if writer is None:
            raise DoorNotRunning("the snapshot writer is not running")
        writer.submit(event_id, frame, None, when)  # type: ignore[arg-type]  # a Frame from latest_frame

    def set_schedule(self, schedule: ScheduleConfig) -> None:
        self._daemon.set_schedule(schedule)


def sync_tool(args: argparse.Namespace, config: Config) -> int:
    """`yizhan sync flush|pull|trust` on this station's store (the daemon should be stopped)."""
    station = Station(config)
    try:
        port = StorePort(config, station)
        if args.sync_cmd == "flush":
            from sync.flush import flush_command

            return flush_command(port, args.timeout)
        if args.sync_cmd == "pull":
            from sync.pull import pull_command

            return pull_command(port, args.timeout)
        from sync.trust import trust_command

        return trust_command(
            station.write_sessions,
            config.mqtt.centre_key_file,
            key=args.key,
            label=args.label,
            remove=args.remove,
            list_keys=args.list,
            as_json=args.json,
        )
    finally:
        station.close()
