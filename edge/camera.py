"""Camera input: one reader thread per source, the newest frame in a one-frame slot.

The door's decision loop must always look at *now*. A queue of frames would let a slow face
encoding (~100 ms here) fall seconds behind the person standing at the door, so frames are never
queued: the reader thread puts each frame into `LatestFrame`, replacing whatever the consumer has
not taken yet (that frame is stale and is counted as dropped). The thread also keeps reading when
nobody consumes, so a V4L2 driver's buffer never fills with old frames.

Failures are expected on an unattended box (a USB cable pulled, an RTSP server restarted, a
stream that keeps sending the same picture): the thread reports them as a status transition
(`on_status`, called once per change of state), releases the capture and reopens it with
exponential back-off until `stop()`. Nothing here touches the door, so the exit button and remote
open keep working whatever the camera does.

Sources (`camera.source`): "0", "1", ... is a V4L2 device index; "rtsp://", "http://",
"https://" is a stream URL; anything else is a video file, played at its native frame rate
(`realtime`) or as fast as possible, looping at its end unless `exit_at_end`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import cv2
import numpy as np
import numpy.typing as npt

from edge.camera_config import CameraConfig, SourceKind, parse_source

__all__ = ["SourceKind", "parse_source"]  # classified in camera_config (imported without OpenCV)

logger = logging.getLogger(__name__)

CameraState = Literal["starting", "up", "down", "ended"]
CaptureFactory = Callable[[str | int], cv2.VideoCapture]

DEFAULT_FILE_FPS = 25.0
"""Used when a file does not state its frame rate (CAP_PROP_FPS is 0 or NaN)."""

_FINGERPRINT_STRIDE = 8
RECOVERY_CHANGES = 3
"""After a "frozen" failure, this many consecutive changed frames mean the camera is live again."""
STABLE_AFTER_S = 10.0
"""A session up at least this long resets the reconnect back-off to `reconnect_initial_s`."""
_MAX_STALL_S = 1.0  # a paced file this far behind its schedule re-anchors instead of bursting


@dataclass(frozen=True, eq=False)
class Frame:
    """One captured frame, as handed to the decision loop.

    `image` is BGR uint8 of shape (height, width, 3), exactly as OpenCV decodes it (convert to RGB
    before giving it to dlib/face_recognition). It is marked read-only because the same array may
    be seen by several consumers: copy it before drawing on it.
    `captured_mono` is `time.monotonic()` right after the read returned (use it for latency and
    ordering); `captured_wall` is the wall clock at the same moment (for event rows and file
    names); `source_pos_ms` is the position inside a video file, None for devices and streams.
    """

    seq: int
    image: npt.NDArray[np.uint8]
    captured_mono: float
    captured_wall: float
    source_pos_ms: float | None


@dataclass(frozen=True)
class CameraStatus:
    """What the camera is doing, for the health flag, the `camera_down` event and the local API.

    `state`: "starting" until the first frame or failure, "up" while frames arrive, "down" while
    reconnecting (`reason`: "open_failed", "read_failed", "frozen"), "ended" at the end of a file
    played with `exit_at_end`. `since_mono` is when the current state began. `fps` is the measured
    read rate over the last second or so. `frames_dropped` counts frames replaced in the slot
    before any consumer took them (the consumer is slower than the camera); `frames_skipped`
    counts frames not handed on at all because of `fps_limit`.
    """

    state: CameraState
    reason: str | None
    since_mono: float
    reconnects: int
    fps: float
    frames_read: int
    frames_dropped: int
    frames_skipped: int = 0
    frames_delivered: int = 0


class LatestFrame:
    """A one-frame mailbox: the newest frame wins, an untaken older frame is dropped, never queued.

    Consumers remember the `seq` of the last frame they handled and ask for anything newer, so
    several consumers can share the slot without taking frames from each other.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._taken = True
        self._dropped = 0
        self._closed = False
        self._ended = False

    def put(self, frame: Frame) -> None:
        """Replace the slot's frame and wake waiters. Ignored after `close()` or `end()`."""
        with self._cond:
            if self._closed or self._ended:
                return
            if not self._taken:
                self._dropped += 1
            self._frame = frame
            self._taken = False
            self._cond.notify_all()

    def get(self, after_seq: int, timeout: float) -> Frame | None:
        """The newest frame with `seq > after_seq`, waiting up to `timeout` seconds for one.

        None on timeout, after `close()`, or after `end()` when nothing newer is left.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._ended or self._newer(after_seq), timeout)
            if self._closed or not self._newer(after_seq):
                return None
            self._taken = True
            return self._frame

    def peek(self) -> Frame | None:
        """The slot's frame without waiting or marking it taken (a status page, a test)."""
        with self._cond:
            return None if self._closed else self._frame

    def exhausted(self, after_seq: int) -> bool:
        """True once no frame newer than `after_seq` can ever arrive: closed, or ended and drained.

        Checked atomically, so `if frame is None and frames.exhausted(seq): break` cannot lose the
        last frame of a file that was put just before the end.
        """
        with self._cond:
            return self._closed or (self._ended and not self._newer(after_seq))

    def end(self) -> None:
        """No more frames will come: waiters wake, the frame still in the slot can be taken."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def close(self) -> None:
        """Shut the slot: waiters wake and every later `get` returns None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def dropped(self) -> int:
        """Frames replaced before any consumer took them."""
        with self._cond:
            return self._dropped

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def _newer(self, after_seq: int) -> bool:
        return self._frame is not None and self._frame.seq > after_seq


def redact_source(source: str) -> str:
    """The source with any password in a URL replaced, so logs never carry camera credentials."""
    try:
        parts = urlsplit(source)
    except ValueError:
        return source
    if not parts.scheme or parts.password is None:
        return source
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def open_capture(
    target: str | int, *, open_timeout_s: float = 10.0, read_timeout_s: float = 5.0
) -> cv2.VideoCapture:
    """Open a capture the way the station wants it; the default `capture_factory`.

    Device indices use V4L2 on Linux (the backend that honours the buffer size and resolution
    requests), anything else FFmpeg with open and read timeouts, so a dead RTSP server fails a
    read instead of blocking the camera thread for ever. May return a capture that is not opened.
    """
    if isinstance(target, int):
        backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        return cv2.VideoCapture(target, backend)
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(read_timeout_s * 1000),
    ]
    return cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)


def _fingerprint(image: npt.NDArray[np.uint8]) -> tuple[bytes, bool]:
    """(hash, uniform) of a strided sample of the frame, for the frozen-stream check.

    Strided sampling (no averaging) on purpose: a live sensor's per-pixel noise makes two frames of
    a perfectly still room differ, whereas an area-averaged thumbnail could come out identical and
    call a healthy camera frozen. A uniform sample (a black room, a capped lens) cannot tell frozen
    from live at all, so it is never counted as frozen; darkness is the brightness check's job.
    """
    sample = image[::_FINGERPRINT_STRIDE, ::_FINGERPRINT_STRIDE]
    uniform = bool(sample.size == 0 or int(sample.max()) == int(sample.min()))
    return hashlib.blake2b(np.ascontiguousarray(sample).tobytes(), digest_size=16).digest(), uniform


class _Outcome:
    STOPPED = "stopped"
    FAILED = "failed"
    LOOP = "loop"
    ENDED = "ended"


class CameraSource:
    """Reads one camera source on its own thread into `frames`, reconnecting on failure.

    `on_status` is called from the camera thread once per state change with the new
    `CameraStatus`; its exceptions are logged and swallowed so a faulty listener cannot stop the
    camera. `exit_at_end` makes a file source stop at its end (state "ended", `ended` set, the
    last frame still delivered); otherwise a file loops from its start, which is what the demo
    wants. Pass the station's shared `stop_event` so one event stops every stage.
    `capture_factory` opens a source (default `open_capture` with this config's timeouts); it is
    the seam tests use to point at real files or count attempts.
    """

    def __init__(
        self,
        config: CameraConfig,
        *,
        exit_at_end: bool = False,
        on_status: Callable[[CameraStatus], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        capture_factory: CaptureFactory | None = None,
        stop_event: threading.Event | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._exit_at_end = exit_at_end
        self._on_status = on_status
        self._clock = clock
        self._wall_clock = wall_clock
        self._factory: CaptureFactory = capture_factory or partial(
            open_capture, open_timeout_s=config.open_timeout_s, read_timeout_s=config.read_timeout_s
        )
        self._rng = rng or random.Random()
        self.source_kind, self._target = parse_source(config.source)
        self.frames = LatestFrame()
        self.ended = threading.Event()
        self._stop = stop_event if stop_event is not None else threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state: CameraState = "starting"
        self._reason: str | None = None
        self._since = clock()
        self._reconnects = 0
        self._frames_read = 0
        self._frames_skipped = 0
        self._frames_delivered = 0
        self._fps = 0.0
        self._fps_window_start = self._since
        self._fps_window_count = 0
        self._seq = 0
        self._next_publish = -math.inf
        # Frozen-stream tracking survives reopening: after a "frozen" failure the camera counts as
        # back only once its picture has changed on several consecutive frames, because a stuck
        # stream often decodes its first frame slightly differently after each reconnect (the
        # MJPG files in the tests do) and one different frame would make it flap up and down.
        self._last_digest: bytes | None = None
        self._last_change = self._since
        self._changed_run = 0
        self._recovering_from_frozen = False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the reader thread (daemon, named "camera"). A source starts once."""
        if self._thread is not None:
            raise RuntimeError("camera already started")
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self._thread.start()
        logger.info(
            "camera starting",
            extra={"fields": {"source": redact_source(self._config.source), "kind": self.source_kind}},
        )

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and wake every consumer; idempotent, safe from any thread.

        Waits up to `timeout` for the thread. A read blocked inside a driver cannot be interrupted;
        it ends by the read timeout, and the thread being a daemon never holds up process exit.
        """
        self._stop.set()
        self.frames.close()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout)
        if thread.is_alive():
            logger.warning(
                "camera thread still blocked in a read after stop", extra={"fields": {"timeout_s": timeout}}
            )

    def __enter__(self) -> CameraSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def healthy(self) -> bool:
        """True while frames arrive (state "up")."""
        with self._lock:
            return self._state == "up"

    @property
    def status(self) -> CameraStatus:
        with self._lock:
            return self._status_locked()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # a bug here must be visible, and must not look like a healthy camera
            logger.exception("camera thread crashed")
            self._transition("down", "crashed")
        finally:
            if self._stop.is_set():  # a shared stop event may have been set by someone else
                self.frames.close()

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            outcome, up_at = self._session()
            if up_at is not None and self._clock() - up_at >= STABLE_AFTER_S:
                failures = 0  # a camera that flaps (up for a frame, then down) keeps backing off
            if outcome in (_Outcome.STOPPED, _Outcome.ENDED):
                return
            if outcome == _Outcome.LOOP:
                continue
            delay = self._backoff(failures)
            failures += 1
            logger.debug("camera reconnect wait", extra={"fields": {"delay_s": round(delay, 3)}})
            if self._stop.wait(delay):
                return
            with self._lock:
                self._reconnects += 1
            self._last_change = self._clock()
            self._changed_run = 0

    def _backoff(self, failures: int) -> float:
        cfg = self._config
        base = min(cfg.reconnect_max_s, cfg.reconnect_initial_s * 2.0 ** min(failures, 60))
        jitter = 1.0 + cfg.reconnect_jitter * self._rng.uniform(-1.0, 1.0)
        return max(0.0, base * jitter)

    def _open(self) -> cv2.VideoCapture | None:
        try:
            capture = self._factory(self._target)
        except Exception as exc:  # cv2 raises cv2.error for some URLs; a factory may raise anything
            logger.debug("camera open raised", extra={"fields": {"error": repr(exc)}})
            return None
        if not capture.isOpened():
            capture.release()
            return None
        if self.source_kind == "device":
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer frames waiting in the driver = less lag
            if self._config.width is not None:
                capture.set(cv2.CAP_PROP_FRAME_WIDTH, self._config.width)
            if self._config.height is not None:
                capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self._config.height)
        return capture

    def _session(self) -> tuple[str, float | None]:
        """Open, read until failure / end / stop, release. Returns (outcome, when it went up)."""
        capture = self._open()
        if capture is None:
            self._transition("down", "open_failed")
            return _Outcome.FAILED, None
        try:
            return self._read_all(capture)
        finally:
            capture.release()

    def _read_all(self, capture: cv2.VideoCapture) -> tuple[str, float | None]:
        is_file = self.source_kind == "file"
        paced = is_file and self._config.realtime
        frame_period = 1.0 / self._file_fps(capture) if paced else 0.0
        frozen_after = self._config.frozen_after_s
        up_at: float | None = None
        pending: tuple[npt.NDArray[np.uint8], float, float, float | None] | None = None
        anchor = self._clock()
        count = 0
        while not self._stop.is_set():
            if paced:
                wait = anchor + count * frame_period - self._clock()
                if wait > 0:
                    if self._stop.wait(wait):
                        return _Outcome.STOPPED, up_at
                elif wait < -_MAX_STALL_S:
                    anchor = self._clock() - count * frame_period
            ok, raw = capture.read()
            now = self._clock()
            wall = self._wall_clock()
            if not ok or raw is None:
                if is_file and count > 0:
                    return self._at_end(pending), up_at
                self._transition("down", "read_failed")
                return _Outcome.FAILED, up_at
            count += 1
            image = np.asarray(raw, dtype=np.uint8)
            image.flags.writeable = False
            self._count_read(now)

            digest, uniform = _fingerprint(image)
            if uniform or digest != self._last_digest:
                self._last_digest, self._last_change = digest, now
                self._changed_run += 1
            else:
                self._changed_run = 0
                if now - self._last_change >= frozen_after:
                    self._recovering_from_frozen = True
                    self._transition("down", "frozen")
                    return _Outcome.FAILED, up_at
            if self._recovering_from_frozen:
                if self._changed_run < RECOVERY_CHANGES:
                    continue  # not live yet: hand on nothing, do not claim "up"
                self._recovering_from_frozen = False

            if up_at is None:
                up_at = now
                self._transition("up", None)
            position = float(capture.get(cv2.CAP_PROP_POS_MSEC)) if is_file else None
            if now >= self._next_publish:
                self._publish(image, now, wall, position)
                pending = None
            else:
                pending = (image, now, wall, position)
                with self._lock:
                    self._frames_skipped += 1
        return _Outcome.STOPPED, up_at

    def _at_end(self, pending: tuple[npt.NDArray[np.uint8], float, float, float | None] | None) -> str:
        """End of a file: loop, or deliver the last frame and finish."""
        if not self._exit_at_end:
            return _Outcome.LOOP
        if pending is not None:
            with self._lock:
                self._frames_skipped -= 1
            self._publish(*pending)
        self.frames.end()
        self._transition("ended", "ended")
        self.ended.set()
        logger.info("camera source ended", extra={"fields": {"frames_read": self.status.frames_read}})
        return _Outcome.ENDED

    def _file_fps(self, capture: cv2.VideoCapture) -> float:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        if not math.isfinite(fps) or fps <= 0.0 or fps > 1000.0:
            return DEFAULT_FILE_FPS
        return fps

    def _publish(self, image: npt.NDArray[np.uint8], now: float, wall: float, position: float | None) -> None:
        interval = 1.0 / self._config.fps_limit
        self._next_publish = max(self._next_publish, now - interval) + interval
        self._seq += 1
        self.frames.put(Frame(self._seq, image, now, wall, position))
        with self._lock:
            self._frames_delivered += 1

    def _count_read(self, now: float) -> None:
        with self._lock:
            self._frames_read += 1
            self._fps_window_count += 1
            elapsed = now - self._fps_window_start
            if elapsed >= 1.0:
                self._fps = self._fps_window_count / elapsed
                self._fps_window_start, self._fps_window_count = now, 0

    # -- status --------------------------------------------------------------------------------

    def _status_locked(self) -> CameraStatus:
        return CameraStatus(
            state=self._state,
            reason=self._reason,
            since_mono=self._since,
            reconnects=self._reconnects,
            fps=self._fps if self._state == "up" else 0.0,
            frames_read=self._frames_read,
            frames_dropped=self.frames.dropped,
            frames_skipped=self._frames_skipped,
            frames_delivered=self._frames_delivered,
        )

    def _transition(self, state: CameraState, reason: str | None) -> None:
        """Record the state; on an actual change, log it and tell `on_status` once."""
        with self._lock:
            if state == self._state:
                self._reason = reason  # e.g. open_failed then read_failed while still down
                return
            previous = self._state
            self._state, self._reason, self._since = state, reason, self._clock()
            self._fps_window_start, self._fps_window_count = self._since, 0
            status = self._status_locked()
        fields = {
            "event": f"camera_{state}",
            "reason": reason,
            "previous": previous,
            "source": redact_source(self._config.source),
            "reconnects": status.reconnects,
        }
        if state == "down":
            logger.warning("camera down", extra={"fields": fields})
        else:
            logger.info(f"camera {state}", extra={"fields": fields})
        if self._on_status is None:
            return
        try:
            self._on_status(status)
        except Exception:
            logger.exception("camera status listener failed", extra={"fields": {"state": state}})
