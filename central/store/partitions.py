"""Monthly partitions of `events` on PostgreSQL (declarative range partitioning on `ts`).

Why: years of a large fleet (2,000 stations x a few hundred events a day is ~200 million rows a
year) must stay fast to write and to query by time, and old months must be cheap to drop or
archive. With one partition per calendar month (UTC), a day's dashboard query touches one small
partition and its indexes, and retention is `DROP TABLE events_y2026m01` instead of a huge DELETE.

Partitions are created ahead: at `init`, at every `run` start and (later) daily, months from one
before now to `MONTHS_AHEAD` after exist. `events_default` catches rows outside them (a station
whose clock is years off must not make ingest fail). When a month is created that already has rows
in the default partition, those rows are moved into the new partition in the same transaction (an
ATTACH would otherwise be refused).

On SQLite `events` is a plain table and this module does nothing.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from sqlalchemy import Connection, text

MONTHS_AHEAD = 3
DEFAULT_PARTITION = "events_default"
_NAME_RE = re.compile(r"^events_y(\d{4})m(\d{2})$")


def month_start(at: dt.datetime) -> dt.datetime:
    utc = at.astimezone(dt.UTC)
    return dt.datetime(utc.year, utc.month, 1, tzinfo=dt.UTC)


def add_months(start: dt.datetime, months: int) -> dt.datetime:
    index = start.year * 12 + (start.month - 1) + months
    return dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC)


def partition_name(start: dt.datetime) -> str:
    return f"events_y{start.year:04d}m{start.month:02d}"


def existing_partitions(conn: Connection) -> list[str]:
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events' ORDER BY c.relname"
        )
    )
    return [str(r[0]) for r in rows]


def ensure_event_partitions(
    conn: Connection, now: dt.datetime, *, months_ahead: int = MONTHS_AHEAD
) -> list[str]:
    """Create the missing monthly partitions around `now`; returns the names created."""
    if conn.dialect.name != "postgresql":
        return []
    have = set(existing_partitions(conn))
    created: list[str] = []
    first = add_months(month_start(now), -1)
    for offset in range(months_ahead + 2):
        start = add_months(first, offset)
        name = partition_name(start)
        if name not in have:
            _create_month(conn, start, add_months(start, 1), name)
            created.append(name)
    return created


def _create_month(conn: Connection, start: dt.datetime, end: dt.datetime, name: str) -> None:
    bounds = {"lo": start, "hi": end}
    # Names come from partition_name() (digits only), never from input: safe to format in.
    assert _NAME_RE.match(name)
    conn.execute(text(f"CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"))
    conn.execute(
        text(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE ts >= :lo AND ts < :hi RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved"
        ),
        bounds,
    )
    lo = start.isoformat()
    hi = end.isoformat()
    conn.execute(text(f"ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ('{lo}') TO ('{hi}')"))


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic autogenerate filter: partitions are made at run time, not by revisions."""
    return not (type_ == "table" and name is not None and (_NAME_RE.match(name) or name == DEFAULT_PARTITION))
