"""Commands to a station: remote open, opening hours, reload, snapshot, ping (docs/mqtt.md, "commands").

`send_command(db, signer, link, *, station_id, name, args, staff, reason)` is what the web layer
(the dashboard's remote-open button, the workers' phone pages) calls inside its request
transaction. It checks the command as the station will (the contract's strict model), records it
with who asked and why (and an audit entry), and publishes it **signed** once that transaction has
committed, so a command that was never recorded is never sent. A door opens only for a command
signed with a key the station pinned: a broker or credential leak cannot open one.

The answer comes back on `up/result`; ingest stores it on the command row and puts a `result` on
the live bus (`ref` = command id). A station that is offline is not sent anything: the command
is recorded as failed with `station_offline`, so the caller can say so at once instead of
waiting for an expiry. Unanswered commands expire after `[mqtt] command_ttl_s` (the station
refuses them after that too).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import event
from sqlalchemy.orm import Session

from central.store import audit
from central.store import commands as command_store
from central.store.tables import Command, Station
from common.errors import ValidationError
from contract.messages import InboundError, parse_command
from contract.topics import StationTopics

log = logging.getLogger(__name__)

NAMES = ("open", "reload", "set_schedule", "snapshot", "ping")
#: What each command may carry besides the envelope (docs/mqtt.md, "commands").
ARGS = {
    "open": {"seconds", "member_id"},
    "set_schedule": {"schedule"},
    "reload": set(),
    "snapshot": set(),
    "ping": set(),
}
DEFAULT_TTL_S = 30
PUBACK_TIMEOUT_S = 5.0


class CommandError(ValidationError):
    """The command is refused before anything is recorded (unknown name, bad arguments, no reason)."""


class StationNotFound(CommandError, LookupError):
    """No such station (or it is deactivated)."""


class Signer(Protocol):
    def sign_bytes(self, message: Mapping[str, Any]) -> bytes: ...


class Link(Protocol):
    @property
    def connected(self) -> bool: ...

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> Any: ...

    def wait_all(self, infos: list[Any], timeout: float) -> bool: ...


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asks: a staff account (`staff:<name>`, its id) or another part of the centre (`phone:...`)."""

    actor: str
    staff_id: int | None = None


def _requester(staff: object) -> Requester:
    if isinstance(staff, Requester):
        return staff
    if isinstance(staff, str):
        return Requester(staff)
    actor = getattr(staff, "actor", None)
    if isinstance(actor, str):
        return Requester(actor, getattr(staff, "id", None))
    raise TypeError("staff must be a StaffIdentity, a Requester or an actor string")


def build_message(
    *,
    command_id: str,
    station_id: str,
    name: str,
    args: Mapping[str, Any],
    by: str,
    issued_at: float,
    ttl_s: float,
) -> dict[str, Any]:
    """The command as the station will read it, checked with the contract's strict parser."""
    if name not in NAMES:
        raise CommandError(f"unknown command {name!r}: one of {', '.join(NAMES)}")
    unknown = set(args) - ARGS[name]
    if unknown:
        raise CommandError(f"{name} takes no {', '.join(sorted(unknown))}")
    message = {
        "v": 1,
        "type": "command",
        "id": command_id,
        "station_id": station_id,
        "name": name,
        "issued_at": round(issued_at, 3),
        "expires_at": round(issued_at + ttl_s, 3),
        "by": by[:64],
        **{k: v for k, v in args.items() if v is not None},
    }
    try:
        parse_command(json.dumps(message, allow_nan=False).encode(), 1 << 20)
    except InboundError as exc:
        raise CommandError(f"{name}: {exc}") from None
    except ValueError as exc:  # NaN / infinity in the arguments
        raise CommandError(f"{name}: {exc}") from None
    return message


def send_command(
    db: Session,
    signer: Signer,
    link: Link | None,
    *,
    station_id: str,
    name: str,
    args: Mapping[str, Any] | None = None,
    staff: object,
    reason: str | None = None,
    ttl_s: int = DEFAULT_TTL_S,
    client: str | None = None,
    now: dt.datetime | None = None,
) -> str:
    """Record the command and publish it after the commit; returns its id (see the module doc)."""
    who = _requester(staff)
    station = db.get(Station, station_id)
    if station is None or not station.active:
        raise StationNotFound(f"no station {station_id!r}")
    reason = reason.strip() if isinstance(reason, str) else None
    if name == "open" and (not reason or len(reason) < 2):
        raise CommandError("a remote opening needs a reason (who is at the door, why)")
    if reason is not None and len(reason) > 500:
        raise CommandError("reason: at most 500 characters")
    now = now or dt.datetime.now(dt.UTC)
    command_id = f"c-{uuid.uuid4().hex[:24]}"
    message = build_message(
        command_id=command_id,
        station_id=station_id,
        name=name,
        args=dict(args or {}),
        by=who.actor,
        issued_at=now.timestamp(),
        ttl_s=ttl_s,
    )
    error = message_text = None
    if link is None:
        error, message_text = "mqtt_disabled", "the centre does not talk to stations ([mqtt] enabled = false)"
    elif station.last_state != "online":
        seen = station.last_seen_at.isoformat(timespec="seconds") if station.last_seen_at else "never"
        error, message_text = "station_offline", f"the station is offline (last heard from: {seen}); not sent"
    command = command_store.add_command(
        db,
        command_id=command_id,
        station_id=station_id,
        name=name,
        params={k: v for k, v in message.items() if k not in ("v", "type", "id", "station_id")},
        issued_by=who.actor,
        staff_id=who.staff_id,
        reason=reason,
        issued_at=now,
        expires_at=now + dt.timedelta(seconds=ttl_s),
        state="failed" if error else "pending",
        error=error,
        message=message_text,
    )
    audit.record(
        db,
        actor=who.actor,
        action="remote_open" if name == "open" else f"command_{name}",
        target_type="station",
        target_id=station_id,
        district_id=station.district_id,
        client=client,
        details={"command_id": command_id, "reason": reason, "args": dict(args or {}), "error": error},
    )
    if error is None and link is not None:
        payload = signer.sign_bytes(message)
        _publish_after_commit(db, link, command, StationTopics(station_id).command, payload)
    return command_id


def _publish_after_commit(db: Session, link: Link, command: Command, topic: str, payload: bytes) -> None:
    bind = db.get_bind()
    command_id = command.id

    def publish(_session: Session) -> None:
        info = link.publish(topic, payload) if link.connected else None
        sent = info is not None and link.wait_all([info], PUBACK_TIMEOUT_S)
        at = dt.datetime.now(dt.UTC)
        try:
            with Session(bind=bind) as session, session.begin():
                if sent:
                    command_store.mark_sent(session, command_id=command_id, at=at)
                else:
                    command_store.mark_failed(
                        session,
                        command_id=command_id,
                        error="broker_unreachable",
                        message="the broker did not take the command; not sent",
                        at=at,
                    )
        except Exception:
            log.exception("command state not recorded", extra={"fields": {"command_id": command_id}})

    event.listen(db, "after_commit", publish, once=True)


def command_view(command: Command, now: dt.datetime) -> dict[str, Any]:
    """A command as the API shows it: its state (expiry applied even before the sweeper ran), the answer."""
    state = command.state
    if state in ("pending", "sent") and command.expires_at <= now:
        state = "expired"
    return {
        "command_id": command.id,
        "station_id": command.station_id,
        "name": command.name,
        "state": state,
        "issued_by": command.issued_by,
        "reason": command.reason,
        "issued_at": command.issued_at,
        "expires_at": command.expires_at,
        "sent_at": command.sent_at,
        "finished_at": command.finished_at,
        "ok": None if state in ("pending", "sent") else state == "ok",
        "error": command.error if state != "expired" or command.error else "expired",
        "message": command.message,
        "result": command.result,
        "args": {k: v for k, v in (command.params or {}).items() if k in ARGS.get(command.name, set())},
    }
