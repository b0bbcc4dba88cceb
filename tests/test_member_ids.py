"""Member ids are unique ignoring case: `W-0001` and `w-0001` are one id (issue 10, item 6)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from schema_rewind import rewind

from models import members as member_store
from models.database import CASE_CONFLICTS_KEY, SCHEMA_VERSION, make_session_factory, migrate, open_engine
from tests.conftest import Cli


def test_the_cli_refuses_an_id_that_differs_only_by_case(cli: Cli) -> None:
    assert cli("members", "add", "--member-id", "W-0001", "--name", "张三").code == 0
    second = cli("members", "add", "--member-id", "w-0001", "--name", "李四")
    assert second.code == 2
    assert "'W-0001' already exists" in second.err and "ignoring case" in second.err
    listed = cli("members", "list", "--json").json()
    assert [m["member_id"] for m in listed] == ["W-0001"]


def test_the_database_itself_refuses_a_case_twin(tmp_path: Path) -> None:
    engine = open_engine(tmp_path / "y.db")
    migrate(engine)
    sessions = make_session_factory(engine)
    with sessions() as session, session.begin():
        member_store.add_member(session, member_id="Ab-1", name="A")
    engine.dispose()
    raw = sqlite3.connect(tmp_path / "y.db")
    with pytest.raises(sqlite3.IntegrityError):
        raw.execute(
            "INSERT INTO members (member_id, name, groups, status, consent_face, "
            "consent_cross_station, created_at, updated_at) "
            "VALUES ('aB-1', 'B', '[]', 'active', 0, 0, '2026-01-01', '2026-01-01')"
        )
    raw.close()


def _before_the_case_step(db: Path) -> None:
    """The schema before step 3: the same tables without the case-insensitive index."""
    rewind(db, 2)


def _insert(db: Path, *ids: str) -> None:
    raw = sqlite3.connect(db)
    for member_id in ids:
        raw.execute(
            "INSERT INTO members (member_id, name, groups, status, consent_face, consent_cross_station, "
            "created_at, updated_at) VALUES (?, ?, '[]', 'active', 0, 0, '2026-01-01', '2026-01-01')",
            (member_id, f"name of {member_id}"),
        )
    raw.commit()
    raw.close()


def test_the_schema_step_keeps_existing_case_twins_and_enforces_the_rule_for_others(tmp_path: Path) -> None:
    db = tmp_path / "y.db"
    engine = open_engine(db)
    migrate(engine)
    engine.dispose()
    _before_the_case_step(db)
    _insert(db, "W-0001", "w-0001", "ab", "AB", "m-1")
    engine = open_engine(db)
    assert migrate(engine) == SCHEMA_VERSION
    sessions = make_session_factory(engine)
    with sessions() as session:
        kept = [m.member_id for m in member_store.list_members(session)]
        conflicts = json.loads(member_store.get_state(session, CASE_CONFLICTS_KEY) or "[]")
    assert kept == ["AB", "W-0001", "ab", "m-1", "w-0001"]  # nothing renamed or deleted
    assert conflicts == [["AB", "ab"], ["W-0001", "w-0001"]]
    with sessions() as session, session.begin():
        for twin in ("M-1", "Ab"):
            with pytest.raises(member_store.DuplicateMemberError):
                member_store.add_member(session, member_id=twin, name="twin")
        member_store.add_member(session, member_id="m-2", name="new")
    engine.dispose()
    with pytest.raises(sqlite3.IntegrityError):
        _insert(db, "M-2")  # the database enforces it for every id outside the old conflicts


def test_a_clean_database_upgrades_with_the_full_index(tmp_path: Path) -> None:
    db = tmp_path / "y.db"
    engine = open_engine(db)
    migrate(engine)
    engine.dispose()
    _before_the_case_step(db)
    _insert(db, "m-1", "m-2")
    engine = open_engine(db)
    migrate(engine)
    engine.dispose()
    raw = sqlite3.connect(db)
    (sql,) = raw.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'ux_members_member_id_nocase'"
    ).fetchone()
    assert "WHERE" not in sql
    assert raw.execute(
        "SELECT count(*) FROM station_state WHERE key = ?", (CASE_CONFLICTS_KEY,)
    ).fetchone() == (0,)
    raw.close()
