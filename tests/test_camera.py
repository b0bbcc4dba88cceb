"""The camera reader on real video files (MJPG .avi written by OpenCV), not a mocked cv2.

Each test writes its own short video into tmp_path: 40 frames of 320x240 at 20 fps with a moving
square and the frame number drawn in, or the same picture 40 times (a frozen stream).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edge.camera import (
    CameraSource,
    CameraStatus,
    Frame,
    LatestFrame,
    open_capture,
    parse_source,
    redact_source,
)
from edge.camera_config import CameraConfig

FRAMES = 40
FPS = 20.0
#: How long a test waits for something that should happen at once: far above the expected time,
#: so a busy machine (CI beside other jobs) never fails a test that only checks nothing blocks.
LONG_WAIT_S = 30.0
SIZE = (320, 240)


def write_video(path: Path, *, moving: bool = True, frames: int = FRAMES, fps: float = FPS) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, SIZE)
    assert writer.isOpened()
    for index in range(frames):
        writer.write(video_frame(index, moving))
    writer.release()
    return path


def video_frame(index: int, moving: bool) -> np.ndarray:
    width, height = SIZE
    image = np.full((height, width, 3), 60, np.uint8)
    x = 10 + (index * 6) % (width - 100) if moving else 100
    cv2.rectangle(image, (x, 60), (x + 80, 140), (0, 200, 255), -1)
    cv2.putText(
        image, f"{index:03d}" if moving else "still", (10, 220), cv2.FONT_HERSHEY_SIMPLEX, 1, (255,) * 3, 2
    )
    return image


@pytest.fixture
def moving_video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "moving.avi")


@pytest.fixture
def static_video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "static.avi", moving=False)


class Recorder:
    """Collects status transitions from the camera thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: list[CameraStatus] = []

    def __call__(self, status: CameraStatus) -> None:
        with self.lock:
            self.statuses.append(status)

    def transitions(self) -> list[tuple[str, str | None]]:
        with self.lock:
            return [(s.state, s.reason) for s in self.statuses]


def config(source: Path | str, **overrides: object) -> CameraConfig:
    values: dict[str, object] = {
        "source": str(source),
        "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.2,
        "reconnect_jitter": 0.0,
        "frozen_after_s": 5.0,
    }
    values.update(overrides)
    return CameraConfig.model_validate(values)


@pytest.fixture
def cameras() -> Iterator[Callable[..., CameraSource]]:
    """Builds cameras and always stops them, even when an assertion fails."""
    made: list[CameraSource] = []

    def make(cfg: CameraConfig, **kwargs: object) -> CameraSource:
        camera = CameraSource(cfg, **kwargs)  # type: ignore[arg-type]
        made.append(camera)
        return camera

    yield make
    for camera in made:
        camera.stop()


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def drain(camera: CameraSource, timeout: float) -> list[Frame]:
    """Consume frames the way the decision loop does, until the source is exhausted."""
    frames: list[Frame] = []
    seq = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = camera.frames.get(seq, 0.2)
        if frame is None:
            if camera.frames.exhausted(seq):
                break
            continue
        frames.append(frame)
        seq = frame.seq
    return frames


def make_frame(seq: int) -> Frame:
    return Frame(seq, np.zeros((2, 2, 3), np.uint8), float(seq), float(seq), None)


# -- configuration and source parsing --------------------------------------------------------------


def test_config_defaults_and_refusals() -> None:
    cfg = CameraConfig()
    assert (cfg.source, cfg.realtime, cfg.fps_limit, cfg.frozen_after_s) == ("demo", True, 15.0, 10.0)
    assert (cfg.reconnect_initial_s, cfg.reconnect_max_s, cfg.width, cfg.height) == (0.5, 30.0, None, None)
    with pytest.raises(ValidationError, match="extra"):
        CameraConfig.model_validate({"sorce": "0"})
    with pytest.raises(ValidationError):
        CameraConfig(fps_limit=0)
    with pytest.raises(ValidationError, match="reconnect_max_s"):
        CameraConfig(reconnect_initial_s=5, reconnect_max_s=1)
    with pytest.raises(ValidationError):
        cfg.source = "1"  # type: ignore[misc]


def test_parse_source_and_redaction() -> None:
    assert parse_source("0") == ("device", 0)
    assert parse_source(" 2 ") == ("device", 2)
    assert parse_source("rtsp://cam/stream") == ("url", "rtsp://cam/stream")
    assert parse_source("HTTPS://cam/mjpg") == ("url", "HTTPS://cam/mjpg")
    assert parse_source("videos/door.avi") == ("file", "videos/door.avi")
    assert parse_source("demo") == ("file", "demo")
    assert redact_source("rtsp://admin:s3cret@10.0.0.5:554/h264") == "rtsp://admin:***@10.0.0.5:554/h264"
    assert redact_source("rtsp://10.0.0.5/h264") == "rtsp://10.0.0.5/h264"
    assert "s3cret" not in redact_source("http://u:s3cret@cam/x")


# -- the one-frame slot ----------------------------------------------------------------------------


def test_latest_frame_newest_wins_and_counts_drops() -> None:
    slot = LatestFrame()
    slot.put(make_frame(1))
    slot.put(make_frame(2))  # frame 1 was never taken: dropped
    assert slot.dropped == 1
    got = slot.get(0, 0.0)
    assert got is not None and got.seq == 2
    slot.put(make_frame(3))  # frame 2 was taken: no drop
    assert slot.dropped == 1
    assert slot.get(3, 0.0) is None  # nothing newer than 3
    got = slot.get(2, 0.0)
    assert got is not None and got.seq == 3
    assert slot.peek() is got


def test_latest_frame_get_waits_and_times_out() -> None:
    slot = LatestFrame()
    started = time.monotonic()
    assert slot.get(0, 0.15) is None
    assert time.monotonic() - started >= 0.14  # it did wait (an upper bound would time the machine)

    timer = threading.Timer(0.1, slot.put, args=(make_frame(7),))
    timer.start()
    started = time.monotonic()
    got = slot.get(0, LONG_WAIT_S)
    timer.join()
    assert got is not None and got.seq == 7
    assert time.monotonic() - started < LONG_WAIT_S / 2  # woken by the frame, not by the timeout


def test_latest_frame_close_wakes_waiters() -> None:
    slot = LatestFrame()
    results: list[Frame | None] = []
    waiter = threading.Thread(target=lambda: results.append(slot.get(0, LONG_WAIT_S)))
    waiter.start()
    time.sleep(0.05)
    started = time.monotonic()
    slot.close()
    waiter.join(LONG_WAIT_S)
    assert not waiter.is_alive() and results == [None]
    assert time.monotonic() - started < LONG_WAIT_S / 2  # woken by close, not by the timeout
    slot.put(make_frame(1))  # ignored
    assert slot.get(0, 0.0) is None and slot.closed and slot.exhausted(0)


def test_latest_frame_end_keeps_the_last_frame() -> None:
    slot = LatestFrame()
    slot.put(make_frame(5))
    slot.end()
    assert not slot.exhausted(0)
    started = time.monotonic()
    got = slot.get(0, LONG_WAIT_S)
    assert got is not None and got.seq == 5
    assert slot.get(5, LONG_WAIT_S) is None  # ended: returns at once, no waiting
    assert time.monotonic() - started < LONG_WAIT_S / 2
    assert slot.exhausted(5)


# -- file sources ----------------------------------------------------------------------------------


def test_file_plays_at_native_rate_and_delivers_the_last_frame(
    moving_video: Path, cameras: Callable[..., CameraSource]
) -> None:
    recorder = Recorder()
    camera = cameras(config(moving_video, realtime=True), exit_at_end=True, on_status=recorder)
    started = time.monotonic()
    camera.start()
    frames = drain(camera, timeout=LONG_WAIT_S)
    assert camera.ended.wait(LONG_WAIT_S)
    elapsed = time.monotonic() - started
    nominal = (FRAMES - 1) / FPS  # the last frame is due 1.95 s after the first
    # Paced: never faster than the file (a busy machine can only make it slower; figures: bench/).
    assert elapsed >= nominal * 0.9, elapsed

    status = camera.status
    assert status.state == "ended" and status.reason == "ended"
    assert status.frames_read == FRAMES
    assert recorder.transitions() == [("up", None), ("ended", "ended")]
    assert not camera.healthy
    # fps_limit 15 on a 20 fps file: at most one frame per 1/15 s is handed on, plus the last one
    # (how many exactly depends on how punctual the reads were).
    assert 0 < status.frames_delivered <= elapsed * 15.0 + 2
    assert status.frames_delivered == len(frames) + status.frames_dropped
    assert status.frames_skipped + status.frames_delivered == FRAMES
    last = frames[-1]
    assert last.source_pos_ms == pytest.approx((FRAMES - 1) * 1000 / FPS)
    # The delivered picture is the file's last frame (MJPG decodes identically every time).
    capture = cv2.VideoCapture(str(moving_video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, FRAMES - 1)
    ok, expected = capture.read()
    capture.release()
    assert ok and np.array_equal(last.image, expected)
    # Frames are BGR uint8, read-only, with sensible timestamps.
    assert last.image.shape == (SIZE[1], SIZE[0], 3) and last.image.dtype == np.uint8
    assert not last.image.flags.writeable
    assert [f.seq for f in frames] == sorted({f.seq for f in frames})
    assert all(b.captured_mono >= a.captured_mono for a, b in zip(frames, frames[1:], strict=False))
    assert abs(last.captured_wall - time.time()) < 10


def test_fast_mode_is_not_paced(tmp_path: Path, cameras: Callable[..., CameraSource]) -> None:
    """A 1 fps file would take 39 s at its own pace; unpaced it ends long before that."""
    slow = write_video(tmp_path / "slow.avi", fps=1.0)
    camera = cameras(config(slow, realtime=False), exit_at_end=True)
    started = time.monotonic()
    camera.start()
    assert camera.ended.wait(LONG_WAIT_S)
    assert time.monotonic() - started < (FRAMES - 1) / 1.0 / 2
    assert camera.status.frames_read == FRAMES
    last = camera.frames.get(0, LONG_WAIT_S)  # the last frame survives the end for a late consumer
    assert last is not None and last.source_pos_ms == pytest.approx((FRAMES - 1) * 1000 / 1.0)
    assert camera.frames.exhausted(last.seq)


def test_loop_mode_keeps_going(moving_video: Path, cameras: Callable[..., CameraSource]) -> None:
    recorder = Recorder()
    camera = cameras(config(moving_video, realtime=False, fps_limit=100), on_status=recorder)
    camera.start()
    assert wait_until(lambda: camera.status.frames_read > 3 * FRAMES, LONG_WAIT_S)
    first = camera.frames.get(0, LONG_WAIT_S)
    assert first is not None
    later = camera.frames.get(first.seq, LONG_WAIT_S)
    assert later is not None and later.seq > first.seq
    assert camera.healthy and not camera.ended.is_set()
    assert recorder.transitions() == [("up", None)]  # looping is not a reconnect
    assert camera.status.reconnects == 0
    camera.stop(timeout=LONG_WAIT_S)
    assert not camera.running
    assert camera.frames.get(0, LONG_WAIT_S) is None  # closed: returns at once


def test_truncated_file_ends_without_crashing(
    moving_video: Path, tmp_path: Path, cameras: Callable[..., CameraSource]
) -> None:
    data = moving_video.read_bytes()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(data[: len(data) // 2])
    camera = cameras(config(truncated, realtime=False), exit_at_end=True)
    camera.start()
    assert camera.ended.wait(LONG_WAIT_S)
    assert 0 < camera.status.frames_read < FRAMES


# -- failures and reconnects -----------------------------------------------------------------------


class RecordingStop(threading.Event):
    """The camera's stop event, remembering every wait the camera asked for (its back-off delays):
    the schedule is checked as asked for, not as a busy machine happened to deliver it."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None:
            self.waits.append(timeout)
        return super().wait(timeout)


def test_missing_file_backs_off_and_stops_promptly(
    tmp_path: Path, cameras: Callable[..., CameraSource]
) -> None:
    attempts: list[float] = []

    def factory(target: str | int) -> cv2.VideoCapture:
        attempts.append(time.monotonic())
        return open_capture(target)

    recorder = Recorder()
    stop = RecordingStop()
    cfg = config(tmp_path / "missing.avi", reconnect_initial_s=0.05, reconnect_max_s=0.4)
    camera = cameras(cfg, on_status=recorder, capture_factory=factory, stop_event=stop)
    camera.start()
    assert wait_until(lambda: len(attempts) >= 6, LONG_WAIT_S)
    status = camera.status
    assert status.state == "down" and status.reason == "open_failed"
    assert not camera.healthy
    assert recorder.transitions() == [("down", "open_failed")]  # once, not per attempt
    # Waits double from 0.05 s up to the 0.4 s cap (jitter 0 in these tests), one per failed attempt.
    assert stop.waits[:5] == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.4]), stop.waits
    assert status.reconnects >= 5
    started = time.monotonic()
    camera.stop(timeout=LONG_WAIT_S)
    assert not camera.running
    assert time.monotonic() - started < 10.0  # bound far above the expected ~0 s
    assert len(stop.waits) == len(attempts)  # no attempt without a wait before the next one


def test_stop_returns_promptly_during_a_long_backoff(
    tmp_path: Path, cameras: Callable[..., CameraSource]
) -> None:
    cfg = config(tmp_path / "missing.avi", reconnect_initial_s=20.0, reconnect_max_s=30.0)
    camera = cameras(cfg)
    camera.start()
    assert wait_until(lambda: camera.status.state == "down", LONG_WAIT_S)
    started = time.monotonic()
    camera.stop(timeout=LONG_WAIT_S)
    assert time.monotonic() - started < 10.0  # interrupts the 20 s back-off (bound far above ~0 s)
    assert not camera.running
    camera.stop()  # idempotent


def test_garbage_file_is_down_not_a_crash(tmp_path: Path, cameras: Callable[..., CameraSource]) -> None:
    garbage = tmp_path / "garbage.avi"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    recorder = Recorder()
    camera = cameras(config(garbage), on_status=recorder, exit_at_end=True)
    camera.start()
    assert wait_until(lambda: camera.status.reconnects >= 2, LONG_WAIT_S)
    assert camera.status.state == "down"
    assert camera.status.reason in ("open_failed", "read_failed")
    assert camera.running and not camera.ended.is_set()
    assert len(recorder.statuses) == 1


def test_identical_frames_are_frozen_once(static_video: Path, cameras: Callable[..., CameraSource]) -> None:
    recorder = Recorder()
    camera = cameras(config(static_video, realtime=True, frozen_after_s=0.4), on_status=recorder)
    camera.start()
    assert wait_until(lambda: camera.status.reason == "frozen", LONG_WAIT_S)
    delivered = camera.status.frames_delivered
    time.sleep(1.2)  # reconnects keep seeing the same picture: still down, no new transition
    status = camera.status
    assert status.state == "down" and status.reason == "frozen"
    assert status.reconnects >= 1
    assert recorder.transitions() == [("up", None), ("down", "frozen")]
    assert status.frames_delivered == delivered  # the frozen picture is not handed on again


def test_frozen_camera_comes_back_when_the_picture_changes(
    static_video: Path, moving_video: Path, cameras: Callable[..., CameraSource]
) -> None:
    opened: list[str | int] = []

    def factory(target: str | int) -> cv2.VideoCapture:
        opened.append(target)
        return open_capture(str(static_video) if len(opened) == 1 else str(moving_video))

    recorder = Recorder()
    cfg = config(static_video, realtime=True, frozen_after_s=0.3)
    camera = cameras(cfg, on_status=recorder, capture_factory=factory)
    camera.start()
    assert wait_until(lambda: len(recorder.statuses) >= 3, LONG_WAIT_S)
    assert recorder.transitions() == [("up", None), ("down", "frozen"), ("up", None)]
    assert camera.healthy
    assert camera.status.reconnects == 1


def test_failing_status_listener_does_not_kill_the_camera(
    moving_video: Path, cameras: Callable[..., CameraSource], caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def listener(status: CameraStatus) -> None:
        calls.append(status.state)
        raise RuntimeError("listener bug")

    caplog.set_level(logging.ERROR, logger="edge.camera")
    camera = cameras(config(moving_video, realtime=False), exit_at_end=True, on_status=listener)
    camera.start()
    assert camera.ended.wait(LONG_WAIT_S)
    assert calls == ["up", "ended"]
    assert camera.status.frames_read == FRAMES
    assert sum("status listener failed" in r.getMessage() for r in caplog.records) == 2


def test_shared_stop_event_stops_the_thread(moving_video: Path, cameras: Callable[..., CameraSource]) -> None:
    stop = threading.Event()
    camera = cameras(config(moving_video), stop_event=stop)
    camera.start()
    with pytest.raises(RuntimeError):
        camera.start()
    assert camera.frames.get(0, LONG_WAIT_S) is not None
    stop.set()
    assert wait_until(lambda: not camera.running, LONG_WAIT_S)
    assert camera.frames.closed


def test_factory_exception_counts_as_open_failure(cameras: Callable[..., CameraSource]) -> None:
    def factory(target: str | int) -> cv2.VideoCapture:
        raise OSError("no such camera")

    recorder = Recorder()
    camera = cameras(config("3"), on_status=recorder, capture_factory=factory)
    assert camera.source_kind == "device"
    camera.start()
    assert wait_until(lambda: camera.status.reconnects >= 1, LONG_WAIT_S)
    assert recorder.transitions() == [("down", "open_failed")]
