"""Snapshot JPEGs on the centre's disk: `<data_dir>/snapshots/<YYYY-MM-DD>/<event_id>.jpg`.

Ingest writes the file (to a temporary name, fsync, rename, fsync the folder) *before* the
transaction that records it commits, so an acknowledged snapshot survives a power cut; a crash in
between leaves a file without a row, which the next re-send overwrites with the same bytes.
The date is the event's (UTC), so a day's pictures sit together and retention removes whole days.

`enforce` applies `[snapshots]`: files older than `retention_days` go, then the oldest until the
live total fits `disk_budget_mb` and the disk keeps `min_free_mb` free. The rows stay, with
`deleted_at` set. The web layer serves files through `resolve`, which accepts only paths of this
shape under the folder (a row can never point it elsewhere).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from central.config import SnapshotsConfig
from central.store import snapshots as snapshot_store
from central.store.tables import Snapshot

log = logging.getLogger(__name__)

_RELATIVE = re.compile(
    r"^\d{4}-\d{2}-\d{2}/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.jpg$"
)
#: Where staff fetch an event's snapshot (central.web.routers.snapshots); the live feed names it.
SNAPSHOT_URL = "/api/v1/events/{event_id}/snapshot"
JPEG_MAGIC = b"\xff\xd8\xff"
DELETE_CHUNK = 500


class SnapshotPathError(ValueError):
    """A stored path that is not one of ours."""


@dataclass
class SnapshotFiles:
    root: Path

    @staticmethod
    def relative_for(event_ts: dt.datetime, event_id: str) -> str:
        day = event_ts.astimezone(dt.UTC).strftime("%Y-%m-%d")
        relative = f"{day}/{event_id}.jpg"
        if not _RELATIVE.fullmatch(relative):
            raise SnapshotPathError(f"not a snapshot path: {relative!r}")
        return relative

    def resolve(self, relative: str) -> Path:
        if not _RELATIVE.fullmatch(relative):
            raise SnapshotPathError(f"not a snapshot path: {relative[:80]!r}")
        return self.root / relative

    def write(self, relative: str, data: bytes) -> None:
        """Write durably (temporary file, fsync, rename, fsync the folder)."""
        target = self.resolve(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def delete(self, relative: str) -> None:
        with contextlib.suppress(FileNotFoundError, SnapshotPathError):
            self.resolve(relative).unlink()

    def free_bytes(self) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free


@dataclass
class JanitorReport:
    deleted: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def enforce(
    db: sessionmaker[Session], files: SnapshotFiles, config: SnapshotsConfig, *, now: dt.datetime
) -> JanitorReport:
    """Apply retention, the disk budget and the free-space floor (see the module doc)."""
    report = JanitorReport()
    cutoff = now - dt.timedelta(days=config.retention_days)
    _delete_while(
        db,
        files,
        report,
        "retention",
        lambda s: snapshot_store.oldest_live(s, limit=DELETE_CHUNK, received_before=cutoff),
        now,
    )
    budget = config.disk_budget_mb * 1024 * 1024
    floor = config.min_free_mb * 1024 * 1024

    def over_budget(session: Session) -> list[Snapshot]:
        excess = snapshot_store.live_bytes(session) - budget
        short = floor - files.free_bytes()
        if excess <= 0 and short <= 0:
            return []
        need = max(excess, short)
        chosen: list[Snapshot] = []
        for row in snapshot_store.oldest_live(session, limit=DELETE_CHUNK):
            chosen.append(row)
            need -= row.size_bytes
            if need <= 0:
                break
        return chosen

    _delete_while(db, files, report, "budget", over_budget, now)
    if report.total:
        log.info("snapshots deleted", extra={"fields": {"event": "snapshots_pruned", **report.deleted}})
    return report


def _delete_while(
    db: sessionmaker[Session],
    files: SnapshotFiles,
    report: JanitorReport,
    why: str,
    choose: Callable[[Session], Sequence[Snapshot]],
    now: dt.datetime,
) -> None:
    """Delete what `choose` picks, chunk by chunk, until it picks nothing."""
    while True:
        with db.begin() as session:
            rows = list(choose(session))
            if not rows:
                return
            for row in rows:
                files.delete(row.path)
            snapshot_store.mark_deleted(session, event_ids=[r.event_id for r in rows], at=now)
        report.deleted[why] = report.deleted.get(why, 0) + len(rows)
