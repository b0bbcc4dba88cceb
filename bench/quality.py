"""Recognition quality of the door's rule, leave-identity-out, per face model, side by side.

Run it with `python -m bench.quality [--onnx MODEL.onnx] [--json] [--no-write]`. It encodes the
labelled faces ($YIZHAN_TEST_FACES, default ../shared/data/faces, and its sibling faces-ea) with each
face model (dlib always; an ONNX model when given, e.g. `make eval-model`'s), caches the encodings
under bench/out/ (git-ignored), and measures, for each model, in one run:

- the presets the procedure gives on all the data (`recognizer.calibration.derive_presets`: what
  `recognizer.scoring.PRESETS[model]` ships);
- leave-identity-out: for each person (and each stranger), the operating point is chosen again
  *without* them and their faces are judged with it; members let in by face alone, asked for the
  pass, refused, and false accepts, per appearance (several door frames fused), with Wilson 95 %
  intervals, overall and East Asian, with 1 and with up to 3 enrolment photos;
- on rosters of every size: each person alone (1), many random rosters of 3 and 6 East Asian
  people (everyone else an impostor), random rosters of 30 from everyone, everyone (46), and
  everyone padded to 1,000 rows with synthetic encodings (drawn like bench.recognition's padding:
  per-dimension normal fitted to the real encodings; not real faces, said so in the report);
- per frame (each door frame judged alone) against per appearance (frames fused and agreeing);
- the real clip in ../shared/data/faces/video (Lin-Manuel Miranda, one enrolment photo);
- two-factor: each appearance with every other member's pass (a colleague, a stranger);
- enrolment checks: the same person under a new id, distinct people flagged;
- embedding time per face (the encoder alone, same run, same faces, each model).

"Several frames of one appearance" come from `recognizer.perturb`: door-camera-like frames made from
each photo (a proxy, see docs/RECOGNITION.md). OPENBLAS_NUM_THREADS is pinned to 1 before numpy
loads (../shared/NOTES.md).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Mapping, Sequence  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from bench import report  # noqa: E402
from bench.dataset import REPO, faces_dir  # noqa: E402
from edge.faceset import EncodingCache, encode_many  # noqa: E402
from recognizer.calibration import (  # noqa: E402
    PRESET_DESCRIPTIONS,
    PRESET_SETTINGS,
    Outcome,
    PolicyFor,
    Roster,
    Sample,
    by_identity,
    choose_operating_point,
    derive_presets,
    enrollable,
    enrolment,
    leave_identity_out,
    policies_by_identity,
    random_rosters,
    run_trials,
    summarise,
    wilson,
)
from recognizer.duplicates import FATAL, LOOKALIKE, POSSIBLE_DUPLICATE, SAME_PERSON, check_new_faces  # noqa: E402
from recognizer.encoder import FaceModel  # noqa: E402
from recognizer.face_pipeline import DetectionSettings, FacePipeline  # noqa: E402
from recognizer.quality import QualityPolicy  # noqa: E402
from recognizer.roster import RosterSnapshot  # noqa: E402
from recognizer.scoring import DEFAULT_PRESET, ScoringPolicy, score, verify  # noqa: E402

Vector = npt.NDArray[np.float32]

MARK_START = "<!-- bench.quality:start -->"
MARK_END = "<!-- bench.quality:end -->"
DOC_MARK_START = "<!-- bench.quality.figures:start -->"
DOC_MARK_END = "<!-- bench.quality.figures:end -->"
BENCHMARKS_MD = REPO / "docs" / "BENCHMARKS.md"
RECOGNITION_MD = REPO / "docs" / "RECOGNITION.md"
CACHE_DIR = REPO / "bench" / "out"

ENROL_SIZES = (1, 3)
FRAMES = 6  # door frames made per face (each preset uses its first min_frames)
SEED = 20261213
PAD_ROWS = 1000
VIDEO_STEP = 3  # every 3rd video frame is looked at (the door encodes ~5-10 a second)
VIDEO_LAST_S = 7.5  # the clip's last ~1.5 s show the audience (Obama in profile), not the singer
VIDEO_PERSON = "lin_manuel_miranda"
TIMED_FACES = 20
TARGETS = {
    "dlib": {"let_in": 0.90, "let_in_east_asian": 0.85, "photos": 3},
    "eval": {"let_in": 0.95, "let_in_east_asian": 0.93, "photos": 1},
}


@dataclass(frozen=True, slots=True)
class BenchSettings:
    """How many random rosters of each kind (the tests use fewer)."""

    rosters_small: int = 150
    rosters_30: int = 40
    per_frame: bool = True
    video: bool = True
    timing: bool = True
    presets: tuple[str, ...] = ("strict", "balanced", "convenient")


# ---------------------------------------------------------------------------------------- encoding


def pipelines(model: FaceModel) -> tuple[FacePipeline, FacePipeline]:
    """(photo, door) pipelines as a station builds them with the default configuration."""
    quality = QualityPolicy(min_face_px=70)  # [recognition] min_face_px default
    photo = FacePipeline(model, DetectionSettings(detect_max_side=1280, fallback_max_side=0), quality)
    door = FacePipeline(model, DetectionSettings(), quality)
    return photo, door


def data_roots(root: Path) -> list[Path]:
    """The labelled set and its East Asian sibling (faces-ea), when present."""
    roots = [root]
    sibling = root.parent / "faces-ea"
    if (sibling / "MANIFEST.tsv").is_file():
        roots.append(sibling)
    return roots


def encode_set(
    model: FaceModel, roots: Sequence[Path], *, frames: int = FRAMES, cache_dir: Path | None = CACHE_DIR
) -> tuple[list[Sample], dict[str, Any]]:
    photo, door = pipelines(model)
    cache = EncodingCache(cache_dir / f"encodings-{model.name}.npz") if cache_dir else None
    started = time.perf_counter()
    samples, stats = encode_many(roots, photo, door, frames=frames, cache=cache)
    info = {
        "roots": [os.path.relpath(r, REPO) for r in roots],
        "photos": sum(s.photos for s in stats),
        "faces": sum(s.faces for s in stats),
        "computed_encodings": sum(s.encoded for s in stats),
        "frames_tried": sum(s.frames_tried for s in stats),
        "frames_encoded": sum(s.frames_encoded for s in stats),
        "enlarged": [e for s in stats for e in s.enlarged],
        "missing": [m for s in stats for m in s.missing],
        "encode_s": round(time.perf_counter() - started, 1),
    }
    return samples, info


def embedding_time(model: FaceModel, roots: Sequence[Path], faces: int = TIMED_FACES) -> dict[str, Any]:
    """The encoder alone (`model.encode` on a found face), median over `faces` photos x 3."""
    from edge.faceset import scan
    from recognizer.images import decode_image

    photo, _ = pipelines(model)
    timings: list[float] = []
    used = 0
    for item in scan(roots[-1]):
        if item.category != "people" or used >= faces:
            continue
        rgb = decode_image(item.path.read_bytes())
        found = photo.detect(rgb)
        if not found:
            continue
        used += 1
        photo.observe(rgb, found[0])  # warm
        for _ in range(3):
            observation = photo.observe(rgb, found[0])
            if "encode" in observation.timings_ms:
                timings.append(observation.timings_ms["encode"])
    return {
        "faces": used,
        "p50_ms": round(float(np.median(timings)), 2) if timings else None,
        "p95_ms": round(float(np.percentile(timings, 95)), 2) if timings else None,
    }


# ---------------------------------------------------------------------------------------- rosters


def roster_sets(
    samples: Sequence[Sample], settings: BenchSettings, padding: Vector
) -> dict[str, list[Roster]]:
    grouped = by_identity(samples)
    members = sorted(i for i, items in grouped.items() if enrollable(items))
    east = sorted(i for i in members if any(s.east_asian for s in grouped[i]))
    return {
        "1": [Roster(f"only:{m}", (m,)) for m in members],
        "3 East Asian": random_rosters(east, 3, settings.rosters_small, SEED + 3, "ea3"),
        "6 East Asian": random_rosters(east, 6, settings.rosters_small, SEED + 6, "ea6"),
        "30": random_rosters(members, min(30, len(members)), settings.rosters_30, SEED + 30, "r30"),
        f"all ({len(members)})": [Roster("all", tuple(members))],
        f"{PAD_ROWS} (padded)": [
            Roster("padded", tuple(members), padding[: max(0, PAD_ROWS - len(members))])
        ],
    }


def padding_for(samples: Sequence[Sample]) -> Vector:
    from bench.recognition import padding_vectors

    real = np.stack([s.encoding for s in samples if s.member and s.enrollable])
    return padding_vectors(real, PAD_ROWS, seed=SEED)


def per_frame_samples(samples: Sequence[Sample]) -> list[Sample]:
    """Every door frame as an appearance of its own (to judge frames one by one); the key stays the
    photo's, so its own photo is never among the templates it is judged against."""
    return [replace(s, frames=(frame,)) for s in samples for frame in s.frames]


def one_frame(policy_for: PolicyFor) -> PolicyFor:
    return lambda identity: policy_for(identity).for_one_photo()


# ---------------------------------------------------------------------------------------- measures


def measure_rosters(
    samples: Sequence[Sample],
    rosters: Mapping[str, list[Roster]],
    policy_for: PolicyFor,
    *,
    frames: int,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in ENROL_SIZES:
        by_kind: dict[str, Any] = {}
        everything: list[Outcome] = []
        for kind, items in rosters.items():
            outcomes = run_trials(samples, items, policy_for, size=size, frames=frames)
            everything += outcomes
            summary = summarise(outcomes)
            summary["rosters"] = len(items)
            summary["false_accept_examples"] = [
                {"probe": o.probe, "accepted_as": o.member_id, "distance": _r(o.distance)}
                for o in outcomes
                if o.false_accept
            ][:5]
            by_kind[kind] = summary
        total = summarise(everything)
        by_kind["every roster"] = total
        out[str(size)] = by_kind
    return out


def measure_video(
    model: FaceModel, root: Path, samples: Sequence[Sample], policy_for: PolicyFor, cache_dir: Path | None
) -> dict[str, Any] | None:
    """The clip: per frame and per appearance (windows of min_frames consecutive encodings)."""
    video = root / "video" / "short_hamilton_clip.mp4"
    grouped = by_identity(samples)
    if not video.is_file() or VIDEO_PERSON not in grouped:
        return None
    encodings = _video_encodings(model, video, cache_dir)
    policy = policy_for(VIDEO_PERSON)
    members = sorted(i for i, items in grouped.items() if enrollable(items))
    rows = [(m, s.encoding) for m in members for s in enrolment(enrollable(grouped[m]), 1)]
    dim = int(samples[0].encoding.shape[0])
    full = RosterSnapshot.build(rows, dim=dim)
    without = RosterSnapshot.build([(m, v) for m, v in rows if m != VIDEO_PERSON], dim=dim)
    k = policy.min_frames
    windows = [encodings[i : i + k] for i in range(0, len(encodings) - k + 1)]
    chunks = [encodings[i : i + k] for i in range(0, len(encodings) - k + 1, k)]

    def tally(
        snapshot: RosterSnapshot, groups: Sequence[Sequence[Vector]], judge: ScoringPolicy
    ) -> dict[str, Any]:
        zones = [score(snapshot, list(g), judge) for g in groups]
        let_in = sum(r.member_id == VIDEO_PERSON for r in zones)
        wrong = sum(r.member_id is not None and r.member_id != VIDEO_PERSON for r in zones)
        asked = sum(r.zone == "show_pass" for r in zones)
        low, high = wilson(let_in, len(zones))
        return {
            "n": len(zones),
            "let_in": let_in,
            "let_in_wilson95": [round(low, 4), round(high, 4)],
            "asked_for_pass": asked,
            "false_accepts": wrong,
        }

    return {
        "encoded_frames": len(encodings),
        "policy": policy.name,
        "accept_distance": policy.accept_distance,
        "enrolled_with": "1 photo (people/lin_manuel_miranda/1)",
        "per_frame": tally(full, [[e] for e in encodings], policy.for_one_photo()),
        "per_appearance_sliding": tally(full, windows, policy),
        "per_appearance_disjoint": tally(full, chunks, policy),
        "not_enrolled_per_frame": tally(without, [[e] for e in encodings], policy.for_one_photo()),
        "not_enrolled_per_appearance": tally(without, windows, policy),
    }


def _video_encodings(model: FaceModel, video: Path, cache_dir: Path | None) -> list[Vector]:
    digest = hashlib.sha1(video.read_bytes(), usedforsecurity=False).hexdigest()[:16]
    cache = EncodingCache(cache_dir / f"encodings-{model.name}.npz") if cache_dir else None
    key = f"{model.name}|video|{digest}|step{VIDEO_STEP}|{VIDEO_LAST_S}"
    cached = cache.get(key) if cache else None
    if cached is not None:
        count = int(cached["count"])
        return [np.asarray(cache.get(f"{key}|{i}")["encoding"], dtype=np.float32) for i in range(count)]  # type: ignore[index,union-attr]
    _, door = pipelines(model)
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    out: list[Vector] = []
    index = 0
    while True:
        ok, bgr = capture.read()
        if not ok or index / fps > VIDEO_LAST_S:
            break
        if index % VIDEO_STEP == 0:
            rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
            found = door.detect(rgb)
            if found:
                observation = door.observe(rgb, found[0])
                if observation.encoding is not None:
                    out.append(observation.encoding)
        index += 1
    capture.release()
    if cache:
        cache.put(key, {"count": len(out), "encoding": None})
        for i, vector in enumerate(out):
            cache.put(f"{key}|{i}", {"encoding": vector})
        cache.save()
    return out


def measure_two_factor(
    samples: Sequence[Sample], policy_for: PolicyFor, frames: int, small_rosters: Sequence[Roster] = ()
) -> dict[str, Any]:
    """Each appearance with its own pass (genuine) and with every other member's pass: once as an
    enrolled colleague, once as someone not enrolled (a stranger); strangers with every pass. And on
    small rosters (no crowd for the cohort gate): everyone not on the roster with each member's pass."""
    grouped = by_identity(samples)
    members = sorted(i for i, items in grouped.items() if enrollable(items))
    east = {i for i in members if any(s.east_asian for s in grouped[i])}
    dim = int(samples[0].encoding.shape[0])
    out: dict[str, Any] = {}
    for size in ENROL_SIZES:
        canonical = {m: enrolment(enrollable(grouped[m]), size) for m in members}
        rows = [(m, s.encoding) for m in members for s in canonical[m]]
        full = RosterSnapshot.build(rows, dim=dim)
        without = {m: RosterSnapshot.build([(o, v) for o, v in rows if o != m], dim=dim) for m in members}
        counts = {
            key: [0, 0]
            for key in (
                "genuine",
                "genuine_on_demand",
                "colleague",
                "stranger",
                "ea_colleague",
                "ea_stranger",
            )
        }
        for sample in samples:
            if len(sample.frames) < frames:
                continue
            window = list(sample.frames[:frames])
            policy = policy_for(sample.identity)
            if sample.identity in grouped and sample.identity in members:
                others = [s for s in enrollable(grouped[sample.identity]) if s.key != sample.key]
                if others:
                    own = enrolment(others, size)
                    snap = RosterSnapshot.build(
                        [(o, v) for o, v in rows if o != sample.identity]
                        + [(sample.identity, s.encoding) for s in own],
                        dim=dim,
                    )
                    counts["genuine"][0] += verify(snap, sample.identity, window, policy).accepted
                    counts["genuine"][1] += 1
                    asked = verify(snap, sample.identity, window, policy, on_demand=True)
                    counts["genuine_on_demand"][0] += asked.accepted
                    counts["genuine_on_demand"][1] += 1
            for claimed in members:
                if claimed == sample.identity:
                    continue
                pair_east = sample.east_asian and claimed in east
                enrolled = sample.identity in members
                snapshot = full if enrolled else without.get(sample.identity, full)
                kind = "colleague" if enrolled else "stranger"
                accepted = verify(snapshot, claimed, window, policy).accepted
                counts[kind][0] += accepted
                counts[kind][1] += 1
                if pair_east:
                    counts[f"ea_{kind}"][0] += accepted
                    counts[f"ea_{kind}"][1] += 1
        counts["small_roster_stranger"] = [0, 0]
        counts["small_roster_stranger_on_demand"] = [0, 0]
        for roster in small_rosters:
            snap = RosterSnapshot.build(
                [(m, s.encoding) for m in roster.members for s in canonical[m]], dim=dim
            )
            for sample in samples:
                if sample.identity in roster.members or len(sample.frames) < frames:
                    continue
                window = list(sample.frames[:frames])
                for claimed in roster.members:
                    policy = policy_for(sample.identity)
                    for key, on_demand in (
                        ("small_roster_stranger", False),
                        ("small_roster_stranger_on_demand", True),
                    ):
                        accepted = verify(snap, claimed, window, policy, on_demand=on_demand).accepted
                        counts[key][0] += accepted
                        counts[key][1] += 1
        out[str(size)] = {
            key: {"accepted": a, "claims": n, "wilson95": [round(v, 4) for v in wilson(a, n)]}
            for key, (a, n) in counts.items()
        }
    return out


def measure_enrolment(samples: Sequence[Sample], policy: ScoringPolicy) -> dict[str, Any]:
    """Duplicate checks with the policy's enrolment distances (photos against templates)."""
    grouped = by_identity(samples)
    members = sorted(i for i, items in grouped.items() if enrollable(items))
    dim = int(samples[0].encoding.shape[0])
    first = {m: enrollable(grouped[m])[0] for m in members}
    rows = [(m, first[m].encoding) for m in members]
    same = {"photos": 0, "same_person": 0, "lookalike": 0, "possible_duplicate": 0, "missed": 0}
    distinct: dict[str, Any] = {
        "photos": 0,
        "same_person": 0,
        "lookalike": 0,
        "possible_duplicate": 0,
        "pairs": set(),
    }
    for member in members:
        photos = enrollable(grouped[member])
        others = RosterSnapshot.build([(m, v) for m, v in rows if m != member], dim=dim)
        for photo in photos:
            findings = check_new_faces(
                others, member, [(photo.key, photo.encoding)], policy, existing_member=False
            )
            distinct["photos"] += 1
            kinds = {f.kind for f in findings}
            for kind in (SAME_PERSON, LOOKALIKE, POSSIBLE_DUPLICATE):
                distinct[kind] += kind in kinds
            for f in findings:
                distinct["pairs"].add(tuple(sorted((member, f.member_id))) + (f.kind,))
        for photo in photos:
            if photo is first[member]:
                continue
            snap = RosterSnapshot.build(rows, dim=dim)
            findings = check_new_faces(
                snap, "new-id", [(photo.key, photo.encoding)], policy, existing_member=False
            )
            mine = {f.kind for f in findings if f.member_id == member}
            same["photos"] += 1
            for kind in (SAME_PERSON, LOOKALIKE, POSSIBLE_DUPLICATE):
                same[kind] += kind in mine
            same["missed"] += not mine
    blocked_distinct = sorted(p for p in distinct["pairs"] if p[2] in FATAL)
    return {
        "policy": policy.name,
        "same_person_new_id": same,
        "distinct": {k: v for k, v in distinct.items() if k != "pairs"},
        "distinct_pairs": [list(p) for p in sorted(distinct["pairs"])],
        "distinct_refused_always": [list(p) for p in blocked_distinct],
    }


_PRESET_NUMBERS = (
    "min_frames",
    "accept_distance",
    "grey_distance",
    "verify_distance",
    "min_margin",
    "max_ratio",
    "verify_max_ratio",
    "same_person_distance",
    "lookalike_distance",
    "review_distance",
)


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


# ---------------------------------------------------------------------------------------- one model


def evaluate_model(
    model: FaceModel,
    root: Path,
    settings: BenchSettings | None = None,
    *,
    cache_dir: Path | None = CACHE_DIR,
    samples: list[Sample] | None = None,
) -> dict[str, Any]:
    """Everything above for one face model (samples: already encoded, e.g. by a test)."""
    settings = settings or BenchSettings()
    started = time.perf_counter()
    roots = data_roots(root)
    info: dict[str, Any] = {}
    if samples is None:
        samples, info = encode_set(model, roots, cache_dir=cache_dir)
    grouped = by_identity(samples)
    members = [i for i, items in grouped.items() if enrollable(items)]
    info.update(
        {
            "identities": len(grouped),
            "members": len(members),
            "east_asian_members": sum(any(s.east_asian for s in grouped[m]) for m in members),
            "strangers": len(grouped) - len(members),
            "appearances": sum(1 for s in samples if s.frames),
        }
    )
    presets = {
        name: choose_operating_point(
            samples, PRESET_SETTINGS[name], model=model.name, name=name, description=PRESET_DESCRIPTIONS[name]
        )
        for name in settings.presets
    }
    padding = padding_for(samples)
    rosters = roster_sets(samples, settings, padding)
    results: dict[str, Any] = {}
    for name in settings.presets:
        proc = PRESET_SETTINGS[name]
        lio = leave_identity_out(samples, proc, model=model.name, name=name)
        policy_for = policies_by_identity(lio)
        accepts = [c.policy.accept_distance for c in lio.values()]
        entry: dict[str, Any] = {
            "policy": presets[name].policy.to_json(),
            "choice": presets[name].details,
            "lio_accept_distance": [round(min(accepts), 4), round(max(accepts), 4)],
            "appearance": measure_rosters(samples, rosters, policy_for, frames=proc.min_frames),
        }
        if name == DEFAULT_PRESET:
            if settings.per_frame:
                frame_rosters = {k: v for k, v in rosters.items() if k in ("1", f"all ({len(members)})")}
                entry["per_frame"] = measure_rosters(
                    per_frame_samples(samples), frame_rosters, one_frame(policy_for), frames=1
                )
            entry["two_factor"] = measure_two_factor(
                samples,
                policy_for,
                proc.min_frames,
                rosters["3 East Asian"][: max(1, settings.rosters_small // 5)],
            )
            entry["enrolment"] = measure_enrolment(samples, presets[name].policy)
            if settings.video:
                entry["video"] = measure_video(model, root, samples, policy_for, cache_dir)
        results[name] = entry
    timing = embedding_time(model, roots) if settings.timing else None
    return {
        "model": model.name,
        "dim": int(samples[0].encoding.shape[0]),
        "data": info,
        "presets": results,
        "embedding": timing,
        "duration_s": round(time.perf_counter() - started, 1),
    }


def targets(result: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The issue's targets for a model: zero false accepts everywhere; let-in rates at the default."""
    want = TARGETS[kind]
    zero = all(
        part["all"]["false_accepts"] == 0
        for preset in result["presets"].values()
        for size in preset["appearance"].values()
        for part in size.values()
    )
    every = result["presets"][DEFAULT_PRESET]["appearance"][str(want["photos"])]["every roster"]
    full = next(
        v
        for k, v in result["presets"][DEFAULT_PRESET]["appearance"][str(want["photos"])].items()
        if k.startswith("all")
    )
    let_in = full["all"]["let_in_rate"]["value"] or 0.0
    let_in_ea = full["east_asian"]["let_in_rate"]["value"] or 0.0
    return {
        "zero_false_accepts": zero,
        "photos": want["photos"],
        "let_in": {"value": let_in, "target": want["let_in"], "met": let_in >= want["let_in"]},
        "let_in_east_asian": {
            "value": let_in_ea,
            "target": want["let_in_east_asian"],
            "met": let_in_ea >= want["let_in_east_asian"],
        },
        "rest_asked": every["all"]["refused"] == 0,
    }


# ------------------------------------------------------------------------------------------ output


def _pct(rate: Mapping[str, Any]) -> str:
    if rate["value"] is None:
        return "-"
    low, high = rate["wilson95"]
    return f"{100 * rate['value']:.1f} % ({100 * low:.1f}-{100 * high:.1f})"


def _count(part: Mapping[str, Any]) -> str:
    return f"{part['let_in']}/{part['genuine']}"


def render_markdown(run: Mapping[str, Any], command: str) -> str:
    m = run["machine"]
    lines = [
        MARK_START,
        "## Recognition quality: the zone rule, leave-identity-out, every roster size",
        "",
        f"Measured {run['measured_at']} with `{command}`. Machine: {m['cpu']}, {m['cores']} cores; "
        f"Python {m['python']}, numpy {m['numpy']}, dlib {m['dlib']}; OPENBLAS_NUM_THREADS="
        f"{m['openblas_num_threads']}. The rule and the procedure are in docs/RECOGNITION.md.",
        "",
    ]
    for result in run["models"]:
        data = result["data"]
        lines += [
            f"Model `{result['model']}` ({result['dim']}-d): {data['identities']} identities "
            f"({data['members']} people with photos, {data['east_asian_members']} East Asian; "
            f"{data['strangers']} strangers), {data['appearances']} appearances of "
            f"{PRESET_SETTINGS[DEFAULT_PRESET].min_frames}+ door frames made from the photos "
            f"(`recognizer.perturb`, a proxy). Unusable: {', '.join(data.get('missing', [])) or 'none'}.",
            "",
        ]
    lines += [
        "### Members let in by face alone, per appearance, leave-identity-out",
        "",
        "Each person's faces judged with the operating point chosen without them (the preset's "
        "procedure). Every roster kind pooled; members not let in are asked for the pass unless beyond "
        "the grey zone (refused). Wilson 95 % intervals in brackets.",
        "",
        "| model | preset | photos | let in | let in, East Asian | asked for the pass | refused | "
        "false accepts / trials |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += _let_in_rows(run, refused=True)
    lines += [
        "",
        "### Every roster size (default preset, per appearance)",
        "",
        "Rosters: each person alone; random rosters of 3 and of 6 East Asian people (everyone else, "
        "East Asian or not, is an impostor); random rosters of 30; everyone; everyone padded to 1,000 "
        "rows with synthetic encodings (normal per dimension, fitted to the real ones: not faces, "
        "they test the matcher's arithmetic and the cohort gate at size, not new lookalikes).",
        "",
        "| model | photos | roster | rosters | member trials | let in | let in, East Asian | "
        "impostor trials | impostors asked | false accepts |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in run["models"]:
        preset = result["presets"][DEFAULT_PRESET]
        for size, kinds in preset["appearance"].items():
            for kind, part in kinds.items():
                if kind == "every roster":
                    continue
                a, e = part["all"], part["east_asian"]
                lines.append(
                    f"| `{result['model']}` | {size} | {kind} | {part['rosters']} | {a['genuine']} | "
                    f"{_pct(a['let_in_rate'])} | {_pct(e['let_in_rate'])} | {a['impostor']} | "
                    f"{a['impostor_asked']} | **{a['false_accepts']}** |"
                )
    lines += [
        "",
        "### Per frame against per appearance (default preset)",
        "",
        "Per frame: each door frame judged alone with the same distances (what one look is worth); "
        "per appearance: the preset's frames fused and agreeing. Rosters: each person alone, and everyone.",
        "",
        "| model | photos | judged on | trials | let in | let in, East Asian | false accepts |",
        "|---|---|---|---|---|---|---|",
    ]
    for result in run["models"]:
        preset = result["presets"][DEFAULT_PRESET]
        if "per_frame" not in preset:
            continue
        for size in map(str, ENROL_SIZES):
            for label, block in (
                ("one frame", preset["per_frame"][size]),
                ("appearance", preset["appearance"][size]),
            ):
                parts = [v for k, v in block.items() if k == "1" or k.startswith("all")]
                genuine = sum(p["all"]["genuine"] for p in parts)
                let_in = sum(p["all"]["let_in"] for p in parts)
                ea_genuine = sum(p["east_asian"]["genuine"] for p in parts)
                ea_in = sum(p["east_asian"]["let_in"] for p in parts)
                fa = sum(p["all"]["false_accepts"] for p in parts)
                trials = sum(p["all"]["genuine"] + p["all"]["impostor"] for p in parts)
                lines.append(
                    f"| `{result['model']}` | {size} | {label} | {trials} | "
                    f"{_pct(_rate(let_in, genuine))} | {_pct(_rate(ea_in, ea_genuine))} | **{fa}** |"
                )
    lines += ["", "### The real clip (short_hamilton_clip.mp4, default preset)", ""]
    for result in run["models"]:
        video = result["presets"][DEFAULT_PRESET].get("video")
        if not video:
            continue
        pf, pa, pd = video["per_frame"], video["per_appearance_sliding"], video["per_appearance_disjoint"]
        nf, na = video["not_enrolled_per_frame"], video["not_enrolled_per_appearance"]
        lines.append(
            f"- `{result['model']}`: {video['encoded_frames']} encoded frames (every {VIDEO_STEP}rd, first "
            f"{VIDEO_LAST_S} s), enrolled with {video['enrolled_with']}, accept distance "
            f"{video['accept_distance']} (chosen without him). Let in per frame {pf['let_in']}/{pf['n']}, "
            "per "
            f"appearance {pa['let_in']}/{pa['n']} (sliding windows; disjoint {pd['let_in']}/{pd['n']}), "
            f"asked for the pass {pa['asked_for_pass']}; wrong member "
            f"{pf['false_accepts'] + pa['false_accepts']}. "
            f"Not enrolled (the same frames against everyone else): false accepts {nf['false_accepts']} per "
            f"frame, {na['false_accepts']} per appearance."
        )
    lines += [
        "",
        "### Two-factor: the pass names the member, the face confirms it (1:1, default preset)",
        "",
        "Where the pass is required (two-factor station or group, requires_pass): the face must be within "
        "the verify distance. Colleague: an enrolled member with another member's pass (everyone "
        "enrolled); stranger: someone not enrolled with a member's pass (everyone else enrolled: the "
        "cohort gate is on); small rosters: everyone not on a random roster of 3 East Asian people with "
        "each member's pass (no crowd). On demand (the door asked a grey face; that pass alone would "
        "have opened): the face must only not contradict it (grey distance).",
        "",
        "| model | photos | own pass confirmed (required / on demand) | colleague's pass accepted | "
        "stranger with a pass accepted | East Asian pairs: colleague / stranger | small rosters: pass + "
        "another face, required | same, on demand |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in run["models"]:
        tf = result["presets"][DEFAULT_PRESET]["two_factor"]
        for size, c in tf.items():
            lines.append(
                f"| `{result['model']}` | {size} | {c['genuine']['accepted']}/{c['genuine']['claims']} / "
                f"{c['genuine_on_demand']['accepted']}/{c['genuine_on_demand']['claims']} | "
                f"{c['colleague']['accepted']}/{c['colleague']['claims']} | "
                f"{c['stranger']['accepted']}/{c['stranger']['claims']} | "
                f"{c['ea_colleague']['accepted']}/{c['ea_colleague']['claims']} / "
                f"{c['ea_stranger']['accepted']}/{c['ea_stranger']['claims']} | "
                f"{_claims(c['small_roster_stranger'])} | {_claims(c['small_roster_stranger_on_demand'])} |"
            )
    lines += ["", "### Enrolment checks (default preset's distances, photo against template)", ""]
    for result in run["models"]:
        en = result["presets"][DEFAULT_PRESET]["enrolment"]
        refused_for_good = ", ".join("/".join(p[:2]) for p in en["distinct_refused_always"])
        same, distinct = en["same_person_new_id"], en["distinct"]
        lines.append(
            f"- `{result['model']}`: the same person under a new id ({same['photos']} photos): refused as "
            f"the same person {same['same_person']}, lookalike {same['lookalike']}, possible duplicate "
            f"{same['possible_duplicate']}, not caught {same['missed']}. Distinct people "
            f"({distinct['photos']} photos against everyone else): same person {distinct['same_person']} "
            f"(refused for good: {refused_for_good or 'none'}), "
            f"lookalike {distinct['lookalike']}, possible duplicate {distinct['possible_duplicate']} (the "
            "installer confirms them)."
        )
    lines += [
        "",
        "### Operating points the procedure gives (what PRESETS ship)",
        "",
        "| model | preset | frames | accept | verify | grey | margin | ratio gate (20+) | same person | "
        "lookalike | review | accept, leave-identity-out range |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in run["models"]:
        for name, preset in result["presets"].items():
            p = preset["policy"]
            lo, hi = preset["lio_accept_distance"]
            lines.append(
                f"| `{result['model']}` | `{name}` | {p['min_frames']} | {p['accept_distance']} | "
                f"{p['verify_distance']} | {p['grey_distance']} | {p['min_margin']} | {p['max_ratio']} | "
                f"{p['same_person_distance']} | "
                f"{p['lookalike_distance']} | {p['review_distance']} | {lo}-{hi} |"
            )
    lines += ["", "### Embedding time per face (the encoder alone, same run)", ""]
    for result in run["models"]:
        e = result["embedding"]
        if e:
            lines.append(
                f"- `{result['model']}`: p50 {e['p50_ms']} ms, p95 {e['p95_ms']} ms over "
                f"{e['faces']} faces x 3."
            )
    lines += ["", "### Targets", "", "| model | target | measured | met |", "|---|---|---|---|"]
    yes = {True: "yes", False: "**no**"}
    for result in run["models"]:
        t = result["targets"]
        lines += [
            f"| `{result['model']}` | 0 false accepts, every roster, preset and trial | "
            f"{'0' if t['zero_false_accepts'] else 'some'} | {yes[t['zero_false_accepts']]} |",
            f"| `{result['model']}` | let in >= {100 * t['let_in']['target']:.0f} % ({t['photos']} photo(s), "
            f"all people) | {100 * t['let_in']['value']:.1f} % | {yes[t['let_in']['met']]} |",
            f"| `{result['model']}` | East Asian let in >= {100 * t['let_in_east_asian']['target']:.0f} % | "
            f"{100 * t['let_in_east_asian']['value']:.1f} % | {yes[t['let_in_east_asian']['met']]} |",
            f"| `{result['model']}` | the rest asked for the pass, none refused | "
            f"{'none refused' if t['rest_asked'] else 'some refused'} | {yes[t['rest_asked']]} |",
        ]
    lines += ["", f"Run time: {run['duration_s']} s.", MARK_END]
    return "\n".join(lines) + "\n"


def _let_in_rows(run: Mapping[str, Any], *, refused: bool) -> list[str]:
    """One table row per model, preset and enrolment size: every roster kind pooled."""
    rows = []
    for result in run["models"]:
        for name, preset in result["presets"].items():
            for size, kinds in preset["appearance"].items():
                a, e = kinds["every roster"]["all"], kinds["every roster"]["east_asian"]
                middle = f" {a['refused']} |" if refused else ""
                rows.append(
                    f"| `{result['model']}` | `{name}` | {size} | {_pct(a['let_in_rate'])} | "
                    f"{_pct(e['let_in_rate'])} | {_pct(a['asked_rate'])} |{middle} "
                    f"**{a['false_accepts']}** of "
                    f"{a['genuine'] + a['impostor']} |"
                )
    return rows


def render_figures(run: Mapping[str, Any]) -> str:
    """The short figures block docs/RECOGNITION.md quotes (between its own markers)."""
    lines = [
        DOC_MARK_START,
        f"Measured {run['measured_at']} by `python -m bench.quality` (full tables in BENCHMARKS.md). "
        "Per appearance, leave-identity-out, every roster kind pooled, Wilson 95 % intervals:",
        "",
        "| model | preset | photos | let in by face alone | East Asian | asked for the pass | "
        "false accepts |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += _let_in_rows(run, refused=False)
    lines.append(DOC_MARK_END)
    return "\n".join(lines) + "\n"


def _claims(counts: Mapping[str, Any]) -> str:
    return _pct(_rate(counts["accepted"], counts["claims"]))


def _rate(hits: int, total: int) -> dict[str, Any]:
    low, high = wilson(hits, total)
    return {"value": round(hits / total, 4) if total else None, "wilson95": [round(low, 4), round(high, 4)]}


def render_text(run: Mapping[str, Any]) -> str:
    out = []
    for result in run["models"]:
        for name, preset in result["presets"].items():
            for size, kinds in preset["appearance"].items():
                a, e = kinds["every roster"]["all"], kinds["every roster"]["east_asian"]
                out.append(
                    f"{result['model']:<24} {name:<10} {size} photo(s): let in {_pct(a['let_in_rate'])}, "
                    f"East Asian {_pct(e['let_in_rate'])}, asked {a['asked_for_pass']}, "
                    f"refused {a['refused']}, "
                    f"false accepts {a['false_accepts']} of {a['genuine'] + a['impostor']}"
                )
        out.append(f"{result['model']}: targets {json.dumps(result['targets'])}")
    out.append(f"total {run['duration_s']} s")
    return "\n".join(out) + "\n"


def write_sections(run: Mapping[str, Any], command: str) -> None:
    report.write_section(BENCHMARKS_MD, render_markdown(run, command), MARK_START, MARK_END)
    report.write_section(RECOGNITION_MD, render_figures(run), DOC_MARK_START, DOC_MARK_END)


def command_line(argv: Sequence[str]) -> str:
    return report.command_line("bench.quality", argv)


def machine() -> dict[str, Any]:
    from bench.recognition import machine_info

    return machine_info()


def load_models(onnx: str | None) -> list[tuple[FaceModel, str]]:
    """dlib, and the ONNX model when a path is given (through the encoder's own loader)."""
    from recognizer.encoder import DlibFaceModel

    models: list[tuple[FaceModel, str]] = [(DlibFaceModel(), "dlib")]
    if onnx:
        import recognizer.encoder as encoder

        loader: Callable[..., FaceModel] | None = getattr(encoder, "load_face_model", None)
        if loader is None:
            raise SystemExit("this build has no ONNX encoder (recognizer.encoder.load_face_model)")
        models.append((loader("onnx", Path(onnx)), "eval"))
    return models


def run(models: Sequence[tuple[FaceModel, str]], root: Path, settings: BenchSettings) -> dict[str, Any]:
    started = time.perf_counter()
    results = []
    for model, kind in models:
        result = evaluate_model(model, root, settings)
        result["targets"] = targets(result, kind)
        results.append(result)
    return {
        "measured_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "models": results,
        "duration_s": round(time.perf_counter() - started, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--onnx",
        default=os.environ.get("YIZHAN_EVAL_MODEL"),
        help="an ONNX face model to measure beside dlib (default $YIZHAN_EVAL_MODEL)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite the docs' sections")
    parser.add_argument("--quick", action="store_true", help="fewer random rosters, no video, no timing")
    parser.add_argument(
        "--presets", action="store_true", help="only print each model's presets as the procedure gives them"
    )
    args = parser.parse_args(args_list)
    root = faces_dir()
    if root is None:
        parser.error("the labelled face set is needed: set YIZHAN_TEST_FACES (default ../shared/data/faces)")
    if args.presets:
        for model, _ in load_models(args.onnx):
            samples, _info = encode_set(model, data_roots(root))
            for name, choice in derive_presets(samples, model=model.name).items():
                numbers = {k: v for k, v in choice.policy.to_json().items() if k in _PRESET_NUMBERS}
                sys.stdout.write(f"{model.name} {name}: {json.dumps(numbers)}\n")
        return 0
    settings = (
        BenchSettings(rosters_small=30, rosters_30=10, video=False, timing=False)
        if args.quick
        else BenchSettings()
    )
    result = run(load_models(args.onnx), root, settings)
    command = command_line(args_list)
    result["command"] = command
    if not args.no_write:
        write_sections(result, command)
    sys.stdout.write(json.dumps(result, default=str) + "\n" if args.json else render_text(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
