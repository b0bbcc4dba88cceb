"""SQLite as both processes use it: WAL, fsync on every commit, foreign keys, our own BEGIN.

Why these pragmas, on every connection (SQLite settings other than journal_mode are per connection):

* ``journal_mode=WAL``: readers never block the writer and the writer never blocks readers.
* ``synchronous=FULL``: in WAL mode NORMAL may lose the last transactions on a power cut (they are in
  the WAL but not yet fsynced). An event the station acknowledged to a member, or one the centre
  acknowledged to a station (`down/ack`), must survive the power being pulled, so every commit
  fsyncs the WAL.
* ``foreign_keys=ON``: off by default in SQLite; without it deleting a member would orphan templates.
* ``busy_timeout=5000``: a writer waits up to 5 s for another writer instead of failing at once.

Transactions: pysqlite's own transaction handling does not put DDL inside a transaction (it issues
BEGIN only before DML). We switch it off and emit BEGIN ourselves (the recipe from the SQLAlchemy
SQLite dialect documentation), so a migration's CREATE/ALTER statements and its version bump commit
or roll back together, and SAVEPOINTs work. `immediate(engine)` makes every transaction start with
BEGIN IMMEDIATE: in WAL mode a deferred transaction that read an older snapshot cannot upgrade to a
writer once another connection has committed, and fails at once without waiting.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.pool import ConnectionPoolEntry

from common.errors import StoreError

BUSY_TIMEOUT_MS = 5000
BEGIN_OPTION = "yizhan_begin"


def json_dumps(value: Any) -> str:
    """JSON for the database: names like 张三 stay readable; NaN (not JSON) is refused."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def configure_sqlite(engine: Engine) -> Engine:
    """Install the pragmas and our transaction control on every connection `engine` opens."""
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def immediate(engine: Engine) -> Engine:
    """The same engine whose transactions take the write lock up front (BEGIN IMMEDIATE)."""
    return engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})


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
    (a daemon and a CLI command on first start)."""
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
    mode = conn.get_execution_options().get(BEGIN_OPTION)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")
