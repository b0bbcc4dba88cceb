"""Alembic environment of the centre, for PostgreSQL and SQLite.

At run time `central.store.database.upgrade` hands us an open connection inside its transaction
(`config.attributes["connection"]`): everything below runs in that one transaction. For developers
(`alembic -c central/alembic.ini revision --autogenerate -m "..."`) the URL comes from
`-x url=...`, else from the centre's configuration (`$YIZHAN_CENTRAL_CONFIG` / `./central.toml`).

SQLite cannot ALTER most things, so revisions run in batch mode there (`render_as_batch`: copy the
table, move the rows, swap); `transactional_ddl` is on because our own BEGIN makes SQLite DDL
transactional (`common.sqlite`).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from central.store.partitions import include_object
from central.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,
        transactional_ddl=True,
        compare_type=True,
        include_object=include_object,
    )


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url:
        return url
    from central.config import load_config

    loaded, _ = load_config()
    return loaded.database_url.render_as_string(hide_password=False)


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        context.run_migrations()
        return
    from sqlalchemy import make_url

    from central.store.database import open_engine

    engine = open_engine(make_url(_url()))
    with engine.connect() as conn, conn.begin():
        _configure(conn)
        context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: run against a database")
run_migrations_online()
