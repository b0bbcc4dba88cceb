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
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.schedule import ScheduleConfig
from door.controller import DoorController, DoorEvent
from door.pins import make_pin_factory
from edge import access_state
from edge.access import AccessDecider, Credential
from edge.camera import CameraSource, CameraStatus, Frame
from edge.config import Config
from edge.decide_loop import DecideLoop, LoopSettings
from edge.disk_space import DiskGuard, is_disk_full
from edge.feedback import signal_for
from edge.lockouts import LockoutInfo
from edge.recorder import EventRecorder
from edge.run_lock import RunLock
from edge.sdnotify import SystemdNotifier
from edge.snapshot_writer import SnapshotWriter
from edge.snapshots import SnapshotStore
from edge.station import Station
from edge.tracker import FaceTracker, TrackerSettings
from edge.two_factor import TwoFactorGate

log = logging.getLogger(__name__)

#: While the data disk is too full to open the database, how often to try again.
DEGRADED_RETRY_S = 10.0


class StartAborted(Exception):
    """A stop was requested before the start finished (e.g. while degraded on a full disk)."""


#: After the installer page's last enrolment activity (live hints, a capture), face refusals at the
#: door do not count toward lockouts for this long.
ENROLMENT_HOLD_S = 120.0


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
        self.crashed = False  # the decide loop died: run() returns 1
        self.disk: DiskGuard | None = None
        self.degraded: str | None = None  # "disk_full" while waiting for room to open the store
        self._degraded_since = 0.0
        self._disk_alarm_details: dict[str, Any] | None = None
        self._disk_alarm_raised = False
        self._clock_alarm_raised = False
        self._alarm_lock = threading.Lock()
        self._run_lock: RunLock | None = None
        self._saved_access_version = -1
        self._early_lock = threading.Lock()
        # Bounded: a degraded start on a full disk can last hours with the exit button in use.
        self._early_door_events: deque[tuple[DoorEvent, float]] = deque(maxlen=1000)
        self.sync: Any = None  # sync.service.SyncService when [mqtt] enabled
        self.api: Any = None  # edge.api.server.ApiServer when [api] enabled

    # -- building ---------------------------------------------------------------------------

    def start(self) -> None:
        config = self.config
        # One daemon per data directory (a second one exits 2 here, before touching anything).
        self._run_lock = RunLock(config.storage.data_dir).acquire()
        # The door first: the relay is claimed de-energised before anything slow (dlib, the
        # roster), the exit button works from here on, and a missing GPIO driver stops the start
        # in a second with doctor's explanation (DoorHardwareError: exit code 2 in the CLI).
        factory = self._pin_factory or make_pin_factory(config.door.gpio.pin_factory)
        if config.door.gpio.pin_factory == "mock" and self._pin_factory is None:
            log.warning('GPIO pins are simulated (door.gpio.pin_factory = "mock"): no real door is driven')
        self.door = DoorController(config.door, pin_factory=factory, sink=self._on_door_event)
        # The disk next: snapshots are pruned to the free-space floor (oldest first) before the
        # database opens, and on a disk full of something else the reserve is given back.
        store = SnapshotStore(config.storage.data_dir / "snapshots", config.snapshots)
        self.disk = DiskGuard(
            config.storage.data_dir,
            floor_bytes=store.min_free_bytes,
            reserve_bytes=config.storage.reserve_mb * 1024 * 1024,
        )
        store.make_room()
        self.station = station = self._station or self._open_station(store)
        self.disk.ensure_reserve()
        roster = station.door_roster()
        station.pipeline  # noqa: B018  (load dlib now, not on the first face at the door)
        log.info(
            "roster loaded", extra={"fields": {"members": len(roster.members), "templates": roster.size}}
        )
        self.recorder = recorder = EventRecorder(station.sessions, make_room=self._make_room)
        self.snapshots = SnapshotWriter(
            store, maxsize=config.daemon.snapshot_queue, on_status=self._on_disk_status
        )
        self.snapshots.start()
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
        self._restore_access_state()
        recorder.subscribe(self._after_event)  # persists lockout changes (decide thread, after commit)
        recorder.subscribe(self._signal_door)  # the buzzer / light / text line for the person there
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
                min_frames=station.scoring_policy.min_frames,
            ),
        )
        recorder.record(
            kind="station_started",
            details={"station_id": config.station.station_id, "members": len(roster.members)},
        )
        self._record_early_door_events()
        self._raise_disk_alarm(store.status())
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

    def _open_station(self, store: SnapshotStore) -> Station:
        """Open the store; on a full disk make room (snapshots first, then the reserve) and, when
        nothing is left to free, wait in a degraded mode instead of exiting into a restart loop:
        READY with a clear STATUS, watchdog pings, the exit button and the local alarm working,
        door events kept for the log, and the database tried again every DEGRADED_RETRY_S."""
        assert self.disk is not None
        while True:
            try:
                station = Station(self.config, env=self.env)
            except Exception as exc:
                if not (is_disk_full(exc) or self.disk.low()):
                    raise
                if store.make_room():
                    continue  # room made: try again at once
                released = self.disk.release_reserve()
                if released:
                    self._disk_alarm_details = {"reserve_released_bytes": released}
                    continue
                self._enter_degraded(exc)
                if self.stop_event.wait(DEGRADED_RETRY_S):
                    raise StartAborted("stopped while waiting for disk space") from None
                continue
            if self.degraded is not None:
                waited = time.monotonic() - self._degraded_since
                log.warning(
                    "disk space back: starting normally", extra={"fields": {"waited_s": round(waited, 1)}}
                )
                self._disk_alarm_details = {"degraded_start_s": round(waited, 1)}
                self.degraded = None
            return station

    def _enter_degraded(self, exc: BaseException) -> None:
        assert self.disk is not None
        free = self.disk.free_bytes()
        text = (
            f"DEGRADED: data disk full ({free // 1024} KiB free, floor "
            f"{self.disk.floor_bytes // 2**20} MiB): no face or pass decisions, exit button works; "
            "free space under the data directory"
        )
        if self.degraded is None:
            self.degraded = "disk_full"
            self._degraded_since = time.monotonic()
            log.critical(text, extra={"fields": {"error": str(exc)[:300]}})
            self.notifier.ready(text)  # systemd must not kill and restart us for this
        self.notifier.status(text)
        self.notifier.watchdog()

    def _make_room(self) -> int:
        """A commit failed on a full disk: the oldest snapshots go, then the reserve."""
        freed = 0
        if self.snapshots is not None:
            freed = self.snapshots.store.make_room(1024 * 1024)
        if not freed and self.disk is not None:
            freed = self.disk.release_reserve()
            if freed:
                self._disk_alarm_details = {"reserve_released_bytes": freed}
        return freed

    def _on_disk_status(self, status: dict[str, Any]) -> None:
        """The snapshot thread's report after each enforcement or skipped snapshot."""
        self._raise_disk_alarm(status)
        if self.disk is not None and not self.disk.low():
            self.disk.ensure_reserve()

    def _raise_disk_alarm(self, status: dict[str, Any]) -> None:
        """Record `disk_full` once per episode (snapshots paused, the disk below its floor with
        nothing of ours left to delete, or the reserve used) and `clock_jump` once per jump."""
        recorder, disk = self.recorder, self.disk
        if recorder is None or disk is None:
            return
        reserve_used = disk.reserve_bytes > 0 and disk.released > 0 and not disk.has_reserve()
        episode = self._disk_alarm_details is not None  # a degraded start, or the reserve given back
        full = bool(status.get("paused_for_space")) or disk.low() or reserve_used or episode
        with self._alarm_lock:
            self._record_disk_alarms(recorder, status, full)

    def _record_disk_alarms(self, recorder: EventRecorder, status: dict[str, Any], full: bool) -> None:
        try:
            if full and not self._disk_alarm_raised:
                details = {**status, **(self._disk_alarm_details or {})}
                recorder.record(kind="disk_full", reason="free_space_below_floor", details=details)
                self._disk_alarm_raised = True
            elif not full and self._disk_alarm_raised:
                recorder.record(kind="disk_space_recovered", details=dict(status))
                self._disk_alarm_raised = False
            self._disk_alarm_details = None
            ahead = float(status.get("clock_ahead_s") or 0.0)
            if ahead > 0 and not self._clock_alarm_raised:
                recorder.record(
                    kind="clock_jump",
                    reason="wall_clock_ahead_of_history",
                    details={"ahead_s": round(ahead, 1), "ahead_days": round(ahead / 86400, 2)},
                )
                self._clock_alarm_raised = True
            elif ahead <= 0:
                self._clock_alarm_raised = False
        except Exception:
            log.exception("disk / clock alarm not recorded")

    def _run_loop(self) -> None:
        assert self.loop is not None
        try:
            self.loop.run()
        except BaseException:
            # The door cannot decide any more: stop with a failure exit code so systemd restarts
            # us (an exit 0 here once left a station silently dead under Restart=on-failure).
            self.crashed = True
            log.critical("decide loop crashed: stopping with exit code 1 for a restart", exc_info=True)
        finally:
            self.stop_event.set()

    # -- running ----------------------------------------------------------------------------

    def run(self) -> int:
        """Start, watch until stopped (signal, end of a file source, loop crash), stop. Exit code:
        0 for a requested stop or the end of a file source, 1 when the decide loop crashed."""
        try:
            try:
                self.start()
            except StartAborted:
                return 0  # stopped while degraded (disk full): a requested stop
            interval = self.notifier.ping_interval_s or 1.0
            while not self.stop_event.wait(min(interval, 1.0)):
                if self.healthy_for_watchdog():
                    self.notifier.watchdog()
            return 1 if self.crashed else 0
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
            "degraded": self.degraded,
            "disk": None if self.snapshots is None else self.snapshots.store.status(),
            "lockouts": []
            if self.decider is None
            else [info.to_json() for info in self.decider.active_lockouts(time.monotonic())],
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
            self._save_access_state(force=True)
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
        if self._run_lock is not None:
            self._run_lock.release()  # last: nothing of this daemon touches the data any more
            self._run_lock = None

    # -- services for the sync and API threads -----------------------------------------------

    def remote_open(
        self,
        *,
        seconds: float | None = None,
        member_id: str | None = None,
        by: str = "remote",
        details: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Staff open the door from afar (MQTT command, installer page): decided, recorded, pulsed.

        Goes through the same AccessDecider as every credential (so it is recorded with its reason)
        and the same record-before-relay order. Returns the event as JSON. Thread-safe.
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
            kind=decision.kind,
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

    def lockouts(self) -> list[LockoutInfo]:
        """Active lockouts (what is locked, for how long), for the page and the health report."""
        if self.decider is None:
            raise RuntimeError("the daemon is not running")
        return self.decider.active_lockouts(time.monotonic())

    def clear_lockouts(
        self, lock_id: str | None = None, *, by: str
    ) -> tuple[list[LockoutInfo], dict[str, Any] | None]:
        """Staff end one lockout (by id) or all: recorded as a `lockout_cleared` event (None when
        nothing was locked) and saved at once. ValueError for an id that is not a lockout id."""
        if self.decider is None or self.recorder is None:
            raise RuntimeError("the daemon is not running")
        cleared = self.decider.clear_lockout(lock_id, now_mono=time.monotonic())
        self._save_access_state(force=True)
        if not cleared:
            return [], None
        event = self.recorder.record(
            kind="lockout_cleared",
            member_id=next((info.member_id for info in cleared if info.member_id), None),
            reason="cleared_by_staff",
            details={"by": by, "cleared": [info.to_json() for info in cleared]},
        )
        return cleared, event

    def note_enrolment(self, *, done: bool = False) -> None:
        """The installer page is enrolling someone at the door: their face's refusals do not count
        toward lockouts for ENROLMENT_HOLD_S; once enrolled (`done`), appearance lockouts end (the
        person in view is now a member)."""
        if self.decider is None:
            return
        self.decider.pause_face_counting(time.monotonic(), ENROLMENT_HOLD_S)
        if done:
            self.decider.clear_lockout(scope="appearance", now_mono=time.monotonic())

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

    # -- access state across restarts -------------------------------------------------------

    def _restore_access_state(self) -> None:
        assert self.decider is not None and self.station is not None
        saved = access_state.load(self.station.sessions)
        if saved is None:
            return
        state, _ = saved
        try:
            self.decider.restore_state(state, now_mono=time.monotonic())
        except ValueError as exc:
            log.warning(
                "saved access state refused: starting without it", extra={"fields": {"error": str(exc)}}
            )
            return
        self._saved_access_version = self.decider.state_version
        restored = self.decider.active_lockouts(time.monotonic())
        if restored:
            log.warning(
                "lockouts carried over from before the restart",
                extra={"fields": {"lockouts": [info.to_json() for info in restored]}},
            )

    def _save_access_state(self, *, force: bool = False) -> None:
        decider, station = self.decider, self.station
        if decider is None or station is None:
            return
        version = decider.state_version
        if not force and version == self._saved_access_version:
            return
        try:
            access_state.save(station.sessions, decider.snapshot_state(now_mono=time.monotonic()))
            self._saved_access_version = version
        except Exception:
            log.exception("access state not saved (lockouts may not survive a restart)")

    def _signal_door(self, event: dict[str, Any]) -> None:
        signal = signal_for(event)
        door = self.door
        if signal is not None and door is not None:
            door.signal(signal)  # returns at once: the pattern plays on the feedback thread

    def _after_event(self, event: dict[str, Any]) -> None:
        if event.get("kind") in ("refused", "lockout"):
            self._save_access_state()

    # -- callbacks from other threads -------------------------------------------------------

    def _on_door_event(self, event: DoorEvent) -> None:
        """gpiozero callback thread: record at once (emergency must be on disk within 100 ms).

        Before the recorder exists (the first seconds of a start: the door is up before the
        database and dlib), events are kept, with their wall time, and recorded once it does.
        """
        with self._early_lock:
            if self.recorder is None:
                self._early_door_events.append((event, time.time()))
                return
        self.recorder.record(
            kind=event.kind, method=event.method, details=dict(event.details), ts_mono=event.at_mono
        )

    def _record_early_door_events(self) -> None:
        with self._early_lock:
            early = list(self._early_door_events)
            self._early_door_events.clear()
        for event, wall in early:
            try:
                assert self.recorder is not None
                self.recorder.record(
                    kind=event.kind,
                    method=event.method,
                    details={**event.details, "during_start": True},
                    ts_mono=event.at_mono,
                    ts_wall=wall,
                )
            except Exception:
                log.exception("door event from the start-up not recorded")

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
