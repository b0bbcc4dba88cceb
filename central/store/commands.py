"""Commands to stations: the row written with the request, its state as it travels and is answered.

pending (written) -> sent (the broker took it) -> ok / failed (the station's `up/result`, stored by
ingest: `central.store.ingest.answer_command`), or failed at once (`station_offline`,
`mqtt_disabled`, `broker_unreachable`), or expired (no answer by `expires_at`: the station
refuses it after that anyway).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from central.store.tables import Command


def add_command(
    session: Session,
    *,
    command_id: str,
    station_id: str,
    name: str,
    params: dict[str, Any],
    issued_by: str,
    staff_id: int | None,
    reason: str | None,
    issued_at: dt.datetime,
    expires_at: dt.datetime,
    state: str = "pending",
    error: str | None = None,
    message: str | None = None,
) -> Command:
    command = Command(
        id=command_id,
        station_id=station_id,
        name=name,
        params=params,
        issued_by=issued_by[:100],
        staff_id=staff_id,
        reason=reason,
        issued_at=issued_at,
        expires_at=expires_at,
        state=state,
        error=error,
        message=message,
        finished_at=issued_at if state == "failed" else None,
    )
    session.add(command)
    session.flush()
    return command


def get_command(session: Session, *, command_id: str) -> Command | None:
    return session.get(Command, command_id)


def mark_sent(session: Session, *, command_id: str, at: dt.datetime) -> None:
    """The broker took it (only a pending command moves: an answer may already be in)."""
    session.execute(
        update(Command)
        .where(Command.id == command_id, Command.state == "pending")
        .values(state="sent", sent_at=at)
    )


def mark_failed(session: Session, *, command_id: str, error: str, message: str, at: dt.datetime) -> None:
    session.execute(
        update(Command)
        .where(Command.id == command_id, Command.state == "pending")
        .values(state="failed", error=error, message=message[:500], finished_at=at)
    )


def expire_due(session: Session, *, now: dt.datetime) -> Sequence[Command]:
    """Commands past their expiry with no answer: marked expired (returned, for the live feed)."""
    due = list(
        session.scalars(
            select(Command)
            .where(Command.state.in_(("pending", "sent")), Command.expires_at < now)
            .with_for_update()
        )
    )
    for command in due:
        command.state = "expired"
        command.error = "expired"
        command.message = "no answer from the station before the command expired"
        command.finished_at = now
    return due


def list_commands(session: Session, *, station_id: str, limit: int = 50) -> Sequence[Command]:
    return session.scalars(
        select(Command)
        .where(Command.station_id == station_id)
        .order_by(Command.issued_at.desc())
        .limit(limit)
    ).all()
