"""Recognition benchmark: yizhan's face path against the naive face_recognition loop, 1:N, QR, memory.

Run it with `make bench` or `python -m bench.recognition [--json] [--repeats N] [--no-write]`. It
prints a table (or one JSON object with --json) and rewrites its own section of docs/BENCHMARKS.md.

Why it is built the way it is:
- Both face paths run in the same process, on the same decoded images, interleaved probe by probe,
  so a noisy neighbour or a CPU frequency change hits both alike; what is meant to be compared is the
  ratio of medians, not one absolute time.
- Images are decoded once up front: JPEG decoding is the same for both paths and not what is measured.
- Two scenarios. "frames": every probe photo scaled to fit a 640x480 frame and padded, which is what
  a door camera hands over (the headline numbers). "photos": the photos as they are (up to 2500 px),
  where the naive loop's full-resolution, upsampled detection costs most.
- Both paths match against the same roster: the real members plus padding rows drawn from a
  per-dimension normal distribution fitted to the real encodings. Random unit vectors would sit ~2.0
  from every real face (dlib encodings have norm ~1.45 and share a common mean), which would make the
  padding free for the margin rule; fitted rows sit ~0.85 away, like real strangers do.
- OPENBLAS_NUM_THREADS is pinned to 1 before numpy loads: on 2 cores OpenBLAS threading gave random
  ~8 ms outliers on small products (../shared/NOTES.md), and dlib itself is single-threaded.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import concurrent.futures  # noqa: E402
import datetime as dt  # noqa: E402
import functools  # noqa: E402
import importlib.metadata  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator, Mapping, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from bench import report  # noqa: E402
from bench.dataset import REPO, FacePhoto, by_person, faces_dir, fixture_photos, load_manifest  # noqa: E402
from recognizer.face_pipeline import FacePipeline  # noqa: E402
from recognizer.images import decode_image  # noqa: E402
from recognizer.results import Decision  # noqa: E402
from recognizer.roster import MemberInfo, RosterSnapshot  # noqa: E402
from recognizer.scoring import ScoringPolicy, preset, score  # noqa: E402

Rgb = npt.NDArray[np.uint8]
Vector = npt.NDArray[np.float32]

FRAME_SIZE = (640, 480)  # width, height of a door camera frame
FACE_ROSTER_ROWS = 1_000
MATCH_SIZES = (1_000, 10_000, 100_000)
NAIVE_TOLERANCE = 0.6  # face_recognition.compare_faces' default
PAD_PREFIX = "pad-"
#: Per-dimension spread used for padding when too few real encodings exist to fit one (the fixture
#: fallback): the mean per-dimension standard deviation of the 88 dlib encodings of the data set,
#: which gives padding rows ~0.85 from real faces, as real strangers are.
FALLBACK_PAD_SD = 0.053
MIN_VECTORS_TO_FIT = 10
SEED = 20261
MARK_START = "<!-- bench.recognition:start -->"
MARK_END = "<!-- bench.recognition:end -->"
BENCHMARKS_MD = REPO / "docs" / "BENCHMARKS.md"

TARGET_SPEEDUP = 2.0
TARGET_MATCH_100K_MS = 5.0
TARGET_QR_P50_MS = 15.0


# ------------------------------------------------------------------------------------------ data


@dataclass(frozen=True, slots=True)
class Probe:
    """One image to identify. `person` is the true member id, or None for someone not enrolled."""

    name: str
    person: str | None
    rgb: Rgb


@dataclass(frozen=True, slots=True)
class Dataset:
    """Decoded enrolment photos and probes, and where they came from."""

    source: str  # "dataset" or "fixtures"
    root: str
    enrol: dict[str, list[tuple[str, Rgb]]]  # person -> candidate enrolment photos, preferred first
    probes: list[Probe]
    decoded_bytes: int


def load_dataset(root: Path | None = None, *, use_fixtures: bool = False) -> Dataset:
    """The labelled photos, decoded once: people/ (first photo enrols), unknown/ (impostors).

    Every people/ photo is kept as an enrolment candidate in file order, because the first one may
    be refused by the quality gate (a small face): an installer would then take the next photo, and
    that photo is not used as a probe.
    """
    if use_fixtures:
        root = None
    elif root is None:
        root = faces_dir()
    photos: list[FacePhoto]
    if root is None:
        photos, source, where = fixture_photos(), "fixtures", "tests/fixtures"
    else:
        photos, source, where = load_manifest(root), "dataset", os.path.relpath(root, REPO)
    decoded: dict[Path, Rgb] = {}

    def rgb_of(photo: FacePhoto) -> Rgb:
        if photo.path not in decoded:
            decoded[photo.path] = decode_image(photo.path.read_bytes())
        return decoded[photo.path]

    enrol = {
        person: [(photo.path.name, rgb_of(photo)) for photo in items]
        for person, items in by_person(photos).items()
    }
    probes = [
        Probe(_short(photo.path), None, rgb_of(photo)) for photo in photos if photo.category == "unknown"
    ]
    return Dataset(
        source=source,
        root=where,
        enrol=enrol,
        probes=probes,
        decoded_bytes=sum(image.nbytes for image in decoded.values()),
    )


def _short(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def to_frame(rgb: Rgb, size: tuple[int, int] = FRAME_SIZE, fill: int = 114) -> Rgb:
    """`rgb` scaled (up or down) to fit inside a `size` frame, keeping its aspect, centred on grey.

    A door camera delivers 640x480 whatever the subject; a flat background adds no face-like
    texture, so the frame costs what its pixels cost and finds what the photo holds.
    """
    width, height = size
    h, w = rgb.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=interpolation)
    frame = np.full((height, width, 3), fill, dtype=np.uint8)
    y0, x0 = (height - new_h) // 2, (width - new_w) // 2
    frame[y0 : y0 + new_h, x0 : x0 + new_w] = resized
    return frame


# ------------------------------------------------------------------------------------- enrolment


@dataclass(frozen=True, slots=True)
class Enrolment:
    """Both systems' templates for the same members, made from the same photo per member."""

    yizhan: dict[str, Vector]
    naive: dict[str, npt.NDArray[np.float64]]
    photo: dict[str, str]  # person -> photo enrolled
    fallbacks: list[str]  # members whose first photo was refused, so a later one was used
    skipped: list[str]  # members with no usable photo at all
    genuine: list[Probe]  # every other photo of an enrolled member


def enrol(pipeline: FacePipeline, dataset: Dataset) -> Enrolment:
    """Enrol each member from their first photo that yizhan accepts; the naive side uses that photo too.

    yizhan enrols the largest face that passes its quality gate; the naive side does what the
    face_recognition tutorial does, `face_encodings(image)[0]`, on the same pixels.
    """
    import face_recognition

    yizhan: dict[str, Vector] = {}
    naive: dict[str, npt.NDArray[np.float64]] = {}
    used: dict[str, str] = {}
    fallbacks: list[str] = []
    skipped: list[str] = []
    genuine: list[Probe] = []
    for person, candidates in dataset.enrol.items():
        chosen: int | None = None
        for index, (_, rgb) in enumerate(candidates):
            encoded = [o.encoding for o in pipeline.analyze(rgb) if o.encoding is not None]
            naive_encs = face_recognition.face_encodings(rgb) if encoded else []
            if encoded and naive_encs:
                yizhan[person] = encoded[0]
                naive[person] = np.asarray(naive_encs[0], dtype=np.float64)
                chosen = index
                break
        if chosen is None:
            skipped.append(person)
            continue
        if chosen > 0:
            fallbacks.append(f"{person}/{candidates[chosen][0]}")
        used[person] = candidates[chosen][0]
        genuine.extend(
            Probe(f"{person}/{name}", person, rgb)
            for index, (name, rgb) in enumerate(candidates)
            if index != chosen
        )
    return Enrolment(yizhan, naive, used, fallbacks, skipped, genuine)


def padding_model(
    real: npt.NDArray[np.floating[Any]],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(mean, per-dimension sd) of the real encodings, the distribution padding rows are drawn from."""
    real = np.asarray(real, dtype=np.float64)
    mean = real.mean(axis=0)
    if real.shape[0] >= MIN_VECTORS_TO_FIT:
        return mean, real.std(axis=0)
    return mean, np.full(real.shape[1], FALLBACK_PAD_SD)


def padding_vectors(real: npt.NDArray[np.floating[Any]], count: int, seed: int = SEED) -> Vector:
    """`count` fake templates distributed like real dlib encodings (see the module docstring)."""
    mean, sd = padding_model(real)
    rng = np.random.default_rng(seed)
    return (mean + sd * rng.standard_normal((count, mean.shape[0]))).astype(np.float32)


def iter_padding_rows(
    real: npt.NDArray[np.floating[Any]], count: int, seed: int = SEED, block: int = 4096
) -> Iterator[tuple[str, Vector]]:
    """Padding rows drawn block by block, so that no full-size source matrix is ever held.

    For the memory measurement: the door process should pay for its roster, not for ours.
    """
    mean, sd = padding_model(real)
    rng = np.random.default_rng(seed)
    for first in range(0, count, block):
        size = min(block, count - first)
        vectors = (mean + sd * rng.standard_normal((size, mean.shape[0]))).astype(np.float32)
        for offset in range(size):
            yield f"{PAD_PREFIX}{first + offset:06d}", vectors[offset]


def padded_rows(real: Mapping[str, Vector], pad: Vector, rows: int) -> list[tuple[str, Vector]]:
    """The real members' rows, then padding rows up to `rows` in total."""
    result: list[tuple[str, Vector]] = list(real.items())
    needed = max(0, rows - len(result))
    if needed > pad.shape[0]:
        raise ValueError(f"{needed} padding rows needed, only {pad.shape[0]} generated")
    result.extend((f"{PAD_PREFIX}{i:06d}", pad[i]) for i in range(needed))
    return result


def build_snapshot(rows: Sequence[tuple[str, Vector]]) -> RosterSnapshot:
    """A snapshot the way the station builds one (validated rows, member records for each)."""
    members = [MemberInfo(member_id, member_id) for member_id, _ in rows]
    return RosterSnapshot.build(rows, members)


# ------------------------------------------------------------------------------------ face paths


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one path concluded about one probe."""

    accepted_id: str | None
    no_face: bool = False
    poor_quality: bool = False
    reason: str | None = None  # yizhan's refusal word (quality gate, threshold, margin)
    faces: tuple[tuple[float, str], ...] = ()  # naive: (nearest distance, its name) per face found


@dataclass(slots=True)
class PathRun:
    """Timings (ms) of every call of one path, per stage, and its outcome per probe (first pass)."""

    total: list[float] = field(default_factory=list)
    total_encoded: list[float] = field(default_factory=list)  # totals of calls that encoded a face
    stages: dict[str, list[float]] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)

    def add_stages(self, stages: Mapping[str, float]) -> None:
        for name, ms in stages.items():
            self.stages.setdefault(name, []).append(ms)


def yizhan_identify(
    pipeline: FacePipeline, rgb: Rgb, snapshot: RosterSnapshot, policy: ScoringPolicy
) -> tuple[Outcome, dict[str, float]]:
    """yizhan's hot path on one image: detect, landmarks, quality, encode, match (its own timings)."""
    result = pipeline.identify(rgb, snapshot, policy)
    outcome = Outcome(
        accepted_id=result.member_id if result.decision is Decision.MATCH else None,
        no_face=result.decision is Decision.NO_FACE,
        poor_quality=result.decision is Decision.POOR_QUALITY,
        reason=result.reason,
    )
    stages = {k: v for k, v in result.timings_ms.items() if k != "total"}
    return outcome, stages


def naive_identify(
    rgb: Rgb, known_encodings: list[npt.NDArray[np.float64]], known_names: list[str]
) -> tuple[Outcome, dict[str, float]]:
    """The face_recognition tutorial loop (examples/facerec_from_webcam_faster.py), verbatim in effect.

    `face_encodings(frame)` (HOG at upsample 1 on every pixel, every face encoded), then per face
    `compare_faces(known, enc)` (tolerance 0.6) and `face_distance(known, enc)` over a Python list,
    and the name of the nearest known face if it is within tolerance. The door opens for the first
    face that gets a name (in face_recognition's order), so that name is the decision.
    """
    import face_recognition

    start = time.perf_counter()
    encodings = face_recognition.face_encodings(rgb)
    encoded = time.perf_counter()
    accepted: str | None = None
    faces: list[tuple[float, str]] = []
    for encoding in encodings:
        matches = face_recognition.compare_faces(known_encodings, encoding, tolerance=NAIVE_TOLERANCE)
        distances = face_recognition.face_distance(known_encodings, encoding)
        best = int(np.argmin(distances))
        if matches[best] and accepted is None:
            accepted = known_names[best]
        faces.append((float(distances[best]), known_names[best]))
    matched = time.perf_counter()
    stages = {"encodings": (encoded - start) * 1000.0, "match": (matched - encoded) * 1000.0}
    return Outcome(accepted_id=accepted, no_face=not encodings, faces=tuple(faces)), stages


def naive_at_tolerance(outcome: Outcome, tolerance: float) -> Outcome:
    """The naive decision had the tutorial used `tolerance` instead of 0.6 (same faces, same order)."""
    accepted = next((name for distance, name in outcome.faces if distance <= tolerance), None)
    return Outcome(accepted_id=accepted, no_face=outcome.no_face, faces=outcome.faces)


def naive_without_false_accepts(probes: Sequence[Probe], outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The naive loop at the loosest tolerance that lets no wrong person in, and its true accepts.

    The tutorial's 0.6 is a 1:1 figure; tightening one global threshold is the obvious fix a naive
    deployment would try, so yizhan's threshold-plus-margin rule is also compared at this point.
    """
    candidates = sorted({d for o in outcomes for d, _ in o.faces} | {NAIVE_TOLERANCE})
    best_tolerance, best = 0.0, accuracy(probes, [naive_at_tolerance(o, 0.0) for o in outcomes])
    for candidate in candidates:
        if candidate > NAIVE_TOLERANCE:
            break
        counts = accuracy(probes, [naive_at_tolerance(o, candidate) for o in outcomes])
        if counts["false_accepts"] > 0:
            break
        best_tolerance, best = candidate, counts
    return {"tolerance": round(best_tolerance, 4), **best}


def run_face_paths(
    pipeline: FacePipeline,
    snapshot: RosterSnapshot,
    policy: ScoringPolicy,
    naive_known: list[npt.NDArray[np.float64]],
    naive_names: list[str],
    images: Sequence[Rgb],
    repeats: int,
) -> tuple[PathRun, PathRun]:
    """Both paths over every image, `repeats` passes, interleaved image by image.

    Interleaving means both paths see the same machine state; the first image is run once by each
    untimed first, so model warm-up (first allocations, page faults) counts for neither.
    """
    ours, naive = PathRun(), PathRun()
    if images:
        yizhan_identify(pipeline, images[0], snapshot, policy)
        naive_identify(images[0], naive_known, naive_names)
    for repeat in range(repeats):
        for rgb in images:
            start = time.perf_counter()
            outcome, stages = yizhan_identify(pipeline, rgb, snapshot, policy)
            ours.total.append((time.perf_counter() - start) * 1000.0)
            if "encode" in stages:
                ours.total_encoded.append(ours.total[-1])
            ours.add_stages(stages)
            if repeat == 0:
                ours.outcomes.append(outcome)
            start = time.perf_counter()
            outcome, stages = naive_identify(rgb, naive_known, naive_names)
            naive.total.append((time.perf_counter() - start) * 1000.0)
            if not outcome.no_face:
                naive.total_encoded.append(naive.total[-1])
            naive.add_stages(stages)
            if repeat == 0:
                naive.outcomes.append(outcome)
    return ours, naive


def accuracy(probes: Sequence[Probe], outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The same counts for both paths.

    A genuine probe is a true accept only when accepted as its own member; accepting it as anyone
    else (another member or a padding row) is a misidentification, and misidentifications plus
    accepted impostors are the false accepts: either opens the door for the wrong person.
    """
    genuine = [(p, o) for p, o in zip(probes, outcomes, strict=True) if p.person is not None]
    impostors = [(p, o) for p, o in zip(probes, outcomes, strict=True) if p.person is None]
    true_accepts = sum(1 for p, o in genuine if o.accepted_id == p.person)
    misidentified = sum(1 for p, o in genuine if o.accepted_id not in (None, p.person))
    impostor_accepts = sum(1 for _, o in impostors if o.accepted_id is not None)
    return {
        "true_accepts": true_accepts,
        "genuine": len(genuine),
        "tar": round(true_accepts / len(genuine), 4) if genuine else None,
        "false_accepts": misidentified + impostor_accepts,
        "misidentified": misidentified,
        "impostor_accepts": impostor_accepts,
        "impostors": len(impostors),
        "no_face": sum(1 for _, o in [*genuine, *impostors] if o.no_face),
        "poor_quality": sum(1 for _, o in [*genuine, *impostors] if o.poor_quality),
        "false_accept_probes": [
            p.name for p, o in [*genuine, *impostors] if o.accepted_id not in (None, p.person)
        ],
        "missed_genuine": [f"{p.name} ({_miss_reason(o)})" for p, o in genuine if o.accepted_id != p.person],
    }


def _miss_reason(outcome: Outcome) -> str:
    if outcome.no_face:
        return "no face"
    if outcome.accepted_id is not None:
        return f"taken for {outcome.accepted_id}"
    if outcome.reason:
        return outcome.reason
    if outcome.faces:
        return f"nearest {min(d for d, _ in outcome.faces):.2f}"
    return "refused"


def summary(values: Sequence[float]) -> dict[str, Any]:
    """p50 / p95 / mean in ms (percentiles linearly interpolated) and the sample count.

    The mean is kept because on a mixed set (tiny crops and 2500 px photos) the median hides the
    long tail that decides throughput.
    """
    if not values:
        return {"p50_ms": None, "p95_ms": None, "mean_ms": None, "n": 0}
    array = np.asarray(values, dtype=np.float64)
    p50, p95 = np.percentile(array, [50, 95])
    return {
        "p50_ms": round(float(p50), 3),
        "p95_ms": round(float(p95), 3),
        "mean_ms": round(float(array.mean()), 3),
        "n": len(values),
    }


def path_summary(run: PathRun) -> dict[str, Any]:
    result = summary(run.total)
    result["stages"] = {name: summary(values) for name, values in run.stages.items()}
    result["with_encoding"] = summary(run.total_encoded)
    return result


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 2)


def scenario_result(probes: Sequence[Probe], ours: PathRun, naive: PathRun) -> dict[str, Any]:
    face, naive_s = path_summary(ours), path_summary(naive)
    return {
        "face": face,
        "naive": naive_s,
        "speedup_p50": ratio(naive_s["p50_ms"], face["p50_ms"]),
        "speedup_mean": ratio(naive_s["mean_ms"], face["mean_ms"]),
        "accuracy": {
            "yizhan": accuracy(probes, ours.outcomes),
            "naive": accuracy(probes, naive.outcomes),
            "naive_no_false_accepts": naive_without_false_accepts(probes, naive.outcomes),
        },
    }


# ------------------------------------------------------------------------------------------- 1:N


def time_calls(call: Callable[[], object], repeats: int) -> list[float]:
    """Milliseconds of `repeats` calls, after one untimed call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def naive_distances(
    matrix: npt.NDArray[np.float64], query: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """What `face_recognition.face_distance` does once its list is an array: N difference vectors."""
    return np.asarray(np.linalg.norm(matrix - query, axis=1), dtype=np.float64)


def bench_match_1n(
    real: Mapping[str, Vector],
    pad: Vector,
    query: Vector,
    sizes: Sequence[int],
    repeats: int,
    naive_repeats: int,
    policy: ScoringPolicy,
) -> dict[str, Any]:
    """`recognizer.scoring.score` (the door's 1:N rule) alone at each roster size, and the naive
    distance for the ratio.

    The naive column is `np.linalg.norm(M - q, axis=1)` on float64 rows, what face_distance computes
    once its Python list has become an array (the list-to-array copy is not even counted here).
    """
    ours: dict[str, Any] = {}
    naive: dict[str, Any] = {}
    build: dict[str, float] = {}
    matrix_mb: dict[str, float] = {}
    query64 = query.astype(np.float64)
    for size in sizes:
        rows = padded_rows(real, pad, size)
        start = time.perf_counter()
        snapshot = build_snapshot(rows)
        build[str(size)] = round(time.perf_counter() - start, 3)
        matrix_mb[str(size)] = round(
            (snapshot.templates.nbytes + snapshot.sq_norms.nbytes + snapshot.owner_index.nbytes) / 1e6, 2
        )
        ours[str(size)] = summary(time_calls(functools.partial(score, snapshot, query, policy), repeats))
        matrix64 = np.asarray(snapshot.templates, dtype=np.float64)
        naive[str(size)] = summary(
            time_calls(functools.partial(naive_distances, matrix64, query64), naive_repeats)
        )
        del snapshot, matrix64, rows
    largest = str(max(sizes))
    return {
        "match_1n_ms": ours,
        "naive_norm_ms": naive,
        "speedup_p50_at_largest": ratio(naive[largest]["p50_ms"], ours[largest]["p50_ms"]),
        "snapshot_build_s": build,
        "snapshot_matrix_mb": matrix_mb,
    }


# -------------------------------------------------------------------------------------------- QR


def qr_frame(token: str, width_px: int = 128, seed: int = SEED) -> Rgb:
    """A 640x480 RGB frame with `token`'s code about `width_px` wide on a noisy, uneven grey ground.

    The code is drawn at 4 px per module and shrunk with area averaging, so module edges are soft
    and not on pixel boundaries, as through a lens; the background has a gradient and sensor-like
    noise so the decoder's binarizer has work to do.
    """
    from recognizer import qr_decode

    code = qr_decode.render_image(token, scale=4, border=4)
    side = width_px
    small = cv2.resize(code, (side, side), interpolation=cv2.INTER_AREA)
    width, height = FRAME_SIZE
    rng = np.random.default_rng(seed)
    gradient = np.linspace(70, 170, width, dtype=np.float32)[None, :].repeat(height, axis=0)
    grey = gradient + rng.normal(0.0, 12.0, (height, width)).astype(np.float32)
    y0, x0 = (height - side) // 2 + 40, (width - side) // 2 + 60
    grey[y0 : y0 + side, x0 : x0 + side] = small.astype(np.float32) * 0.8 + 25.0
    frame = np.clip(grey, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(frame[:, :, None], 3, axis=2))


def bench_qr(repeats: int, width_px: int = 128) -> dict[str, Any]:
    """`QrChecker.check_image` (find + decode + verify the signature + policy) on one frame."""
    from recognizer import qr_check, qr_token

    private_raw, public_raw = qr_token.generate_signing_key()
    now = int(time.time())
    token = qr_token.issue_token(private_raw, "m-000001", now=now, ttl_s=3600)
    frame = qr_frame(token, width_px)
    checker = qr_check.QrChecker(qr_check.QrPolicy(max_clock_skew_s=60), qr_check.MemoryReplayGuard())
    keys = {qr_token.kid_for(public_raw): public_raw}
    members = {"m-000001": MemberInfo("m-000001", "Bench Member")}
    totals: list[float] = []
    stages: dict[str, list[float]] = {}
    failures = 0

    def check() -> Any:
        return checker.check_image(
            frame,
            public_keys=keys,
            revoked_kids=frozenset(),
            revoked_nonces=frozenset(),
            members=members,
            now=float(now + 1),
        )

    check()
    for _ in range(repeats):
        start = time.perf_counter()
        result = check()
        totals.append((time.perf_counter() - start) * 1000.0)
        if result is None or result.decision is not Decision.QR_OK:
            failures += 1
            continue
        for name, ms in result.timings_ms.items():
            stages.setdefault(name, []).append(ms)
    result = summary(totals)
    result.update(
        {
            "stages": {name: summary(values) for name, values in stages.items()},
            "failures": failures,
            "code_px": width_px,
            "token_chars": len(token),
        }
    )
    return result


# ---------------------------------------------------------------------------------------- memory


def peak_rss_mb() -> float:
    """This process's peak resident set so far (ru_maxrss is KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)  # MiB


def _proc_status_mb(name: str) -> float | None:
    """A KiB figure from /proc/self/status, in MB (None off Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except (OSError, IndexError, ValueError):
        return None
    return None


def current_rss_mb() -> float | None:
    """Resident set now (VmRSS)."""
    return _proc_status_mb("VmRSS")


def address_space_peak_mb() -> float | None:
    """Peak resident set of this process image (VmHWM).

    Unlike ru_maxrss, which Linux carries over from the parent across fork and exec, VmHWM starts
    afresh in an exec'd child, so it is the figure to read in the spawned door-like process.
    """
    return _proc_status_mb("VmHWM")


def door_process_peak_rss(frame: Rgb, real: dict[str, Vector], rows: int) -> dict[str, float]:
    """In a fresh process: load the model, build a `rows`-row roster, identify `frame` a few times.

    This is the memory a door process needs (interpreter, numpy, OpenCV, dlib and its models, the
    roster with a member record per row, one frame), without the benchmark's decoded photos and
    float64 copies inflating it. Runs in a spawned child; returns MB figures.
    """
    from recognizer.encoder import DlibFaceModel

    after_imports = current_rss_mb()
    pipeline = FacePipeline(DlibFaceModel())
    after_model = current_rss_mb()
    needed = max(0, rows - len(real))
    real_matrix = np.stack(list(real.values()))
    ids = [*real, *(f"{PAD_PREFIX}{i:06d}" for i in range(needed))]
    snapshot = RosterSnapshot.build(
        itertools.chain(real.items(), iter_padding_rows(real_matrix, needed)),
        [MemberInfo(member_id, member_id) for member_id in ids],
    )
    del ids
    for _ in range(3):
        pipeline.identify(frame, snapshot, preset())
    return {
        "rows": snapshot.size,
        "peak_rss_mb": address_space_peak_mb() or 0.0,
        "rss_after_imports_mb": after_imports or 0.0,
        "rss_after_model_mb": after_model or 0.0,
        "rss_end_mb": current_rss_mb() or 0.0,
    }


def door_process_peak_rss_in_child(frame: Rgb, real: dict[str, Vector], rows: int) -> dict[str, float]:
    """`door_process_peak_rss` in a spawned (not forked) child, so it starts from an empty heap."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(door_process_peak_rss, frame, real, rows).result()


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on: they mean nothing without it."""
    cpu = platform.processor() or platform.machine()
    try:
        fields: dict[str, str] = {}
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key.strip().lower(), value.strip())
        # x86 names the CPU in "model name"; a Raspberry Pi names the board in "Model".
        cpu = fields.get("model name") or fields.get("model") or fields.get("hardware") or cpu
    except OSError:
        pass

    def version(dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    import dlib

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "dlib": f"{dlib.__version__} (dlib-bin {version('dlib-bin')})"
        if version("dlib-bin")
        else dlib.__version__,
        "face_recognition": version("face_recognition"),
        "opencv": cv2.__version__,
        "zxing_cpp": version("zxing-cpp"),
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


# ------------------------------------------------------------------------------------------- run


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """How much to measure. The defaults keep a full run under ~5 minutes on the 2-core box."""

    frame_repeats: int = 3
    photo_repeats: int = 1
    face_roster_rows: int = FACE_ROSTER_ROWS
    match_sizes: tuple[int, ...] = MATCH_SIZES
    match_repeats: int = 300
    naive_match_repeats: int = 30
    qr_repeats: int = 100
    door_rss_rows: int = 100_000
    use_fixtures: bool = False
    data_root: Path | None = None


def run_benchmark(config: BenchConfig, pipeline: FacePipeline | None = None) -> dict[str, Any]:
    """Everything, measured in one process; returns the JSON-ready result."""
    from recognizer.encoder import DlibFaceModel

    started = time.perf_counter()
    durations: dict[str, float] = {}
    rss_start = current_rss_mb()
    if pipeline is None:
        pipeline = FacePipeline(DlibFaceModel())
    rss_model = current_rss_mb()
    policy = preset()  # the door's default operating point ([recognition] preset = "balanced")

    mark = time.perf_counter()
    dataset = load_dataset(config.data_root, use_fixtures=config.use_fixtures)
    enrolment = enrol(pipeline, dataset)
    probes = [*enrolment.genuine, *dataset.probes]
    if not probes or not enrolment.yizhan:
        raise RuntimeError(f"nothing to benchmark in {dataset.root}: no enrolled member or no probe")
    real = np.stack(list(enrolment.yizhan.values()))
    largest_rows = max([config.face_roster_rows, *config.match_sizes])
    pad = padding_vectors(real, max(0, largest_rows - len(enrolment.yizhan)))
    face_rows = padded_rows(enrolment.yizhan, pad, config.face_roster_rows)
    snapshot = build_snapshot(face_rows)
    naive_names = [name for name, _ in face_rows]
    naive_known = [
        enrolment.naive[name] if name in enrolment.naive else vector.astype(np.float64)
        for name, vector in face_rows
    ]
    frames = [to_frame(p.rgb) for p in probes]
    durations["load_and_enrol"] = round(time.perf_counter() - mark, 1)

    mark = time.perf_counter()
    frame_ours, frame_naive = run_face_paths(
        pipeline, snapshot, policy, naive_known, naive_names, frames, config.frame_repeats
    )
    durations["frames"] = round(time.perf_counter() - mark, 1)
    mark = time.perf_counter()
    photo_ours, photo_naive = run_face_paths(
        pipeline, snapshot, policy, naive_known, naive_names, [p.rgb for p in probes], config.photo_repeats
    )
    durations["photos"] = round(time.perf_counter() - mark, 1)
    peak_after_face = peak_rss_mb()

    mark = time.perf_counter()
    query_obs = [o.encoding for o in pipeline.analyze(frames[0]) if o.encoding is not None]
    query = query_obs[0] if query_obs else real[0]
    one_to_n = bench_match_1n(
        enrolment.yizhan,
        pad,
        query,
        config.match_sizes,
        config.match_repeats,
        config.naive_match_repeats,
        policy,
    )
    durations["match_1n"] = round(time.perf_counter() - mark, 1)

    mark = time.perf_counter()
    qr = bench_qr(config.qr_repeats)
    durations["qr"] = round(time.perf_counter() - mark, 1)

    mark = time.perf_counter()
    door = door_process_peak_rss_in_child(frames[0], enrolment.yizhan, config.door_rss_rows)
    durations["door_rss"] = round(time.perf_counter() - mark, 1)

    frames_result = scenario_result(probes, frame_ours, frame_naive)
    photos_result = scenario_result(probes, photo_ours, photo_naive)
    largest = str(max(config.match_sizes))
    ours_acc, naive_acc = frames_result["accuracy"]["yizhan"], frames_result["accuracy"]["naive"]
    naive_strict = frames_result["accuracy"]["naive_no_false_accepts"]
    durations["total"] = round(time.perf_counter() - started, 1)
    return {
        "schema": 1,
        "machine": machine_info(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "data": {
            "source": dataset.source,
            "root": dataset.root,
            "members": len(enrolment.yizhan),
            "genuine_probes": len(enrolment.genuine),
            "impostor_probes": len(dataset.probes),
            "enrolment_fallbacks": enrolment.fallbacks,
            "skipped_members": enrolment.skipped,
        },
        "settings": {
            "scenario_headline": "frames",
            "frame_size": list(FRAME_SIZE),
            "face_roster_rows": snapshot.size,
            "frame_repeats": config.frame_repeats,
            "photo_repeats": config.photo_repeats,
            "match_policy": {"preset": policy.name, **policy.limits()},
            "naive_tolerance": NAIVE_TOLERANCE,
            "match_repeats": config.match_repeats,
            "naive_match_repeats": config.naive_match_repeats,
            "qr_repeats": config.qr_repeats,
        },
        "face": frames_result["face"],
        "naive": frames_result["naive"],
        "speedup_p50": frames_result["speedup_p50"],
        "speedup_mean": frames_result["speedup_mean"],
        "accuracy": frames_result["accuracy"],
        "photos": photos_result,
        "match_1n_ms": one_to_n["match_1n_ms"],
        "match_1n_naive_norm_ms": one_to_n["naive_norm_ms"],
        "match_1n_speedup_p50": one_to_n["speedup_p50_at_largest"],
        "snapshot_build_s": one_to_n["snapshot_build_s"],
        "qr": qr,
        "peak_rss_mb": peak_rss_mb(),
        "memory": {
            "rss_before_model_mb": rss_start,
            "rss_after_model_mb": rss_model,
            "decoded_images_mb": round(dataset.decoded_bytes / 1e6, 1),
            "peak_rss_after_face_runs_mb": peak_after_face,
            "snapshot_matrix_mb": one_to_n["snapshot_matrix_mb"],
            "door_process": door,
        },
        "targets": {
            "face_speedup_2x": _target(frames_result["speedup_p50"], TARGET_SPEEDUP, at_least=True),
            "accuracy_equal_or_better": {
                # Strict reading: no fewer true accepts and no more false accepts than the tutorial.
                "met": ours_acc["true_accepts"] >= naive_acc["true_accepts"]
                and ours_acc["false_accepts"] <= naive_acc["false_accepts"],
                # At equal false accepts: against the tutorial with its tolerance tightened until
                # no wrong person gets in.
                "met_at_equal_false_accepts": ours_acc["false_accepts"] == 0
                and ours_acc["true_accepts"] >= naive_strict["true_accepts"],
            },
            "match_100k_p50_5ms": _target(
                one_to_n["match_1n_ms"][largest]["p50_ms"] if largest == "100000" else None,
                TARGET_MATCH_100K_MS,
                at_least=False,
            ),
            "qr_p50_15ms": _target(qr["p50_ms"], TARGET_QR_P50_MS, at_least=False),
        },
        "durations_s": durations,
    }


def _target(value: float | None, limit: float, *, at_least: bool) -> dict[str, Any]:
    met = None if value is None else (value >= limit if at_least else value <= limit)
    return {"value": value, "limit": limit, "met": met}


# -------------------------------------------------------------------------------------- markdown


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _acc_row(label: str, path: str, acc: Mapping[str, Any]) -> str:
    return (
        f"| {label} | {path} | {acc['true_accepts']}/{acc['genuine']} ({acc['tar']:.1%}) | "
        f"{acc['false_accepts']} ({acc['misidentified']} misidentified, {acc['impostor_accepts']}"
        f"/{acc['impostors']} impostors) | {acc['no_face']} | {acc['poor_quality']} |"
    )


def _speed_row(label: str, scenario: Mapping[str, Any]) -> str:
    ours, naive = scenario["face"], scenario["naive"]
    return (
        f"| {label} | {_ms(ours['p50_ms'])} / {_ms(ours['p95_ms'])} / {_ms(ours['mean_ms'])} | "
        f"{_ms(naive['p50_ms'])} / {_ms(naive['p95_ms'])} / {_ms(naive['mean_ms'])} | "
        f"**{scenario['speedup_p50']}x** | {scenario['speedup_mean']}x | {ours['n']} |"
    )


def _bottleneck(result: Mapping[str, Any]) -> str:
    """One sentence on what bounds the frames ratio, computed from the stage medians."""
    encode = result["face"]["stages"].get("encode", {}).get("p50_ms")
    total = result["face"]["with_encoding"]["p50_ms"]
    naive = result["naive"]["with_encoding"]["p50_ms"]
    if not encode or not total or not naive:
        return ""
    bound = naive / encode
    return (
        f"On frames, over the calls that got as far as encoding a face, yizhan's p50 is {_ms(total)} ms "
        f"of which {_ms(encode)} ms ({encode / total:.0%}) is the encoder; the naive loop's p50 on the "
        f"calls where it found a face is {_ms(naive)} ms: the same encoder plus HOG at upsample 1 on the "
        f"whole frame. Even with free detection the ratio could not exceed naive / encode = {bound:.2f}x"
        + (
            f": with this encoder (dlib-bin, no BLAS) {TARGET_SPEEDUP:g}x is out of reach on frames."
            if bound < TARGET_SPEEDUP
            else "."
        )
    )


def render_markdown(result: Mapping[str, Any], command: str) -> str:
    """The docs/BENCHMARKS.md section, markers included."""
    m, data, s = result["machine"], result["data"], result["settings"]
    photos = result["photos"]
    yes = {True: "yes", False: "**no**", None: "-"}
    lines = [
        MARK_START,
        "## Recognition: face path, naive loop, 1:N, QR, memory",
        "",
        f"Measured {result['date']} with `{command}` (also `make bench`). Machine: {m['cpu']}, "
        f"{m['cores']} cores, {m['os']}; Python {m['python']}, numpy {m['numpy']}, dlib {m['dlib']}, "
        f"face_recognition {m['face_recognition']}, OpenCV {m['opencv']}, zxing-cpp {m['zxing_cpp']}; "
        f"OPENBLAS_NUM_THREADS={m['openblas_num_threads']} (set before numpy loads: OpenBLAS threads gave "
        "~8 ms outliers on 2 cores). Medians and ratios are what to compare between machines; the "
        "absolute times are this box's.",
        "",
        f"Data: {data['source']} (`{data['root']}`): {data['members']} members enrolled from their first "
        f"usable photo, {data['genuine_probes']} genuine probes (their other photos), "
        f"{data['impostor_probes']} impostor probes (unknown/, must stay unknown). Roster for the face "
        f"paths: {s['face_roster_rows']:,} rows (real members + padding). Images are decoded before "
        "timing; JPEG decoding is not measured."
        + (
            " First photo refused by yizhan's quality gate, next one enrolled: "
            + ", ".join(data["enrolment_fallbacks"])
            + "."
            if data["enrolment_fallbacks"]
            else ""
        ),
        "",
        "### Face path against the naive face_recognition loop",
        "",
        "| scenario | yizhan p50 / p95 / mean ms | naive p50 / p95 / mean ms | speed-up p50 (naive / yizhan) "
        "| speed-up of means | calls each |",
        "|---|---|---|---|---|---|",
        _speed_row("frames 640x480 (headline)", result),
        _speed_row("photos as they are", photos),
        "",
        _bottleneck(result),
        "",
        "Per stage, p50 / p95 ms (a stage is counted only in calls that reached it: no encoding for a "
        "frame without a usable face):",
        "",
        "| path | stage | frames | photos |",
        "|---|---|---|---|",
    ]
    for path_key, label in (("face", "yizhan"), ("naive", "naive")):
        stage_names = list(result[path_key]["stages"])
        stage_names += [n for n in photos[path_key]["stages"] if n not in stage_names]
        for name in stage_names:
            f = result[path_key]["stages"].get(name, {})
            p = photos[path_key]["stages"].get(name, {})
            lines.append(
                f"| {label} | {name} | {_ms(f.get('p50_ms'))} / {_ms(f.get('p95_ms'))} (n={f.get('n', 0)}) | "
                f"{_ms(p.get('p50_ms'))} / {_ms(p.get('p95_ms'))} (n={p.get('n', 0)}) |"
            )
    lines += [
        "",
        f"### Accuracy (same probes, same {s['face_roster_rows']:,}-row roster)",
        "",
        f"yizhan: the `{s['match_policy']['preset']}` scoring preset judging one frame (accept distance "
        f"{s['match_policy']['accept_distance']}, grey {s['match_policy']['grey_distance']}; the door "
        f"itself fuses {s['match_policy']['min_frames']} frames) on the largest face; a face in the grey "
        "zone is not a true accept here. Naive: nearest known face "
        f"within tolerance {s['naive_tolerance']}, any face in the image. A false accept is a genuine "
        "probe accepted as someone else or an impostor accepted as anyone.",
        "",
        "| scenario | path | true accepts (TAR) | false accepts | no face | poor quality |",
        "|---|---|---|---|---|---|",
        _acc_row("frames", "yizhan", result["accuracy"]["yizhan"]),
        _acc_row("frames", "naive", result["accuracy"]["naive"]),
        _acc_row(
            "frames",
            f"naive, tolerance {result['accuracy']['naive_no_false_accepts']['tolerance']}",
            result["accuracy"]["naive_no_false_accepts"],
        ),
        _acc_row("photos", "yizhan", photos["accuracy"]["yizhan"]),
        _acc_row("photos", "naive", photos["accuracy"]["naive"]),
        _acc_row(
            "photos",
            f"naive, tolerance {photos['accuracy']['naive_no_false_accepts']['tolerance']}",
            photos["accuracy"]["naive_no_false_accepts"],
        ),
        "",
        "The `naive, tolerance t` rows re-decide the same naive run at the loosest tolerance that lets "
        "no wrong person in: the obvious fix for the tutorial's false accepts, for a comparison at "
        "equal false accepts.",
        "",
    ]
    for label, scenario in (("frames", result), ("photos", photos)):
        fa = sorted(
            {
                *scenario["accuracy"]["naive"]["false_accept_probes"],
                *scenario["accuracy"]["yizhan"]["false_accept_probes"],
            }
        )
        if fa:
            lines.append(f"- False accepts on {label} (either path): {', '.join(fa)}.")
        missed = scenario["accuracy"]["yizhan"]["missed_genuine"]
        if missed:
            lines.append(f"- Genuine probes yizhan did not accept on {label}: {', '.join(missed)}.")
    lines.append("")
    lines += [
        "### 1:N match alone",
        "",
        f"`recognizer.matcher.match` (threshold + margin, float32 `sq_norms - 2 M q`) with a real query, "
        f"{s['match_repeats']} calls per size; naive = `np.linalg.norm(M - q, axis=1)` on float64 rows "
        f"(what `face_distance` computes), {s['naive_match_repeats']} calls.",
        "",
        "| roster rows | match p50 / p95 ms | naive norm p50 / p95 ms | ratio | snapshot build s "
        "| matrix MB |",
        "|---|---|---|---|---|---|",
    ]
    for size, ours in result["match_1n_ms"].items():
        naive = result["match_1n_naive_norm_ms"][size]
        lines.append(
            f"| {int(size):,} | {_ms(ours['p50_ms'])} / {_ms(ours['p95_ms'])} | "
            f"{_ms(naive['p50_ms'])} / {_ms(naive['p95_ms'])} | {ratio(naive['p50_ms'], ours['p50_ms'])}x | "
            f"{result['snapshot_build_s'][size]} | {result['memory']['snapshot_matrix_mb'][size]} |"
        )
    qr, mem = result["qr"], result["memory"]
    door = mem["door_process"]
    qr_stages = ", ".join(f"{k} {_ms(v['p50_ms'])}" for k, v in qr["stages"].items())
    lines += [
        "",
        "### QR path",
        "",
        f"`QrChecker.check_image` on a 640x480 frame holding a {qr['token_chars']}-character token drawn "
        f"~{qr['code_px']} px wide (soft edges, noisy gradient background): p50 {_ms(qr['p50_ms'])} ms, "
        f"p95 {_ms(qr['p95_ms'])} ms over {qr['n']} calls ({qr_stages} ms p50); "
        f"{qr['failures']} calls did not come back QR_OK.",
        "",
        "### Memory",
        "",
        f"- Door-like process (fresh interpreter, model loaded, {door['rows']:,}-row roster with a member "
        "record per row, 3 identifications of one frame): "
        f"peak RSS **{door['peak_rss_mb']} MB** (after imports {door['rss_after_imports_mb']} MB, "
        f"after loading dlib's models {door['rss_after_model_mb']} MB).",
        f"- This benchmark process: peak RSS {result['peak_rss_mb']} MB (`ru_maxrss`). It holds "
        f"{mem['decoded_images_mb']} MB of decoded photos for the whole run, the naive loop's HOG "
        "pyramids of the upsampled full-size photos, and the 1:N section's float64 copies: "
        f"{mem['peak_rss_after_face_runs_mb']} MB peak after the face runs, the rest from 1:N.",
        f"- Roster snapshot matrices (templates + squared norms + owner index) at 100k rows: "
        f"{mem['snapshot_matrix_mb'].get('100000', '-')} MB.",
        "",
        "### Targets (this machine)",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    t = result["targets"]
    acc_y, acc_n = result["accuracy"]["yizhan"], result["accuracy"]["naive"]
    lines += [
        f"| face path p50 >= 2x faster than naive (frames) | {t['face_speedup_2x']['value']}x "
        f"(photos: {photos['speedup_p50']}x) | {yes[t['face_speedup_2x']['met']]} |",
        f"| accuracy equal or better (frames) | TAR {acc_y['true_accepts']} vs {acc_n['true_accepts']}, "
        f"false accepts {acc_y['false_accepts']} vs {acc_n['false_accepts']} | "
        f"{yes[t['accuracy_equal_or_better']['met']]} |",
        f"| accuracy at equal false accepts (frames) | TAR {acc_y['true_accepts']} vs "
        f"{result['accuracy']['naive_no_false_accepts']['true_accepts']} (naive at tolerance "
        f"{result['accuracy']['naive_no_false_accepts']['tolerance']}), false accepts "
        f"{acc_y['false_accepts']} vs 0 | "
        f"{yes[t['accuracy_equal_or_better']['met_at_equal_false_accepts']]} |",
        f"| 1:N at 100k rows p50 <= 5 ms | {_ms(t['match_100k_p50_5ms']['value'])} ms | "
        f"{yes[t['match_100k_p50_5ms']['met']]} |",
        f"| QR path p50 <= 15 ms | {_ms(t['qr_p50_15ms']['value'])} ms | {yes[t['qr_p50_15ms']['met']]} |",
        "",
        "### Method",
        "",
        "- Frames: each probe photo scaled (up or down) to fit 640x480, aspect kept, centred on flat grey. "
        "Photos: the decoded photo as it is.",
        "- yizhan: `FacePipeline(DlibFaceModel()).identify(rgb, snapshot, preset())`; stage times are "
        "its own `timings_ms`, the total is wall time around the call.",
        "- Naive: the face_recognition tutorial loop (`facerec_from_webcam_faster.py`): "
        "`face_encodings(rgb)` (HOG, upsample 1), then for each face `compare_faces(known, enc)` and "
        "`face_distance(known, enc)` over a Python list of float64 encodings, name of the nearest if within "
        "0.6. It enrols with `face_encodings(photo)[0]` on the same photo yizhan enrolled.",
        "- Padding rows come from a per-dimension normal distribution fitted to the real enrolment "
        "encodings (same seed every run): they sit ~0.85 from real faces, as real strangers do, where "
        "random vectors of the same norm would sit ~2.0 away and cost the margin rule nothing.",
        "- Both paths run interleaved probe by probe in the same process, after one untimed warm-up "
        "call each.",
        f"- Run time: {result['durations_s']['total']} s.",
        MARK_END,
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of `path` (between its markers), keeping everything else."""
    report.write_section(path, section, MARK_START, MARK_END)


def render_text(result: Mapping[str, Any]) -> str:
    """The human-readable summary printed by default."""
    photos = result["photos"]
    out = [
        f"{result['machine']['cpu']}, {result['machine']['cores']} cores; data: {result['data']['source']} "
        f"({result['data']['members']} members, {result['data']['genuine_probes']} genuine, "
        f"{result['data']['impostor_probes']} impostor probes); "
        f"roster {result['settings']['face_roster_rows']} rows",
        "",
        f"{'scenario':<10} {'path':<7} {'p50 ms':>9} {'p95 ms':>9} {'speed-up':>9}  "
        "TAR      false acc  no face",
    ]
    for label, scenario in (("frames", result), ("photos", photos)):
        for key, name in (("face", "yizhan"), ("naive", "naive")):
            row = scenario[key]
            acc = scenario["accuracy"]["yizhan" if key == "face" else "naive"]
            speed = f"{scenario['speedup_p50']}x" if key == "face" else ""
            out.append(
                f"{label:<10} {name:<7} {_ms(row['p50_ms']):>9} {_ms(row['p95_ms']):>9} {speed:>9}  "
                f"{acc['true_accepts']:>2}/{acc['genuine']:<5} {acc['false_accepts']:>9}  {acc['no_face']:>7}"
            )
    out += ["", "1:N match p50 / p95 ms (naive norm p50):"]
    for size, row in result["match_1n_ms"].items():
        naive = result["match_1n_naive_norm_ms"][size]
        out.append(
            f"  {int(size):>7,} rows: {_ms(row['p50_ms'])} / {_ms(row['p95_ms'])}  ({_ms(naive['p50_ms'])})"
        )
    qr = result["qr"]
    out += [
        f"QR check_image p50 / p95 ms: {_ms(qr['p50_ms'])} / {_ms(qr['p95_ms'])} ({qr['failures']} failures)",
        f"peak RSS: {result['peak_rss_mb']} MB (door-like process: "
        f"{result['memory']['door_process']['peak_rss_mb']} MB)",
        "targets: "
        + ", ".join(f"{name}={'met' if t['met'] else 'NOT met'}" for name, t in result["targets"].items()),
        f"total {result['durations_s']['total']} s",
    ]
    return "\n".join(out) + "\n"


def command_line(argv: Sequence[str]) -> str:
    """The command as typed from the repository root (interpreter path made relative when inside it)."""
    exe = Path(sys.executable)
    try:
        shown = str(exe.relative_to(Path.cwd()))
    except ValueError:
        shown = exe.name
    return shlex.join([shown, "-m", "bench.recognition", *argv])


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.recognition", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the probes as 640x480 frames")
    parser.add_argument("--photo-repeats", type=int, default=1, help="passes over the full-size photos")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/BENCHMARKS.md")
    parser.add_argument(
        "--fixtures", action="store_true", help="use tests/fixtures even if the data set exists"
    )
    args = parser.parse_args(args_list)
    if args.repeats < 1 or args.photo_repeats < 1:
        parser.error("repeat counts must be at least 1")
    config = BenchConfig(
        frame_repeats=args.repeats, photo_repeats=args.photo_repeats, use_fixtures=args.fixtures
    )
    result = run_benchmark(config)
    command = command_line(args_list)
    result["command"] = command
    if not args.no_write:
        write_section(BENCHMARKS_MD, render_markdown(result, command))
    sys.stdout.write(json.dumps(result) + "\n" if args.json else render_text(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
