"""The centre's schema comes from Alembic on SQLite and PostgreSQL alike, and matches the models."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from central_fixtures import CentralDb
from sqlalchemy import inspect, make_url, text

from central.store import partitions
from central.store.database import SchemaError, current_revision, head_revision, open_engine, upgrade
from central.store.tables import Base


def test_an_empty_database_is_upgraded_to_head_once(central_db_url: str) -> None:
    engine = open_engine(make_url(central_db_url))
    try:
        assert upgrade(engine) == head_revision()
        assert upgrade(engine) == head_revision()  # idempotent
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
            assert set(Base.metadata.tables) <= set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_the_migrated_schema_is_exactly_the_models(central_db: CentralDb) -> None:
    with central_db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": partitions.include_object}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"tables.py and the migrations differ: add a revision ({diff[:5]})"


def test_a_database_from_a_newer_centre_is_refused_untouched(central_db: CentralDb) -> None:
    with central_db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff_from_the_future'"))
        conn.execute(text("INSERT INTO districts (district_id, name, registration_approval, created_at) "
                          "VALUES ('d', 'D', 'staff', CURRENT_TIMESTAMP)"))  # fmt: skip
    with pytest.raises(SchemaError, match="newer yizhan-central"):
        upgrade(central_db.engine)
    with central_db.engine.connect() as conn:
        assert (
            conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "ffff_from_the_future"
        )
        assert conn.execute(text("SELECT count(*) FROM districts")).scalar() == 1


def test_a_database_of_something_else_is_refused(central_db_url: str) -> None:
    engine = open_engine(make_url(central_db_url))
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE payroll (id INTEGER PRIMARY KEY)"))
        with pytest.raises(SchemaError, match="not a yizhan centre database"):
            upgrade(engine)
        with engine.connect() as conn:
            assert inspect(conn).get_table_names() == ["payroll"]
    finally:
        engine.dispose()


def test_events_are_partitioned_by_month_on_postgresql(central_db: CentralDb) -> None:
    now = dt.datetime(2027, 3, 15, tzinfo=dt.UTC)
    insert = text(
        "INSERT INTO events (id, ts, station_id, kind, details, received_at) "
        "VALUES (:id, :ts, 's1', 'entry', '{}', CURRENT_TIMESTAMP)"
    )
    with central_db.engine.begin() as conn:
        partitions.ensure_event_partitions(conn, now)
        conn.execute(insert, {"id": "a", "ts": "2027-03-15T10:00:00+00:00"})
        conn.execute(insert, {"id": "b", "ts": "2030-01-02T00:00:00+00:00"})  # a clock years ahead
        conn.execute(insert, {"id": "c", "ts": "2027-03-16T10:00:00+00:00"})
    if central_db.kind != "postgresql":
        with central_db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 3
        return
    with central_db.engine.begin() as conn:
        names = partitions.existing_partitions(conn)
        assert {"events_y2027m02", "events_y2027m03", "events_y2027m06", "events_default"} <= set(names)
        assert conn.execute(text("SELECT count(*) FROM events_y2027m03")).scalar() == 2
        assert conn.execute(text("SELECT id FROM events_default")).scalars().all() == ["b"]
        # Time passes: the month that was in the default partition gets its own, rows move with it.
        created = partitions.ensure_event_partitions(conn, dt.datetime(2030, 1, 10, tzinfo=dt.UTC))
        assert "events_y2030m01" in created
        assert conn.execute(text("SELECT count(*) FROM events_default")).scalar() == 0
        assert conn.execute(text("SELECT id FROM events_y2030m01")).scalars().all() == ["b"]
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 3
        plan = "\n".join(
            conn.execute(text("EXPLAIN SELECT * FROM events WHERE ts >= '2027-03-01' AND ts < '2027-04-01'"))
            .scalars()
            .all()
        )
        assert "events_y2027m03" in plan and "events_y2027m02" not in plan  # pruned to one month


def test_month_arithmetic() -> None:
    start = partitions.month_start(
        dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    )
    assert start == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)  # that local evening is January in UTC
    assert partitions.add_months(start, -1) == dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert partitions.add_months(start, 13) == dt.datetime(2028, 2, 1, tzinfo=dt.UTC)
    assert partitions.partition_name(start) == "events_y2027m01"
