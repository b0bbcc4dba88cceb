"""One daemon per data directory: an flock held on `<data_dir>/yizhan.lock` for the process's life.

Two daemons on one data directory both decide at the door: two entries six seconds apart (each has
its own cooldown), two relay owners, `station_stopped` written while the other still runs. The
second `yizhan run` therefore refuses to start (exit code 2) and names the first one's pid.

Why flock and not a pid file: the kernel drops the lock when the process dies, kill -9 and power
cuts included, so a stale file never blocks a restart and there is nothing to clean up. The lock is
per open file description, so two daemons in one process (tests) are refused the same way.

Only the daemon takes it. CLI commands that write (`enroll`, `members`, `qr revoke`, ...) run beside
the daemon on purpose: SQLite serialises the writers and the daemon follows the roster version.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self

LOCK_NAME = "yizhan.lock"


class DataDirBusy(RuntimeError):
    """Another process holds the data directory's daemon lock; the message names it."""


class RunLock:
    """The daemon lock on one data directory; `release()` (or process exit) gives it up."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> Self:
        """Take the lock now or raise DataDirBusy (never waits)."""
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            who = f"pid {holder}" if holder else "another process"
            raise DataDirBusy(
                f"another yizhan daemon ({who}) is already running on {self.path.parent} "
                f"(it holds {self.path}); stop it first (systemctl stop yizhan), or give this one "
                "another [storage] data_dir"
            ) from None
        try:
            # The pid is for the message above and for people; the lock itself is the flock.
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # a full disk must not stop the daemon from starting: the flock is what counts
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
