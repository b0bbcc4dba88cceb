"""What ingest writes for the stations' messages: events in bulk, results, enrolment rows.

Keyword-only functions on a `Session`; the caller (one ingest batch) owns the transaction and
commits once for the whole batch, then acknowledges. Everything here is idempotent, because
delivery is at least once: an event is keyed by (id, ts) (the station re-sends the same ts), an
enrolment by its id, a result by (station, ref, ref_type).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from central.store.tables import Command, Enrolment, Event, Result

#: Roster answers are superseded by later ones (a `version_gap` then `ok`); a command's first
#: answer is final (a broker redelivery is answered `replayed`, which must not overwrite it).
_LATEST_WINS = frozenset({"roster_change", "roster_snapshot", "roster_status"})


def _insert(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


NEW, DUPLICATE, FOREIGN = "new", "duplicate", "foreign"


def store_events(session: Session, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Insert `rows` (Event columns) unless already stored; one outcome per row, in order.

    `new`: stored now. `duplicate`: already stored for the same station (a re-send, which the
    station is acknowledged again). `foreign`: the id is already stored for *another* station
    (refused: an event id belongs to the station that first sent it, and nothing is ever stored
    under another station). Rows go in as multi-row INSERTs with ON CONFLICT DO NOTHING RETURNING
    (SQLAlchemy's "insertmanyvalues"), so a batch of hundreds is a few statements.
    """
    if not rows:
        return []
    first: dict[str, int] = {}
    for index, row in enumerate(rows):
        first.setdefault(row["id"], index)
    unique = [dict(rows[i]) for i in sorted(first.values())]
    if session.get_bind().dialect.name == "postgresql":
        inserted = _insert_recordset(session, unique)
    else:
        statement = (
            sqlite_insert(Event).on_conflict_do_nothing(index_elements=["id", "ts"]).returning(Event.id)
        )
        inserted = {str(i) for i in session.scalars(statement, unique)}
    stored_owner: dict[str, str] = {}
    missing = [r for r in unique if r["id"] not in inserted]
    if missing:
        stored_owner = {
            str(i): str(station)
            for i, station in session.execute(
                select(Event.id, Event.station_id).where(
                    tuple_(Event.id, Event.ts).in_([(r["id"], r["ts"]) for r in missing])
                )
            ).all()
        }
    outcomes: list[str] = []
    for index, row in enumerate(rows):
        event_id = row["id"]
        if event_id in inserted:
            owner = rows[first[event_id]]["station_id"]
            if first[event_id] == index:
                outcomes.append(NEW)
                continue
        else:
            owner = stored_owner.get(event_id, "")
        outcomes.append(DUPLICATE if owner == row["station_id"] else FOREIGN)
    return outcomes


_EVENT_COLUMNS = (
    ("id", "text"),
    ("ts", "timestamptz"),
    ("station_id", "text"),
    ("seq", "bigint"),
    ("kind", "text"),
    ("method", "text"),
    ("member_id", "text"),
    ("reason", "text"),
    ("details", "jsonb"),
    ("snapshot", "text"),
    ("latency_ms", "float8"),
    ("received_at", "timestamptz"),
)
_NAMES = ", ".join(c for c, _ in _EVENT_COLUMNS)
_RECORDSET = text(
    f"INSERT INTO events ({_NAMES}) SELECT {_NAMES} FROM jsonb_to_recordset(CAST(:rows AS jsonb)) "
    f"AS r({', '.join(f'{c} {t}' for c, t in _EVENT_COLUMNS)}) "
    "ON CONFLICT (id, ts) DO NOTHING RETURNING id"
)


def _insert_recordset(session: Session, rows: Sequence[dict[str, Any]]) -> set[str]:
    """PostgreSQL: all rows in one `INSERT ... SELECT FROM jsonb_to_recordset(:rows)`.

    Why not SQLAlchemy's multi-row VALUES: its statement text changes with the row count and is too
    long for psycopg's statement cache, so every batch was re-parsed client-side (about 0.1 ms per
    row); arrays per column (`unnest`) cost as much again in psycopg's text quoting of each element.
    One JSON document, written by the C encoder and read by PostgreSQL's, is the cheap way in."""
    stamps: dict[dt.datetime, str] = {}  # a batch shares one received_at: format it once

    def iso(value: dt.datetime) -> str:
        found = stamps.get(value)
        if found is None:
            found = stamps[value] = value.isoformat()
        return found

    document = [
        {
            **row,
            "ts": row["ts"].isoformat(),
            "received_at": iso(row["received_at"]),
            "details": row.get("details") or {},
        }
        for row in rows
    ]
    return {str(i) for i in session.scalars(_RECORDSET, {"rows": json.dumps(document, allow_nan=False)})}


def find_event(session: Session, *, station_id: str, event_id: str) -> Event | None:
    """The station's event with this id (a snapshot's topic names only the id)."""
    return session.scalars(
        select(Event).where(Event.id == event_id, Event.station_id == station_id).limit(1)
    ).first()


def events_known(session: Session, *, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dt.datetime]:
    """Of the (station_id, event_id) pairs, those stored, with their `ts`."""
    if not pairs:
        return {}
    ids = sorted({event_id for _, event_id in pairs})
    found = session.execute(select(Event.station_id, Event.id, Event.ts).where(Event.id.in_(ids))).all()
    wanted = set(pairs)
    return {(s, i): ts for s, i, ts in found if (s, i) in wanted}


def store_results(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Keep stations' answers (Result columns), once per (station, ref, ref_type): roster answers
    replace older ones (a `version_gap` followed by `ok`), a command's first answer is final (a
    broker redelivery of the command is answered `replayed`, which must not overwrite it)."""
    latest: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    first: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for row in rows:
        key = (row["station_id"], row["ref"], row["ref_type"])
        if row["ref_type"] in _LATEST_WINS:
            latest[key] = row  # the last of a batch wins, as later batches will
        else:
            first.setdefault(key, row)
    keys = ["station_id", "ref", "ref_type"]
    if latest:
        statement = _insert(session)(Result)
        statement = statement.on_conflict_do_update(
            index_elements=keys,
            set_={k: statement.excluded[k] for k in ("ok", "error", "message", "data", "ts", "received_at")},
        )
        session.execute(statement, list(latest.values()))
    if first:
        session.execute(
            _insert(session)(Result).on_conflict_do_nothing(index_elements=keys), list(first.values())
        )


def answer_command(
    session: Session,
    *,
    station_id: str,
    command_id: str,
    ok: bool,
    error: str | None,
    message: str | None,
    data: dict[str, Any],
    at: dt.datetime,
) -> Command | None:
    """Put a station's answer on its command (only the first answer, only from that station).

    Returns the command when this answer was taken, None when there is no such command of this
    station or it already had its answer (a redelivered command is answered `replayed`)."""
    taken = session.execute(
        update(Command)
        .where(
            Command.id == command_id,
            Command.station_id == station_id,
            Command.state.in_(("pending", "sent", "expired")),
        )
        .values(
            state="ok" if ok else "failed",
            error=error,
            message=message,
            result=data,
            finished_at=at,
        )
        .returning(Command.id)
    ).first()
    if taken is None:
        return None
    return session.get(Command, command_id, populate_existing=True)


def store_enrolment(
    session: Session,
    *,
    enrolment_id: str,
    station_id: str,
    member_id: str | None,
    seq: int,
    ts: dt.datetime,
    templates_received: int,
    templates_withheld: int,
    received_at: dt.datetime,
) -> bool:
    """Record an enrolment once; False when this id was stored before (a re-send)."""
    statement = (
        _insert(session)(Enrolment)
        .values(
            id=enrolment_id,
            station_id=station_id,
            member_id=member_id,
            seq=seq,
            ts=ts,
            templates_received=templates_received,
            templates_withheld=templates_withheld,
            received_at=received_at,
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(Enrolment.id)
    )
    return session.execute(statement).first() is not None


def enrolment_station(session: Session, *, enrolment_id: str) -> str | None:
    return session.scalar(select(Enrolment.station_id).where(Enrolment.id == enrolment_id))
