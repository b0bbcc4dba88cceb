"""Rewind a freshly migrated station database to an older schema version, as that version wrote it.

Each schema step in `models.database.STEPS` has its undo here (newest first), so that an upgrade
test starts from what an old station really has on disk and runs every later step. A new step
adds its undo to UNDO; `test_every_step_has_an_undo` checks that none is missing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

#: version -> SQL that takes a database of that version back to the version before it.
UNDO: dict[int, tuple[str, ...]] = {
    4: (  # requires_pass, lookalikes, template origins
        "ALTER TABLE members DROP COLUMN requires_pass",
        "ALTER TABLE members DROP COLUMN lookalikes",
        "ALTER TABLE face_templates DROP COLUMN origin",
        "ALTER TABLE face_templates DROP COLUMN enrolled_by",
    ),
    3: ("DROP INDEX ux_members_member_id_nocase",),  # member ids unique ignoring case
    2: ("ALTER TABLE face_templates DROP COLUMN model",),  # the face model of each template
}


def rewind(db: Path | str, version: int) -> None:
    """Undo every step above `version` on the database at `db` (at the newest version now)."""
    raw = sqlite3.connect(db)
    try:
        (current,) = raw.execute("SELECT version FROM schema_version").fetchone()
        for step in range(int(current), version, -1):
            for sql in UNDO[step]:
                raw.execute(sql)
        raw.execute("UPDATE schema_version SET version = ?", (version,))
        raw.commit()
    finally:
        raw.close()
