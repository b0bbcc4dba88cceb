"""The station's SQLite file: engine set-up and schema versioning.

The connection pragmas (WAL, ``synchronous=FULL``, foreign keys, busy timeout) and our own BEGIN are
shared with the centre's SQLite mode and explained in `common.sqlite`.

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

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

# The error bases live in `common` (the template cipher raises them too); station code keeps
# importing them from here.
from common.errors import StoreError as StoreError
from common.errors import ValidationError as ValidationError
from common.sqlite import BUSY_TIMEOUT_MS, configure_sqlite, json_dumps
from common.sqlite import immediate as immediate_engine


class SchemaError(StoreError):
    """The database schema cannot be used by this code (newer, unversioned, or a migration failed)."""


MigrationStep = Callable[[Connection], None]


def _step_2_template_model(conn: Connection) -> None:
    """Templates name the face model that made them; every template before this was dlib's."""
    conn.exec_driver_sql(
        "ALTER TABLE face_templates ADD COLUMN model VARCHAR(64) DEFAULT 'dlib_resnet_v1' NOT NULL"
    )


#: station_state key listing member ids that already differed only by case when step 3 ran.
CASE_CONFLICTS_KEY = "member_id_case_conflicts"
#: Member ids that equal each other ignoring case, one row per group (ids joined by U+001F).
CASE_CONFLICTS_SQL = (
    "SELECT group_concat(member_id, char(31)) FROM members GROUP BY lower(member_id) HAVING count(*) > 1"
)


def case_conflict_groups(rows: Any) -> list[list[str]]:
    """The rows of CASE_CONFLICTS_SQL as sorted groups of ids."""
    return sorted(sorted(str(row[0]).split("\x1f")) for row in rows)


def _step_3_member_ids_unique_ignoring_case(conn: Connection) -> None:
    """Member ids become unique ignoring case (`W-0001` and `w-0001` are one id on paper and on a
    phone keyboard, and a QR pass names one of them).

    Existing rows are never renamed or deleted: their ids are printed on passes and known to the
    centre. Ids that already collide are left out of the unique index (a partial index names them,
    so every *other* id is still held to the rule by the database) and listed under the
    station_state key `member_id_case_conflicts` for `yizhan doctor` to report; `add_member`
    refuses any new id that equals an existing one ignoring case.
    """
    groups = case_conflict_groups(conn.exec_driver_sql(CASE_CONFLICTS_SQL))
    where = ""
    if groups:
        ids = sorted(member_id for group in groups for member_id in group)
        quoted = ", ".join("'" + member_id.replace("'", "''") + "'" for member_id in ids)
        where = f" WHERE member_id NOT IN ({quoted})"
        conn.exec_driver_sql(
            "INSERT OR REPLACE INTO station_state (key, value) VALUES (?, ?)",
            (CASE_CONFLICTS_KEY, json_dumps(groups)),
        )
    conn.exec_driver_sql(
        "CREATE UNIQUE INDEX ux_members_member_id_nocase ON members (member_id COLLATE NOCASE)" + where
    )


def _step_4_requires_pass_and_template_origin(conn: Connection) -> None:
    """Version 4: members.requires_pass / lookalikes (lookalikes confirmed at enrolment need the
    pass at the door) and face_templates.origin / enrolled_by (how and by whom each template came)."""
    conn.exec_driver_sql("ALTER TABLE members ADD COLUMN requires_pass BOOLEAN NOT NULL DEFAULT 0")
    conn.exec_driver_sql("ALTER TABLE members ADD COLUMN lookalikes JSON NOT NULL DEFAULT '[]'")
    conn.exec_driver_sql("ALTER TABLE face_templates ADD COLUMN origin VARCHAR(16)")
    conn.exec_driver_sql("ALTER TABLE face_templates ADD COLUMN enrolled_by VARCHAR(100)")


# STEPS[i] upgrades a database from version i + 1 to version i + 2. Version 1 is the initial schema.
STEPS: list[MigrationStep] = [
    _step_2_template_model,
    _step_3_member_ids_unique_ignoring_case,
    _step_4_requires_pass_and_template_origin,
]

SCHEMA_VERSION: int = 1 + len(STEPS)
"""The schema version this code writes and expects."""


def open_engine(db_path: Path) -> Engine:
    """Open (creating the parent directory and the file if needed) the station database.

    The schema is not touched here; call `migrate` once at start before using the engine.
    """
    db_path = Path(db_path)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        f"sqlite:///{db_path}",
        json_serializer=json_dumps,
        connect_args={"timeout": BUSY_TIMEOUT_MS / 1000},
    )
    return configure_sqlite(engine)


def make_session_factory(engine: Engine, *, immediate: bool = False) -> sessionmaker[Session]:
    """A session factory bound to `engine`; ``expire_on_commit=False`` so rows stay readable after commit.

    With ``immediate=True`` each transaction starts with BEGIN IMMEDIATE, taking the write lock up
    front. Use that for sessions that read and then write: in WAL mode a deferred transaction that
    read an older snapshot cannot upgrade to a writer once another connection has committed, and
    fails with "database is locked" without waiting for the busy timeout.
    """
    bind = immediate_engine(engine) if immediate else engine
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
    with immediate_engine(engine).connect() as conn:
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
