"""What the API needs from the running station: the seam between HTTP and the daemon.

`edge.app.StationDaemon` satisfies this protocol; the API never builds hardware, a camera or a store
of its own, so there is exactly one door, one camera and one database per process, and every door
action the page takes goes through the same decider and record-before-relay order as a face.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from contract.schedule import ScheduleConfig
from door.controller import DoorController
from edge.access import AccessDecider
from edge.camera import CameraSource, Frame
from edge.config import Config
from edge.decide_loop import DecideLoop
from edge.lockouts import LockoutInfo
from edge.recorder import EventRecorder
from edge.snapshot_writer import SnapshotWriter
from edge.station import Station

log = logging.getLogger(__name__)


class StationServices(Protocol):
    """Read-only views of the daemon's parts (None until started or after stop) and its services."""

    @property
    def config(self) -> Config: ...

    @property
    def station(self) -> Station | None: ...

    @property
    def recorder(self) -> EventRecorder | None: ...

    @property
    def camera(self) -> CameraSource | None: ...

    @property
    def loop(self) -> DecideLoop | None: ...

    @property
    def door(self) -> DoorController | None: ...

    @property
    def snapshots(self) -> SnapshotWriter | None: ...

    @property
    def sync(self) -> Any: ...

    @property
    def decider(self) -> AccessDecider | None: ...

    def remote_open(
        self,
        *,
        seconds: float | None = None,
        member_id: str | None = None,
        by: str = "remote",
        details: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]: ...

    def set_schedule(self, schedule: ScheduleConfig) -> None: ...

    def latest_frame(self) -> Frame | None: ...

    def reload_roster(self) -> int: ...

    def health(self) -> dict[str, Any]: ...

    def lockouts(self) -> list[LockoutInfo]: ...

    def clear_lockouts(
        self, lock_id: str | None = None, *, by: str
    ) -> tuple[list[LockoutInfo], dict[str, Any] | None]: ...

    def note_enrolment(self, *, done: bool = False) -> None: ...


def sync_status(services: StationServices) -> dict[str, Any]:
    """MQTT sync as the API reports it: `{"enabled": False, "connected": None}` without sync, else
    `SyncService.status()` ("connected", "outbox_depth", ...). Never raises: a sync problem must not
    turn the health page into an error."""
    sync = services.sync
    if sync is None:
        return {"enabled": False, "connected": None}
    status = getattr(sync, "status", None)
    try:
        if callable(status):
            result = dict(status())
            result.setdefault("enabled", True)
            result["connected"] = bool(result.get("connected"))
            return result
        connected = getattr(sync, "connected", False)
        return {"enabled": True, "connected": bool(connected() if callable(connected) else connected)}
    except Exception as exc:
        log.warning("sync status unavailable", extra={"fields": {"error": str(exc)}})
        return {"enabled": True, "connected": False, "error": str(exc)[:200]}


def current_schedule(services: StationServices, fallback: ScheduleConfig) -> ScheduleConfig:
    """The opening hours in force: the daemon's own record when it keeps one (`schedule`), else
    what this API last set (or the config's)."""
    live = getattr(services, "schedule", None)
    return live if isinstance(live, ScheduleConfig) else fallback
