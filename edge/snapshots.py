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
period, then the oldest until the total fits the budget, then the oldest until the disk has
`[snapshots] min_free_mb` free again. It only ever deletes files that match the store's own naming
inside day folders under the root, never follows symlinks, and never touches the database: event
rows outlive their pictures.

A full disk: snapshots go first. Before a write the store makes room by deleting the oldest
snapshots down to the free-space floor; when even that is not enough (the disk was filled by
something else) the snapshot is skipped (`NoSpace`), the store stops handing out paths
(`accepting()`), and the door keeps deciding and recording events in the space the floor keeps.

A clock that jumps: retention trusts the wall clock only within a sane step (CLOCK_STEP_S) of its
own clock, which follows the monotonic clock from the last trusted reading (kept in
`.retention-clock.json` across restarts). A Pi that boots 40 days ahead no longer deletes 40 days
of snapshots at once: retention catches up at CATCH_UP times real time, and `clock_ahead_s` says by
how much the wall clock is ahead (the daemon raises a `clock_jump` alarm on it).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import re
import shutil
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
CLOCK_FILE = ".retention-clock.json"
#: A forward wall-clock change retention accepts at once (a Pi without RTC correcting at boot).
CLOCK_STEP_S = 2 * _DAY_SECONDS
#: Beyond that step, retention's own clock runs at most this many times real time to catch up.
CATCH_UP = 2.0
_WRITE_SLACK = 64 * 1024  # directory entries and metadata beside the JPEG bytes


class NoSpace(OSError):
    """The disk is below the free-space floor even with no snapshot left to delete: not written."""


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
        clock_mono: Callable[[], float] = time.monotonic,
        budget_bytes: int | None = None,
        free_space: Callable[[], int] | None = None,
    ) -> None:
        self.root = Path(root)
        self.config = config
        self._clock_wall = clock_wall
        self._clock_mono = clock_mono
        self.budget_bytes = config.budget_mb * 1024 * 1024 if budget_bytes is None else int(budget_bytes)
        if self.budget_bytes < 0:
            raise ValueError("budget_bytes must be >= 0")
        self.min_free_bytes = config.min_free_mb * 1024 * 1024
        self._free_space = free_space or (lambda: shutil.disk_usage(self.root).free)
        #: True after a snapshot could not be written for lack of space, until one is written.
        self.paused_for_space = False
        self.skipped_for_space = 0
        #: How far the wall clock is ahead of retention's own clock (0: in step).
        self.clock_ahead_s = 0.0
        self._lock = threading.RLock()  # the index and the running total (re-entered by probes)
        self._write_lock = threading.Lock()  # file writes and deletions
        self._groups: dict[tuple[str, str], _Group] = {}  # (day, event_id) -> files
        self._total = 0
        self.root.mkdir(parents=True, exist_ok=True)
        self._scan()
        now_wall = self._clock_wall()
        history = self._saved_clock()
        if history is None and self._groups:
            history = max(group.when for group in self._groups.values())
        self._anchor = (min(now_wall, history) if history is not None else now_wall, self._clock_mono())

    # -- paths ---------------------------------------------------------------------------------

    def accepting(self) -> bool:
        """Whether a snapshot written now would be kept: enabled, and not paused for a full disk
        (paused, the event row gets no snapshot path rather than one to a file never written)."""
        if not self.config.enabled:
            return False
        if self.paused_for_space and self.free_bytes() >= self.min_free_bytes + _WRITE_SLACK:
            self.paused_for_space = False
        return not self.paused_for_space

    def free_bytes(self) -> int:
        """Free bytes on the snapshots' filesystem (0 when it cannot be read)."""
        try:
            return int(self._free_space())
        except OSError:
            return 0

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
        needed = sum(len(data) for data in files.values()) + _WRITE_SLACK
        if self.free_bytes() - needed < self.min_free_bytes:
            self.make_room(needed)  # snapshots go first: the oldest make room for this one
            if self.free_bytes() - needed < self.min_free_bytes:
                self._skip(event_id, "below the free-space floor")
        with self._write_lock:  # so enforce() cannot remove the day folder between mkdir and write
            if day_dir.is_symlink():
                raise ValueError(f"day folder {day} is a symlink; refusing to write through it")
            try:
                day_dir.mkdir(mode=0o750, exist_ok=True)
                for name, data in files.items():
                    _write_atomic(day_dir / name, data, when_wall)
                    written[name] = len(data)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                for name in written:  # half an event is no event: both files or none
                    _unlink_quietly(day_dir / name)
                written = {}
                full: OSError | None = exc
            else:
                full = None
            if full is None:
                _fsync_dir(day_dir)
                with self._lock:
                    group = self._groups.setdefault((day, event_id), _Group(when_wall))
                    for name, size in written.items():
                        self._total += size - group.files.get(name, 0)
                        group.files[name] = size
                    group.when = when_wall
        if full is not None:
            self.make_room(2 * needed)
            self._skip(event_id, f"the disk is full ({full.strerror})")
        self.paused_for_space = False
        logger.debug(
            "snapshot saved",
            extra={"fields": {"event_id": event_id, "path": relative, "bytes": sum(written.values())}},
        )
        return relative

    def _skip(self, event_id: str, why: str) -> None:
        if not self.paused_for_space:
            logger.warning(
                "snapshots paused: %s; events are still decided and recorded",
                why,
                extra={"fields": {"free_bytes": self.free_bytes(), "floor_bytes": self.min_free_bytes}},
            )
        self.paused_for_space = True
        self.skipped_for_space += 1
        raise NoSpace(errno.ENOSPC, f"snapshot {event_id} not written: {why}")

    def make_room(self, needed: int = 0) -> int:
        """Delete the oldest snapshots until `needed` more bytes fit above the free-space floor;
        returns the bytes freed (0 when there was nothing of ours left to delete)."""
        freed = 0
        with self._write_lock, self._lock:
            ordered = sorted(self._groups.items(), key=lambda item: (item[1].when, item[0]))
            for key, group in ordered:
                if self.free_bytes() - needed >= self.min_free_bytes:
                    break
                freed += self._delete_group(key, group)[1]
        if freed:
            logger.warning(
                "snapshots deleted to keep the disk's free-space floor",
                extra={"fields": {"freed_bytes": freed}},
            )
        return freed

    def status(self) -> dict[str, object]:
        """Free space, the floor, whether snapshots are paused, and how far the clock is ahead."""
        return {
            "free_bytes": self.free_bytes(),
            "floor_bytes": self.min_free_bytes,
            "usage_bytes": self.usage_bytes(),
            "paused_for_space": self.paused_for_space,
            "skipped_for_space": self.skipped_for_space,
            "clock_ahead_s": round(self.clock_ahead_s, 1),
        }

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
        now = self.retention_now(self._clock_wall() if now_wall is None else now_wall)
        cutoff = now - self.config.retention_days * _DAY_SECONDS
        deleted = freed = 0
        with self._write_lock, self._lock:
            ordered = sorted(self._groups.items(), key=lambda item: (item[1].when, item[0]))
            for key, group in ordered:
                if (
                    group.when >= cutoff
                    and self._total <= self.budget_bytes
                    and self.free_bytes() >= self.min_free_bytes
                ):
                    break
                files, size = self._delete_group(key, group)
                deleted += files
                freed += size
            days = {day for day, _ in self._groups}
            remaining = self._total
            for day_dir in self._day_dirs():
                if day_dir.name not in days:
                    _remove_if_empty(day_dir)
        self._save_clock(now)
        if deleted:
            logger.info(
                "snapshots pruned",
                extra={
                    "fields": {"deleted_files": deleted, "freed_bytes": freed, "remaining_bytes": remaining}
                },
            )
        return PruneReport(deleted_files=deleted, freed_bytes=freed, remaining_bytes=remaining)

    def retention_now(self, now_wall: float) -> float:
        """The time retention judges ages by: the wall clock when it is within CLOCK_STEP_S of
        retention's own clock (the last trusted reading advanced by the monotonic clock, at most
        CATCH_UP times real time), else that own clock, until the wall clock is within the step."""
        anchor_wall, anchor_mono = self._anchor
        mono = self._clock_mono()
        trusted = anchor_wall + max(0.0, mono - anchor_mono) * CATCH_UP
        if now_wall <= trusted + CLOCK_STEP_S:
            self._anchor = (now_wall, mono)
            if self.clock_ahead_s:
                logger.info("wall clock back in step with the snapshot history")
            self.clock_ahead_s = 0.0
            return now_wall
        if not self.clock_ahead_s:
            logger.warning(
                "wall clock %.1f days ahead of the snapshot history: retention follows real elapsed "
                "time instead (check NTP / the RTC)",
                (now_wall - trusted) / _DAY_SECONDS,
            )
        self.clock_ahead_s = now_wall - trusted
        return trusted

    def _saved_clock(self) -> float | None:
        try:
            value = json.loads((self.root / CLOCK_FILE).read_text(encoding="utf-8"))["trusted_wall"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return float(value) if isinstance(value, int | float) and value > 0 else None

    def _save_clock(self, trusted_wall: float) -> None:
        """Keep retention's clock across restarts (best effort: a full disk just skips it)."""
        path = self.root / CLOCK_FILE
        tmp = path.with_name(path.name + _TMP_SUFFIX)
        try:
            tmp.write_text(json.dumps({"trusted_wall": trusted_wall}), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            _unlink_quietly(tmp)

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
