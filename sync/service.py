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
from typing import Any

from contract.messages import (
    OutboxAck,
    RosterRequest,
    RosterRequestReason,
    StationState,
    StatusMessage,
    iso,
    iso_now,
)
from contract.topics import StationTopics
from models import members as member_store
from sync.client import LinkConfigError, MqttLink, Will
from sync.commands import CommandRunner, restore_schedule
from sync.inbox import Inbox
from sync.keys import CentreKeys, KeyFileError
from sync.outbox_publisher import OutboxPublisher
from sync.outcome import Outcome
from sync.port import StationPort
from sync.roster_apply import RosterSync

log = logging.getLogger(__name__)

STOP_DRAIN_S = 2.0
FACE_MODEL_KEY = "sync.face_model"


class SyncService:
    def __init__(self, port: StationPort) -> None:
        self.port = port
        self.config = port.mqtt
        self.station_id = port.station_id
        self.topics = StationTopics(self.station_id)
        self.keys: CentreKeys | None = None
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
        self._last_status: float | None = None

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Build and start everything; returns at once. Never raises for a sync problem: the
        daemon's start must not fail because of MQTT (the door is what matters)."""
        try:
            self._build()
        except (LinkConfigError, KeyFileError, ValueError) as exc:
            self.error = str(exc)
            log.critical(
                "MQTT sync is OFF: its settings cannot be used (the door keeps working)",
                extra={"fields": {"error": self.error}},
            )
            return
        try:
            restore_schedule(self.port.sessions, self.port)
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
        self.port.subscribe_events(self._on_event)

    def _build(self) -> None:
        port = self.port
        topics = self.topics
        self.keys = keys = CentreKeys(port.sessions, self.station_id, self.config.centre_key_file)
        if not keys.required:
            log.warning(
                "no centre signing key is trusted: messages from the centre are not authenticated and "
                "remote opening is refused ([mqtt] centre_key_file, `yizhan sync trust`)"
            )
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
        writes = port.write_sessions
        self.publisher = OutboxPublisher(
            sessions=port.sessions,
            write_sessions=writes,
            link=self.link,
            topics=topics,
            config=self.config,
            resolve_snapshot=port.resolve_snapshot,
            cipher=port.cipher,
            face_model=port.face_model,
        )
        self.roster = RosterSync(
            sessions=port.sessions,
            write_sessions=writes,
            cipher=port.cipher,
            bump_roster=port.bump_roster,
            after_commit=self._after_roster_commit,
            request_resync=self.request_roster,
            face_model=port.face_model,
            keys=keys,
        )
        self.commands = CommandRunner(
            sessions=writes,
            port=port,
            topics=topics,
            max_ttl_s=self.config.command_max_ttl_s,
            clock_skew_s=self.config.command_clock_skew_s,
            health=self.health,
            on_reload=lambda: self.request_roster("reload", None, force=True),
            signatures_on=lambda: keys.required,
        )
        self.inbox = Inbox(
            topics=topics,
            max_payload_bytes=self.config.max_payload_bytes,
            maxsize=self.config.inbox_queue,
            roster=self.roster,
            commands=self.commands,
            answer=self._answer,
            confirm=self._on_centre_ack,
            verify=keys.verify,
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

    def _on_centre_ack(self, ack: OutboxAck) -> None:
        if self.publisher is not None:
            self.publisher.confirm(ack.stored)

    def _on_connected(self) -> None:
        if self.publisher is not None:
            self.publisher.on_connected()
        self._announce.set()
        self._status_wake.set()

    def _after_roster_commit(self) -> None:
        version = self.port.reload_roster()
        log.info(
            "door roster rebuilt after a change from the centre",
            extra={"fields": {"roster_version": version}},
        )

    # -- talking to the centre ------------------------------------------------------------------

    def _answer(self, outcome: Outcome) -> None:
        link = self.link
        if (
            link is None
            or link.publish(self.topics.result, outcome.result_payload(self.station_id), qos=1) is None
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
        send_roster_request(
            link, self.topics, self.port, reason, roster.applied_version() if have is None else have
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
                        reason: RosterRequestReason = "new" if have == 0 else "connect"
                        if have and model_changed(self.port):
                            reason = "model"
                        self.request_roster(reason, have, force=True)
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
            health.update(self.port.health())
        except Exception as exc:
            health["health_error"] = str(exc)[:200]
        clock = health.get("clock")
        health["clock"] = {**(clock if isinstance(clock, dict) else {}), "station_time": iso_now()}
        try:
            health["face_model"] = self.port.face_model().model_dump()
        except Exception as exc:
            health["face_model"] = {"error": str(exc)[:200]}
        health["signatures"] = "on" if self.keys is not None and self.keys.required else "off"
        if self.roster is not None:
            health["centre_roster_version"] = self.roster.applied_version()
        if self.publisher is not None:
            health["outbox_depth"] = self.publisher.depth()
            health["outbox_oldest_age_s"] = self.publisher.oldest_pending_age_s()
            health["delivery"] = self.publisher.delivery_rule
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
                    "delivery": publisher.delivery_rule,
                    "unconfirmed": publisher.unconfirmed,
                    "republished": ps.republished,
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
            result["centre_latest_version"] = roster.centre_version
        if self.keys is not None:
            result["signatures"] = "on" if self.keys.required else "off"
            result["trusted_keys"] = [k.kid for k in self.keys.keys]
        return result


def model_changed(port: StationPort) -> bool:
    """True once after the station's face model changed since its last roster request."""
    current = port.face_model().model_dump_json()
    with port.sessions() as session:
        stored = member_store.get_state(session, FACE_MODEL_KEY)
    return stored is not None and stored != current


def send_roster_request(
    link: MqttLink, topics: StationTopics, port: StationPort, reason: RosterRequestReason, have: int
) -> str | None:
    """Publish a roster request naming the station's face model; its id, or None if not sent."""
    model = port.face_model()
    message = RosterRequest(
        station_id=topics.station_id,
        id=str(uuid.uuid4()),
        have_version=have,
        reason=reason,
        ts=iso_now(),
        face_model=model.model_dump(),
    )
    if link.publish(topics.roster_request, message.model_dump_json().encode(), qos=1) is None:
        return None
    with port.write_sessions() as session, session.begin():
        member_store.set_state(session, FACE_MODEL_KEY, model.model_dump_json())
    log.info("roster requested from the centre", extra={"fields": {"reason": reason, "have_version": have}})
    return message.id
