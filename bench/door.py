"""Door benchmark: end-to-end entry latency, CPU of `yizhan run` at rest, memory with a 10k roster.

Run it with `python -m bench.door [--json] [--no-write] [--quick]`. It prints a summary (or one JSON
object with --json) and rewrites its own section of docs/BENCHMARKS.md (not with --quick, whose
numbers are too few to publish).

Why it is built the way it is:
- Latency is measured on the real daemon (`StationDaemon`: camera thread, decide loop, SQLite with
  fsync, snapshot thread) playing a door video at its native 15 fps, with gpiozero mock pins. A
  faster-than-real-time run would hand the loop a different mix of frames than a camera does.
- Two independent clocks agree or the number is not trusted: the daemon's own `latency_ms` (relay
  energised minus the frame's `captured_mono`, written on the event row) and the mock relay pin's
  state history (gpiozero stamps each change with `time.monotonic`, as deltas from the previous
  change; we clear the history at a known instant and add them up), paired with the event's
  `ts_mono`, which is that same frame's capture time.
- The floor (one detection plus one landmarks/quality/encoding pass, `FacePipeline.detect` +
  `FacePipeline.observe`) is measured in the same process right after the run, on the very frames
  the daemon decided on, read back from the video file. Latency over floor is the ratio to compare
  between machines.
- "From appearance onset" adds the frames a person spends walking up before a decision: it is what
  they wait, where the headline figure is what the software adds once a usable frame exists.
- CPU and memory are measured on the real CLI (`yizhan --config C run`) in a child process, so the
  bench's own heap, model and threads are not counted. The child reports READY over a
  $NOTIFY_SOCKET we own (systemd's protocol), so start-up is excluded exactly rather than guessed.
  CPU comes from /proc/<pid>/stat (every thread), memory from VmRSS/VmHWM in /proc/<pid>/status:
  ru_maxrss of a child carries the parent's high-water mark across fork and exec, VmHWM does not.
- The CPU figure comes with an attribution: the same static video replayed in this process through
  the per-frame steps the loop takes (video decode, grey conversion, QR decode, change check) and
  the idle face detection it runs once per `idle_detect_s`, each timed in process CPU time.
- OPENBLAS_NUM_THREADS is pinned to 1 before numpy loads, as in bench/recognition.py and the systemd
  unit (OpenBLAS threads gave ~8 ms outliers on 2 cores).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Mapping, Sequence  # noqa: E402
from dataclasses import asdict, dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from bench import report  # noqa: E402
from bench.dataset import FIXTURES, REPO  # noqa: E402
from bench.recognition import machine_info, padding_vectors, ratio, summary, time_calls  # noqa: E402
from edge.config import Config, parse_config  # noqa: E402
from edge.demo_video import Scene, face_crop, qr_card, write_video  # noqa: E402
from edge.motion import ChangeDetector  # noqa: E402
from edge.station import ROSTER_VERSION_KEY, Station, read_photo  # noqa: E402
from models import events as event_store  # noqa: E402
from models import members as member_store  # noqa: E402
from recognizer.encoder import MODEL_DLIB, FaceModel  # noqa: E402
from recognizer.face_pipeline import FacePipeline  # noqa: E402
from recognizer.qr_decode import decode_qr_payloads, render_image  # noqa: E402
from recognizer.results import Decision  # noqa: E402

Bgr = npt.NDArray[np.uint8]

MARK_START = "<!-- bench.door:start -->"
MARK_END = "<!-- bench.door:end -->"
BENCHMARKS_MD = REPO / "docs" / "BENCHMARKS.md"

FPS = 15.0
TARGET_CPU_PERCENT = 15.0
STATION_ID = "st-bench-door"
#: Short relay windows, so that a face entry and the QR entry 2 s later are two separate pulses on
#: the mock pin (a grant while the relay is still on extends the window without a new rising edge).
RELAY_UNLOCK_S = 0.5
#: (member_id, name, enrolment photos, photo shown at the door). Obama is enrolled from both of his
#: photos: obama_2 against obama_1 alone sits at the edge of the face-alone distance
#: (docs/RECOGNITION.md), and this benchmark times face entries, so every appearance must be one.
#: The fixtures hold one Biden photo: the door sees the enrolled one.
FACE_MEMBERS = (
    ("m-obama", "Barack Obama", ("obama_1.jpg", "obama_2.jpg"), "obama_2.jpg"),
    ("m-biden", "Joe Biden", ("biden_1.jpg",), "biden_1.jpg"),
)
QR_MEMBER = ("m-zhang", "张三")
PAD_PREFIX = "pad-"
INSERT_BATCH = 2_000
COLD_PAUSE_S = 0.4  # idle before each cold floor call (a door idles between faces)
SEED = 20262


# ------------------------------------------------------------------------------------ settings


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """How much to measure. The defaults keep a full run at about 2-3 minutes on the 2-core box."""

    face_appearances: int = 8
    qr_appearances: int = 8
    face_s: float = 3.0  # a face in view (the first ~0.7 s walking up; the door judges three frames)
    qr_s: float = 1.2  # a QR card in view
    gap_s: float = 0.8  # empty door between appearances (> lost_after_s, so each is new)
    floor_repeats: int = 3
    cpu_settle_s: float = 3.0  # after READY, before the CPU window opens
    cpu_window_s: float = 20.0
    roster_size: int = 10_000
    memory_runs: int = 2  # `yizhan run` children per roster, interleaved
    keep_dir: Path | None = None  # keep the work folder here (default: a temporary one, removed)

    @classmethod
    def quick(cls) -> BenchConfig:
        """A quick look (~1 minute): too few samples to publish."""
        return cls(
            face_appearances=3,
            qr_appearances=3,
            floor_repeats=2,
            cpu_window_s=8.0,
            roster_size=2_000,
            memory_runs=1,
        )


# --------------------------------------------------------------------------------- the station


def station_config(data_dir: Path, **sections: Mapping[str, Any]) -> Config:
    """A station on mock pins with no API or MQTT: the door path only."""
    door = {"gpio": {"pin_factory": "mock"}, "relay": {"unlock_s": RELAY_UNLOCK_S}}
    return parse_config(
        {
            "station": {"station_id": STATION_ID},
            "storage": {"data_dir": str(data_dir)},
            "door": door,
            "api": {"enabled": False},
            "mqtt": {"enabled": False},
            **sections,
        }
    )


def write_cli_config(path: Path, data_dir: Path, source: Path) -> Path:
    """The TOML file the `yizhan run` child reads: our data folder, our video, mock pins, quiet logs."""
    lines = [
        "[station]",
        f"station_id = {json.dumps(STATION_ID)}",
        "[storage]",
        f"data_dir = {json.dumps(str(data_dir))}",
        "[camera]",
        f"source = {json.dumps(str(source))}",
        "realtime = true",
        "[door.gpio]",
        'pin_factory = "mock"',
        "[door.relay]",
        f"unlock_s = {RELAY_UNLOCK_S}",
        "[logging]",
        'level = "WARNING"',
        'format = "text"',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True, slots=True)
class Prepared:
    """A station's enrolled members and what the video shows of them."""

    encodings: npt.NDArray[np.float32]  # the enrolled face templates, one row per face member
    crops: list[tuple[str, Bgr]]  # (member_id, head-and-shoulders crop shown at the door)


def prepare_station(station: Station) -> Prepared:
    """Keys, the two fixture faces enrolled (as `yizhan enroll` does), one QR-only member."""
    station.init_keys()
    encodings: list[npt.NDArray[np.float32]] = []
    crops: list[tuple[str, Bgr]] = []
    for member_id, name, enrol_photos, door_photo in FACE_MEMBERS:
        outcome = station.enroll(
            member_id=member_id, name=name, photos=[FIXTURES / photo for photo in enrol_photos]
        )
        encodings.extend(p.encoding for p in outcome.plan.photos if p.encoding is not None)
        rgb = read_photo(FIXTURES / door_photo)
        detections = station.photo_pipeline.detect(rgb)
        if not detections:
            raise RuntimeError(f"no face found in fixture {door_photo}")
        crops.append((member_id, face_crop(rgb, detections[0].box)))
    station.add_member(member_id=QR_MEMBER[0], name=QR_MEMBER[1])
    return Prepared(np.stack(encodings).astype(np.float32), crops)


def qr_image(token: str) -> Bgr:
    """A token on a card, as the demo shows one."""
    return qr_card(render_image(token, scale=3, border=2))


# ------------------------------------------------------------------------------------- the video


@dataclass(frozen=True, slots=True)
class Appearance:
    """One scene of the video: which frames it spans and who is in it."""

    kind: str  # "face" | "qr" | "empty"
    member_id: str | None
    first_frame: int
    frames: int


@dataclass(frozen=True, slots=True)
class VideoPlan:
    scenes: list[Scene]
    appearances: list[Appearance]

    @property
    def frames(self) -> int:
        return sum(a.frames for a in self.appearances)

    def at(self, index: int) -> Appearance | None:
        """The scene frame `index` belongs to."""
        for appearance in self.appearances:
            if appearance.first_frame <= index < appearance.first_frame + appearance.frames:
                return appearance
        return None


def plan_video(items: Sequence[tuple[str, str | None, Bgr | None, float]], fps: float = FPS) -> VideoPlan:
    """Scenes from (kind, member_id, image, seconds), with the frame span of each.

    Frame counts follow `edge.demo_video.render_scene` (round(seconds * fps), at least one).
    """
    scenes, appearances, first = [], [], 0
    for kind, member_id, image, seconds in items:
        frames = max(1, round(seconds * fps))
        scenes.append(Scene(kind, image, seconds, member_id or ""))
        appearances.append(Appearance(kind, member_id, first, frames))
        first += frames
    return VideoPlan(scenes, appearances)


def latency_video_plan(prepared: Prepared, tokens: Sequence[str], config: BenchConfig) -> VideoPlan:
    """Faces (members alternating) and QR cards in turn, each followed by an empty door."""
    items: list[tuple[str, str | None, Bgr | None, float]] = [("empty", None, None, 1.0)]
    for i in range(max(config.face_appearances, len(tokens))):
        if i < config.face_appearances:
            member_id, crop = prepared.crops[i % len(prepared.crops)]
            items += [("face", member_id, crop, config.face_s), ("empty", None, None, config.gap_s)]
        if i < len(tokens):
            items += [
                ("qr", QR_MEMBER[0], qr_image(tokens[i]), config.qr_s),
                ("empty", None, None, config.gap_s),
            ]
    return plan_video(items)


def read_frames(video: Path, indices: Sequence[int]) -> dict[int, Bgr]:
    """Frames of `video` by 0-based index, decoded as the camera thread decodes them."""
    wanted, found = set(indices), dict[int, Bgr]()
    capture = cv2.VideoCapture(str(video))
    try:
        index = 0
        while len(found) < len(wanted):
            ok, image = capture.read()
            if not ok:
                break
            if index in wanted:
                found[index] = np.asarray(image, np.uint8)
            index += 1
    finally:
        capture.release()
    return found


# ---------------------------------------------------------------------------------- latency run


def rising_edge_times(states: Sequence[Any], base: float) -> list[float]:
    """Monotonic times at which a gpiozero MockPin went from low to high.

    `states` is `MockPin.states`: PinState(timestamp, state), where each timestamp is the time
    since the previous change and the first entry is the state at `clear_states()`, which ran at
    `base` (time.monotonic, the clock gpiozero's mock module uses).
    """
    edges, now = [], base
    previous = bool(states[0].state) if states else False
    for entry in states[1:]:
        now += float(entry.timestamp)
        if entry.state and not previous:
            edges.append(now)
        previous = bool(entry.state)
    return edges


def pair_edges(captured: Sequence[float], edges: Sequence[float]) -> list[float | None]:
    """For each capture time (ascending), the first unused rising edge at or after it, or None."""
    paired: list[float | None] = []
    position = 0
    for at in captured:
        while position < len(edges) and edges[position] < at:
            position += 1
        if position < len(edges):
            paired.append(edges[position])
            position += 1
        else:
            paired.append(None)
    return paired


def wait_for_camera_up(daemon: Any, timeout: float = 30.0) -> float:
    """`since_mono` of the camera's "up" state: when the first frame of the file was read."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = daemon.camera.status if daemon.camera is not None else None
        if status is not None and status.state == "up":
            return float(status.since_mono)
        if status is not None and status.state in ("down", "ended"):
            raise RuntimeError(f"camera {status.state} ({status.reason}) before the bench saw it up")
        time.sleep(0.002)
    raise RuntimeError("camera not up within 30 s")


def time_floor(
    pipeline: FacePipeline,
    frames: Sequence[npt.NDArray[np.uint8]],
    repeats: int,
    pause_s: float = COLD_PAUSE_S,
) -> dict[str, Any]:
    """One detection plus one observation (landmarks, quality, encoding) per RGB frame, `repeats` passes.

    Each frame is timed twice in a row after `pause_s` of sleep: the first pair is "cold" (a door
    meets each face after idling, when the model's weights have left the CPU caches), the second
    "hot", the usual back-to-back figure and the floor proper. Interleaved, so that whatever else the
    machine does hits both alike. After one untimed warm-up call; a frame where no face is found or
    no encoding is made is counted in `misses` and left out (the daemon's decision frames had one).
    """
    if frames:
        warm = pipeline.detect(frames[0])
        if warm:
            pipeline.observe(frames[0], warm[0])
    times: dict[str, dict[str, list[float]]] = {
        kind: {"detect": [], "encode": [], "total": []} for kind in ("hot", "cold")
    }
    misses = 0
    for _ in range(repeats):
        for rgb in frames:
            if pause_s > 0:
                time.sleep(pause_s)
            for kind in ("cold", "hot"):
                start = time.perf_counter()
                detections = pipeline.detect(rgb)
                detected = time.perf_counter()
                observation = pipeline.observe(rgb, detections[0]) if detections else None
                done = time.perf_counter()
                if observation is None or observation.encoding is None:
                    misses += 1
                    continue
                times[kind]["detect"].append((detected - start) * 1000.0)
                times[kind]["encode"].append((done - detected) * 1000.0)
                times[kind]["total"].append((done - start) * 1000.0)
    return {
        **{stage: summary(values) for stage, values in times["hot"].items()},
        "cold": {stage: summary(values) for stage, values in times["cold"].items()},
        "pause_s": pause_s,
        "frames": len(frames),
        "misses": misses,
    }


def time_qr_floor(station: Station, frames: Sequence[Bgr], repeats: int) -> dict[str, Any]:
    """The QR path alone on each frame: grey conversion + decode, then the token check."""
    decode, check, total, misses = [], [], [], 0
    for _ in range(repeats):
        for bgr in frames:
            start = time.perf_counter()
            grey = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), np.uint8)
            payloads = decode_qr_payloads(grey)
            decoded = time.perf_counter()
            if not payloads:
                misses += 1
                continue
            result = station.check_qr_text(payloads[0])
            done = time.perf_counter()
            if result.decision is not Decision.QR_OK:
                misses += 1
                continue
            decode.append((decoded - start) * 1000.0)
            check.append((done - decoded) * 1000.0)
            total.append((done - start) * 1000.0)
    return {
        "decode": summary(decode),
        "check": summary(check),
        "total": summary(total),
        "frames": len(frames),
        "misses": misses,
    }


def _entry_rows(
    events: Sequence[Mapping[str, Any]], edges: Sequence[float], plan: VideoPlan, up_since: float
) -> list[dict[str, Any]]:
    """One row per entry event: daemon latency, pin latency, frame index and onset latency."""
    entries = sorted((e for e in events if e["kind"] == "entry"), key=lambda e: e["ts_mono"])
    period = 1.0 / FPS
    rows = []
    for event, edge in zip(entries, pair_edges([e["ts_mono"] for e in entries], edges), strict=True):
        frame = round((event["ts_mono"] - up_since) / period)
        appearance = plan.at(frame)
        latency = event["latency_ms"]
        row: dict[str, Any] = {
            "method": event["method"],
            "member_id": event["member_id"],
            "latency_ms": latency,
            "pin_latency_ms": None if edge is None else (edge - event["ts_mono"]) * 1000.0,
            "frame": frame,
            "in_loop_ms": None,
        }
        if event["method"] == "face":
            # The loop's own stage times for this frame: the same two calls as the floor.
            timings = event["details"].get("timings_ms") or {}
            row["in_loop_ms"] = timings.get("total")
            row["in_loop_detect_ms"] = timings.get("detect")
            if "encode" in timings:
                row["in_loop_encode_ms"] = sum(
                    timings.get(k, 0.0) for k in ("landmarks", "quality", "encode")
                )
        if appearance is not None and latency is not None:
            # Frames are paced at exactly one period apart, so the onset frame was captured
            # `frames_into` periods before the decided one.
            frames_into = frame - appearance.first_frame
            row["frames_into_appearance"] = frames_into
            row["onset_latency_ms"] = frames_into * period * 1000.0 + latency
        rows.append(row)
    return rows


def _method_summary(rows: Sequence[Mapping[str, Any]], method: str) -> dict[str, Any]:
    mine = [r for r in rows if r["method"] == method]

    def values(key: str) -> list[float]:
        return [float(r[key]) for r in mine if r.get(key) is not None]

    result = summary(values("latency_ms"))
    pin = summary(values("pin_latency_ms"))
    onset = summary(values("onset_latency_ms"))
    result.update(
        {
            "pin_p50_ms": pin["p50_ms"],
            "pin_p95_ms": pin["p95_ms"],
            "onset_p50_ms": onset["p50_ms"],
            "onset_p95_ms": onset["p95_ms"],
            "frames_into_appearance_p50": None
            if not values("frames_into_appearance")
            else float(np.median(values("frames_into_appearance"))),
        }
    )
    if method == "face":
        in_loop = values("in_loop_ms")
        rest = [
            float(r["latency_ms"]) - float(r["in_loop_ms"]) for r in mine if r.get("in_loop_ms") is not None
        ]
        result["in_loop_pipeline_p50_ms"] = summary(in_loop)["p50_ms"]
        result["in_loop_detect_p50_ms"] = summary(values("in_loop_detect_ms"))["p50_ms"]
        result["in_loop_encode_p50_ms"] = summary(values("in_loop_encode_ms"))["p50_ms"]
        result["outside_pipeline_p50_ms"] = summary(rest)["p50_ms"]
    return result


def run_latency(model: FaceModel, work: Path, config: BenchConfig, name: str = "latency") -> dict[str, Any]:
    """Face and QR entries through the real daemon at 15 fps; then the floor on the same frames."""
    from gpiozero.pins.mock import MockFactory

    from edge.app import RunOptions, StationDaemon

    folder = work / name
    station_cfg = station_config(folder, access={"cooldown_s": 0.0})
    station = Station(station_cfg, env={})
    station.face_model = model  # one loaded dlib model for the whole bench
    try:
        prepared = prepare_station(station)
        tokens = [station.issue_qr(member_id=QR_MEMBER[0], ttl_s=3600) for _ in range(config.qr_appearances)]
        plan = latency_video_plan(prepared, tokens, config)
        video = folder / "latency.avi"
        frames_written, seconds = write_video(video, plan.scenes, fps=FPS)
        factory = MockFactory()
        relay = factory.pin(station_cfg.door.relay.pin)
        daemon = StationDaemon(
            station_cfg,
            RunOptions(
                exit_at_end=True, realtime=True, camera_source=str(video), with_api=False, with_sync=False
            ),
            pin_factory=factory,
            station=station,
        )
        try:
            daemon.start()
            before = time.monotonic()
            relay.clear_states()  # nothing can be granted yet: the video opens on an empty door
            after = time.monotonic()
            up_since = wait_for_camera_up(daemon)
            if not daemon.stop_event.wait(timeout=seconds + 60.0):
                raise RuntimeError("the daemon did not finish the latency video")
            time.sleep(RELAY_UNLOCK_S + 0.2)  # let the last window close, so the pin history is whole
            assert daemon.camera is not None and daemon.loop is not None
            camera = daemon.camera.status
            stats = daemon.loop.stats
        finally:
            daemon.stop()
        with station.sessions() as session:
            events = [event_store.event_to_json(e) for e in event_store.list_events(session, limit=100_000)]
        edges = rising_edge_times(relay.states, (before + after) / 2.0)
        rows = _entry_rows(events, edges, plan, up_since)
        disagreement = [
            abs(r["pin_latency_ms"] - r["latency_ms"])
            for r in rows
            if r["pin_latency_ms"] is not None and r["latency_ms"] is not None
        ]
        face_rows = [r for r in rows if r["method"] == "face"]
        qr_rows = [r for r in rows if r["method"] == "qr"]
        decided = read_frames(video, [r["frame"] + d for r in rows for d in (-1, 0, 1)])
        face_frames = [
            np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), np.uint8)
            for image in _decision_frames(station.pipeline, decided, [r["frame"] for r in face_rows])
        ]
        qr_frames = [decided[r["frame"]] for r in qr_rows if r["frame"] in decided]
        floor = time_floor(station.pipeline, face_frames, config.floor_repeats)
        qr_floor = time_qr_floor(station, qr_frames, config.floor_repeats)
    finally:
        station.close()
    face = _method_summary(rows, "face")
    qr = _method_summary(rows, "qr")
    others = [
        {"kind": e["kind"], "method": e["method"], "member_id": e["member_id"], "reason": e["reason"]}
        for e in events
        if e["kind"] not in ("entry", "station_started", "station_stopped")
    ]
    return {
        "face": face,
        "qr": qr,
        "expected": {"face": config.face_appearances, "qr": config.qr_appearances},
        "other_events": others,
        "relay_rising_edges": len(edges),
        "pin_vs_daemon_max_abs_ms": round(max(disagreement), 3) if disagreement else None,
        "unpaired_entries": sum(1 for r in rows if r["pin_latency_ms"] is None),
        "floor_ms": {
            "detect": floor["detect"]["p50_ms"],
            "encode": floor["encode"]["p50_ms"],
            "total": floor["total"]["p50_ms"],
            "n": floor["total"]["n"],
            "misses": floor["misses"],
            "detail": floor,
            "cold": {
                "pause_s": floor["pause_s"],
                "detect": floor["cold"]["detect"]["p50_ms"],
                "encode": floor["cold"]["encode"]["p50_ms"],
                "total": floor["cold"]["total"]["p50_ms"],
                "n": floor["cold"]["total"]["n"],
            },
        },
        "qr_floor_ms": {
            "decode": qr_floor["decode"]["p50_ms"],
            "check": qr_floor["check"]["p50_ms"],
            "total": qr_floor["total"]["p50_ms"],
            "n": qr_floor["total"]["n"],
            "misses": qr_floor["misses"],
        },
        "ratio_face_to_floor": ratio(face["p50_ms"], floor["total"]["p50_ms"]),
        "ratio_face_to_cold_floor": ratio(face["p50_ms"], floor["cold"]["total"]["p50_ms"]),
        "ratio_qr_to_floor": ratio(qr["p50_ms"], qr_floor["total"]["p50_ms"]),
        "entries": [{k: _round(v) for k, v in r.items()} for r in rows],
        "video": {"frames": frames_written, "seconds": round(seconds, 1), "fps": FPS},
        "camera": {
            "frames_read": camera.frames_read,
            "frames_dropped": camera.frames_dropped,
            "frames_skipped": camera.frames_skipped,
        },
        "loop": {
            "frames": stats.frames,
            "detections": stats.detections,
            "encodings": stats.encodings,
            "qr_checks": stats.qr_checks,
            "decisions": stats.decisions,
        },
        "data_fs": filesystem_of(folder),
    }


def _decision_frames(pipeline: FacePipeline, decoded: Mapping[int, Bgr], indices: Sequence[int]) -> list[Bgr]:
    """The frame at each index, or its neighbour if the index estimate is off by one.

    The daemon found a face on the frame it decided on; the index comes from its capture time and
    could be one off after a stall, so a frame without a face is swapped for a neighbour that has one.
    """
    chosen = []
    for index in indices:
        for candidate in (index, index + 1, index - 1):
            image = decoded.get(candidate)
            if image is not None and pipeline.detect(
                np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), np.uint8)
            ):
                chosen.append(image)
                break
    return chosen


def _round(value: Any) -> Any:
    return round(value, 2) if isinstance(value, float) else value


def filesystem_of(path: Path) -> str | None:
    """The file system type holding `path` (SQLite's fsync costs differ: tmpfs, ext4, an SD card)."""
    try:
        target = str(path.resolve())
        best, kind = "", None
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and (target == parts[1] or target.startswith(parts[1].rstrip("/") + "/")):
                if len(parts[1]) >= len(best):
                    best, kind = parts[1], parts[2]
        return kind
    except OSError:
        return None


# --------------------------------------------------------------------------- the CLI in a child


def yizhan_command() -> list[str]:
    """The installed `yizhan` script beside this interpreter, else `python -m edge.cli`."""
    script = Path(sys.executable).with_name("yizhan")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "edge.cli"]


def _proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of every thread of `pid` so far (None once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime: fields 14 and 15 of stat


def _proc_memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of `pid` in MiB (empty once it is gone)."""
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = round(int(value.split()[0]) / 1024.0, 1)
    except (OSError, ValueError, IndexError):
        return {}
    return out


@dataclass(frozen=True, slots=True)
class ChildRun:
    """What the bench saw of one `yizhan run` child."""

    ready_s: float  # spawn to READY=1
    samples: list[dict[str, Any]]  # at the requested offsets after READY: t, cpu_s, VmRSS, VmHWM
    returncode: int | None
    stderr_tail: str


class NotifyListener:
    """Our end of $NOTIFY_SOCKET: records when READY=1 arrives and keeps the socket drained.

    Draining matters: the daemon sends WATCHDOG=1 every second, a unix datagram queue holds only
    `net.unix.max_dgram_qlen` (10 here) messages, and a full queue blocks the sender, which is the
    daemon's main thread, so it would never get to handle SIGTERM. systemd always reads; so do we.
    """

    def __init__(self, folder: Path) -> None:
        self.address = str(folder / "notify.sock")
        self.ready = threading.Event()
        self.ready_at: float | None = None
        self.messages = 0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.address)
        self._sock.settimeout(0.2)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="notify-listener", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._closed.is_set():
            try:
                message = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages += 1
            if not self.ready.is_set() and b"READY=1" in message.split(b"\n"):
                self.ready_at = time.monotonic()
                self.ready.set()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2.0)
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(self.address)


def run_cli_child(
    config_path: Path, work: Path, sample_at: Sequence[float], stop_at: float | None, timeout: float = 180.0
) -> ChildRun:
    """Start `yizhan --config C run --exit-at-end`, wait for READY, sample /proc at `sample_at`
    seconds after it, SIGTERM it at `stop_at` (None: let the video end it), and reap it."""
    stderr_path = work / f"{config_path.stem}.stderr"
    env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_USEC", "WATCHDOG_PID")}
    env["OPENBLAS_NUM_THREADS"] = "1"  # as the systemd unit sets it
    listener = NotifyListener(work)
    with contextlib.closing(listener), stderr_path.open("wb") as stderr:
        env["NOTIFY_SOCKET"] = listener.address
        spawned = time.monotonic()
        proc = subprocess.Popen(
            [*yizhan_command(), "--config", str(config_path), "run", "--exit-at-end"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            cwd=str(work),
        )
        try:
            ready = _wait_ready(listener, proc, spawned + timeout)
            samples = []
            for offset in sample_at:
                delay = ready + offset - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                cpu = _proc_cpu_s(proc.pid)
                if cpu is None or proc.poll() is not None:
                    break
                samples.append({"t": time.monotonic() - ready, "cpu_s": cpu, **_proc_memory_mb(proc.pid)})
            if stop_at is not None:
                delay = ready + stop_at - time.monotonic()
                if delay > 0 and proc.poll() is None:
                    time.sleep(delay)
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            returncode = proc.wait(timeout=max(5.0, spawned + timeout - time.monotonic()))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    tail = stderr_path.read_text(encoding="utf-8", errors="replace")[-2000:]
    return ChildRun(round(ready - spawned, 2), samples, returncode, tail)


def _wait_ready(listener: NotifyListener, proc: subprocess.Popen[bytes], deadline: float) -> float:
    """The monotonic time READY=1 arrived; raises if the child exits or times out first."""
    while not listener.ready.wait(0.1):
        if proc.poll() is not None:
            raise RuntimeError(f"yizhan run exited with {proc.returncode} before READY")
        if time.monotonic() > deadline:
            raise RuntimeError("yizhan run did not report READY in time")
    assert listener.ready_at is not None
    return listener.ready_at


# ---------------------------------------------------------------------------------------- CPU


def static_video(path: Path, seconds: float) -> Path:
    """The empty door (grey background with per-pixel sensor noise) for `seconds`."""
    write_video(path, [Scene("empty", None, seconds)], fps=FPS)
    return path


def cpu_attribution(video: Path, pipeline: FacePipeline, idle_detect_s: float) -> dict[str, Any]:
    """Process CPU ms per second of video for each step the daemon takes on a static scene.

    Replays the file here, step by step, timing each in process CPU time (so OpenCV worker threads
    count): per frame the camera's decode, the loop's grey conversion, QR decode and change check;
    per `idle_detect_s` the colour conversion and face detection (the 400 px pass and, finding no
    face, the 640 px fallback). Python glue, threads waking and queue hand-overs are not replayed:
    they are the measured total minus this sum.
    """
    per_frame: dict[str, list[float]] = {"video_decode": [], "grey": [], "qr_decode": [], "change": []}
    detect: list[float] = []
    change = ChangeDetector()
    changed = frames = 0
    capture = cv2.VideoCapture(str(video))
    try:
        while True:
            start = time.process_time()
            ok, image = capture.read()
            if not ok:
                break
            t1 = time.process_time()
            grey = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), np.uint8)
            t2 = time.process_time()
            decode_qr_payloads(grey)
            t3 = time.process_time()
            result = change.update(grey)
            t4 = time.process_time()
            per_frame["video_decode"].append(t1 - start)
            per_frame["grey"].append(t2 - t1)
            per_frame["qr_decode"].append(t3 - t2)
            per_frame["change"].append(t4 - t3)
            changed += int(result.changed and frames > 0)
            if frames % max(1, round(idle_detect_s * FPS)) == 0:
                t5 = time.process_time()
                rgb = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), np.uint8)
                pipeline.detect(rgb)
                detect.append(time.process_time() - t5)
            frames += 1
    finally:
        capture.release()
    per_call = {name: float(np.median(values)) * 1000.0 for name, values in per_frame.items() if values}
    detect_ms = float(np.median(detect)) * 1000.0 if detect else 0.0
    per_second = {name: ms * FPS for name, ms in per_call.items()}
    per_second["idle_face_detection"] = detect_ms / idle_detect_s
    return {
        "ms_per_call": {
            **{k: round(v, 3) for k, v in per_call.items()},
            "idle_face_detection": round(detect_ms, 2),
        },
        "cpu_ms_per_s": {k: round(v, 1) for k, v in per_second.items()},
        "sum_percent": round(sum(per_second.values()) / 10.0, 1),
        "frames": frames,
        "changed_frames": changed,
    }


def run_cpu(model: FaceModel, work: Path, config: BenchConfig) -> dict[str, Any]:
    """`yizhan run` on a static scene at 15 fps: CPU over a window after start-up, and its attribution."""
    folder = work / "cpu"
    folder.mkdir(parents=True)
    seconds = config.cpu_settle_s + config.cpu_window_s + 4.0
    video = static_video(folder / "static.avi", seconds)
    data = folder / "data"
    config_path = write_cli_config(folder / "cpu.toml", data, video)
    child = run_cli_child(
        config_path,
        folder,
        sample_at=(config.cpu_settle_s, config.cpu_settle_s + config.cpu_window_s),
        stop_at=config.cpu_settle_s + config.cpu_window_s + 0.2,
    )
    if len(child.samples) < 2:
        raise RuntimeError(f"yizhan run ended before the CPU window closed:\n{child.stderr_tail}")
    first, last = child.samples[0], child.samples[-1]
    window = last["t"] - first["t"]
    percent = (last["cpu_s"] - first["cpu_s"]) / window * 100.0
    station = Station(station_config(data), env={})
    station.face_model = model
    try:
        attribution = cpu_attribution(video, station.pipeline, station.config.daemon.idle_detect_s)
        with station.sessions() as session:
            kinds = [e.kind for e in event_store.list_events(session, limit=100_000)]
    finally:
        station.close()
    return {
        "percent_of_one_core": round(percent, 1),
        "seconds_measured": round(window, 2),
        "cpu_seconds": round(last["cpu_s"] - first["cpu_s"], 2),
        "target_percent": TARGET_CPU_PERCENT,
        "met": percent <= TARGET_CPU_PERCENT,
        "ready_s": child.ready_s,
        "settle_s": config.cpu_settle_s,
        "returncode": child.returncode,
        "events": sorted(set(kinds)),
        "attribution": attribution,
        "unattributed_percent": round(percent - attribution["sum_percent"], 1),
    }


# -------------------------------------------------------------------------------------- memory


def add_padding_members(station: Station, vectors: npt.NDArray[np.float32]) -> float:
    """Insert one member with one template per vector through the member store; returns seconds.

    The store's own functions (validation, encryption, one SAVEPOINT each) in transactions of
    INSERT_BATCH members, and one roster version bump at the end, as a bulk import would do.
    """
    started = time.perf_counter()
    for first in range(0, len(vectors), INSERT_BATCH):
        with station.sessions() as session, session.begin():
            for i in range(first, min(first + INSERT_BATCH, len(vectors))):
                member_id = f"{PAD_PREFIX}{i:06d}"
                member_store.add_member(
                    session, member_id=member_id, name=f"Member {i:06d}", consent_face=True
                )
                member_store.add_templates(
                    session,
                    station.cipher,
                    member_id=member_id,
                    encodings=[vectors[i]],
                    qualities=[{}],
                    sources=[None],
                )
    with station.sessions() as session, session.begin():
        version = int(member_store.get_state(session, ROSTER_VERSION_KEY, "0") or 0)
        member_store.set_state(session, ROSTER_VERSION_KEY, str(version + 1))
    return time.perf_counter() - started


def _rss_run(work: Path, name: str, data: Path, video: Path, plan: VideoPlan, token: str) -> dict[str, Any]:
    """One `yizhan run` child over the face + QR video; memory after start and at the video's end.

    Afterwards, the token check alone (`Station.check_qr_text`, what the loop calls per new QR code)
    is timed here on the same data, to tell a roster-size cost in it from noise in one entry.
    """
    config_path = write_cli_config(work / f"{name}.toml", data, video)
    seconds = plan.frames / FPS
    # The last sample is taken 0.4 s before the video ends; on a loaded box the child can reach the
    # end first (READY comes after the camera started), so one is also taken at 60 % of the video
    # (the latest one taken counts as "at the end"), and the run is repeated once before giving up.
    offsets = sorted({0.3, max(0.4, 0.6 * seconds), max(0.5, seconds - 0.4)})
    for _attempt in range(2):
        child = run_cli_child(config_path, work, sample_at=offsets, stop_at=None)
        if len(child.samples) >= 2:
            break
    else:
        raise RuntimeError(f"yizhan run ({name}) ended before it was sampled:\n{child.stderr_tail}")
    station = Station(station_config(data), env={})
    try:
        with station.sessions() as session:
            events = [event_store.event_to_json(e) for e in event_store.list_events(session, limit=100_000)]
            members = len(member_store.list_members(session))
            templates = sum(member_store.template_counts(session).values())
        qr_check = time_calls(lambda: station.check_qr_text(token), 5)
    finally:
        station.close()
    entries = {e["method"]: e["latency_ms"] for e in events if e["kind"] == "entry"}
    start, end = child.samples[0], child.samples[-1]
    return {
        "members": members,
        "templates": templates,
        "ready_s": child.ready_s,
        "rss_after_start_mb": start.get("VmRSS"),
        "rss_end_mb": end.get("VmRSS"),
        "peak_mb": end.get("VmHWM"),
        "face_entry_latency_ms": _round(entries.get("face")),
        "qr_entry_latency_ms": _round(entries.get("qr")),
        "qr_check_ms": round(float(np.median(qr_check)), 2),
        "decisions": [
            (e["kind"], e["method"], e["member_id"], e["reason"])
            for e in events
            if e["kind"] in ("entry", "refused")
        ],
        "returncode": child.returncode,
    }


def run_memory(model: FaceModel, work: Path, config: BenchConfig) -> dict[str, Any]:
    """Peak and resident memory of `yizhan run` with the fixture roster and with `roster_size` more."""
    folder = work / "memory"
    base_data = folder / "base"
    station = Station(station_config(base_data), env={})
    station.face_model = model
    try:
        prepared = prepare_station(station)
        token = station.issue_qr(member_id=QR_MEMBER[0], ttl_s=3600)
    finally:
        station.close()
    member_id, crop = prepared.crops[0]
    plan = plan_video(
        [
            ("empty", None, None, 1.0),
            ("face", member_id, crop, config.face_s),
            ("empty", None, None, config.gap_s),
            ("qr", QR_MEMBER[0], qr_image(token), config.qr_s),
            ("empty", None, None, 1.0),
        ]
    )
    video = folder / "door.avi"
    write_video(video, plan.scenes, fps=FPS)
    big_data = folder / f"roster_{config.roster_size}"
    shutil.copytree(base_data, big_data)
    big = Station(station_config(big_data), env={})
    try:
        insert_s = add_padding_members(
            big, padding_vectors(prepared.encodings, config.roster_size, seed=SEED)
        )
    finally:
        big.close()
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "large": []}
    for _ in range(config.memory_runs):  # interleaved: background load hits both rosters alike
        runs["baseline"].append(_rss_run(folder, "baseline", base_data, video, plan, token))
        runs["large"].append(_rss_run(folder, f"roster_{config.roster_size}", big_data, video, plan, token))
    baseline, large = _merge_rss_runs(runs["baseline"]), _merge_rss_runs(runs["large"])
    return {
        "baseline": baseline,
        "roster_10k": large,
        "roster_size": config.roster_size,
        "video_s": round(plan.frames / FPS, 1),
        "insert_s": round(insert_s, 1),
        "ratio_peak": ratio(large["peak_mb"], baseline["peak_mb"]),
        "delta_peak_mb": None
        if large["peak_mb"] is None or baseline["peak_mb"] is None
        else round(large["peak_mb"] - baseline["peak_mb"], 1),
    }


def _merge_rss_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several runs of one roster: the highest peak (what to size a box for), medians of the rest.

    The peak moves by ~10 MB between identical runs (when the garbage collector runs relative to
    the roster load and the QR check's member list), so one run is not enough.
    """

    def median(key: str) -> float | None:
        values = [float(r[key]) for r in runs if r.get(key) is not None]
        return round(float(np.median(values)), 2) if values else None

    peaks = [r["peak_mb"] for r in runs if r.get("peak_mb") is not None]
    return {
        "members": runs[0]["members"],
        "templates": runs[0]["templates"],
        "runs": len(runs),
        "ready_s": median("ready_s"),
        "rss_after_start_mb": median("rss_after_start_mb"),
        "rss_end_mb": median("rss_end_mb"),
        "peak_mb": max(peaks) if peaks else None,
        "peak_runs_mb": peaks,
        "face_entry_latency_ms": [r["face_entry_latency_ms"] for r in runs],
        "qr_entry_latency_ms": [r["qr_entry_latency_ms"] for r in runs],
        "qr_check_ms": median("qr_check_ms"),
        "decisions": runs[0]["decisions"],
        "returncodes": [r["returncode"] for r in runs],
    }


# ------------------------------------------------------------------------------------------- run


def run_encoder_latency(
    dlib_latency: Mapping[str, Any], onnx: FaceModel | None, why_not: str, work: Path, config: BenchConfig
) -> dict[str, Any]:
    """The same latency run on the ONNX evaluation model, right after dlib's (same video, same
    daemon, same machine), and the ratio of the face entries' p50 (target: ONNX at least 3x faster)."""
    rows: dict[str, Any] = {"dlib": _encoder_row(dlib_latency, MODEL_DLIB)}
    if onnx is None:
        return {**rows, "onnx": None, "not_measured": why_not, "speedup_p50": None, "target": 3.0}
    t, load = time.perf_counter(), BoxLoad()
    latency = run_latency(onnx, work, config, name="latency-onnx")
    rows["onnx"] = _encoder_row(latency, onnx.name)
    rows["onnx"]["backend"] = getattr(getattr(onnx, "info", None), "backend", None)
    rows["onnx"]["duration_s"] = round(time.perf_counter() - t, 1)
    rows["onnx"]["other_processes_cpu_percent"] = load.others_percent()
    rows["onnx"]["entries_expected"] = latency["expected"]
    rows["onnx"]["other_events"] = latency["other_events"]
    speedup = ratio(dlib_latency["face"]["p50_ms"], latency["face"]["p50_ms"])
    encode_speedup = ratio(rows["dlib"]["in_loop_encode_p50_ms"], rows["onnx"]["in_loop_encode_p50_ms"])
    return {
        **rows,
        "speedup_p50": speedup,
        "encode_speedup_p50": encode_speedup,
        "target": 3.0,
        "met": speedup is not None and speedup >= 3.0,
    }


def _encoder_row(latency: Mapping[str, Any], model: str) -> dict[str, Any]:
    face, floor = latency["face"], latency["floor_ms"]
    return {
        "model": model,
        "face_n": face["n"],
        "face_p50_ms": face["p50_ms"],
        "face_p95_ms": face["p95_ms"],
        "in_loop_detect_p50_ms": face.get("in_loop_detect_p50_ms"),
        "in_loop_encode_p50_ms": face.get("in_loop_encode_p50_ms"),
        "floor_detect_ms": floor["detect"],
        "floor_encode_ms": floor["encode"],
        "floor_total_ms": floor["total"],
        "qr_p50_ms": latency["qr"]["p50_ms"],
    }


def _eval_model(wanted: bool) -> tuple[FaceModel | None, str]:
    """The ONNX evaluation model (`make eval-model`), or None and why it is not measured."""
    if not wanted:
        return None, "skipped (--no-onnx)"
    from bench.eval_model import find_eval_model
    from recognizer.onnx_encoder import OnnxFaceModel

    path, why = find_eval_model()
    return (None, why) if path is None else (OnnxFaceModel(path), "")


def run_benchmark(
    config: BenchConfig, model: FaceModel | None = None, *, onnx: bool = True
) -> dict[str, Any]:
    """Latency (dlib, then the ONNX evaluation model when present), CPU and memory, in that order;
    returns the JSON-ready result."""
    if model is None:
        from recognizer.encoder import DlibFaceModel

        model = DlibFaceModel()
    onnx_model, why_not = _eval_model(onnx)
    started = time.perf_counter()
    durations: dict[str, float] = {}
    others: dict[str, float | None] = {}
    work = Path(tempfile.mkdtemp(prefix="yizhan-bench-door-")) if config.keep_dir is None else config.keep_dir
    work.mkdir(parents=True, exist_ok=True)
    try:
        t, load = time.perf_counter(), BoxLoad()
        latency = run_latency(model, work, config)
        durations["latency"], others["latency"] = round(time.perf_counter() - t, 1), load.others_percent()
        by_encoder = run_encoder_latency(latency, onnx_model, why_not, work, config)
        t, load = time.perf_counter(), BoxLoad()
        cpu = run_cpu(model, work, config)
        durations["cpu"], others["cpu"] = round(time.perf_counter() - t, 1), load.others_percent()
        t, load = time.perf_counter(), BoxLoad()
        memory = run_memory(model, work, config)
        durations["memory"], others["memory"] = round(time.perf_counter() - t, 1), load.others_percent()
    finally:
        if config.keep_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    durations["total"] = round(time.perf_counter() - started, 1)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    return {
        "benchmark": "bench.door",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "other_processes_cpu_percent": others,
        "settings": {**settings, "fps": FPS, "relay_unlock_s": RELAY_UNLOCK_S},
        "latency": latency,
        "latency_by_encoder": by_encoder,
        "cpu_static_15fps": cpu,
        "rss_mb": memory,
        "durations_s": durations,
    }


class BoxLoad:
    """CPU the rest of the machine used during a phase, in percent of one core.

    Busy time of all CPUs (/proc/stat, steal included) minus this process's and its reaped
    children's CPU time. Other work on a 2-core box slows every number here, so each phase reports
    it: a figure measured beside someone else's benchmark is not this software's.
    """

    def __init__(self) -> None:
        self._busy, self._own, self._at = _box_busy_s(), _own_cpu_s(), time.monotonic()

    def others_percent(self) -> float | None:
        busy = _box_busy_s()
        if busy is None or self._busy is None:
            return None
        elapsed = time.monotonic() - self._at
        other = (busy - self._busy) - (_own_cpu_s() - self._own)
        return round(max(0.0, other) / elapsed * 100.0, 1) if elapsed > 0 else None


def _box_busy_s() -> float | None:
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


# ------------------------------------------------------------------------------------- output


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _ms_list(values: Sequence[float | None]) -> str:
    return ", ".join(_ms(v) for v in values)


def render_markdown(result: Mapping[str, Any], command: str) -> str:
    """The docs/BENCHMARKS.md section, markers included."""
    m, lat, cpu, mem = result["machine"], result["latency"], result["cpu_static_15fps"], result["rss_mb"]
    face, qr, floor, qr_floor = lat["face"], lat["qr"], lat["floor_ms"], lat["qr_floor_ms"]
    att = cpu["attribution"]
    base, big = mem["baseline"], mem["roster_10k"]
    yes = {True: "yes", False: "**no**"}
    labels = {
        "video_decode": "MJPG decode of each frame (camera thread)",
        "grey": "grey conversion of each frame",
        "qr_decode": "QR decode of each frame (zxing-cpp)",
        "change": "change / brightness check of each frame",
        "idle_face_detection": "face detection once per idle_detect_s (400 px, then the 640 px fallback)",
    }
    lines = [
        MARK_START,
        "## Door: entry latency, CPU at rest, memory with a large roster",
        "",
        f"Measured {result['date']} with `{command}`. Machine: {m['cpu']}, {m['cores']} cores, {m['os']}; "
        f"Python {m['python']}, dlib {m['dlib']}, OpenCV {m['opencv']}, zxing-cpp {m['zxing_cpp']}; "
        f"OPENBLAS_NUM_THREADS={m['openblas_num_threads']}. Other processes on the box used "
        f"{_others_text(result['other_processes_cpu_percent'])} of one core during the phases (from "
        "/proc/stat; the run's own CPU subtracted). Medians and ratios are what to compare between "
        "machines; the absolute times are this box's. Run time: "
        f"{result['durations_s']['total']} s.",
        "",
        "### Latency: frame captured to relay energised",
        "",
        f"The real daemon (`StationDaemon`, gpiozero mock pins, SQLite on {lat['data_fs'] or '?'} with "
        f"fsync before the relay) plays a {lat['video']['seconds']} s door video at its native "
        f"{lat['video']['fps']:.0f} fps: {lat['expected']['face']} face appearances (members alternating: "
        "obama_2, enrolled with obama_1, and biden_1, each judged on three frames) and "
        f"{lat['expected']['qr']} QR cards (a QR-only member, a new token each time), each followed by an "
        f"empty door; `[access] cooldown_s = 0`, relay `unlock_s = {result['settings']['relay_unlock_s']}` "
        "so every entry is its own pulse.",
        "",
        "| entry | n | p50 ms | p95 ms | relay pin p50 / p95 ms | from appearance onset p50 / p95 ms "
        "| decided on frame (p50) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, row in (("face", face), ("QR", qr)):
        frames_into = row["frames_into_appearance_p50"]
        lines.append(
            f"| {label} | {row['n']} | **{_ms(row['p50_ms'])}** | {_ms(row['p95_ms'])} | "
            f"{_ms(row['pin_p50_ms'])} / {_ms(row['pin_p95_ms'])} | {_ms(row['onset_p50_ms'])} / "
            f"{_ms(row['onset_p95_ms'])} | {'-' if frames_into is None else f'{frames_into:.0f}'} |"
        )
    lines += [
        "",
        f"Floor, same run, same frames ({floor['n']} calls on the {floor['detail']['frames']} face decision "
        "frames read back from the file, "
        f"{result['settings']['floor_repeats']} passes, in isolation after the run): one detection "
        f"{_ms(floor['detect'])} ms + one landmarks/quality/encoding pass {_ms(floor['encode'])} ms "
        f"= **{_ms(floor['total'])} ms** (p50). Face latency p50 / floor = "
        f"**{lat['ratio_face_to_floor']}x**. Each of those hot pairs directly followed a cold one, timed "
        f"after {floor['cold']['pause_s']} s idle (as a door meets a face): detection "
        f"{_ms(floor['cold']['detect'])} ms + {_ms(floor['cold']['encode'])} ms = "
        f"{_ms(floor['cold']['total'])} ms; latency / cold floor = {lat['ratio_face_to_cold_floor']}x.",
        "",
        f"Where the face latency goes (p50 over the entries): the loop's own timing of the same two calls "
        f"on those frames, detection {_ms(face.get('in_loop_detect_p50_ms'))} ms and landmarks/quality/"
        f"encoding {_ms(face.get('in_loop_encode_p50_ms'))} ms, {_ms(face.get('in_loop_pipeline_p50_ms'))} "
        f"ms with the match; everything else (the wait for the loop to take the frame, that frame's grey "
        f"conversion, QR decode and change check, the event commit with fsync, the relay write) "
        f"{_ms(face.get('outside_pipeline_p50_ms'))} ms. {_gap_text(face, floor)}",
        "",
        f"QR floor on its decision frames: decode {_ms(qr_floor['decode'])} ms + token check "
        f"{_ms(qr_floor['check'])} ms = {_ms(qr_floor['total'])} ms; QR latency p50 / that = "
        f"{lat['ratio_qr_to_floor']}x.",
        "",
        f"- Relay pin (independent clock): {lat['relay_rising_edges']} rising edges for "
        f"{face['n'] + qr['n']} entries; pin and daemon figures differ by at most "
        f"{lat['pin_vs_daemon_max_abs_ms']} ms.",
        f"- Other decisions in the run: {_decisions_text(lat['other_events'])}.",
        f"- Loop: {lat['loop']['frames']} frames, {lat['loop']['detections']} detections, "
        f"{lat['loop']['encodings']} encodings, {lat['loop']['qr_checks']} QR checks; camera: "
        f"frames replaced before the loop took them {lat['camera']['frames_dropped']}, "
        f"skipped by fps_limit {lat['camera']['frames_skipped']}.",
        '- "From appearance onset" counts from the first frame the person or card is in view (a face '
        "walks up over ~0.7 s, growing from 45 % to full size); it equals the headline figure when that "
        "first frame is the one decided on.",
        "",
        *_encoder_markdown(result.get("latency_by_encoder")),
        "### CPU of `yizhan run` on a static scene at 15 fps",
        "",
        f"The real CLI in a child process (`yizhan --config C run --exit-at-end`, mock pins, logging at "
        f"WARNING) on an empty-door video with sensor noise, played at 15 fps. CPU (user + system, all "
        f"threads, /proc/<pid>/stat) over {cpu['seconds_measured']} s, from {cpu['settle_s']} s after READY "
        f"(start-up to READY took {cpu['ready_s']} s and is excluded).",
        "",
        "| measured | target | met |",
        "|---|---|---|",
        f"| **{cpu['percent_of_one_core']} %** of one core | <= {cpu['target_percent']:.0f} % | "
        f"{yes[bool(cpu['met'])]} |",
        "",
        "Where it goes (the same video replayed in the bench process step by step, process CPU time):",
        "",
        "| step | CPU ms per call (median) | % of one core at 15 fps |",
        "|---|---|---|",
    ]
    for key, label in labels.items():
        if key in att["cpu_ms_per_s"]:
            lines.append(f"| {label} | {att['ms_per_call'][key]} | {att['cpu_ms_per_s'][key] / 10.0:.1f} |")
    lines += [
        f"| sum of the steps | | {att['sum_percent']} |",
        f"| not attributed (Python glue, thread wake-ups, queue hand-over, camera bookkeeping) | | "
        f"{cpu['unattributed_percent']} |",
        "",
        f"{att['changed_frames']} of {att['frames']} frames counted as changed in the replay (face "
        "detection runs on change, else on the idle timer).",
        "",
        f"### Memory of `yizhan run` with {mem['roster_size']:,} more members",
        "",
        f"The same CLI child on a {mem['video_s']} s video (one member's face, one QR card). "
        "Baseline: the fixture station (2 enrolled faces, 1 QR-only member). "
        f"Large: the same station plus {mem['roster_size']:,} members with one template each "
        "(vectors drawn like real dlib encodings, as in bench.recognition), inserted through the member "
        f"store in transactions of {INSERT_BATCH:,} ({mem['insert_s']} s). Resident memory from "
        f"/proc/<pid>/status: VmRSS just after READY and at the end of the video (medians of "
        f"{base['runs']} runs per roster, interleaved), VmHWM for the peak (the highest run; it moves by "
        "several MB between identical runs).",
        "",
        "| roster | members / templates | start to READY s | RSS after start MB | RSS at end MB "
        "| peak MB (each run) | face entry ms (each run) | QR entry ms (each run) "
        "| QR token check alone ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, row in (("baseline", base), (f"+{mem['roster_size']:,}", big)):
        lines.append(
            f"| {label} | {row['members']:,} / {row['templates']:,} | {row['ready_s']} | "
            f"{_ms(row['rss_after_start_mb'])} | {_ms(row['rss_end_mb'])} | **{_ms(row['peak_mb'])}** "
            f"({', '.join(str(p) for p in row['peak_runs_mb'])}) | "
            f"{_ms_list(row['face_entry_latency_ms'])} | "
            f"{_ms_list(row['qr_entry_latency_ms'])} | {_ms(row['qr_check_ms'])} |"
        )
    lines += [
        "",
        f"Peak ratio large / baseline: **{mem['ratio_peak']}x** (+{mem['delta_peak_mb']} MB). The entry "
        "latencies of these runs are single samples each, shown to catch a roster-size cost on the door "
        "path, not as a distribution; the token check alone is `Station.check_qr_text` timed afterwards "
        "on the same data (median of 5), which is what a QR entry pays per new code.",
        MARK_END,
    ]
    return "\n".join(lines) + "\n"


def _encoder_markdown(by_encoder: Mapping[str, Any] | None) -> list[str]:
    """The latency of face entries with each encoder, same video and daemon, one after the other."""
    if not by_encoder:
        return []
    lines = [
        "### Latency by face encoder",
        "",
        "The same latency run (same video, same daemon, same frames) right after dlib's, on the ONNX "
        "evaluation model of `make eval-model` (evaluation only, provenance unknown; its measured "
        '`balanced` preset), run as a station runs it (`onnx_backend = "auto"`: '
        f"{(by_encoder.get('onnx') or {}).get('backend') or '-'}). Face entries, frame captured to "
        "relay energised:",
        "",
        "| encoder | model | face entries | p50 / p95 ms | in loop: detection + landmarks/encoding p50 ms "
        "| floor: detection + landmarks/encoding = total ms |",
        "|---|---|---|---|---|---|",
    ]
    for key in ("dlib", "onnx"):
        row = by_encoder.get(key)
        if row is None:
            continue
        lines.append(
            f"| {key} | `{row['model']}` | {row['face_n']} | **{_ms(row['face_p50_ms'])}** / "
            f"{_ms(row['face_p95_ms'])} | {_ms(row['in_loop_detect_p50_ms'])} + "
            f"{_ms(row['in_loop_encode_p50_ms'])} | {_ms(row['floor_detect_ms'])} + "
            f"{_ms(row['floor_encode_ms'])} = {_ms(row['floor_total_ms'])} |"
        )
    lines.append("")
    if by_encoder.get("onnx") is None:
        lines += [f"ONNX evaluation model not measured: {by_encoder.get('not_measured')}.", ""]
        return lines
    onnx = by_encoder["onnx"]
    met = "met" if by_encoder.get("met") else "**not met**"
    lines += [
        f"Face entry p50, dlib / evaluation model: **{by_encoder['speedup_p50']}x** (target >= "
        f"{by_encoder['target']:.0f}x: {met}); the part the encoder changes (landmarks, quality and "
        f"encoding, in the loop): {by_encoder.get('encode_speedup_p50')}x. Both rows run dlib's HOG "
        "detector with the same settings, so a difference in their detection times is the box's load "
        "changing between the two runs; detection, the same work in both, bounds the ratio (it is "
        "what an entry would still cost with an encoder taking no time at all). ONNX run: "
        f"{onnx['duration_s']} s, other processes {onnx['other_processes_cpu_percent']} % of one core; "
        f"other decisions: {_decisions_text(onnx['other_events'])}.",
        "",
    ]
    return lines


def _others_text(others: Mapping[str, float | None]) -> str:
    return ", ".join(f"{'-' if v is None else v} % ({k})" for k, v in others.items())


def _gap_text(face: Mapping[str, Any], floor: Mapping[str, Any]) -> str:
    """Split latency minus floor into the pipeline's own slowdown in the loop and everything else."""
    latency, in_loop, total = face.get("p50_ms"), face.get("in_loop_pipeline_p50_ms"), floor.get("total")
    if latency is None or in_loop is None or total is None:
        return ""
    gap, slower = latency - total, in_loop - total
    if gap <= 0:
        return "The latency is at the floor."
    text = (
        f"Latency minus floor: {gap:.1f} ms, of which the same two calls running inside the daemon "
        f"rather than in isolation account for {slower:+.1f} ms"
    )
    if slower >= 0.75 * gap:
        text += ": the daemon adds little work of its own; the dlib calls themselves ran slower in it"
    return text + "."


def _decisions_text(events: Sequence[Mapping[str, Any]]) -> str:
    if not events:
        return "none"
    return ", ".join(
        f"{e['kind']} {e['method'] or '-'} {e['member_id'] or '-'} ({e['reason'] or '-'})" for e in events
    )


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of `path` (between its markers), keeping everything else."""
    report.write_section(path, section, MARK_START, MARK_END)


def render_text(result: Mapping[str, Any]) -> str:
    """The human-readable summary printed by default."""
    lat, cpu, mem = result["latency"], result["cpu_static_15fps"], result["rss_mb"]
    floor = lat["floor_ms"]
    out = [f"{result['machine']['cpu']}, {result['machine']['cores']} cores", ""]
    for label in ("face", "qr"):
        row = lat[label]
        out.append(
            f"{label:<4} latency p50 {_ms(row['p50_ms'])} ms, p95 {_ms(row['p95_ms'])} ms (n={row['n']}; "
            f"pin {_ms(row['pin_p50_ms'])} / {_ms(row['pin_p95_ms'])}; from onset {_ms(row['onset_p50_ms'])})"
        )
    out += [
        f"floor: detect {_ms(floor['detect'])} + encode {_ms(floor['encode'])} = {_ms(floor['total'])} ms; "
        f"face latency / floor = {lat['ratio_face_to_floor']}x",
        _encoder_text(result.get("latency_by_encoder")),
        f"relay rising edges {lat['relay_rising_edges']}, "
        f"pin vs daemon <= {lat['pin_vs_daemon_max_abs_ms']} ms",
        f"CPU at rest, 15 fps: {cpu['percent_of_one_core']} % of one core over {cpu['seconds_measured']} s "
        f"(target <= {cpu['target_percent']:.0f} %: {'met' if cpu['met'] else 'NOT met'}); "
        f"attributed {cpu['attribution']['sum_percent']} %",
        f"RSS peak: baseline {mem['baseline']['peak_mb']} MB, +{mem['roster_size']:,} members "
        f"{mem['roster_10k']['peak_mb']} MB ({mem['ratio_peak']}x)",
        f"other processes, % of one core: {_others_text(result['other_processes_cpu_percent'])}",
        f"total {result['durations_s']['total']} s",
    ]
    return "\n".join(out) + "\n"


def _encoder_text(by_encoder: Mapping[str, Any] | None) -> str:
    if not by_encoder:
        return "onnx: not run"
    onnx = by_encoder.get("onnx")
    if onnx is None:
        return f"onnx: not measured ({by_encoder.get('not_measured')})"
    return (
        f"onnx ({onnx['model']}): face latency p50 {_ms(onnx['face_p50_ms'])} ms, p95 "
        f"{_ms(onnx['face_p95_ms'])} ms (n={onnx['face_n']}); dlib / onnx p50 = {by_encoder['speedup_p50']}x"
    )


def command_line(argv: Sequence[str]) -> str:
    """The command as typed from the repository root (interpreter path made relative when inside it)."""
    exe = Path(sys.executable)
    try:
        shown = str(exe.relative_to(Path.cwd()))
    except ValueError:
        shown = exe.name
    return shlex.join([shown, "-m", "bench.door", *argv])


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.door", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/BENCHMARKS.md")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer appearances, a shorter CPU window, 2k members; never written",
    )
    parser.add_argument("--keep", type=Path, help="keep the work folder (videos, databases, logs) here")
    parser.add_argument(
        "--no-onnx", action="store_true", help="skip the latency run on the ONNX evaluation model"
    )
    args = parser.parse_args(args_list)
    config = BenchConfig.quick() if args.quick else BenchConfig()
    if args.keep is not None:
        config = replace(config, keep_dir=args.keep)
    result = run_benchmark(config, onnx=not args.no_onnx)
    command = command_line(args_list)
    result["command"] = command
    if not args.no_write and not args.quick:
        write_section(BENCHMARKS_MD, render_markdown(result, command))
    sys.stdout.write(json.dumps(result) + "\n" if args.json else render_text(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
