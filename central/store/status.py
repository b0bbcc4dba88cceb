"""Station health: the latest status on the station row, a bounded history in `station_status`.

A station publishes a retained `up/status` ("online" with health) on connect and every heartbeat;
the broker publishes its last will ("offline") when the connection dies. The station row keeps
the latest (`last_state`, `last_seen_at`, `last_status_at`, `last_health`, `applied_version`),
so the fleet view is one read; `station_status` keeps what changed, plus a heartbeat at most every
`HISTORY_EVERY` (a day of 60-second heartbeats from 2,000 stations would be 2.9 million rows).

Ordering: two ingest workers may store two statuses of one station in either order. The newer
*receipt* wins (`last_status_at` is the centre's clock when the message arrived): the station's
own `ts` cannot order them, because its last will carries the time it connected, hours before
the heartbeats it follows.

`mark_silent_offline` is the other half of "offline": a station whose heartbeats stopped without a
last will (the broker restarted and forgot the session) is marked offline after `offline_after_s`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from central.store.tables import Station, StationStatus

HISTORY_EVERY = dt.timedelta(minutes=15)
#: Health fields whose change is worth a history row (besides online/offline).
_WATCHED = ("camera", "door", "disk", "clock", "signatures", "face_model", "delivery")


@dataclass(frozen=True, slots=True)
class StatusChange:
    station_id: str
    state: str
    previous_state: str
    applied: bool  # False: an older status than the one on the row (arrived late), kept in history only


def _summary(health: dict[str, Any] | None) -> dict[str, Any]:
    """What of the health decides a history row: states and statuses, not counters or times."""
    if not health:
        return {}
    out: dict[str, Any] = {}
    for key in _WATCHED:
        value = health.get(key)
        if isinstance(value, dict):
            out[key] = {k: value.get(k) for k in ("state", "status", "relay", "alarm", "tampered", "name")}
        else:
            out[key] = value
    return out


def clock_skew_s(health: dict[str, Any] | None, received_at: dt.datetime) -> float | None:
    """The station's clock minus the centre's at receipt (seconds), from `health.clock.station_time`."""
    clock = (health or {}).get("clock")
    stamp = clock.get("station_time") if isinstance(clock, dict) else None
    if not isinstance(stamp, str):
        return None
    try:
        station_time = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if station_time.tzinfo is None:
        return None
    return round((station_time - received_at).total_seconds(), 3)


def apply_status(
    session: Session,
    *,
    station: Station,
    state: str,
    ts: dt.datetime,
    health: dict[str, Any] | None,
    received_at: dt.datetime,
    last_history: dict[str, dt.datetime] | None = None,
) -> StatusChange:
    """Store one status message of `station` (locked by the caller's batch). See the module doc.

    `last_history` caches when each station's last history row was written (the caller keeps it
    across batches), so a heartbeat costs no query to decide whether it is due."""
    previous_state = station.last_state
    newer = station.last_status_at is None or received_at >= station.last_status_at
    stored_health = None
    if health is not None:
        stored_health = dict(health)
        skew = clock_skew_s(health, received_at)
        if skew is not None:
            stored_health["clock_skew_s"] = skew  # the centre's measurement, beside the station's
    history = not newer or previous_state != state or _summary(station.last_health) != _summary(stored_health)
    if newer and not history:  # a plain heartbeat: a history row only every HISTORY_EVERY
        last = last_history.get(station.station_id) if last_history is not None else None
        if last is None:
            last = session.scalar(
                select(StationStatus.received_at)
                .where(StationStatus.station_id == station.station_id)
                .order_by(StationStatus.received_at.desc())
                .limit(1)
            )
        history = last is None or received_at - last >= HISTORY_EVERY
    if newer:
        station.last_state = state
        station.last_status_at = received_at
        station.last_seen_at = received_at if state == "online" else station.last_seen_at
        if state == "online":
            station.last_health = stored_health
            version = (health or {}).get("centre_roster_version")
            if isinstance(version, int) and not isinstance(version, bool) and 0 <= version < 2**53:
                station.applied_version = version
            model = (health or {}).get("face_model")
            if isinstance(model, dict) and isinstance(model.get("name"), str) and len(model["name"]) <= 64:
                station.face_model = station.face_model or model["name"]
    if history:
        if last_history is not None:
            if len(last_history) > 100_000:
                last_history.clear()
            last_history[station.station_id] = received_at
        session.add(
            StationStatus(
                station_id=station.station_id,
                state=state,
                ts=ts,
                received_at=received_at,
                health=stored_health,
            )
        )
    return StatusChange(station.station_id, state, previous_state, newer)


def mark_silent_offline(session: Session, *, now: dt.datetime, silent_for: dt.timedelta) -> Sequence[str]:
    """Stations "online" with no status for `silent_for`: marked offline (history says why)."""
    cutoff = now - silent_for
    ids = list(
        session.scalars(
            update(Station)
            .where(Station.last_state == "online", Station.last_seen_at < cutoff)
            .values(last_state="offline", last_status_at=now)
            .returning(Station.station_id)
        )
    )
    for station_id in ids:
        session.add(
            StationStatus(
                station_id=station_id,
                state="offline",
                ts=now,
                received_at=now,
                health={"reason": "missed_heartbeats", "silent_for_s": int(silent_for.total_seconds())},
            )
        )
    return ids


def history(session: Session, *, station_id: str, limit: int = 100) -> Sequence[StationStatus]:
    """The station's status history, newest first."""
    return session.scalars(
        select(StationStatus)
        .where(StationStatus.station_id == station_id)
        .order_by(StationStatus.received_at.desc(), StationStatus.id.desc())
        .limit(limit)
    ).all()
