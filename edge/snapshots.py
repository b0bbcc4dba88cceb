"""Snapshot JPEGs beside events, kept under a disk budget and a retention period.

Layout: `<root>/<YYYY-MM-DD>/<event_id>.jpg` (the full frame) and `<event_id>.face.jpg` (a crop
around the face). The day is the event's UTC date, so folder names never depend on the station's
time zone or on daylight-saving changes. Each file's mtime is set to the event's wall time, which
is how the store recovers the age order after a restart without reading the database.

Order of operations in the daemon: the event row is written first, naming its snapshot with
`path_for()`, and the JPEG is written afterwards off the door's path by `save()`; if the box dies
in between, the row points at a missing file, which is better than a file with no event. Files
are written to a temporary name, fsynced and renamed, because snapshots may be evidence: a
half-written JPEG must never take the place of one.

Pruning (`enforce()`) deletes whole events (both files): first those older than the retention
period, then the oldest until the total fits the budget. It only ever deletes files that match the
store's own naming inside day folders under the root, never follows symlinks, and never touches
the database: event rows outlive their pictures.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import numpy.typing as npt

from edge.camera_config import SnapshotConfig

logger = logging.getLogger(__name__)

FACE_MARGIN = 0.4
"""The face crop is widened by this fraction of the face box on each side: hair, chin and the
background make a crop recognisable to a person reviewing an event."""

_EVENT_ID = re.compile(r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_FILE = re.compile(rf"(?P<id>{_EVENT_ID.pattern})(?P<face>\.face)?\.jpg")
_TMP_SUFFIX = ".tmp"
_DAY_SECONDS = 86400.0


@dataclass(frozen=True)
class PruneReport:
    deleted_files: int
    freed_bytes: int
    remaining_bytes: int


@dataclass
class _Group:
    """One event's files: the unit of pruning."""

    when: float
    files: dict[str, int] = field(default_factory=dict)  # name -> size in bytes

    @property
    def size(self) -> int:
        return sum(self.files.values())


def validate_event_id(event_id: str) -> str:
    """The id if it is a lowercase UUID (hex or canonical); it becomes a file name, so nothing else."""
    if not isinstance(event_id, str) or _EVENT_ID.fullmatch(event_id) is None:
        raise ValueError(
            f"event_id must be a lowercase UUID (str(uuid.uuid4()) or .hex), got {event_id!r:.80}"
        )
    return event_id


class SnapshotStore:
    """Writes, finds and prunes snapshots under `root`. Thread-safe.

    The running total is built by one scan at construction and kept up to date on save and delete,
    so `usage_bytes()` and the budget check cost nothing per event. `budget_bytes` overrides the
    configured `budget_mb` (tests use a few kilobytes).
    """

    def __init__(
        self,
        root: Path,
        config: SnapshotConfig,
        *,
        clock_wall: Callable[[], float] = time.time,
        budget_bytes: int | None = None,
    ) -> None:
        self.root = Path(root)
        self.config = config
        self._clock_wall = clock_wall
        self.budget_bytes = config.budget_mb * 1024 * 1024 if budget_bytes is None else int(budget_bytes)
        if self.budget_bytes < 0:
            raise ValueError("budget_bytes must be >= 0")
        self._lock = threading.Lock()  # the index and the running total
        self._write_lock = threading.Lock()  # file writes and deletions
        self._groups: dict[tuple[str, str], _Group] = {}  # (day, event_id) -> files
        self._total = 0
        self.root.mkdir(parents=True, exist_ok=True)
        self._scan()

    # -- paths ---------------------------------------------------------------------------------

    def path_for(self, event_id: str, when_wall: float) -> str:
        """The relative path `save()` will write for this event: store it in the event row first."""
        return f"{self._day(when_wall)}/{validate_event_id(event_id)}.jpg"

    def resolve(self, relative_path: str) -> Path:
        """The absolute path of a stored snapshot, for serving it; ValueError for anything else.

        Only `YYYY-MM-DD/<uuid>.jpg` and `.face.jpg` are accepted, and neither the day folder nor
        the file may be a symlink, so no path (`..`, absolute, a planted link) can reach outside.
        """
        parts = PurePosixPath(relative_path).parts if isinstance(relative_path, str) else ()
        if (
            len(parts) != 2
            or "\\" in relative_path
            or _DAY.fullmatch(parts[0]) is None
            or _FILE.fullmatch(parts[1]) is None
        ):
            raise ValueError(f"not a snapshot path: {relative_path!r:.200}")
        day_dir = self.root / parts[0]
        path = day_dir / parts[1]
        if day_dir.is_symlink() or path.is_symlink():
            raise ValueError(f"snapshot path is a symlink: {relative_path!r}")
        root = self.root.resolve()
        resolved = path.resolve()
        if not resolved.is_relative_to(root):
            raise ValueError(f"snapshot path escapes the snapshot folder: {relative_path!r}")
        return resolved

    # -- writing -------------------------------------------------------------------------------

    def save(
        self,
        event_id: str,
        bgr: npt.NDArray[np.uint8],
        face_box: tuple[int, int, int, int] | None,
        when_wall: float,
    ) -> str | None:
        """Write the frame (and the face crop) for an event; the relative path, None if disabled.

        `bgr` is a BGR uint8 frame as `edge.camera.Frame.image`; `face_box` is (top, right, bottom,
        left) in its pixels, the recognizer's convention. Raises ValueError for a bad id or image
        and OSError when the disk refuses: the caller decides, the door never waits on this.
        """
        relative = self.path_for(event_id, when_wall)
        if not self.config.enabled:
            return None
        image = np.asarray(bgr)
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
            raise ValueError(f"expected a non-empty uint8 image, got {image.dtype} {image.shape}")
        files = {f"{event_id}.jpg": self._encode(image)}
        if face_box is not None and self.config.face_crop:
            crop = _crop(image, face_box)
            if crop is None:
                logger.warning(
                    "face box outside the frame; no face crop", extra={"fields": {"event_id": event_id}}
                )
            else:
                files[f"{event_id}.face.jpg"] = self._encode(crop)
        day = relative.split("/", 1)[0]
        day_dir = self.root / day
        written: dict[str, int] = {}
        with self._write_lock:  # so enforce() cannot remove the day folder between mkdir and write
            if day_dir.is_symlink():
                raise ValueError(f"day folder {day} is a symlink; refusing to write through it")
            day_dir.mkdir(mode=0o750, exist_ok=True)
            for name, data in files.items():
                _write_atomic(day_dir / name, data, when_wall)
                written[name] = len(data)
            _fsync_dir(day_dir)
            with self._lock:
                group = self._groups.setdefault((day, event_id), _Group(when_wall))
                for name, size in written.items():
                    self._total += size - group.files.get(name, 0)
                    group.files[name] = size
                group.when = when_wall
        logger.debug(
            "snapshot saved",
            extra={"fields": {"event_id": event_id, "path": relative, "bytes": sum(written.values())}},
        )
        return relative

    def _encode(self, image: npt.NDArray[np.uint8]) -> bytes:
        ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        return bytes(np.asarray(buffer, dtype=np.uint8).tobytes())

    # -- pruning -------------------------------------------------------------------------------

    def usage_bytes(self) -> int:
        """Bytes of snapshots under the root, as kept by the running total."""
        with self._lock:
            return self._total

    def enforce(self, now_wall: float | None = None) -> PruneReport:
        """Delete events older than the retention period, then the oldest until within the budget.

        Sorting all events costs a few milliseconds for tens of thousands; call it at start and
        periodically (say hourly, and after saving when `usage_bytes()` exceeds the budget).
        """
        now = self._clock_wall() if now_wall is None else now_wall
        cutoff = now - self.config.retention_days * _DAY_SECONDS
        deleted = freed = 0
        with self._write_lock, self._lock:
            ordered = sorted(self._groups.items(), key=lambda item: (item[1].when, item[0]))
            for key, group in ordered:
                if group.when >= cutoff and self._total <= self.budget_bytes:
                    break
                files, size = self._delete_group(key, group)
                deleted += files
                freed += size
            days = {day for day, _ in self._groups}
            remaining = self._total
            for day_dir in self._day_dirs():
                if day_dir.name not in days:
                    _remove_if_empty(day_dir)
        if deleted:
            logger.info(
                "snapshots pruned",
                extra={
                    "fields": {"deleted_files": deleted, "freed_bytes": freed, "remaining_bytes": remaining}
                },
            )
        return PruneReport(deleted_files=deleted, freed_bytes=freed, remaining_bytes=remaining)

    def _delete_group(self, key: tuple[str, str], group: _Group) -> tuple[int, int]:
        day_dir = self.root / key[0]
        deleted = freed = 0
        for name, size in list(group.files.items()):
            try:
                (day_dir / name).unlink()
            except FileNotFoundError:
                pass  # removed by hand: the total is corrected all the same
            except OSError as exc:
                logger.warning("cannot delete snapshot", extra={"fields": {"file": name, "error": str(exc)}})
                continue
            else:
                deleted += 1
                freed += size
            del group.files[name]
            self._total -= size
        if not group.files:
            del self._groups[key]
        return deleted, freed

    # -- start-up scan -------------------------------------------------------------------------

    def _scan(self) -> None:
        """Index the snapshots already on disk and remove temporaries left by a crash."""
        for day_dir in self._day_dirs():
            for entry in os.scandir(day_dir):
                if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
                    continue
                if entry.name.endswith(_TMP_SUFFIX) and _FILE.fullmatch(entry.name[: -len(_TMP_SUFFIX)]):
                    _unlink_quietly(Path(entry.path))
                    continue
                match = _FILE.fullmatch(entry.name)
                if match is None:
                    continue
                stat = entry.stat(follow_symlinks=False)
                group = self._groups.setdefault((day_dir.name, match["id"]), _Group(stat.st_mtime))
                group.when = min(group.when, stat.st_mtime)
                group.files[entry.name] = stat.st_size
                self._total += stat.st_size
        logger.debug(
            "snapshot store scanned",
            extra={"fields": {"root": str(self.root), "events": len(self._groups), "bytes": self._total}},
        )

    def _day_dirs(self) -> list[Path]:
        return sorted(
            Path(entry.path)
            for entry in os.scandir(self.root)
            if _DAY.fullmatch(entry.name) and not entry.is_symlink() and entry.is_dir(follow_symlinks=False)
        )

    @staticmethod
    def _day(when_wall: float) -> str:
        try:
            return dt.datetime.fromtimestamp(when_wall, dt.UTC).strftime("%Y-%m-%d")
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"not a usable wall time for a snapshot: {when_wall!r}") from None


def _crop(image: npt.NDArray[np.uint8], box: tuple[int, int, int, int]) -> npt.NDArray[np.uint8] | None:
    top, right, bottom, left = (int(v) for v in box)
    margin_y = int((bottom - top) * FACE_MARGIN)
    margin_x = int((right - left) * FACE_MARGIN)
    height, width = image.shape[:2]
    y0, y1 = max(0, top - margin_y), min(height, bottom + margin_y)
    x0, x1 = max(0, left - margin_x), min(width, right + margin_x)
    if y1 <= y0 or x1 <= x0:
        return None
    return image[y0:y1, x0:x1]


def _write_atomic(path: Path, data: bytes, when_wall: float) -> None:
    """Write to `<name>.tmp`, fsync, stamp the event time as mtime, rename over `path`."""
    tmp = path.with_name(path.name + _TMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o640)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.utime(tmp, (when_wall, when_wall))
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


def _fsync_dir(path: Path) -> None:
    """Make the renames durable: a power cut must not lose a file the event row points at."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        logger.debug("directory fsync not supported", extra={"fields": {"dir": str(path)}})
    finally:
        os.close(fd)


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass  # not empty (a file we do not own, or a snapshot being written): leave it


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
