"""`SyncService`: the station's MQTT side, started by the daemon when `[mqtt] enabled`.

It wires one `MqttLink` (paho), an `OutboxPublisher` (events, snapshots, enrolments up), an
`Inbox` worker (roster changes and commands down, each answered on `up/result`), and a status
thread (retained `up/status` heartbeat with health; the broker's last will says "offline").

The door never waits on any of it (Frigate's lesson: a broker outage once stopped their whole
NVR). The only call the door's threads make into this package is the recorder listener, which
sets an event and returns. `start()` returns at once, even with no broker, a black-hole broker or
unusable TLS settings (then sync stays off, loudly, and the door runs); `stop()` is bounded.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from contract.messages import (
    ResultMessage,
    RosterRequest,
    RosterRequestReason,
    StationState,
    StatusMessage,
    iso,
    iso_now,
)
from contract.topics import StationTopics
from edge.doctor import check_clock, check_disk
from models.database import make_session_factory
from sync.client import LinkConfigError, MqttLink, Will
from sync.commands import CommandRunner, restore_schedule
from sync.inbox import Inbox
from sync.outbox_publisher import OutboxPublisher
from sync.outcome import Outcome
from sync.roster_apply import RosterSync

if TYPE_CHECKING:
    from edge.app import StationDaemon

log = logging.getLogger(__name__)

STOP_DRAIN_S = 2.0
CLOCK_CHECK_EVERY_S = 600.0


class SyncService:
    def __init__(self, daemon: StationDaemon) -> None:
        self.daemon = daemon
        self.config = daemon.config.mqtt
        self.station_id = self.config.effective_station_id(daemon.config.station.station_id)
        self.topics = StationTopics(self.station_id)
        self.link: MqttLink | None = None
        self.publisher: OutboxPublisher | None = None
        self.inbox: Inbox | None = None
        self.roster: RosterSync | None = None
        self.commands: CommandRunner | None = None
        self.error: str | None = None
        self._running = False
        self._stop = threading.Event()
        self._status_wake = threading.Event()
        self._announce = threading.Event()
        self._status_thread: threading.Thread | None = None
        self._request_lock = threading.Lock()
        self._last_request = -1e18
        self._clock_check: tuple[float, dict[str, str]] | None = None
        self._last_status: float | None = None

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Build and start everything; returns at once. Never raises for a sync problem: the
        daemon's start must not fail because of MQTT (the door is what matters)."""
        daemon = self.daemon
        station = daemon.station
        if station is None or daemon.recorder is None:
            raise RuntimeError("SyncService.start() needs a started daemon (station and recorder)")
        try:
            self._build()
        except (LinkConfigError, ValueError) as exc:
            self.error = str(exc)
            log.critical(
                "MQTT sync is OFF: its settings cannot be used (the door keeps working)",
                extra={"fields": {"error": self.error}},
            )
            return
        try:
            restore_schedule(station.sessions, daemon)
        except Exception:
            log.exception("stored opening hours from the centre could not be restored; config hours stay")
        assert self.link is not None and self.publisher is not None and self.inbox is not None
        try:
            self.publisher.start()
            self.inbox.start()
            self._status_thread = threading.Thread(target=self._status_loop, name="sync-status", daemon=True)
            self._status_thread.start()
            self.link.start()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"[:300]
            log.critical("MQTT sync failed to start (the door keeps working)", exc_info=True)
            self._running = True
            self.stop(timeout=2.0)
            return
        self._running = True
        daemon.recorder.subscribe(self._on_event)

    def _build(self) -> None:
        daemon = self.daemon
        station = daemon.station
        assert station is not None
        topics = self.topics
        will = Will(topics.status, self._status_payload("offline", None))
        self.link = MqttLink(
            self.config,
            client_id=self.config.effective_client_id(self.station_id),
            username=self.config.effective_username(self.station_id),
            subscriptions=(topics.down_filter,),
            will=will,
            clean_start=False,
            on_message=self._on_message,
            on_ack=self._on_ack,
            on_connected=self._on_connected,
        )
        store = daemon.snapshots.store if daemon.snapshots is not None else None
        writes = make_session_factory(station.engine, immediate=True)
        self.publisher = OutboxPublisher(
            sessions=station.sessions,
            write_sessions=writes,
            link=self.link,
            topics=topics,
            config=self.config,
            resolve_snapshot=store.resolve if store is not None else None,
            cipher=lambda: station.cipher,
        )
        self.roster = RosterSync(
            sessions=station.sessions,
            write_sessions=writes,
            cipher=lambda: station.cipher,
            bump_roster=station._bump_roster_version,
            after_commit=self._after_roster_commit,
            request_resync=self.request_roster,
            face_model=lambda: station.model_identity,
        )
        self.commands = CommandRunner(
            sessions=writes,
            daemon=daemon,
            topics=topics,
            max_ttl_s=self.config.command_max_ttl_s,
            health=self.health,
            on_reload=lambda: self.request_roster("reload", None, force=True),
        )
        self.inbox = Inbox(
            topics=topics,
            max_payload_bytes=self.config.max_payload_bytes,
            maxsize=self.config.inbox_queue,
            roster=self.roster,
            commands=self.commands,
            answer=self._answer,
            confirm=self.publisher.confirm,
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Give the last events (station_stopped) a moment to go out, say "offline", disconnect."""
        if not self._running:
            return
        self._running = False
        link, publisher = self.link, self.publisher
        if link is not None and publisher is not None and link.connected:
            publisher.wake()
            deadline = time.monotonic() + min(STOP_DRAIN_S, timeout)
            while time.monotonic() < deadline and link.connected:
                try:
                    if publisher.depth() == 0:
                        break
                except Exception:
                    break
                time.sleep(0.05)
        self._stop.set()
        self._status_wake.set()
        if self.inbox is not None:
            self.inbox.stop(timeout=min(2.0, timeout))
        if self._status_thread is not None:
            self._status_thread.join(min(2.0, timeout))
            self._status_thread = None
        if publisher is not None:
            publisher.stop(timeout=min(2.0, timeout))
        if link is not None:
            link.stop(final=(self.topics.status, self._status_payload("offline", None)), timeout=1.0)
        log.info("MQTT sync stopped")

    # -- callbacks ------------------------------------------------------------------------------

    def _on_event(self, payload: dict[str, Any]) -> None:
        """The recorder's listener, on the door's own threads: wake the publisher, nothing else."""
        if self._running and self.publisher is not None:
            self.publisher.wake()

    def _on_message(self, topic: str, payload: bytes) -> None:
        if self.inbox is not None:
            self.inbox.offer(topic, payload)

    def _on_ack(self, mid: int, reason: int) -> None:
        if self.publisher is not None:
            self.publisher.on_ack(mid, reason)

    def _on_connected(self) -> None:
        if self.publisher is not None:
            self.publisher.on_connected()
        self._announce.set()
        self._status_wake.set()

    def _after_roster_commit(self) -> None:
        version = self.daemon.reload_roster()
        log.info(
            "door roster rebuilt after a change from the centre",
            extra={"fields": {"roster_version": version}},
        )

    # -- talking to the centre ------------------------------------------------------------------

    def _answer(self, outcome: Outcome) -> None:
        message = ResultMessage(
            station_id=self.station_id,
            ref=outcome.ref,
            ref_type=outcome.ref_type,
            ok=outcome.ok,
            error=outcome.error,
            message=outcome.message,
            data=outcome.data,
            ts=iso_now(),
        )
        link = self.link
        if (
            link is None
            or link.publish(self.topics.result, message.model_dump_json().encode(), qos=1) is None
        ):
            log.warning("result not sent: not connected", extra={"fields": {"ref": outcome.ref}})

    def request_roster(self, reason: RosterRequestReason, have: int | None, *, force: bool = False) -> bool:
        """Ask the centre for what this station misses (rate-limited unless `force`)."""
        link, roster = self.link, self.roster
        if link is None or roster is None or not link.connected:
            return False
        with self._request_lock:
            now = time.monotonic()
            if not force and now - self._last_request < self.config.resync_interval_s:
                return False
            self._last_request = now
        version = roster.applied_version() if have is None else have
        message = RosterRequest(
            station_id=self.station_id,
            id=str(uuid.uuid4()),
            have_version=version,
            reason=reason,
            ts=iso_now(),
        )
        link.publish(self.topics.roster_request, message.model_dump_json().encode(), qos=1)
        log.info(
            "roster requested from the centre", extra={"fields": {"reason": reason, "have_version": version}}
        )
        return True

    def _status_payload(self, state: StationState, health: dict[str, Any] | None) -> bytes:
        message = StatusMessage(station_id=self.station_id, state=state, ts=iso_now(), health=health)
        return message.model_dump_json().encode()

    def _status_loop(self) -> None:
        while not self._stop.is_set():
            link = self.link
            try:
                if link is not None and link.connected:
                    if self._announce.is_set():
                        self._announce.clear()
                        have = self.roster.applied_version() if self.roster is not None else 0
                        self.request_roster("new" if have == 0 else "connect", have, force=True)
                    self.publish_status()
            except Exception:
                log.exception("status heartbeat failed")
            self._status_wake.wait(self.config.heartbeat_s)
            self._status_wake.clear()

    def publish_status(self) -> bool:
        link = self.link
        if link is None or not link.connected:
            return False
        payload = self._status_payload("online", self.health())
        sent = link.publish(self.topics.status, payload, qos=1, retain=True) is not None
        if sent:
            self._last_status = time.time()
        return sent

    # -- health and status ----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Camera, door, disk, clock, roster versions, outbox depth: what the heartbeat carries."""
        health: dict[str, Any] = {}
        try:
            health.update(self.daemon.health())
        except Exception as exc:
            health["daemon_error"] = str(exc)[:200]
        config = self.daemon.config
        try:
            health["disk"] = check_disk(config).to_json()
        except Exception as exc:
            health["disk"] = {"check": "disk", "status": "fail", "detail": str(exc)[:200]}
        now = time.monotonic()
        if self._clock_check is None or now - self._clock_check[0] > CLOCK_CHECK_EVERY_S:
            self._clock_check = (now, check_clock().to_json())
        health["clock"] = {**self._clock_check[1], "station_time": iso_now()}
        if self.roster is not None:
            health["centre_roster_version"] = self.roster.applied_version()
        if self.publisher is not None:
            health["outbox_depth"] = self.publisher.depth()
            health["outbox_oldest_age_s"] = self.publisher.oldest_pending_age_s()
        return health

    def status(self) -> dict[str, Any]:
        """For the local API and tests: is the centre reachable, and how far behind are we?"""
        link, publisher, inbox, roster = self.link, self.publisher, self.inbox, self.roster
        result: dict[str, Any] = {
            "enabled": True,
            "station_id": self.station_id,
            "broker": f"{self.config.host}:{self.config.port}",
            "running": self._running,
            "error": self.error,
            "connected": bool(link is not None and link.connected),
            "connected_since": None,
            "outbox_depth": None,
            "last_publish": None,
            "last_ack": None,
            "last_status": None if self._last_status is None else iso(self._last_status),
        }
        if link is not None:
            stats = link.stats
            result["connected_since"] = None if stats.connected_since is None else iso(stats.connected_since)
            result["connects"] = stats.connects
            result["last_connect_error"] = stats.last_connect_error
        if publisher is not None:
            ps = publisher.stats
            try:
                result["outbox_depth"] = publisher.depth()
            except Exception as exc:
                result["outbox_error"] = str(exc)[:200]
            result.update(
                {
                    "last_publish": None if ps.last_publish is None else iso(ps.last_publish),
                    "last_ack": None if ps.last_ack is None else iso(ps.last_ack),
                    "inflight": publisher.inflight,
                    "published": ps.published,
                    "acked": ps.acked,
                    "no_subscribers": ps.no_subscribers,
                    "refused": ps.refused,
                    "snapshots_skipped": ps.skipped,
                    "unpublishable_rows": len(ps.poisoned),
                    "centre_ack_seq": ps.confirmed_seq,
                    "replayed": ps.replayed,
                    "last_error": ps.last_error,
                }
            )
        if inbox is not None:
            result["inbox"] = dict(vars(inbox.stats))
        if roster is not None:
            try:
                result["centre_roster_version"] = roster.applied_version()
            except Exception as exc:
                result["roster_error"] = str(exc)[:200]
            result["held_roster_versions"] = roster.held_versions
        return result
