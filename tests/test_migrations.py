"""Engine pragmas and the versioned schema: WAL really on, upgrades all-or-nothing, newer never touched."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from schema_rewind import UNDO, rewind
from sqlalchemy import Connection, Engine, text

from models import database
from models.database import SCHEMA_VERSION, SchemaError, make_session_factory, migrate, open_engine

REPO = Path(__file__).resolve().parents[1]


def _schema(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    conn.close()
    return [(str(t), str(n), str(s)) for t, n, s in rows]


def _version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT version FROM schema_version").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "station.db"


@pytest.fixture
def engine(db_path: Path) -> Iterator[Engine]:
    eng = open_engine(db_path)
    yield eng
    eng.dispose()


def test_open_engine_creates_parent_and_sets_pragmas_on_every_connection(
    engine: Engine, db_path: Path
) -> None:
    assert db_path.parent.is_dir()
    with engine.connect() as c1, engine.connect() as c2:
        for conn in (c1, c2):
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    # WAL is a property of the file: a plain sqlite3 connection sees it too.
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_fresh_database_is_created_at_current_version(engine: Engine, db_path: Path) -> None:
    assert migrate(engine) == SCHEMA_VERSION
    assert _version(db_path) == SCHEMA_VERSION
    names = {name for _, name, _ in _schema(db_path)}
    for table in (
        "members",
        "face_templates",
        "qr_keys",
        "qr_revocations",
        "qr_nonces",
        "events",
        "outbox",
        "station_state",
        "schema_version",
        "events_no_update",
        "events_no_delete",
        "ix_outbox_pending",
    ):
        assert table in names
    assert Path(f"{db_path}-wal").exists()


def test_migrate_is_idempotent(engine: Engine, db_path: Path) -> None:
    migrate(engine)
    before = _schema(db_path)
    assert migrate(engine) == SCHEMA_VERSION
    assert migrate(open_engine(db_path)) == SCHEMA_VERSION
    assert _schema(db_path) == before


def test_newer_database_is_refused_and_untouched(engine: Engine, db_path: Path) -> None:
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = :v"), {"v": SCHEMA_VERSION + 1})
    before = _schema(db_path)
    with pytest.raises(SchemaError, match=rf"version {SCHEMA_VERSION + 1}.*newer yizhan"):
        migrate(engine)
    assert _version(db_path) == SCHEMA_VERSION + 1
    assert _schema(db_path) == before


def test_unversioned_foreign_database_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    raw = sqlite3.connect(db_path)
    raw.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    raw.commit()
    raw.close()
    with pytest.raises(SchemaError, match="not a yizhan station database"):
        migrate(open_engine(db_path))
    assert [name for _, name, _ in _schema(db_path)] == ["photos"]


def test_damaged_version_table_is_refused(engine: Engine) -> None:
    migrate(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE schema_version")
        conn.exec_driver_sql("CREATE TABLE schema_version (id INTEGER, version INTEGER)")
        conn.exec_driver_sql("INSERT INTO schema_version VALUES (1, 1), (2, 2)")
    with pytest.raises(SchemaError, match="damaged"):
        migrate(engine)


def test_failing_step_leaves_old_version_and_no_partial_changes(
    engine: Engine, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO members (member_id, name, groups, status, consent_face, "
            "consent_cross_station, created_at, updated_at) VALUES "
            "('m1', 'Li', '[]', 'active', 0, 0, '2024-01-01 00:00:00.000000', "
            "'2024-01-01 00:00:00.000000')"
        )
    before = _schema(db_path)

    def broken_step(conn: Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE half_done (x INTEGER)")
        conn.exec_driver_sql("ALTER TABLE members ADD COLUMN nickname TEXT")
        conn.exec_driver_sql("DELETE FROM members")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(database, "STEPS", [*database.STEPS, broken_step])
    with pytest.raises(SchemaError, match=rf"from schema version {SCHEMA_VERSION} .*disk on fire") as info:
        migrate(engine)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert _version(db_path) == SCHEMA_VERSION
    assert _schema(db_path) == before  # the CREATE and ALTER were rolled back with the rest
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT member_id FROM members").scalars().all() == ["m1"]


def test_successful_step_upgrades_and_old_code_then_refuses(
    engine: Engine, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate(engine)
    calls: list[int] = []

    def add_nickname(conn: Connection) -> None:
        calls.append(1)
        conn.exec_driver_sql("ALTER TABLE members ADD COLUMN nickname TEXT")

    old_steps = list(database.STEPS)
    monkeypatch.setattr(database, "STEPS", [*old_steps, add_nickname])
    assert migrate(engine) == SCHEMA_VERSION + 1
    assert migrate(engine) == SCHEMA_VERSION + 1
    assert calls == [1]
    assert _version(db_path) == SCHEMA_VERSION + 1
    assert "nickname" in next(sql for _, name, sql in _schema(db_path) if name == "members")

    monkeypatch.setattr(database, "STEPS", old_steps)
    with pytest.raises(SchemaError, match="newer"):
        migrate(engine)


def test_fresh_database_skips_steps(engine: Engine, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_run(conn: Connection) -> None:
        raise AssertionError("a fresh database is created from the current metadata")

    monkeypatch.setattr(database, "STEPS", [*database.STEPS, must_not_run])
    assert migrate(engine) == SCHEMA_VERSION + 1
    assert _version(db_path) == SCHEMA_VERSION + 1


def test_crash_during_migration_leaves_old_version(db_path: Path) -> None:
    """A real process death in the middle of a step (no exception handling, no rollback code runs)."""
    migrate(open_engine(db_path))
    before = _schema(db_path)
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO)!r})
        from models import database

        def dying_step(conn):
            conn.exec_driver_sql("CREATE TABLE half_done (x INTEGER)")
            conn.exec_driver_sql("DELETE FROM schema_version")
            os._exit(3)

        database.STEPS.append(dying_step)
        database.migrate(database.open_engine(Path({str(db_path)!r})))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == 3, result.stderr.decode()
    assert _version(db_path) == SCHEMA_VERSION
    assert _schema(db_path) == before
    assert migrate(open_engine(db_path)) == SCHEMA_VERSION


def test_concurrent_first_start_migrates_once(db_path: Path) -> None:
    engines = [open_engine(db_path) for _ in range(4)]
    results: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(engines))

    def run(eng: Engine) -> None:
        barrier.wait()
        try:
            results.append(migrate(eng))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [SCHEMA_VERSION] * len(engines)
    with engines[0].connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM schema_version").scalar() == 1
    for eng in engines:
        eng.dispose()


def test_immediate_session_takes_the_write_lock_up_front(engine: Engine, db_path: Path) -> None:
    migrate(engine)
    other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        with make_session_factory(engine, immediate=True)() as session, session.begin():
            session.execute(text("SELECT 1"))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        with make_session_factory(engine)() as session, session.begin():
            session.execute(text("SELECT count(*) FROM members"))
            other.execute("BEGIN IMMEDIATE")  # a deferred reader does not block a writer
            other.execute("ROLLBACK")
    finally:
        other.close()


def test_every_schema_step_has_an_undo_for_the_upgrade_tests() -> None:
    assert sorted(UNDO) == list(range(2, SCHEMA_VERSION + 1))


@pytest.mark.parametrize("start", range(1, SCHEMA_VERSION))
def test_an_old_database_upgrades_through_every_later_step_keeping_its_rows(
    engine: Engine, db_path: Path, start: int
) -> None:
    """A station database of any older version, as that version wrote it, upgrades in place through
    every later step in order (2: template model, 3: member ids unique ignoring case, 4: requires_pass,
    lookalikes and template origins); its rows keep their values and ids."""
    migrate(engine)
    engine.dispose()
    rewind(db_path, start)
    assert _version(db_path) == start
    # Case twins could only be written before step 3; they are kept and listed, never renamed.
    ids = ["W-1", "w-1", "m-2"] if start < 3 else ["W-1", "m-2"]
    raw = sqlite3.connect(db_path)
    try:
        for member_id in ids:
            raw.execute(
                "INSERT INTO members (member_id, name, groups, status, consent_face, "
                "consent_cross_station, created_at, updated_at) VALUES (?, 'Old Member', '[]', "
                "'active', 1, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
                (member_id,),
            )
        raw.execute(
            "INSERT INTO face_templates (template_id, member_id, key_fingerprint, ciphertext, quality, "
            "source, created_at) VALUES ('t1', 'W-1', 'fp', x'00', '{}', 'old.jpg', '2026-01-01 00:00:00')"
        )
        raw.commit()
    finally:
        raw.close()
    assert migrate(engine) == SCHEMA_VERSION and _version(db_path) == SCHEMA_VERSION
    with engine.connect() as conn:
        members = conn.exec_driver_sql(
            "SELECT member_id, requires_pass, lookalikes FROM members ORDER BY member_id"
        ).all()
        assert [tuple(m) for m in members] == [(m, 0, "[]") for m in sorted(ids)]
        assert conn.exec_driver_sql(
            "SELECT model, origin, enrolled_by, source FROM face_templates WHERE template_id = 't1'"
        ).one() == ("dlib_resnet_v1", None, None, "old.jpg")
        conflicts = conn.exec_driver_sql(
            "SELECT value FROM station_state WHERE key = :key", {"key": database.CASE_CONFLICTS_KEY}
        ).scalar()
        assert (conflicts is not None) == (start < 3)
        index = conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'ux_members_member_id_nocase'"
        ).scalar()
        assert index is not None and ("WHERE" in index) == (start < 3)
    from models import members as member_store

    with make_session_factory(engine)() as session, session.begin():
        member = member_store.add_lookalike(session, "W-1", other="m-2", distance=0.37, confirmed_by="cli:x")
        assert member.requires_pass is True and member.lookalikes[0]["member_id"] == "m-2"
        row = member_store.list_templates(session, "W-1")[0]
        assert member_store.template_origin(row) is None
        with pytest.raises(member_store.DuplicateMemberError):
            member_store.add_member(session, member_id="M-2", name="twin")
