"""Snapshot files: atomic JPEGs named after events, pruned by age and budget, served only from root."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edge.camera_config import SnapshotConfig
from edge.snapshots import FACE_MARGIN, SnapshotStore, validate_event_id

DAY = 86400.0
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC).timestamp()


def scene(seed: int = 0, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """A textured frame (noise compresses badly, so file sizes are large and predictable)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    cv2.rectangle(image, (200, 100), (400, 350), (40, 180, 220), -1)
    return image


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def disk_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in files_under(root) if p.suffix == ".jpg")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "snapshots"


def test_config_defaults_and_bounds() -> None:
    cfg = SnapshotConfig()
    assert (cfg.enabled, cfg.jpeg_quality, cfg.budget_mb, cfg.retention_days, cfg.face_crop) == (
        True,
        85,
        2048,
        30,
        True,
    )
    for bad in ({"jpeg_quality": 20}, {"budget_mb": 1}, {"retention_days": 0}, {"keep": 1}):
        with pytest.raises(ValidationError):
            SnapshotConfig.model_validate(bad)


def test_save_matches_path_for_and_decodes(root: Path) -> None:
    store = SnapshotStore(root, SnapshotConfig(), clock_wall=lambda: NOW)
    event_id = str(uuid.uuid4())
    expected = store.path_for(event_id, NOW)
    assert expected == f"2026-11-24/{event_id}.jpg"  # the event's UTC day
    frame = scene()
    assert store.save(event_id, frame, None, NOW) == expected
    path = root / expected
    decoded = cv2.imread(str(path))
    assert decoded is not None and decoded.shape == frame.shape
    assert path.stat().st_mtime == pytest.approx(NOW)  # the event time, recoverable after a restart
    assert not (root / "2026-11-24" / f"{event_id}.face.jpg").exists()
    assert [p.name for p in files_under(root)] == [f"{event_id}.jpg"]  # no .tmp left behind
    assert store.usage_bytes() == path.stat().st_size
    assert store.resolve(expected) == path.resolve()


def test_face_crop_has_a_margin_and_is_clamped(root: Path) -> None:
    store = SnapshotStore(root, SnapshotConfig())
    frame = scene()
    event_id = uuid.uuid4().hex
    top, right, bottom, left = 100, 400, 300, 200  # a 200x200 face
    store.save(event_id, frame, (top, right, bottom, left), NOW)
    crop = cv2.imread(str(root / "2026-11-24" / f"{event_id}.face.jpg"))
    margin = int(200 * FACE_MARGIN)
    assert crop is not None and crop.shape == (200 + 2 * margin, 200 + 2 * margin, 3)

    edge_id = uuid.uuid4().hex
    store.save(edge_id, frame, (-50, 700, 100, 550), NOW)  # partly outside the frame
    clamped = cv2.imread(str(root / "2026-11-24" / f"{edge_id}.face.jpg"))
    assert clamped is not None and clamped.shape[:2] == (100 + 60, 640 - 490)

    outside_id = uuid.uuid4().hex
    assert store.save(outside_id, frame, (1000, 2000, 1100, 1900), NOW) is not None
    assert not (root / "2026-11-24" / f"{outside_id}.face.jpg").exists()
    assert store.usage_bytes() == disk_bytes(root)


def test_quality_face_crop_switch_and_disabled(root: Path) -> None:
    frame = scene()
    low = SnapshotStore(root / "low", SnapshotConfig(jpeg_quality=30, face_crop=False))
    high = SnapshotStore(root / "high", SnapshotConfig(jpeg_quality=95))
    event_id = str(uuid.uuid4())
    low_path = low.save(event_id, frame, (100, 400, 300, 200), NOW)
    high_path = high.save(event_id, frame, (100, 400, 300, 200), NOW)
    assert low_path is not None and high_path is not None
    assert (root / "low" / low_path).stat().st_size < (root / "high" / high_path).stat().st_size
    assert not list((root / "low").rglob("*.face.jpg"))
    assert len(list((root / "high").rglob("*.face.jpg"))) == 1

    disabled = SnapshotStore(root / "off", SnapshotConfig(enabled=False))
    assert disabled.save(event_id, frame, None, NOW) is None
    assert disabled.path_for(event_id, NOW).endswith(".jpg")  # still well-defined
    assert files_under(root / "off") == []


@pytest.mark.parametrize(
    "event_id",
    [
        "../x",
        "a/b",
        "",
        "x" * 5000,
        "../../" + "0" * 32,
        "0" * 32 + "/",
        "0" * 32 + ".jpg",
        str(uuid.uuid5(uuid.NAMESPACE_DNS, "upper-case")).upper(),  # fixed: xdist workers collect alike
        "/etc/passwd",
        "0" * 31 + "\x00",
    ],
)
def test_hostile_event_ids_are_refused(root: Path, tmp_path: Path, event_id: str) -> None:
    store = SnapshotStore(root, SnapshotConfig())
    before = files_under(tmp_path)
    with pytest.raises(ValueError):
        store.path_for(event_id, NOW)
    with pytest.raises(ValueError):
        store.save(event_id, scene(), None, NOW)
    with pytest.raises(ValueError):
        validate_event_id(event_id)
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("when", [float("nan"), float("inf"), 1e20])
def test_unusable_wall_time_is_refused(root: Path, when: float) -> None:
    with pytest.raises(ValueError):
        SnapshotStore(root, SnapshotConfig()).path_for(str(uuid.uuid4()), when)


def test_budget_removes_the_oldest_first(root: Path) -> None:
    store = SnapshotStore(root, SnapshotConfig(retention_days=3650), budget_bytes=10**9)
    ids = [str(uuid.UUID(int=i + 1)) for i in range(6)]
    for index in (3, 0, 5, 1, 4, 2):  # one event a day; saved out of order: age decides, not insertion
        store.save(ids[index], scene(index), (100, 400, 300, 200), NOW - (6 - index) * DAY)
    sizes = {event_id: len(list(root.glob(f"*/{event_id}*.jpg"))) for event_id in ids}
    assert all(count == 2 for count in sizes.values())
    total = store.usage_bytes()
    assert total == disk_bytes(root)

    per_event = total // 6
    store.budget_bytes = int(per_event * 3.5)  # room for three events
    report = store.enforce(NOW)
    assert report.deleted_files == 6
    assert report.remaining_bytes == store.usage_bytes() == disk_bytes(root) <= store.budget_bytes
    assert report.freed_bytes == total - report.remaining_bytes
    remaining = sorted(p.name.split(".")[0] for p in root.rglob("*.jpg"))
    assert remaining == sorted(ids[3:] * 2)  # the three newest, with their face crops
    assert len([d for d in root.iterdir() if d.is_dir()]) == 3  # emptied day folders are removed
    assert store.enforce(NOW).deleted_files == 0  # nothing more to do


def test_retention_deletes_by_age_with_an_injected_clock(root: Path) -> None:
    clock = [NOW]
    store = SnapshotStore(root, SnapshotConfig(retention_days=30), clock_wall=lambda: clock[0])
    ages = {"a": 40, "b": 31, "c": 29, "d": 0}
    ids = {name: str(uuid.uuid5(uuid.NAMESPACE_DNS, name)) for name in ages}
    for name, age in ages.items():
        store.save(ids[name], scene(), None, NOW - age * DAY)
    report = store.enforce()  # uses the injected clock
    assert report.deleted_files == 2
    left = {p.stem for p in root.rglob("*.jpg")}
    assert left == {ids["c"], ids["d"]}
    clock[0] = NOW + 2 * DAY  # two days later "c" is past 30 days too
    assert store.enforce().deleted_files == 1
    assert {p.stem for p in root.rglob("*.jpg")} == {ids["d"]}
    assert store.usage_bytes() == disk_bytes(root)


def test_restart_recovers_total_and_age_order(root: Path) -> None:
    store = SnapshotStore(root, SnapshotConfig())
    ids = [uuid.uuid4().hex for _ in range(4)]
    for index, event_id in enumerate(ids):
        store.save(event_id, scene(index), (100, 400, 300, 200), NOW - (10 - index) * DAY)
    day_dir = root / dt.datetime.fromtimestamp(NOW - 10 * DAY, dt.UTC).strftime("%Y-%m-%d")
    stray_tmp = day_dir / f"{uuid.uuid4().hex}.jpg.tmp"  # a crash in the middle of a write
    stray_tmp.write_bytes(b"half a jpeg")
    foreign = day_dir / "notes.txt"  # not ours: counted nowhere, never deleted
    foreign.write_text("keep me", encoding="utf-8")

    restarted = SnapshotStore(root, SnapshotConfig(), budget_bytes=10**9)
    assert restarted.usage_bytes() == store.usage_bytes() == disk_bytes(root)
    assert not stray_tmp.exists()
    restarted.budget_bytes = restarted.usage_bytes() - 1  # one event too many
    report = restarted.enforce(NOW)
    assert report.deleted_files == 2
    assert not list(root.rglob(f"{ids[0]}*"))  # the oldest went, though all were saved by `store`
    assert foreign.exists() and day_dir.exists()  # a folder with a foreign file stays


def test_saving_the_same_event_twice_is_not_counted_twice(root: Path) -> None:
    store = SnapshotStore(root, SnapshotConfig())
    event_id = str(uuid.uuid4())
    store.save(event_id, scene(1), None, NOW)
    store.save(event_id, scene(2), None, NOW)
    assert store.usage_bytes() == disk_bytes(root)


def test_resolve_refuses_escapes(root: Path, tmp_path: Path) -> None:
    store = SnapshotStore(root, SnapshotConfig())
    event_id = str(uuid.uuid4())
    good = store.save(event_id, scene(), (100, 400, 300, 200), NOW)
    assert good is not None
    assert store.resolve(good).is_file()
    assert store.resolve(good.replace(".jpg", ".face.jpg")).is_file()
    for bad in (
        "../outside.jpg",
        "/etc/passwd",
        f"/{good}",
        f"2026-11-24/../../{event_id}.jpg",
        f"../snapshots/{good}",
        f"2026-11-24/{event_id}.png",
        f"2026-11-24\\{event_id}.jpg",
        "2026-11-24",
        "",
        f"2026-11-24/x/{event_id}.jpg",
    ):
        with pytest.raises(ValueError):
            store.resolve(bad)

    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"not for the API")
    link_id = str(uuid.uuid4())
    os.symlink(secret, root / "2026-11-24" / f"{link_id}.jpg")
    with pytest.raises(ValueError, match="symlink"):
        store.resolve(f"2026-11-24/{link_id}.jpg")

    outside_dir = tmp_path / "elsewhere"
    outside_dir.mkdir()
    (outside_dir / f"{link_id}.jpg").write_bytes(b"x")
    os.symlink(outside_dir, root / "2026-01-01")
    with pytest.raises(ValueError, match="symlink"):
        store.resolve(f"2026-01-01/{link_id}.jpg")
    when = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC).timestamp()
    with pytest.raises(ValueError, match="symlink"):
        store.save(str(uuid.uuid4()), scene(), None, when)  # never writes through a planted link
    assert [p.name for p in outside_dir.iterdir()] == [f"{link_id}.jpg"]

    # Planted links are neither counted nor deleted by pruning, and their targets survive.
    restarted = SnapshotStore(root, SnapshotConfig(retention_days=1), budget_bytes=0)
    restarted.enforce(NOW + 400 * DAY)
    assert secret.exists() and (outside_dir / f"{link_id}.jpg").exists()
    assert restarted.usage_bytes() == 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(relative=st.text(alphabet=st.sampled_from("./\\-abcdef0123456789jpgfa\x00 "), max_size=60))
def test_resolve_never_leaves_root(root: Path, relative: str) -> None:
    store = SnapshotStore(root, SnapshotConfig())
    try:
        resolved = store.resolve(relative)
    except ValueError:
        return
    assert resolved.is_relative_to(root.resolve())
