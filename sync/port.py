"""`StationPort`: everything `sync/` needs from the station, and nothing more.

MQTT stays out of the station's core the way Frigate's 22-line Communicator keeps it out of its
NVR: the daemon does not know sync exists beyond building one adapter (`edge/sync_port.py`), and
sync knows the daemon only through this Protocol. Tests drive sync with a small double
(`tests/station_double.py`) on a real station store, with no camera, GPIO or dlib.

Read-only bits: the station id, the `[mqtt]` section, the database sessions, the template cipher,
the face model the station runs, where snapshots live. Actions: record an event, open the door,
reload the roster, the latest camera frame (and writing it as a snapshot), set the opening hours,
health for the heartbeat. A port with no running door (the CLI's `sync pull` / `sync flush`)
raises `DoorNotRunning` from the door's actions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from common.template_cipher import TemplateCipher
from contract.messages import FaceModelInfo
from contract.schedule import ScheduleConfig
from sync.config import MqttConfig

EventListener = Callable[[dict[str, Any]], None]


class DoorNotRunning(RuntimeError):
    """The door's actions need the daemon (camera, relay), and it is not running in this process."""


class StationPort(Protocol):
    # -- read-only ---------------------------------------------------------------------------
    @property
    def station_id(self) -> str:
        """The station's id in topics (`[mqtt] station_id`, else `[station] station_id`)."""
        ...

    @property
    def mqtt(self) -> MqttConfig:
        """The `[mqtt]` section, file paths already absolute."""
        ...

    @property
    def sessions(self) -> sessionmaker[Session]:
        """Read sessions of the station database."""
        ...

    @property
    def write_sessions(self) -> sessionmaker[Session]:
        """Sessions that open with BEGIN IMMEDIATE (read-then-write transactions)."""
        ...

    def cipher(self) -> TemplateCipher:
        """The template key (loaded on first use)."""
        ...

    def face_model(self) -> FaceModelInfo:
        """The face model the station runs: only its templates are stored."""
        ...

    def bump_roster(self, session: Session) -> None:
        """Inside a roster transaction: tell the door its roster changed (rebuilt after commit)."""
        ...

    def resolve_snapshot(self, relative: str) -> Path:
        """The file of a snapshot named by an event (refuses paths outside the snapshot folder)."""
        ...

    def subscribe_events(self, listener: EventListener) -> None:
        """Call `listener` (on the door's threads: it must return at once) after each recorded event."""
        ...

    def health(self) -> dict[str, Any]:
        """Camera, door, disk, clock, roster version: what the status heartbeat carries."""
        ...

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
        """Record an event (with its outbox row); returns it as JSON."""
        ...

    def remote_open(
        self,
        *,
        seconds: float | None,
        member_id: str | None,
        by: str,
        details: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Open the door through the station's own decision and record-before-relay path; the event."""
        ...

    def reload_roster(self) -> int:
        """Rebuild the door's roster from the database now; its version."""
        ...

    def latest_frame(self) -> object | None:
        """The newest camera frame (opaque to sync), or None."""
        ...

    def snapshot_path(self, event_id: str, when: float) -> str | None:
        """The relative path a snapshot of `event_id` will have, or None when snapshots are off."""
        ...

    def write_snapshot(self, event_id: str, frame: object, when: float) -> None:
        """Queue `frame` to be written as the snapshot of `event_id` (off the caller's thread)."""
        ...

    def set_schedule(self, schedule: ScheduleConfig) -> None:
        """Replace the opening hours in force."""
        ...
