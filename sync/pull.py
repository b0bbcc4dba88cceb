"""`yizhan sync pull [--timeout S]`: bring the roster up to date with the centre, then exit.

The contract (docs/mqtt.md, "yizhan sync pull"): connect as the station (its client id and
persistent session, so changes queued while it was away arrive too), send a roster request
(`reason: "pull"`), apply whatever comes back on `down/roster` exactly as the daemon does
(`RosterSync`, signatures checked by `CentreKeys`), and wait for the centre's roster status
answering the request. Current = the applied version is at least the centre's. Commands that
arrive meanwhile are answered `not_running`: no door is driven from here.

Exit status: 0 current; 1 the broker cannot be reached or the centre did not answer in time
(the reason on standard error); 2 the `[mqtt]` settings cannot be used.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

from sqlalchemy import func, select

from contract.messages import RosterRequestReason
from contract.topics import StationTopics
from models.tables import Member
from sync.client import LinkConfigError, MqttLink
from sync.commands import RefuseCommands
from sync.inbox import Inbox
from sync.keys import CentreKeys, KeyFileError
from sync.outcome import Outcome
from sync.port import StationPort
from sync.roster_apply import RosterSync
from sync.service import send_roster_request

log = logging.getLogger(__name__)

EXIT_CURRENT, EXIT_NOT_CURRENT, EXIT_CONFIG = 0, 1, 2
POLL_S = 0.05


class _Pull:
    def __init__(self, port: StationPort) -> None:
        self.port = port
        self.mqtt = port.mqtt
        self.topics = StationTopics(port.station_id)
        self.keys = CentreKeys(port.sessions, port.station_id, self.mqtt.centre_key_file)
        self.requests: set[str] = set()
        self.connected = threading.Event()
        self.link = MqttLink(
            self.mqtt,
            client_id=self.mqtt.effective_client_id(port.station_id),
            username=self.mqtt.effective_username(port.station_id),
            subscriptions=(self.topics.down_filter,),
            clean_start=False,
            on_message=self._on_message,
            on_connected=self.connected.set,
        )
        self.roster = RosterSync(
            sessions=port.sessions,
            write_sessions=port.write_sessions,
            cipher=port.cipher,
            bump_roster=port.bump_roster,
            after_commit=lambda: None,  # no door here: the daemon loads the roster when it starts
            request_resync=self._request,
            face_model=port.face_model,
            keys=self.keys,
        )
        self.inbox = Inbox(
            topics=self.topics,
            max_payload_bytes=self.mqtt.max_payload_bytes,
            maxsize=self.mqtt.inbox_queue,
            roster=self.roster,
            commands=RefuseCommands(),
            answer=self._answer,
            verify=self.keys.verify,
        )

    def _on_message(self, topic: str, payload: bytes) -> None:
        self.inbox.offer(topic, payload)

    def _answer(self, outcome: Outcome) -> None:
        self.link.publish(self.topics.result, outcome.result_payload(self.port.station_id), qos=1)

    def _request(self, reason: RosterRequestReason, have: int) -> object:
        request_id = send_roster_request(self.link, self.topics, self.port, reason, have)
        if request_id is not None:
            self.requests.add(request_id)
        return request_id

    def answered(self) -> bool:
        status = self.roster.last_status
        return (
            status is not None
            and status.request_id in self.requests
            and self.roster.is_current()
            and self.inbox.idle()
        )

    def members(self) -> int:
        with self.port.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(Member)) or 0)


def pull_command(
    port: StationPort, timeout_s: float, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """See the module docstring. Prints one line: on `out` when current, else on `err`."""
    out, err = out or sys.stdout, err or sys.stderr
    mqtt = port.mqtt
    deadline = time.monotonic() + max(0.0, timeout_s)
    try:
        pull = _Pull(port)
    except (LinkConfigError, KeyFileError, ValueError) as exc:
        err.write(f"yizhan sync pull: {exc}\n")
        return EXIT_CONFIG
    pull.inbox.start()
    try:
        pull.link.start()
        if not pull.connected.wait(max(0.0, deadline - time.monotonic())):
            reason = pull.link.stats.last_connect_error or "no answer"
            err.write(
                f"yizhan sync pull: cannot reach the broker {mqtt.host}:{mqtt.port} within {timeout_s:g} s "
                f"({reason}); the roster stays at version {pull.roster.applied_version()}\n"
            )
            return EXIT_NOT_CURRENT
        pull._request("pull", pull.roster.applied_version())
        while time.monotonic() < deadline:
            if pull.answered():
                version = pull.roster.applied_version()
                out.write(f"roster current at version {version} ({pull.members()} members)\n")
                return EXIT_CURRENT
            time.sleep(POLL_S)
        status = pull.roster.last_status
        if status is None or status.request_id not in pull.requests:
            why = "the centre did not answer the roster request (is yizhan-central running and subscribed?)"
        else:
            why = f"the centre is at version {status.version} and the changes did not all arrive"
        err.write(
            f"yizhan sync pull: {why} within {timeout_s:g} s; the roster is at version "
            f"{pull.roster.applied_version()}\n"
        )
        return EXIT_NOT_CURRENT
    finally:
        pull.inbox.stop(timeout=2.0)
        pull.link.stop(timeout=1.0)
