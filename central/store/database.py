"""The centre's database: engines for PostgreSQL and SQLite, Alembic upgrades, sessions.

PostgreSQL (psycopg 3) in production, SQLite as the embedded default. The schema is managed by
Alembic from the first table (`central/migrations/`): `init` and `run` call `upgrade`, which brings
the database to the newest revision this code knows, in one transaction (PostgreSQL and, with our
own BEGIN, SQLite both have transactional DDL: a failing revision leaves the previous schema), and
refuses a database stamped with a revision this code does not know (written by a newer centre) or
holding tables without any revision (not a centre database), touching nothing.

Two processes upgrading at once (two ingest workers starting together) are serialised: SQLite by
BEGIN IMMEDIATE, PostgreSQL by a transaction-scoped advisory lock.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, create_engine, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from central.config import DatabaseConfig
from common.errors import StoreError
from common.sqlite import BUSY_TIMEOUT_MS, configure_sqlite, immediate, json_dumps

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_ADVISORY_LOCK = 0x797A_6365  # "yzce": one number every centre process agrees on
_MAX_SECRET_FILE_BYTES = 4096


class SchemaError(StoreError):
    """The database cannot be used by this code: newer, not a centre database, or an upgrade failed."""


def is_postgresql(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


def read_secret_file(path: Path, what: str) -> str:
    """The first line of a secret file, refused when group/other can read it (like the station)."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{what} file {path} is not a regular file")
        if os.name == "posix" and st.st_mode & 0o077:
            raise StoreError(f"{what} file {path} is readable by group/others: run `chmod 600 {path}`")
        if st.st_size > _MAX_SECRET_FILE_BYTES:
            raise StoreError(f"{what} file {path} is {st.st_size} bytes: not a secret file")
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise StoreError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise StoreError(f"{what} file {path} is not UTF-8 text") from None
    if not lines or not lines[0].strip():
        raise StoreError(f"{what} file {path} is empty")
    return lines[0].strip()


def open_engine(url: URL, settings: DatabaseConfig | None = None) -> Engine:
    """An engine for `url` (the schema is not touched: call `upgrade` once at start)."""
    settings = settings or DatabaseConfig()
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, json_serializer=json_dumps, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}
        )
        return configure_sqlite(engine)
    if settings.password_file is not None:
        if url.password:
            raise StoreError("[database] gives a password both in url and in password_file: keep one")
        url = url.set(password=read_secret_file(settings.password_file, "database password"))
    options = f"-c statement_timeout={int(settings.statement_timeout_s * 1000)} -c timezone=UTC"
    return create_engine(
        url,
        json_serializer=json_dumps,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_s,
        pool_pre_ping=True,
        connect_args={"connect_timeout": settings.connect_timeout_s, "options": options},
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose rows stay readable after commit. On SQLite every transaction takes the write
    lock up front (BEGIN IMMEDIATE), so read-then-write transactions wait instead of failing."""
    bind = immediate(engine) if engine.dialect.name == "sqlite" else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


def read_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for reading only. On SQLite they begin with a plain (deferred) BEGIN: a read then
    neither waits for nor blocks a writer (WAL), and a thread already inside a write transaction
    can still read through one (with BEGIN IMMEDIATE it would wait on its own lock)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


# -- migrations ------------------------------------------------------------------------------------


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """Alembic's configuration without an ini file: the scripts ship inside the package."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise SchemaError(f"the migrations have {len(heads)} heads ({heads}): merge them")
    return heads[0]


def current_revision(conn: Connection) -> str | None:
    """The revision the database is stamped with (None: empty or not a centre database)."""
    heads = MigrationContext.configure(conn).get_current_heads()
    return heads[0] if len(heads) == 1 else None


def _check_upgradable(conn: Connection) -> str | None:
    script = ScriptDirectory.from_config(alembic_config())
    heads = MigrationContext.configure(conn).get_current_heads()
    if not heads:
        tables = [t for t in inspect(conn).get_table_names() if t != "alembic_version"]
        if tables:
            raise SchemaError(
                f"the database holds tables but no Alembic revision ({', '.join(sorted(tables)[:8])}...): "
                "not a yizhan centre database; refusing to touch it"
            )
        return None
    for head in heads:
        try:
            known = script.get_revision(head)
        except Exception:  # alembic raises several types for an unknown id
            known = None
        if known is None:
            raise SchemaError(
                f"the database is at schema revision {head}, which this program does not know: it was "
                "written by a newer yizhan-central. Upgrade the program; the database was not modified"
            )
    return heads[0]


@contextmanager
def _migration_connection(engine: Engine) -> Iterator[Connection]:
    """One connection in one transaction that nobody else migrates through at the same time."""
    bind = immediate(engine) if engine.dialect.name == "sqlite" else engine
    with bind.connect() as conn, conn.begin():
        if is_postgresql(conn):
            conn.execute(text("SET LOCAL statement_timeout = 0"))
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK})
        yield conn


def upgrade(engine: Engine, *, now: dt.datetime | None = None) -> str:
    """Bring the database to the newest revision; returns it. See the module docstring."""
    from central.store.partitions import ensure_event_partitions

    target = head_revision()
    with _migration_connection(engine) as conn:
        before = _check_upgradable(conn)
        if before != target:
            try:
                command.upgrade(alembic_config(conn), "head")
            except Exception as exc:
                raise SchemaError(
                    f"upgrading the database from revision {before or '(empty)'} to {target} failed: "
                    f"{exc}; it was left at {before or 'empty'}"
                ) from exc
            log.info(
                "database upgraded",
                extra={"fields": {"event": "db_upgraded", "from": before, "to": target}},
            )
        ensure_event_partitions(conn, now or dt.datetime.now(dt.UTC))
    return target
