"""The data disk running full: a reserve file the database can always fall back on.

The free-space floor (`[snapshots] min_free_mb`, enforced by `edge.snapshots`) stops our own
snapshots from filling the disk. Something else can still fill it (journald, a log left on debug,
an operator's copy): then SQLite cannot even switch to WAL at start ("disk I/O error": exit 1, a
restart loop under systemd) and a running door can no longer record, so it stays shut.

The guard keeps `<data_dir>/reserve.space` (`[storage] reserve_mb`, allocated while there is room)
and, when the disk is full, deletes it after the snapshots have gone: the database gets that room
back at once, the door keeps recording, and a `disk_full` alarm is recorded with it. The reserve
is allocated again once the disk has room above the floor.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

RESERVE_NAME = "reserve.space"
_FULL_WORDS = ("database or disk is full", "disk i/o error", "no space left")


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc` (or what caused it) says the disk is full: ENOSPC / EDQUOT, or SQLite's
    "database or disk is full" / "disk I/O error" (what a full disk gives while creating -shm)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, sqlite3.Error) and any(word in str(exc).lower() for word in _FULL_WORDS):
            return True
        orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the DBAPI error
        if isinstance(orig, BaseException) and is_disk_full(orig):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class DiskGuard:
    """Free space on the data disk, and the reserve file."""

    def __init__(
        self,
        data_dir: Path,
        *,
        floor_bytes: int,
        reserve_bytes: int,
        free_space: Callable[[], int] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.floor_bytes = floor_bytes
        self.reserve_bytes = reserve_bytes
        self.reserve_path = self.data_dir / RESERVE_NAME
        self._free_space = free_space or (lambda: shutil.disk_usage(self.data_dir).free)
        self.released = 0  # bytes given back to the disk since start

    def free_bytes(self) -> int:
        try:
            return int(self._free_space())
        except OSError:
            return 0

    def low(self) -> bool:
        return self.free_bytes() < self.floor_bytes

    def has_reserve(self) -> bool:
        try:
            return self.reserve_path.stat().st_size >= self.reserve_bytes > 0
        except OSError:
            return False

    def ensure_reserve(self) -> bool:
        """Allocate the reserve if it is missing and the disk has room for it above the floor."""
        if self.reserve_bytes <= 0 or self.has_reserve():
            return self.reserve_bytes > 0
        if self.free_bytes() - self.reserve_bytes < self.floor_bytes:
            return False
        try:
            fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.reserve_bytes)  # real blocks, not a sparse file
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("disk reserve not allocated", extra={"fields": {"error": str(exc)}})
            self._unlink()
            return False
        log.info("disk reserve allocated", extra={"fields": {"bytes": self.reserve_bytes}})
        return True

    def release_reserve(self) -> int:
        """Delete the reserve (the disk is full): the bytes given back, 0 if there was none."""
        try:
            size = self.reserve_path.stat().st_size
        except OSError:
            return 0
        if not self._unlink():
            return 0
        self.released += size
        log.critical(
            "disk full: the reserve was released so events can still be recorded",
            extra={"fields": {"bytes": size, "free_bytes": self.free_bytes()}},
        )
        return size

    def _unlink(self) -> bool:
        try:
            self.reserve_path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.error("disk reserve could not be deleted", extra={"fields": {"error": str(exc)}})
            return False
        return True
