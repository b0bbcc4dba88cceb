"""Commands from the centre: open, reload, set_schedule, snapshot, ping; each answered.

A command is executed only if it arrived on this station's `down/command` topic (the service
routes nothing else here), parsed cleanly with its signature checked (`sync.keys`), was not
issued more than `command_clock_skew_s` in this station's future, has not expired by this
station's clock, expires no later than `command_max_ttl_s` from now and from its issue (so the
replay memory stays bounded), and its id was never seen before. `open` additionally needs a
trusted centre key: a station that checks no signatures refuses it (`no_centre_key`), since a
broker or a leaked broker password must never be enough to open a door.

The id is committed to `station_state` (key ``sync.cmd.<id>``) **before** the command runs: a
power cut right after a remote opening cannot make the same message open the door again when
the broker redelivers it. Ids are kept a day past their expiry, so a clock stepped back by NTP
cannot revive an old command either.

Commands act on the station only through `sync.port.StationPort` (`remote_open`, `set_schedule`,
`reload_roster`, `latest_frame`, `record_event`, snapshots): the same decision, record-before-relay
order and audit trail as every other opening.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Float, cast, delete
from sqlalchemy.orm import Session, sessionmaker

from contract.messages import (
    Command,
    OpenCommand,
    PingCommand,
    ReloadCommand,
    SetScheduleCommand,
    SnapshotCommand,
    iso_now,
)
from contract.schedule import ScheduleConfig
from contract.topics import StationTopics
from models import members as member_store
from models.tables import StationState
from sync.outcome import Outcome
from sync.port import DoorNotRunning, StationPort

log = logging.getLogger(__name__)

REPLAY_PREFIX = "sync.cmd."
SCHEDULE_KEY = "sync.schedule"
REPLAY_GRACE_S = 86_400.0
PRUNE_EVERY = 100


class CommandRunner:
    """Checks and runs commands for one daemon. Called from the sync worker thread only.

    `sessions` must open transactions with BEGIN IMMEDIATE (`make_session_factory(engine,
    immediate=True)`): each one reads (was this id seen?) and then writes.
    """

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        port: StationPort,
        topics: StationTopics,
        max_ttl_s: float,
        health: Callable[[], dict[str, Any]],
        on_reload: Callable[[], object],
        signatures_on: Callable[[], bool],
        clock_skew_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._port = port
        self._topics = topics
        self._max_ttl_s = max_ttl_s
        self._signatures_on = signatures_on
        self._skew_s = clock_skew_s
        self._health = health
        self._on_reload = on_reload
        self._clock = clock
        self._claims = 0

    # -- checks ---------------------------------------------------------------------------------

    def handle(self, command: Command) -> Outcome:
        now = self._clock()
        if isinstance(command, OpenCommand) and not self._signatures_on():
            return self._refuse(
                command,
                "no_centre_key",
                "this station trusts no centre signing key ([mqtt] centre_key_file, `yizhan sync trust`): "
                "remote opening is refused",
            )
        if command.issued_at > now + self._skew_s:
            return self._refuse(
                command,
                "issued_in_future",
                f"issued at {command.issued_at:.3f}, more than {self._skew_s:g} s after the station's "
                f"clock ({now:.3f})",
            )
        if now > command.expires_at:
            return self._refuse(
                command,
                "expired",
                f"expired at {command.expires_at:.3f}; the station's clock says {now:.3f}",
            )
        if max(command.expires_at - now, command.expires_at - command.issued_at) > self._max_ttl_s:
            return self._refuse(
                command,
                "expiry_too_far",
                f"expires {command.expires_at - now:.0f} s from now and lives "
                f"{command.expires_at - command.issued_at:.0f} s; "
                f"at most {self._max_ttl_s:.0f} s are accepted",
            )
        try:
            fresh = self._claim(command.id, command.expires_at)
        except Exception as exc:
            # Without a durable record of the id the command could run twice: refuse it.
            log.exception(
                "command id not recorded; command refused", extra={"fields": {"command_id": command.id}}
            )
            return Outcome(
                command.id, "command", False, "failed", f"cannot record the command id: {exc}"[:500]
            )
        if not fresh:
            return self._refuse(command, "replayed", f"command id {command.id!r} was already received")
        log.info(
            "command accepted",
            extra={"fields": {"command_id": command.id, "name": command.name, "by": command.by}},
        )
        try:
            return self._run(command)
        except DoorNotRunning as exc:
            return Outcome(command.id, "command", False, "not_running", str(exc)[:500])
        except Exception as exc:
            log.exception(
                "command failed", extra={"fields": {"command_id": command.id, "name": command.name}}
            )
            return Outcome(command.id, "command", False, "failed", f"{type(exc).__name__}: {exc}"[:500])

    def _refuse(self, command: Command, code: str, message: str) -> Outcome:
        log.warning(
            "command refused",
            extra={"fields": {"command_id": command.id, "name": command.name, "error": code}},
        )
        return Outcome(command.id, "command", False, code, message)

    def _claim(self, command_id: str, expires_at: float) -> bool:
        """Record the id durably; False if it was there already."""
        key = REPLAY_PREFIX + command_id
        with self._sessions() as session, session.begin():
            if member_store.get_state(session, key) is not None:
                return False
            member_store.set_state(session, key, repr(float(expires_at)))
        self._claims += 1
        if self._claims % PRUNE_EVERY == 1:
            self.prune()
        return True

    def prune(self) -> int:
        """Forget command ids whose expiry is more than a day past (they are refused as expired)."""
        cutoff = self._clock() - REPLAY_GRACE_S
        with self._sessions() as session, session.begin():
            result = session.execute(
                delete(StationState).where(
                    StationState.key.like(REPLAY_PREFIX + "%"), cast(StationState.value, Float) < cutoff
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)

    # -- running --------------------------------------------------------------------------------

    def _run(self, command: Command) -> Outcome:
        if isinstance(command, OpenCommand):
            return self._open(command)
        if isinstance(command, ReloadCommand):
            version = self._port.reload_roster()
            self._on_reload()
            return Outcome(command.id, "command", True, data={"roster_version": version})
        if isinstance(command, SetScheduleCommand):
            self._port.set_schedule(command.schedule)
            with self._sessions() as session, session.begin():
                member_store.set_state(session, SCHEDULE_KEY, command.schedule.model_dump_json())
            return Outcome(command.id, "command", True, data={"always_open": command.schedule.always_open})
        if isinstance(command, SnapshotCommand):
            return self._snapshot(command)
        if isinstance(command, PingCommand):
            return Outcome(
                command.id,
                "command",
                True,
                data={"pong": True, "station_time": iso_now(), "health": self._health()},
            )
        return Outcome(
            command.id, "command", False, "unknown_command", "not a known command"
        )  # pragma: no cover

    def _open(self, command: OpenCommand) -> Outcome:
        event = self._port.remote_open(
            seconds=command.seconds,
            member_id=command.member_id,
            by=f"centre:{command.by or 'centre'}",
            details={"command_id": command.id},
        )
        granted = event.get("kind") in ("entry", "exit")
        return Outcome(
            command.id,
            "command",
            granted,
            None if granted else "refused",
            None if granted else str(event.get("reason")),
            {"event_id": event.get("id"), "kind": event.get("kind"), "seconds": command.seconds},
        )

    def _snapshot(self, command: SnapshotCommand) -> Outcome:
        port = self._port
        frame = port.latest_frame()
        if frame is None:
            return Outcome(command.id, "command", False, "no_frame", "no camera frame (is the camera down?)")
        event_id = str(uuid.uuid4())
        when = time.time()
        path = port.snapshot_path(event_id, when)
        if path is None:
            return Outcome(command.id, "command", False, "snapshots_disabled", "[snapshots] enabled is false")
        # Looking through the door camera from afar is itself recorded: who, when, which picture.
        port.record_event(
            kind="remote_snapshot",
            method="remote",
            details={"by": f"centre:{command.by or 'centre'}", "command_id": command.id},
            snapshot=path,
            event_id=event_id,
            ts_wall=when,
        )
        port.write_snapshot(event_id, frame, when)
        return Outcome(
            command.id, "command", True, data={"event_id": event_id, "topic": self._topics.snapshot(event_id)}
        )


def restore_schedule(sessions: sessionmaker[Session], port: StationPort) -> bool:
    """Re-apply opening hours set by the centre before a restart; True if there were some."""
    with sessions() as session:
        stored = member_store.get_state(session, SCHEDULE_KEY)
    if stored is None:
        return False
    schedule = ScheduleConfig.model_validate_json(stored)
    port.set_schedule(schedule)
    log.warning(
        "opening hours set by the centre restored (they replace [schedule] from the config file)",
        extra={"fields": {"always_open": schedule.always_open}},
    )
    return True


class RefuseCommands:
    """For a process with no door (`yizhan sync pull`): every command is answered `not_running`."""

    def handle(self, command: Command) -> Outcome:
        return Outcome(
            command.id,
            "command",
            False,
            "not_running",
            "the station's daemon is not running (a sync tool is connected in its place)",
        )
