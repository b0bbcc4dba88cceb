"""Writing snapshot JPEGs on their own thread, after the door has moved.

JPEG encoding plus an fsync costs 5-30 ms on an SD card: not something the door should wait for.
The decide loop names the file first (`path_for`, stored in the event row), then hands the frame over
with `submit`, which never blocks: when the queue is full (a dying SD card), the snapshot is dropped
with a log line and the event row keeps its path (the file is simply missing). The same thread
enforces the disk budget and retention at start and then every `enforce_every_s`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from edge.camera import Frame
from edge.snapshots import NoSpace, SnapshotStore

log = logging.getLogger(__name__)

_Item = tuple[str, Frame, tuple[int, int, int, int] | None, float]


class SnapshotWriter:
    def __init__(
        self,
        store: SnapshotStore,
        *,
        maxsize: int = 16,
        enforce_every_s: float = 600.0,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """`on_status` gets `store.status()` after every enforcement and every skipped snapshot
        (free space, paused, clock ahead): the daemon raises its disk and clock alarms from it."""
        self.store = store
        self._on_status = on_status
        self._queue: queue.Queue[_Item | tuple[()] | None] = queue.Queue(maxsize=maxsize)
        self._enforce_every_s = enforce_every_s
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self.skipped = 0

    def path_for(self, event_id: str, when_wall: float) -> str | None:
        """The event row's snapshot path; None when disabled or paused because the disk is full."""
        return self.store.path_for(event_id, when_wall) if self.store.accepting() else None

    def submit(
        self, event_id: str, frame: Frame, box: tuple[int, int, int, int] | None, when_wall: float
    ) -> None:
        try:
            self._queue.put_nowait((event_id, frame, box, when_wall))
        except queue.Full:
            self.dropped += 1
            log.warning("snapshot dropped: disk too slow", extra={"fields": {"event_id": event_id}})

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="snapshots", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop (bounded by `timeout`)."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.warning("snapshot queue still full at stop")
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        self._enforce()
        next_enforce = time.monotonic() + self._enforce_every_s
        while True:
            try:
                item = self._queue.get(timeout=max(0.1, next_enforce - time.monotonic()))
            except queue.Empty:
                item = ()  # nothing to write: only time to enforce the budget
            if item is None:
                return
            if item:
                self._write(*item)
            if time.monotonic() >= next_enforce:
                self._enforce()
                next_enforce = time.monotonic() + self._enforce_every_s

    def _write(
        self, event_id: str, frame: Frame, box: tuple[int, int, int, int] | None, when_wall: float
    ) -> None:
        try:
            self.store.save(event_id, frame.image, box, when_wall)
            self.written += 1
        except NoSpace:
            self.skipped += 1  # logged by the store once per episode; the event row is recorded
            self._report()
        except Exception:
            self.failed += 1
            log.exception("snapshot not written", extra={"fields": {"event_id": event_id}})

    def _report(self) -> None:
        if self._on_status is None:
            return
        try:
            self._on_status(self.store.status())
        except Exception:
            log.exception("snapshot status listener failed")

    def enforce_now(self) -> None:
        """Enforce retention, budget and the free-space floor now (also done every enforce_every_s)."""
        self._enforce()

    def _enforce(self) -> None:
        try:
            report = self.store.enforce()
        except Exception:
            log.exception("snapshot retention failed")
            return
        finally:
            self._report()
        if report.deleted_files:
            log.info(
                "snapshots pruned",
                extra={
                    "fields": {
                        "deleted": report.deleted_files,
                        "freed_bytes": report.freed_bytes,
                        "remaining_bytes": report.remaining_bytes,
                    }
                },
            )
