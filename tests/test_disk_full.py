"""A full disk and a jumping clock (issue 10, items 11 and 12).

Snapshots keep a free-space floor (the oldest go first), a snapshot that does not fit is skipped
while events are still recorded, a station that starts on a full disk waits in a degraded mode
instead of exiting into a restart loop, and a forward clock jump does not delete the history.
Real ENOSPC comes from a small tmpfs (we mount one when we may), free space is otherwise faked by
a probe injected into the store.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from edge.camera_config import SnapshotConfig
from edge.snapshots import CLOCK_FILE, CLOCK_STEP_S, NoSpace, SnapshotStore

MIB = 1024 * 1024
DAY = 86400.0
NOW = 1_795_000_000.0


def frame(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)  # noise: JPEGs of ~60-70 KB


class FakeDisk:
    """A disk of `capacity` bytes holding the store's snapshots plus `other` bytes of someone else's."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.other = 0
        self.store: SnapshotStore | None = None

    def free(self) -> int:
        used = self.store.usage_bytes() if self.store is not None else 0
        return max(0, self.capacity - used - self.other)


def store_on(disk: FakeDisk, root: Path, floor_mb: int = 1, **kwargs: Any) -> SnapshotStore:
    config = SnapshotConfig(min_free_mb=floor_mb, budget_mb=10_000, retention_days=30, face_crop=False)
    store = SnapshotStore(root, config, free_space=disk.free, **kwargs)
    disk.store = store
    return store


def ids(n: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


# -- the free-space floor -----------------------------------------------------------------------------


def test_snapshots_never_take_the_disk_below_the_floor_and_the_oldest_go_first(tmp_path: Path) -> None:
    disk = FakeDisk(capacity=2 * MIB)
    store = store_on(disk, tmp_path / "snaps", floor_mb=1)
    events = ids(40)
    for index, event_id in enumerate(events):
        store.save(event_id, frame(index), None, NOW + index)
        assert disk.free() >= store.min_free_bytes  # the floor holds after every write
    kept = sorted(p.stem for p in (tmp_path / "snaps").rglob("*.jpg"))
    assert kept and len(kept) < len(events)
    assert kept == sorted(events[-len(kept) :])  # exactly the newest ones survive
    assert not store.paused_for_space and store.accepting()


def test_a_disk_filled_by_something_else_pauses_snapshots_and_they_resume(tmp_path: Path) -> None:
    disk = FakeDisk(capacity=4 * MIB)
    store = store_on(disk, tmp_path / "snaps", floor_mb=1)
    first, second, third = ids(3)
    store.save(first, frame(1), None, NOW)
    disk.other = disk.capacity  # journald filled the disk
    with pytest.raises(NoSpace):
        store.save(second, frame(2), None, NOW + 1)
    assert store.paused_for_space and not store.accepting() and store.skipped_for_space == 1
    assert not list((tmp_path / "snaps").rglob(f"{first}*"))  # ours went first, to no avail
    assert not list((tmp_path / "snaps").rglob(f"{second}*"))  # and nothing half-written
    disk.other = 0  # someone cleaned up
    assert store.accepting()
    store.save(third, frame(3), None, NOW + 2)
    assert not store.paused_for_space and store.status()["skipped_for_space"] == 1


def test_enforce_also_restores_the_floor(tmp_path: Path) -> None:
    disk = FakeDisk(capacity=64 * MIB)
    store = store_on(disk, tmp_path / "snaps", floor_mb=1, clock_wall=lambda: NOW + 10)
    for index, event_id in enumerate(ids(6)):
        store.save(event_id, frame(index), None, NOW + index)
    disk.other = disk.capacity - MIB - store.usage_bytes() // 2  # half of ours must go
    report = store.enforce()
    assert report.deleted_files >= 3 and disk.free() >= store.min_free_bytes


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real small filesystem (root only); skips the test where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path, leave: int = 0) -> Path:
    """Fill the filesystem holding `path` up to `leave` free bytes with one file."""
    import shutil

    filler = path / "journal.fill"
    free = shutil.disk_usage(path).free
    with open(filler, "wb") as handle:
        try:
            remaining = max(0, free - leave)
            while remaining > 0:
                chunk = min(remaining, MIB)
                handle.write(b"\0" * chunk)
                remaining -= chunk
            handle.flush()
        except OSError:
            pass
    return filler


def test_a_real_enospc_skips_the_snapshot_cleanly(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "small", "2m") as mount:
        # A probe that believes there is room: the write itself meets ENOSPC.
        config = SnapshotConfig(min_free_mb=1, face_crop=False)
        store = SnapshotStore(mount / "snaps", config, free_space=lambda: 10**12)
        fill(mount)
        with pytest.raises(NoSpace):
            store.save(str(uuid.uuid4()), frame(1), None, NOW)
        assert store.paused_for_space
        left = [p.name for p in (mount / "snaps").rglob("*") if p.is_file()]
        assert left == []  # no .tmp, no half JPEG


# -- a forward clock jump -------------------------------------------------------------------------------


def test_a_clock_forty_days_ahead_does_not_delete_the_history(tmp_path: Path) -> None:
    root = tmp_path / "snaps"
    config = SnapshotConfig(retention_days=30, face_crop=False, min_free_mb=1)
    disk = FakeDisk(capacity=10**12)
    wall = [NOW]
    mono = [1000.0]
    store = SnapshotStore(
        root, config, clock_wall=lambda: wall[0], clock_mono=lambda: mono[0], free_space=disk.free
    )
    events = ids(20)
    for index, event_id in enumerate(events):  # 20 days of history, one a day
        store.save(event_id, frame(index), None, NOW - (19 - index) * DAY)
    assert store.enforce().deleted_files == 0
    # Restart with the wall clock 40 days ahead (a Pi whose RTC jumped; faketime in the attack).
    wall[0] = NOW + 40 * DAY
    mono[0] = 5.0  # monotonic clocks restart at boot
    restarted = SnapshotStore(
        root, config, clock_wall=lambda: wall[0], clock_mono=lambda: mono[0], free_space=disk.free
    )
    report = restarted.enforce()
    assert report.deleted_files == 0  # not 136 of 136
    assert restarted.clock_ahead_s == pytest.approx(40 * DAY, rel=0.01)
    # Retention catches up gradually: a day later at most a few more days' worth went.
    mono[0] += DAY
    wall[0] += DAY
    restarted.enforce()
    remaining = len(list(root.rglob("*.jpg")))
    assert 20 - 3 <= remaining < 20 + 1
    assert (root / CLOCK_FILE).exists()


def test_a_small_correction_forward_is_accepted_at_once(tmp_path: Path) -> None:
    root = tmp_path / "snaps"
    config = SnapshotConfig(retention_days=30, face_crop=False, min_free_mb=1)
    wall = [NOW]
    store = SnapshotStore(root, config, clock_wall=lambda: wall[0], free_space=lambda: 10**12)
    store.save(str(uuid.uuid4()), frame(1), None, NOW - 29.5 * DAY)
    wall[0] = NOW + CLOCK_STEP_S * 0.9  # NTP corrects a Pi that booted at its last shutdown time
    assert store.enforce().deleted_files == 1 and store.clock_ahead_s == 0.0


# -- the daemon on a full disk ------------------------------------------------------------------------------


def daemon_config(data: Path, **storage: Any) -> Any:
    from edge.config import parse_config

    return parse_config(
        {
            "storage": {"data_dir": str(data), **storage},
            "api": {"enabled": False},
            "snapshots": {"min_free_mb": 1},
            "camera": {"reconnect_initial_s": 0.05, "reconnect_max_s": 0.2},
        }
    )


@pytest.fixture
def shared_model(face_model: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    import recognizer.encoder as encoder_module

    monkeypatch.setattr(encoder_module, "DlibFaceModel", lambda: face_model)
    return face_model


def events(data: Path) -> list[dict[str, Any]]:
    import sqlite3

    conn = sqlite3.connect(data / "yizhan.db")
    try:
        rows = conn.execute("SELECT kind, reason, details FROM events ORDER BY ts_wall").fetchall()
    finally:
        conn.close()
    import json

    return [{"kind": k, "reason": r, "details": json.loads(d)} for k, r, d in rows]


def test_starting_on_a_full_disk_waits_degraded_then_starts_and_raises_the_alarm(
    tmp_path: Path, shared_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edge.app as app_module
    from edge.app import RunOptions, StationDaemon
    from edge.station import Station

    monkeypatch.setattr(app_module, "DEGRADED_RETRY_S", 0.2)
    with tmpfs(tmp_path / "disk", "8m") as mount:
        data = mount / "data"
        config = daemon_config(data, reserve_mb=0)
        Station(config, env={}).close()  # the database exists, as on a station that ran before
        filler = fill(mount)  # ... and then something filled the disk
        factory = MockFactory()
        daemon = StationDaemon(
            config, RunOptions(camera_source=str(tmp_path / "none.avi")), pin_factory=factory
        )
        result: list[int] = []
        thread = threading.Thread(target=lambda: result.append(daemon.run()))
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while daemon.degraded is None and time.monotonic() < deadline and thread.is_alive():
                time.sleep(0.05)
            assert daemon.degraded == "disk_full" and thread.is_alive()  # waiting, not exiting
            factory.pin(22).drive_low()  # the exit button still opens the door
            assert factory.pin(17).state is True
            factory.pin(22).drive_high()
            filler.unlink()  # the installer frees space
            deadline = time.monotonic() + 30
            while daemon.loop is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert daemon.degraded is None and daemon.loop is not None
        finally:
            daemon.stop_event.set()
            thread.join(30)
        assert result == [0]
        kinds = [e["kind"] for e in events(data)]
        assert "disk_full" in kinds and "exit" in kinds  # the exit while degraded is in the log too
        alarm = next(e for e in events(data) if e["kind"] == "disk_full")
        assert alarm["details"]["degraded_start_s"] > 0
        exit_event = next(e for e in events(data) if e["kind"] == "exit")
        assert exit_event["details"]["during_start"] is True


def test_the_reserve_lets_a_station_on_a_full_disk_start_and_record(
    tmp_path: Path, shared_model: Any
) -> None:
    from edge.app import RunOptions, StationDaemon
    from edge.station import Station

    with tmpfs(tmp_path / "disk", "12m") as mount:
        data = mount / "data"
        config = daemon_config(data, reserve_mb=2)
        station = Station(config, env={})
        station.close()
        from edge.disk_space import DiskGuard

        assert DiskGuard(data, floor_bytes=MIB, reserve_bytes=2 * MIB).ensure_reserve()
        fill(mount)
        daemon = StationDaemon(
            config, RunOptions(camera_source=str(tmp_path / "none.avi")), pin_factory=MockFactory()
        )
        daemon.start()
        try:
            assert daemon.degraded is None and not (data / "reserve.space").exists()
            daemon.remote_open(seconds=0.5, by="test")  # the door still decides and records
        finally:
            daemon.stop()
        kinds = [e["kind"] for e in events(data)]
        assert "disk_full" in kinds and "entry" in kinds and kinds[-1] == "station_stopped"
