"""The station's SQLite file: engine set-up, connection pragmas and schema versioning.

Why these pragmas, on every connection (SQLite settings other than journal_mode are per connection):

* ``journal_mode=WAL``: the camera thread, the sync thread and the CLI read while one of them writes;
  in WAL mode readers never block the writer and the writer never blocks readers.
* ``synchronous=FULL``: in WAL mode NORMAL may lose the last transactions on a power cut (they are in
  the WAL but not yet fsynced). An event or a single-use QR nonce we acknowledged must survive the
  power being pulled, which happens at unattended stations, so every commit fsyncs the WAL. The cost
  is one fsync per commit, a few milliseconds on an SD card, far below a door decision.
* ``foreign_keys=ON``: off by default in SQLite; without it deleting a member would orphan templates.
* ``busy_timeout=5000``: a writer waits up to 5 s for another writer instead of failing at once.

Transactions: pysqlite's own transaction handling does not put DDL inside a transaction (it issues
BEGIN only before DML). We switch it off and emit BEGIN ourselves (the recipe from the SQLAlchemy
SQLite dialect documentation), so a migration's CREATE/ALTER statements and its version bump commit
or roll back together, and SAVEPOINTs work.

Why a small versioned scheme and not alembic: there is exactly one SQLite file per station, on an
embedded box, upgraded by the program itself at start; nobody needs autogenerate, branches or an
``alembic.ini`` shipped to the Pi. What we need is: know the version, refuse a database newer than the
code, and apply ordered steps inside one transaction so a crash or a failing step leaves the previous
version intact. That is a table with one row and a list of functions, below, readable in one screen
and testable without extra tooling. SQLite's transactional DDL gives the all-or-nothing property.

How to add a schema change: write ``def _step_N(conn: Connection) -> None`` using plain SQL (never
``Base.metadata``, which always describes the *newest* schema), append it to ``STEPS`` and change
``models/tables.py`` to match. A fresh database skips the steps: it is created from the current
metadata and stamped with the newest version directly. A step that rebuilds a table (SQLite's way
to change a column or CHECK) cannot switch ``foreign_keys`` off inside the transaction; it should
use ``PRAGMA defer_foreign_keys=ON`` instead, and re-create the events triggers if it touches events.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry


class StoreError(Exception):
    """Base class of every error raised by the station store (`models`)."""


class SchemaError(StoreError):
    """The database schema cannot be used by this code (newer, unversioned, or a migration failed)."""


class ValidationError(StoreError, ValueError):
    """Input refused before it reached the database; the message names the offending field."""


MigrationStep = Callable[[Connection], None]

def _step_2_requires_pass_and_template_origin(conn: Connection) -> None:
    """Version 2: members.requires_pass / lookalikes (lookalikes confirmed at enrolment need the
    pass at the door) and face_templates.origin / enrolled_by (how and by whom each template came)."""
    conn.exec_driver_sql("ALTER TABLE members ADD COLUMN requires_pass BOOLEAN NOT NULL DEFAULT 0")
    conn.exec_driver_sql("ALTER TABLE members ADD COLUMN lookalikes JSON NOT NULL DEFAULT '[]'")
    conn.exec_driver_sql("ALTER TABLE face_templates ADD COLUMN origin VARCHAR(16)")
    conn.exec_driver_sql("ALTER TABLE face_templates ADD COLUMN enrolled_by VARCHAR(100)")


# STEPS[i] upgrades a database from version i + 1 to version i + 2. Version 1 is the initial schema.
STEPS: list[MigrationStep] = [_step_2_requires_pass_and_template_origin]

SCHEMA_VERSION: int = 1 + len(STEPS)
"""The schema version this code writes and expects."""

BUSY_TIMEOUT_MS = 5000
_BEGIN_OPTION = "yizhan_begin"


def _json_dumps(value: Any) -> str:
    # ensure_ascii=False keeps names like 张三 readable in the file; allow_nan=False refuses NaN,
    # which is not JSON and would break the sync to the centre later.
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def open_engine(db_path: Path) -> Engine:
    """Open (creating the parent directory and the file if needed) the station database.

    The schema is not touched here; call `migrate` once at start before using the engine.
    """
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{db_path}",
        json_serializer=_json_dumps,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000},
    )
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def _on_connect(dbapi_connection: sqlite3.Connection, connection_record: ConnectionPoolEntry) -> None:
    """Set the pragmas on every new DBAPI connection and take over transaction control."""
    # Autocommit at the driver level: we emit BEGIN ourselves in `_on_begin`.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        mode = _switch_to_wal(cursor)
        if mode is None or str(mode[0]).lower() != "wal":
            raise StoreError(
                f"could not switch the database to WAL mode (got {mode!r}); "
                "is the data directory on a filesystem without shared-memory support?"
            )
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _switch_to_wal(cursor: sqlite3.Cursor) -> Any:
    """PRAGMA journal_mode=WAL, retried: switching needs an exclusive lock and SQLite answers
    SQLITE_BUSY at once, without its busy handler, when two processes open a new file together
    (the daemon and a CLI command on first boot)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return cursor.execute("PRAGMA journal_mode=WAL").fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _on_begin(conn: Connection) -> None:
    """Emit BEGIN (or BEGIN IMMEDIATE when the connection asks for it via an execution option)."""
    mode = conn.get_execution_options().get(_BEGIN_OPTION)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


def make_session_factory(engine: Engine, *, immediate: bool = False) -> sessionmaker[Session]:
    """A session factory bound to `engine`; ``expire_on_commit=False`` so rows stay readable after commit.

    With ``immediate=True`` each transaction starts with BEGIN IMMEDIATE, taking the write lock up
    front. Use that for sessions that read and then write: in WAL mode a deferred transaction that
    read an older snapshot cannot upgrade to a writer once another connection has committed, and
    fails with "database is locked" without waiting for the busy timeout.
    """
    bind = engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"}) if immediate else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


def _user_tables(conn: Connection) -> set[str]:
    rows = conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    return {str(r[0]) for r in rows}


def read_version(conn: Connection) -> int:
    """The schema version stored in the database, 0 for an empty database.

    Raises `SchemaError` for a database that holds tables but no (valid) version: that is not a
    station database, or it was damaged, and guessing would risk the data in it.
    """
    tables = _user_tables(conn)
    if "schema_version" not in tables:
        if tables:
            raise SchemaError(
                "the database holds tables but no schema_version table "
                f"({', '.join(sorted(tables))}): not a yizhan station database; refusing to touch it"
            )
        return 0
    rows = conn.exec_driver_sql("SELECT version FROM schema_version").fetchall()
    if len(rows) != 1 or not isinstance(rows[0][0], int) or rows[0][0] < 1:
        raise SchemaError(f"the schema_version table is damaged (rows: {rows!r}); refusing to touch it")
    return int(rows[0][0])


def _create_all(conn: Connection) -> None:
    # Imported here: tables.py imports this module for the error classes.
    from models.tables import Base

    Base.metadata.create_all(conn)
    conn.exec_driver_sql(
        "CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)"
    )


def migrate(engine: Engine) -> int:
    """Bring the database to the version this code expects and return that version.

    Idempotent. Runs in one BEGIN IMMEDIATE transaction: two processes starting together are
    serialised, and a crash or an exception in any step leaves the database at its previous version
    (with none of the failed step's changes). A database newer than the code raises `SchemaError`
    and is left untouched: an older program must never write into a schema it does not know.
    """
    steps = list(STEPS)
    target = 1 + len(steps)
    with engine.connect().execution_options(**{_BEGIN_OPTION: "IMMEDIATE"}) as conn:
        with conn.begin():
            current = read_version(conn)
            if current > target:
                raise SchemaError(
                    f"the database has schema version {current}, but this program only knows up to "
                    f"version {target}: it was written by a newer yizhan. Upgrade the program; the "
                    "database was not modified"
                )
            if current == target:
                return current
            try:
                if current == 0:
                    _create_all(conn)
                    conn.exec_driver_sql("INSERT INTO schema_version (id, version) VALUES (1, ?)", (target,))
                    return target
                for version in range(current, target):
                    steps[version - 1](conn)
                    conn.execute(text("UPDATE schema_version SET version = :v"), {"v": version + 1})
            except Exception as exc:
                raise SchemaError(
                    f"upgrading the database from schema version {current} to {target} failed: {exc}; "
                    f"the database was left at version {current}"
                ) from exc
        return target
