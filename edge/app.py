"""The daemon's composition root: the one place that builds and wires every part of `yizhan run`.

Built in a flat list of steps in `start()` and stopped in reverse order in `stop()` (the door first
locks, then everything else), as Frigate's app does. Nothing is built at import time. The relay is
de-energised at construction (DoorController), in `stop()`, in `finally` blocks of the CLI, by
gpiozero's exit handlers, and by the unit's ExecStopPost after any crash.

Threads: camera, decide, snapshots, gpiozero callbacks, and the main thread, which only watches:
it pings systemd's watchdog while the decide loop makes progress and the camera thread is alive
(frames flowing, or a camera that is down being reconnected: the exit button and remote opening
keep working then, so a restart would only make things worse).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.schedule import ScheduleConfig
from door.controller import DoorController, DoorEvent
from door.pins import make_pin_factory
from edge.access import AccessDecider, Credential
from edge.camera import CameraSource, CameraStatus, Frame
from edge.config import Config
from edge.decide_loop import DecideLoop, LoopSettings
from edge.recorder import EventRecorder
from edge.sdnotify import SystemdNotifier
from edge.snapshot_writer import SnapshotWriter
from edge.snapshots import SnapshotStore
from edge.station import Station
from edge.tracker import FaceTracker, TrackerSettings
from edge.two_factor import TwoFactorGate

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunOptions:
    exit_at_end: bool = False
    realtime: bool | None = None  # None: as configured
    camera_source: str | None = None  # overrides [camera] source
    with_sync: bool = True  # start MQTT sync when [mqtt] enabled
    with_api: bool = True  # start the local API when [api] enabled


class StationDaemon:
    def __init__(
        self,
        config: Config,
        options: RunOptions | None = None,
        *,
        env: Mapping[str, str] | None = None,
        pin_factory: Any = None,
        station: Station | None = None,
        demo_source: Callable[[Station], Path] | None = None,
    ) -> None:
        self.config = config
        self.options = options or RunOptions()
        self.env = env
        self._pin_factory = pin_factory
        self._station = station
        self._demo_source = demo_source
        self.stop_event = threading.Event()
        self.notifier = SystemdNotifier(env)
        self.station: Station | None = None
        self.recorder: EventRecorder | None = None
        self.door: DoorController | None = None
        self.camera: CameraSource | None = None
        self.snapshots: SnapshotWriter | None = None
        self.loop: DecideLoop | None = None
        self.decider: AccessDecider | None = None
        self.schedule: ScheduleConfig = config.schedule  # the hours in force (the centre may replace them)
        self._loop_thread: threading.Thread | None = None
        self._camera_was_down = False
        self.sync: Any = None  # sync.service.SyncService when [mqtt] enabled
        self.api: Any = None  # edge.api.server.ApiServer when [api] enabled

    # -- building ---------------------------------------------------------------------------

    def start(self) -> None:
        config = self.config
        self.station = station = self._station or Station(config, env=self.env)
        roster = station.door_roster()
        station.pipeline  # noqa: B018  (load dlib now, not on the first face at the door)
        log.info(
            "roster loaded", extra={"fields": {"members": len(roster.members), "templates": roster.size}}
        )
        self.recorder = recorder = EventRecorder(station.sessions)
        store = SnapshotStore(config.storage.data_dir / "snapshots", config.snapshots)
        self.snapshots = SnapshotWriter(store, maxsize=config.daemon.snapshot_queue)
        self.snapshots.start()
        factory = self._pin_factory or make_pin_factory(config.door.gpio.pin_factory)
        if config.door.gpio.pin_factory == "mock" and self._pin_factory is None:
            log.warning('GPIO pins are simulated (door.gpio.pin_factory = "mock"): no real door is driven')
        self.door = DoorController(config.door, pin_factory=factory, sink=self._on_door_event)
        source = self.options.camera_source or config.camera.source
        if source == "demo":
            if self._demo_source is None:
                from edge.demo import build_run_demo_video

                source = str(build_run_demo_video(station))
            else:
                source = str(self._demo_source(station))
        camera_config = config.camera.model_copy(
            update={
                "source": source,
                **({"realtime": self.options.realtime} if self.options.realtime is not None else {}),
            }
        )
        self.camera = CameraSource(
            camera_config,
            exit_at_end=self.options.exit_at_end,
            on_status=self._on_camera_status,
            stop_event=self.stop_event,
        )
        daemon = config.daemon
        self.decider = AccessDecider(config.access, config.schedule.opening_hours())
        self.schedule = config.schedule
        self.loop = DecideLoop(
            frames=self.camera.frames,
            pipeline=station.pipeline,
            roster=station.door_roster,
            match_policy=station.match_policy,
            check_qr=station.check_qr_text,
            decider=self.decider,
            recorder=recorder,
            door=self.door,
            snapshots=self.snapshots,
            tracker=FaceTracker(
                TrackerSettings(
                    require_frames=max(config.access.require_frames, station.scoring_policy.require_frames),
                    max_attempts=daemon.max_retries,
                    retry_interval_s=daemon.retry_interval_s,
                    lost_after_s=daemon.lost_after_s,
                    reverify_s=daemon.reverify_s,
                )
            ),
            settings=LoopSettings(
                idle_detect_s=daemon.idle_detect_s,
                min_brightness=daemon.min_brightness,
                qr_repeat_s=daemon.qr_repeat_s,
            ),
            stop=self.stop_event,
            needs_two_factor=station.needs_two_factor,
            two_factor=TwoFactorGate(
                window_s=config.recognition.two_factor_window_s,
                max_attempts=daemon.max_retries,
                retry_interval_s=daemon.retry_interval_s,
            ),
        )
        recorder.record(
            kind="station_started",
            details={"station_id": config.station.station_id, "members": len(roster.members)},
        )
        self.camera.start()
        self._loop_thread = threading.Thread(target=self._run_loop, name="decide", daemon=True)
        self._loop_thread.start()
        # Sync and API come last and run on their own threads: the door never waits on them, and
        # a broker or HTTP problem cannot keep the door from starting.
        if config.mqtt.enabled and self.options.with_sync:
            from edge.sync_port import DaemonPort
            from sync.service import SyncService

            self.sync = SyncService(DaemonPort(self))
            self.sync.start()
        if config.api.enabled and self.options.with_api:
            from edge.api.server import ApiServer

            self.api = ApiServer(self)
            self.api.start()
        self.notifier.ready("deciding")

    def _run_loop(self) -> None:
        assert self.loop is not None
        try:
            self.loop.run()
        except Exception:
            log.exception("decide loop crashed")
        finally:
            self.stop_event.set()

    # -- running ----------------------------------------------------------------------------

    def run(self) -> int:
        """Start, watch until stopped (signal, end of a file source, loop crash), stop. Exit code."""
        try:
            self.start()
            interval = self.notifier.ping_interval_s or 1.0
            while not self.stop_event.wait(min(interval, 1.0)):
                if self.healthy_for_watchdog():
                    self.notifier.watchdog()
            return 0
        finally:
            self.stop()

    def healthy_for_watchdog(self) -> bool:
        if self.loop is None or self.camera is None:
            return False
        loop_alive = time.monotonic() - self.loop.heartbeat < 5.0
        camera_alive = self.camera.running or self.camera.ended.is_set()
        return loop_alive and camera_alive

    def health(self) -> dict[str, Any]:
        camera = self.camera.status if self.camera else None
        return {
            "camera": None
            if camera is None
            else {"state": camera.state, "reason": camera.reason, "fps": camera.fps},
            "door": self.door.state() if self.door and not self.door.closed else None,
            "loop_heartbeat_age_s": None
            if self.loop is None
            else round(time.monotonic() - self.loop.heartbeat, 2),
            "roster_version": None if self.station is None else self.station.roster.current.version,
        }

    def stop(self) -> None:
        """Reverse order of start; idempotent. The door locks before anything else is torn down."""
        self.notifier.stopping()
        self.stop_event.set()
        if self.door is not None:
            self.door.lock()
        if self.api is not None:
            self.api.stop()
            self.api = None
        if self.camera is not None:
            self.camera.stop()
        if self._loop_thread is not None:
            self._loop_thread.join(timeout=10)
            self._loop_thread = None
        if (
            self.recorder is not None
            and self.station is not None
            and self.door is not None
            and not self.door.closed
        ):
            try:
                self.recorder.record(kind="station_stopped")
            except Exception:
                log.exception("station_stopped not recorded")
        if self.sync is not None:
            self.sync.stop()  # after station_stopped, so the centre can still hear it
            self.sync = None
        if self.door is not None:
            self.door.close()
        if self.snapshots is not None:
            self.snapshots.stop()
            self.snapshots = None
        if self.station is not None and self._station is None:
            self.station.close()
            self.station = None

    # -- services for the sync and API threads -----------------------------------------------

    def remote_open(
        self,
        *,
        seconds: float | None = None,
        member_id: str | None = None,
        by: str = "remote",
        details: Mapping[str, Any] | None = None,
        test: bool = False,
    ) -> dict[str, Any]:
        """Staff open the door from afar (MQTT command, installer page): decided, recorded, pulsed.

        Goes through the same AccessDecider as every credential (so it is recorded with its reason)
        and the same record-before-relay order. Returns the event as JSON. Thread-safe.
        `test`: an installer's door test, recorded as a "door_test" event: nobody came in, so it is
        neither an entry in the access log nor a visit in `events stats`.
        """
        if self.recorder is None or self.door is None or self.decider is None or self.station is None:
            raise RuntimeError("the daemon is not running")
        if seconds is not None and not (isinstance(seconds, int | float) and 0.0 < seconds <= 600.0):
            # Checked before anything is recorded: an "entry" row must never stand for a door that
            # the relay then refused to open.
            raise ValueError(f"seconds must be in (0, 600], got {seconds!r}")
        credential = Credential.remote(member_id, details={"by": by, **(details or {})})
        decision = self.decider.decide(
            credential,
            self.station.roster.current.members,
            now_wall=dt.datetime.now(dt.UTC),
            now_mono=time.monotonic(),
        )
        event = self.recorder.record(
            kind="door_test" if test and decision.granted else decision.kind,
            method="remote",
            member_id=member_id,
            reason=decision.reason,
            details={**decision.details, "by": by, **(details or {})},
        )
        if decision.granted:
            started = time.monotonic()
            energised = self.door.grant(seconds, reason=f"remote:{by}")
            self.recorder.set_latency(event["id"], max(0.0, (energised - started) * 1000.0))
        return event

    def set_schedule(self, schedule: ScheduleConfig) -> None:
        """Replace the opening hours at run time (not persisted to the config file)."""
        if self.decider is None:
            raise RuntimeError("the daemon is not running")
        self.decider.set_hours(schedule.opening_hours())
        self.schedule = schedule
        log.info("schedule replaced", extra={"fields": {"always_open": schedule.always_open}})

    def latest_frame(self) -> Frame | None:
        """The newest camera frame (BGR, read-only), for previews and requested snapshots."""
        return None if self.camera is None else self.camera.frames.peek()

    def reload_roster(self) -> int:
        """Rebuild the roster snapshot now (normally it follows the database by itself)."""
        if self.station is None:
            raise RuntimeError("the daemon is not running")
        return self.station.door_roster().version

    # -- callbacks from other threads -------------------------------------------------------

    def _on_door_event(self, event: DoorEvent) -> None:
        """gpiozero callback thread: record at once (emergency must be on disk within 100 ms)."""
        if self.recorder is None:
            return
        self.recorder.record(
            kind=event.kind, method=event.method, details=dict(event.details), ts_mono=event.at_mono
        )

    def _on_camera_status(self, status: CameraStatus) -> None:
        if self.recorder is None:
            return
        if status.state in ("down",):
            self._camera_was_down = True
            self.recorder.record(
                kind="camera_down", reason=status.reason, details={"reconnects": status.reconnects}
            )
        elif status.state == "up" and self._camera_was_down:
            self._camera_was_down = False
            self.recorder.record(kind="camera_up", details={"reconnects": status.reconnects})
