"""A labelled face folder, encoded: what `yizhan calibrate` and `bench.quality` measure the door on.

Layout (as ../shared/data/faces): `people/<id>/<photo>` (a person who can be enrolled, several
photos each) and `unknown/<photo>` (strangers: every face in such a photo is someone not in
people/). An optional `MANIFEST.tsv` (path, person_slug, faces_expected, notes, ...) adds the
expected face count (a photo whose faces are too small is encoded again enlarged 2x, then 3x, as if
the person stood closer), group photos (`group/`, labels "a+b" left to right) and the East Asian
marker (notes containing "East Asian"); without it every image file under people/ and unknown/ is
used with one face expected per people/ photo.

Each face is encoded twice over:
- as an enrolment photo, with the photo pipeline (what `yizhan enroll` stores as a template);
- as `frames` door-camera frames made from it (`recognizer.perturb`), each found again with the
  door's pipeline, quality-gated and encoded: the proxy for the several frames of one appearance.

Encodings can be cached in a file (`EncodingCache`) keyed by the face model, the file's content
hash and the variant, so a rerun only encodes what changed. The cache holds plain face encodings:
fine for a labelled test set, never to be pointed at a station's data directory.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from recognizer.calibration import Sample
from recognizer.face_pipeline import FaceObservation, FacePipeline
from recognizer.images import ImageError, decode_image
from recognizer.perturb import PerturbRanges, door_frame, frame_params

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
ENLARGE = (2, 3)
#: A detection in a door frame is "the same face" when its centre is this close (face sides).
SAME_FACE = 0.5


class FaceSetError(ValueError):
    """The folder cannot be used as a labelled face set; the message says why."""


@dataclass(frozen=True, slots=True)
class LabelledPhoto:
    path: Path
    relpath: str
    category: str  # people | unknown | group
    person: str  # the id (people/), "unknown", or "a+b" (group/)
    faces: int  # expected faces
    east_asian: bool


def scan(root: Path) -> list[LabelledPhoto]:
    """The labelled photos under `root` (see the module docstring), in a stable order."""
    root = Path(root)
    if not (root / "people").is_dir():
        raise FaceSetError(f"{root}: no people/ folder (expected people/<id>/<photo> and unknown/<photo>)")
    manifest = root / "MANIFEST.tsv"
    photos: list[LabelledPhoto] = []
    if manifest.is_file():
        with manifest.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                relpath = row["path"]
                category = relpath.split("/", 1)[0]
                if category not in ("people", "unknown", "group"):
                    continue
                photos.append(
                    LabelledPhoto(
                        root / relpath,
                        relpath,
                        category,
                        row["person_slug"],
                        int(row.get("faces_expected") or 1),
                        "East Asian" in (row.get("notes") or ""),
                    )
                )
    else:
        for person_dir in sorted(p for p in (root / "people").iterdir() if p.is_dir()):
            for path in sorted(person_dir.iterdir()):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    relpath = path.relative_to(root).as_posix()
                    photos.append(LabelledPhoto(path, relpath, "people", person_dir.name, 1, False))
        unknown = root / "unknown"
        if unknown.is_dir():
            for path in sorted(unknown.iterdir()):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    relpath = path.relative_to(root).as_posix()
                    photos.append(LabelledPhoto(path, relpath, "unknown", "unknown", 1, False))
    people = {p.person for p in photos if p.category == "people"}
    if len(people) < 2:
        raise FaceSetError(f"{root}: at least two people are needed under people/, found {len(people)}")
    photos.sort(key=lambda p: (p.category, p.person, p.relpath))
    return photos


# ---------------------------------------------------------------------------------------- cache


class EncodingCache:
    """Encodings by key in one .npz file (a JSON index and a float32 matrix), written atomically."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._rows: dict[str, dict[str, Any]] = {}
        self._dirty = False
        if path is not None and path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    index = json.loads(str(data["index"]))
                    vectors = data["vectors"]
                for entry in index:
                    row = dict(entry)
                    position = row.pop("row")
                    row["encoding"] = None if position < 0 else vectors[position].copy()
                    self._rows[row.pop("key")] = row
            except (OSError, ValueError, KeyError):
                self._rows = {}  # unreadable cache: encode again

    def get(self, key: str) -> dict[str, Any] | None:
        return self._rows.get(key)

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._rows[key] = value
        self._dirty = True

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        index: list[dict[str, Any]] = []
        vectors: list[npt.NDArray[np.float32]] = []
        for key, row in self._rows.items():
            encoding = row.get("encoding")
            entry = {k: v for k, v in row.items() if k != "encoding"}
            entry["key"] = key
            entry["row"] = -1 if encoding is None else len(vectors)
            if encoding is not None:
                vectors.append(np.asarray(encoding, dtype=np.float32))
            index.append(entry)
        dim = vectors[0].shape[0] if vectors else 1
        matrix = np.stack(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        np.savez(tmp, index=np.array(json.dumps(index)), vectors=matrix)
        os.replace(tmp, self.path)
        self._dirty = False


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes(), usedforsecurity=False).hexdigest()[:16]


# ------------------------------------------------------------------------------------- encoding


@dataclass
class EncodeStats:
    photos: int = 0
    faces: int = 0
    encoded: int = 0  # encodings computed in this run (not from the cache)
    encode_s: float = 0.0
    encode_ms: list[float] = field(default_factory=list)  # per computed face encoding
    enlarged: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    frames_tried: int = 0
    frames_encoded: int = 0


def _usable(pipeline: FacePipeline, rgb: npt.NDArray[np.uint8]) -> list[FaceObservation]:
    return [o for o in pipeline.analyze(rgb) if o.encoding is not None]


def _timed_observations(
    pipeline: FacePipeline, rgb: npt.NDArray[np.uint8], stats: EncodeStats
) -> list[FaceObservation]:
    found = _usable(pipeline, rgb)
    for o in found:
        stats.encode_ms.append(o.timings_ms.get("encode", 0.0))
    stats.encoded += len(found)
    return found


def _photo_faces(
    photo: LabelledPhoto, rgb: npt.NDArray[np.uint8], pipeline: FacePipeline, stats: EncodeStats
) -> tuple[int, list[FaceObservation]]:
    """(scale, faces) with boxes in the scaled image; enlarged when fewer faces than expected."""
    scale, faces = 1, _timed_observations(pipeline, rgb, stats)
    for factor in ENLARGE:
        if len(faces) >= photo.faces:
            break
        bigger = np.asarray(
            cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC), np.uint8
        )
        found = _timed_observations(pipeline, bigger, stats)
        if len(found) > len(faces):
            scale, faces = factor, found
    return scale, faces


def _frame_encoding(
    door: FacePipeline, rgb: npt.NDArray[np.uint8], stats: EncodeStats
) -> tuple[npt.NDArray[np.float32] | None, str | None]:
    detections = door.detect(rgb)
    mid_y, mid_x = rgb.shape[0] / 2.0, rgb.shape[1] / 2.0

    def off_centre(box: tuple[int, int, int, int]) -> float:
        side = max(1.0, float(max(box[1] - box[3], box[2] - box[0])))
        return float(np.hypot((box[0] + box[2]) / 2.0 - mid_y, (box[1] + box[3]) / 2.0 - mid_x)) / side

    near = sorted((d for d in detections if off_centre(d.box) < SAME_FACE), key=lambda d: off_centre(d.box))
    if not near:
        return None, "no_face"
    observation = door.observe(rgb, near[0])
    if observation.encoding is None:
        return None, observation.quality.reason or "poor_quality"
    stats.encoded += 1
    stats.encode_ms.append(observation.timings_ms.get("encode", 0.0))
    return observation.encoding, None


def encode(
    root: Path,
    photo_pipeline: FacePipeline,
    door_pipeline: FacePipeline,
    *,
    frames: int = 5,
    cache: EncodingCache | None = None,
    ranges: PerturbRanges | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[Sample], EncodeStats]:
    """Every labelled face under `root` as a `Sample` (see the module docstring)."""
    model = str(getattr(photo_pipeline.model, "name", "model"))
    # Settings that change an encoding are part of every cache key: a stale cache is never read.
    signature = hashlib.sha1(
        repr(
            (
                photo_pipeline.detection,
                photo_pipeline.quality_policy,
                door_pipeline.detection,
                door_pipeline.quality_policy,
                ranges or PerturbRanges(),
            )
        ).encode(),
        usedforsecurity=False,
    ).hexdigest()[:10]
    photos = scan(root)
    people = {p.person for p in photos if p.category == "people"}
    stats = EncodeStats()
    samples: list[Sample] = []
    started = time.perf_counter()
    for photo in photos:
        stats.photos += 1
        digest = _digest(photo.path)
        base = f"{model}|{signature}|{photo.relpath}|{digest}"
        cached = cache.get(f"{base}|photo") if cache else None
        rgb: npt.NDArray[np.uint8] | None = None
        if cached is None:
            try:
                rgb = decode_image(photo.path.read_bytes())
            except (OSError, ImageError) as exc:
                stats.missing.append(f"{photo.relpath}: unreadable ({exc})")
                continue
            scale, found = _photo_faces(photo, rgb, photo_pipeline, stats)
            faces: list[dict[str, Any]] = [
                {
                    "box": [int(round(v / scale)) for v in o.box],
                    "encoding": o.encoding,
                    "quality": o.quality.to_json(),
                }
                for o in found
            ]
            cached = {"scale": scale, "faces": len(faces), "detail": faces}
            if cache:
                cache.put(f"{base}|photo", {"scale": scale, "faces": len(faces), "encoding": None})
                for index, face in enumerate(faces):
                    cache.put(f"{base}|face{index}", face)
        else:
            cached = dict(cached)
            cached["detail"] = (
                [cache.get(f"{base}|face{i}") for i in range(int(cached["faces"]))] if cache else []
            )
        scale = int(cached["scale"])
        detail: list[dict[str, Any]] = list(cached["detail"])
        if scale > 1:
            stats.enlarged.append(f"{photo.relpath} x{scale}")
        if len(detail) < photo.faces:
            stats.missing.append(f"{photo.relpath}: {len(detail)} of {photo.faces} faces usable")
        labelled = _label(photo, detail, people, stats)
        for index, (identity, member, enrollable, face) in enumerate(labelled):
            key = f"{photo.relpath}#{index}" if photo.category != "people" else photo.relpath
            encodings: list[npt.NDArray[np.float32]] = []
            for frame in range(frames):
                frame_key = f"{base}|face{face['index']}|frame{frame}"
                entry = cache.get(frame_key) if cache else None
                if entry is None:
                    if rgb is None:
                        rgb = decode_image(photo.path.read_bytes())
                    params = frame_params(key, frame, ranges)
                    top, right, bottom, left = (int(v) for v in face["box"])
                    image = door_frame(rgb, (top, right, bottom, left), params)
                    vector, problem = _frame_encoding(door_pipeline, image, stats)
                    entry = {"encoding": vector, "problem": problem}
                    if cache:
                        cache.put(frame_key, entry)
                stats.frames_tried += 1
                if entry.get("encoding") is not None:
                    stats.frames_encoded += 1
                    encodings.append(np.asarray(entry["encoding"], dtype=np.float32))
            stats.faces += 1
            samples.append(
                Sample(
                    key=key,
                    identity=identity,
                    member=member,
                    enrollable=enrollable,
                    east_asian=photo.east_asian,
                    encoding=np.asarray(face["encoding"], dtype=np.float32),
                    quality=dict(face.get("quality") or {}),
                    frames=tuple(encodings),
                )
            )
        if progress is not None:
            progress(photo.relpath)
        if cache and stats.photos % 20 == 0:
            cache.save()
    if cache:
        cache.save()
    stats.encode_s = time.perf_counter() - started
    return samples, stats


def _label(
    photo: LabelledPhoto, detail: Sequence[dict[str, Any]], people: set[str], stats: EncodeStats
) -> list[tuple[str, bool, bool, dict[str, Any]]]:
    """(identity, is a member of people/, may be enrolled, face) for each face of `photo`."""
    indexed = [{**face, "index": i} for i, face in enumerate(detail)]
    if photo.category == "people":
        if not indexed:
            return []
        largest = max(indexed, key=lambda f: (f["box"][2] - f["box"][0]) * (f["box"][1] - f["box"][3]))
        return [(photo.person, True, True, largest)]
    if photo.category == "unknown":
        return [(f"{photo.relpath}#{f['index']}", False, False, f) for f in indexed]
    labels = photo.person.split("+")
    ordered = sorted(indexed, key=lambda f: f["box"][3])  # left to right, as MANIFEST labels them
    if len(ordered) != len(labels):
        stats.missing.append(f"{photo.relpath}: {len(ordered)} faces for {len(labels)} labels, not used")
        return []
    out = []
    for label, face in zip(labels, ordered, strict=True):
        if label in people:
            out.append((label, True, False, face))
        else:
            out.append((f"{photo.relpath}:{label}", False, False, face))
    return out


def encode_many(
    roots: Iterable[Path],
    photo_pipeline: FacePipeline,
    door_pipeline: FacePipeline,
    **kwargs: Any,
) -> tuple[list[Sample], list[EncodeStats]]:
    """`encode` over several folders (their identities must not overlap: checked)."""
    samples: list[Sample] = []
    stats: list[EncodeStats] = []
    for root in roots:
        more, stat = encode(root, photo_pipeline, door_pipeline, **kwargs)
        overlap = {s.identity for s in more if s.member} & {s.identity for s in samples if s.member}
        if overlap:
            raise FaceSetError(f"{root}: identities also in an earlier folder: {sorted(overlap)[:5]}")
        samples.extend(more)
        stats.append(stat)
    return samples, stats
