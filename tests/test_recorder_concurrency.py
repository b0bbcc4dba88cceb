"""`set_latency` beside another writer: it waits for the write lock instead of failing at once."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import event

from edge.recorder import EventRecorder
from models.database import make_session_factory, migrate, open_engine
from models.events import list_events


def test_set_latency_survives_a_commit_from_another_connection_mid_transaction(tmp_path: Path) -> None:
    """The daemon's other threads (door events, sync) commit at any moment. A deferred transaction
    that read the event first could not then write it: "database is locked", no waiting. Here another
    connection commits right after set_latency's first statement, every time."""
    db = tmp_path / "y.db"
    engine = open_engine(db)
    migrate(engine)
    sessions = make_session_factory(engine)  # deferred BEGIN, as the recorder's sessions are
    recorder = EventRecorder(sessions)
    event_id = recorder.record(kind="entry", method="face", member_id="m-1")["id"]
    other_commits: list[threading.Thread] = []
    armed = threading.Event()
    armed.set()

    def other_writer() -> None:
        raw = sqlite3.connect(db, timeout=10)
        raw.execute("PRAGMA busy_timeout=10000")
        raw.execute(
            "INSERT INTO station_state (key, value) VALUES (?, ?)", (f"k-{uuid.uuid4().hex[:8]}", "x")
        )
        raw.commit()
        raw.close()

    def after_first_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not armed.is_set() or statement.lstrip().upper().startswith(("BEGIN", "PRAGMA")):
            return
        armed.clear()
        thread = threading.Thread(target=other_writer)
        other_commits.append(thread)
        thread.start()
        # Give the other writer the chance to commit between our first statement and the next.
        # When we already hold the write lock it waits for our commit instead (join times out).
        thread.join(1.0)

    event.listen(engine, "after_cursor_execute", after_first_statement)
    try:
        recorder.set_latency(event_id, 123.0)
    finally:
        event.remove(engine, "after_cursor_execute", after_first_statement)
        for thread in other_commits:
            thread.join(15)
    with sessions() as session:
        (row,) = [e for e in list_events(session) if e.id == event_id]
    assert row.latency_ms == 123.0
    assert other_commits and not other_commits[0].is_alive()
    raw = sqlite3.connect(db)
    assert raw.execute("SELECT count(*) FROM station_state WHERE key LIKE 'k-%'").fetchone()[0] == 1
    raw.close()
    engine.dispose()
