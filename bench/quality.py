"""Recognition quality benchmark: false accepts and false rejects of the scoring presets, honestly.

Run it with `python -m bench.quality [--json] [--no-write] [--no-timing]`. It prints a summary (or
one JSON object) and rewrites its own section of docs/BENCHMARKS.md, keeping the rest.

What it measures, on the labelled set (../shared/data/faces, `$YIZHAN_TEST_FACES`):
- Enrolment with 1 photo and with up to 3 photos per member (`recognizer.templates` picks the 3);
  the whole people/ set is the roster, so lookalikes compete.
- Genuine trials: every people/ photo of a member with at least two photos, the member enrolled
  from their *other* photos (rotation: a photo is never probed against itself; with one photo the
  first other one, as an installer with a single photo would), and every face of group/ of an
  enrolled person against the full roster.
- Impostor trials: every stranger face (unknown/, and the unenrolled face in group/) against the
  full roster; and every photo of each member against the roster *without* that member ("held-out
  member": 31 more identities the door has never seen, East Asian ones among lookalikes).
- A false accept is an impostor accepted as anyone, or a genuine face accepted as someone else.
- The same for the plain-dlib baseline (nearest template within 0.6, one template) and for the
  rule shipped before (threshold 0.55, margin 0.10), in the same run, on the same encodings.
- TAR at zero false accepts of each score (the threshold is the nearest impostor's score: an oracle,
  optimistic by construction), a sweep of the cohort ratio, and a leave-one-identity-out estimate of
  how a "zero on the data" threshold generalises (threshold picked without the identity tested).
- Two-factor (1:1) checks: the right QR with the member's face, and every face claiming every other
  member (a colleague with someone's code, a stranger with a lookalike's code).
- Duplicate-enrolment flags with the same scoring: distinct people flagged, same person caught.
- The cost of `score` on a 100k-row roster (it must stay within the 5 ms budget of 1:N).

Photos in which the photo pipeline finds fewer usable faces than MANIFEST.tsv expects are encoded
again enlarged 2x, then 3x (bicubic), as if the person stood closer: this brings in the small faces
of group/ and the PASCAL crowd photo, which are among the hardest strangers. Encodings are computed
once per photo per run. OPENBLAS_NUM_THREADS is pinned to 1 before numpy loads (../shared/NOTES.md).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterable, Mapping, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from bench import report  # noqa: E402
from bench.dataset import REPO, by_person, faces_dir, load_manifest  # noqa: E402
from recognizer.face_pipeline import FacePipeline  # noqa: E402
from recognizer.images import decode_image  # noqa: E402
from recognizer.matcher import MatchPolicy, match  # noqa: E402
from recognizer.quality import QualityReport  # noqa: E402
from recognizer.roster import RosterSnapshot  # noqa: E402
from recognizer.scoring import (  # noqa: E402
    DEFAULT_PRESET,
    PRESETS,
    WOULD_MATCH,
    ScoreResult,
    ScoringPolicy,
    check_lookalikes,
    preset,
    score,
    verify_1to1,
)
from recognizer.templates import SelectionPolicy, TemplateCandidate, select_templates  # noqa: E402

Vector = npt.NDArray[np.float32]

MARK_START = "<!-- bench.quality:start -->"
MARK_END = "<!-- bench.quality:end -->"
BENCHMARKS_MD = REPO / "docs" / "BENCHMARKS.md"

ENROL_SIZES = (1, 3)
BASELINE_THRESHOLD = 0.6  # face_recognition's compare_faces default: "plain dlib"
SHIPPED_RULE = MatchPolicy(threshold=0.55, min_margin=0.10)  # the rule before the cohort ratio
ENLARGE = (2, 3)
CV_BUFFER = 0.01
SWEEP_RATIOS = (0.66, 0.68, 0.70, 0.72, 0.73, 0.74, 0.75, 0.76, 0.77, 0.78, 0.80)
TIMING_ROWS = 100_000
TIMING_CALLS = 300
TARGET_TAR = 0.97
TARGET_TAR_EAST_ASIAN = 0.95
TARGET_SCORE_100K_MS = 5.0


# ------------------------------------------------------------------------------------------ faces


@dataclass(frozen=True, slots=True)
class Face:
    """One encoded face. `person` is the member it shows, or None for a stranger."""

    name: str
    person: str | None
    east_asian: bool
    encoding: Vector
    quality: QualityReport
    scale: int


@dataclass(frozen=True, slots=True)
class FaceSet:
    members: dict[str, list[Face]]  # people/, file order
    group_members: list[Face]  # faces of group/ showing an enrolled person
    strangers: list[Face]  # unknown/ faces and unenrolled faces of group/
    enlarged: list[str]  # photos encoded enlarged (name x scale)
    missing: list[str]  # photos with fewer usable faces than expected, even enlarged
    root: str
    encode_s: float


def _usable(pipeline: FacePipeline, rgb: npt.NDArray[np.uint8]) -> list[tuple[Any, ...]]:
    return [(o.box, o.encoding, o.quality) for o in pipeline.analyze(rgb) if o.encoding is not None]


def encode_faces(pipeline: FacePipeline, root: Path) -> FaceSet:
    """Every people/, unknown/ and group/ face, encoded once (see the module docstring on enlarging)."""
    started = time.perf_counter()
    photos = load_manifest(root)
    members: dict[str, list[Face]] = {}
    group_members: list[Face] = []
    strangers: list[Face] = []
    enlarged: list[str] = []
    missing: list[str] = []
    people = by_person(photos)
    for photo in photos:
        if photo.category not in ("people", "unknown", "group"):
            continue
        name = os.path.relpath(photo.path, root)
        rgb = decode_image(photo.path.read_bytes())
        scale, faces = 1, _usable(pipeline, rgb)
        for factor in ENLARGE:
            if len(faces) >= photo.faces:
                break
            bigger = np.asarray(
                cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC), np.uint8
            )
            found = _usable(pipeline, bigger)
            if len(found) > len(faces):
                scale, faces = factor, found
        if scale > 1:
            enlarged.append(f"{name} x{scale}")
        if len(faces) < photo.faces:
            missing.append(f"{name}: {len(faces)} of {photo.faces} faces usable")
        if photo.category == "people":
            if faces:
                box, encoding, quality = faces[0]
                members.setdefault(photo.person, []).append(
                    Face(name, photo.person, photo.east_asian, encoding, quality, scale)
                )
        elif photo.category == "unknown":
            for index, (_, encoding, quality) in enumerate(faces):
                strangers.append(Face(f"{name}#{index}", None, photo.east_asian, encoding, quality, scale))
        else:
            labels = photo.person.split("+")
            ordered = sorted(faces, key=lambda f: f[0][3])  # left to right, as MANIFEST labels them
            if len(ordered) != len(labels):
                missing.append(f"{name}: {len(ordered)} faces for {len(labels)} labels, not used")
                continue
            for label, (_, encoding, quality) in zip(labels, ordered, strict=True):
                known = label if label in people else None
                face = Face(f"{name}:{label}", known, photo.east_asian, encoding, quality, scale)
                (group_members if known else strangers).append(face)
    for person in members:
        members[person].sort(key=lambda f: f.name)
    return FaceSet(
        members,
        group_members,
        strangers,
        enlarged,
        missing,
        str(root),
        time.perf_counter() - started,
    )


# ----------------------------------------------------------------------------------------- trials


@dataclass(frozen=True, slots=True)
class Trial:
    """One probe against one roster. `kind`: genuine | stranger | heldout. `fold`: its identity."""

    kind: str
    probe: Face
    truth: str | None
    snapshot: RosterSnapshot
    fold: str


def enrolment(faces: Sequence[Face], size: int) -> list[Face]:
    """The templates an installer would enrol from these photos: the first one, or the best `size`."""
    if size == 1:
        return list(faces[:1])
    candidates = [TemplateCandidate.from_report(f.name, f.encoding, f.quality) for f in faces]
    chosen = set(select_templates(candidates, SelectionPolicy(max_templates=size)).sources)
    return [f for f in faces if f.name in chosen]


def _snapshot(rows: Iterable[tuple[str, Face]]) -> RosterSnapshot:
    return RosterSnapshot.build((member, face.encoding) for member, face in rows)


def roster_rows(faceset: FaceSet, size: int) -> list[tuple[str, Face]]:
    return [(person, face) for person, faces in faceset.members.items() for face in enrolment(faces, size)]


def build_trials(faceset: FaceSet, size: int) -> list[Trial]:
    """All genuine, stranger and held-out-member trials for enrolments of up to `size` photos."""
    full_rows = roster_rows(faceset, size)
    full = _snapshot(full_rows)
    trials: list[Trial] = []
    for person, faces in faceset.members.items():
        if len(faces) < 2:
            continue
        rest = [(m, f) for m, f in full_rows if m != person]
        for probe in faces:
            own = enrolment([f for f in faces if f is not probe], size)
            snapshot = _snapshot(rest + [(person, f) for f in own])
            trials.append(Trial("genuine", probe, person, snapshot, person))
    for face in faceset.group_members:
        trials.append(Trial("genuine", face, face.person, full, face.person or face.name))
    for face in faceset.strangers:
        trials.append(Trial("stranger", face, None, full, face.name))
    for person, faces in faceset.members.items():
        without = _snapshot((m, f) for m, f in full_rows if m != person)
        for face in faces:
            trials.append(Trial("heldout", face, None, without, person))
    return trials


# ---------------------------------------------------------------------------------------- tallies


def tally(trials: Sequence[Trial], accepted: Sequence[str | None]) -> dict[str, Any]:
    """Counts for one rule: true accepts, false rejects and false accepts, overall and East Asian."""

    def part(selected: Callable[[Trial], bool]) -> dict[str, Any]:
        pairs = [(t, a) for t, a in zip(trials, accepted, strict=True) if selected(t)]
        genuine = [(t, a) for t, a in pairs if t.kind == "genuine"]
        true_accepts = sum(1 for t, a in genuine if a == t.truth)
        misidentified = sum(1 for t, a in genuine if a is not None and a != t.truth)
        strangers = [a for t, a in pairs if t.kind == "stranger"]
        heldout = [a for t, a in pairs if t.kind == "heldout"]
        stranger_accepts = sum(1 for a in strangers if a is not None)
        heldout_accepts = sum(1 for a in heldout if a is not None)
        return {
            "genuine": len(genuine),
            "true_accepts": true_accepts,
            "tar": round(true_accepts / len(genuine), 4) if genuine else None,
            "false_rejects": len(genuine) - true_accepts - misidentified,
            "misidentified": misidentified,
            "strangers": len(strangers),
            "stranger_accepts": stranger_accepts,
            "heldout": len(heldout),
            "heldout_accepts": heldout_accepts,
            "false_accepts": misidentified + stranger_accepts + heldout_accepts,
        }

    return {"all": part(lambda t: True), "east_asian": part(lambda t: t.probe.east_asian)}


def tar_at_zero_fa(
    trials: Sequence[Trial], results: Sequence[ScoreResult], score_of: Callable[[ScoreResult], float]
) -> dict[str, Any]:
    """TAR when the threshold is set just past the most confident impostor (higher score = surer).

    Impostors are strangers, held-out members and genuine faces whose nearest member is wrong. An
    oracle: the threshold is read off these very trials, so this is the best the score could do here.
    """
    worst = -np.inf
    worst_name = None
    for trial, result in zip(trials, results, strict=True):
        impostor = trial.kind != "genuine" or result.subject_id != trial.truth
        value = score_of(result)
        if impostor and value > worst:
            worst, worst_name = value, trial.probe.name
    counts = {"all": [0, 0], "east_asian": [0, 0]}
    for trial, result in zip(trials, results, strict=True):
        if trial.kind != "genuine":
            continue
        ok = result.subject_id == trial.truth and score_of(result) > worst
        for key in ("all", "east_asian") if trial.probe.east_asian else ("all",):
            counts[key][0] += int(ok)
            counts[key][1] += 1
    return {
        "threshold": None if not np.isfinite(worst) else round(float(worst), 4),
        "nearest_impostor": worst_name,
        **{
            key: {"true_accepts": hit, "genuine": n, "tar": round(hit / n, 4) if n else None}
            for key, (hit, n) in counts.items()
        },
    }


def gated_ratio(policy: ScoringPolicy) -> Callable[[ScoreResult], float]:
    """The cohort-ratio score under `policy`'s distance cap and margin (-inf when they refuse)."""

    def value(result: ScoreResult) -> float:
        if result.distance is None or result.distance > policy.max_distance:
            return -np.inf
        if result.margin is not None and result.margin < policy.min_margin:
            return -np.inf
        return -float(result.ratio) if result.ratio is not None else -np.inf

    return value


def accepted_with(
    result: ScoreResult, max_distance: float, min_margin: float, max_ratio: float
) -> str | None:
    """The decision `score` would take with these limits, from the numbers it recorded."""
    if result.distance is None or result.distance > max_distance:
        return None
    if result.margin is not None and result.margin < min_margin:
        return None
    if result.ratio is not None and result.ratio > max_ratio:
        return None
    return result.subject_id


def cross_validated(
    trials: Sequence[Trial], results: Sequence[ScoreResult], policy: ScoringPolicy, buffer: float
) -> dict[str, Any]:
    """Leave one identity out: pick max_ratio without it (nearest training impostor - buffer), test on it.

    Shows how a threshold read off the data at "zero false accepts" fares on an identity it has
    not seen: every false accept here is one a real deployment would have had.
    """
    folds = sorted({t.fold for t in trials})
    accepted: list[str | None] = [None] * len(trials)
    chosen: list[float] = []
    for fold in folds:
        train = [
            r.ratio
            for t, r in zip(trials, results, strict=True)
            if t.fold != fold
            and (t.kind != "genuine" or r.subject_id != t.truth)
            and accepted_with(r, policy.max_distance, policy.min_margin, 9.9) is not None
            and r.ratio is not None
        ]
        limit = (min(train) if train else 1.0) - buffer
        chosen.append(limit)
        for i, (trial, result) in enumerate(zip(trials, results, strict=True)):
            if trial.fold == fold:
                accepted[i] = accepted_with(result, policy.max_distance, policy.min_margin, limit)
    return {
        "buffer": buffer,
        "folds": len(folds),
        "max_ratio_range": [round(min(chosen), 4), round(max(chosen), 4)],
        **tally(trials, accepted),
    }


# ------------------------------------------------------------------------------------ two-factor


@dataclass(frozen=True, slots=True)
class Claim:
    """A face presented with a QR code naming `claimed` (the right member, or somebody else's code)."""

    kind: str  # genuine | colleague (enrolled, using another's code) | stranger (not enrolled)
    probe: Face
    claimed: str
    snapshot: RosterSnapshot
    east_asian_pair: bool


def build_claims(faceset: FaceSet, trials: Sequence[Trial], size: int) -> list[Claim]:
    east = {p: any(f.east_asian for f in faces) for p, faces in faceset.members.items()}
    claims = [
        Claim("genuine", t.probe, t.truth, t.snapshot, t.probe.east_asian)
        for t in trials
        if t.kind == "genuine" and t.truth is not None
    ]
    full_rows = roster_rows(faceset, size)
    full = _snapshot(full_rows)
    for person, faces in faceset.members.items():
        without = _snapshot((m, f) for m, f in full_rows if m != person)
        for face in faces:
            for other in faceset.members:
                if other == person:
                    continue
                pair = face.east_asian and east[other]
                claims.append(Claim("colleague", face, other, full, pair))
                claims.append(Claim("stranger", face, other, without, pair))
    for face in faceset.strangers:
        for other in faceset.members:
            claims.append(Claim("stranger", face, other, full, face.east_asian and east[other]))
    return claims


def tally_claims(claims: Sequence[Claim], accepted: Sequence[bool]) -> dict[str, Any]:
    def part(selected: Callable[[Claim], bool]) -> dict[str, Any]:
        pairs = [(c, a) for c, a in zip(claims, accepted, strict=True) if selected(c)]
        genuine = [a for c, a in pairs if c.kind == "genuine"]
        colleague = [a for c, a in pairs if c.kind == "colleague"]
        stranger = [a for c, a in pairs if c.kind == "stranger"]
        return {
            "genuine": len(genuine),
            "true_accepts": sum(genuine),
            "tar": round(sum(genuine) / len(genuine), 4) if genuine else None,
            "colleague_claims": len(colleague),
            "colleague_accepts": sum(colleague),
            "stranger_claims": len(stranger),
            "stranger_accepts": sum(stranger),
            "false_accepts": sum(colleague) + sum(stranger),
        }

    return {"all": part(lambda c: True), "east_asian": part(lambda c: c.east_asian_pair)}


def plain_verify(claim: Claim, threshold: float = BASELINE_THRESHOLD) -> tuple[bool, float]:
    rows = claim.snapshot.templates[
        np.asarray(claim.snapshot.owner_index) == claim.snapshot.position_of(claim.claimed)
    ]
    distance = float(np.min(np.linalg.norm(rows - claim.probe.encoding, axis=1)))
    return distance <= threshold, distance


# --------------------------------------------------------------------------------------- lookalikes


def lookalike_study(faceset: FaceSet, policy: ScoringPolicy, old_threshold: float = 0.55) -> dict[str, Any]:
    """Enrolment's duplicate check with the door's scoring, on distinct people and on the same person.

    Distinct: each member's photos checked against the one-photo roster without them (a new worker
    who is not enrolled yet): "would_match" there would be a false accept at the door; "lookalike"
    flags are what the installer sees. Same person: each photo enrolled again under a new id while
    the member is already enrolled from another photo: every one should be flagged.
    """
    full_rows = roster_rows(faceset, 1)
    full = _snapshot(full_rows)
    distinct_photos = 0
    distinct_would = 0
    distinct_flagged = 0
    old_flagged = 0
    pairs: dict[tuple[str, str], float] = {}
    for person, faces in faceset.members.items():
        findings = check_lookalikes(full, person, [(f.name, f.encoding) for f in faces], policy)
        others = _snapshot((m, f) for m, f in full_rows if m != person)
        for face in faces:
            distinct_photos += 1
            mine = [x for x in findings if x.source == face.name]
            distinct_would += any(x.kind == WOULD_MATCH for x in mine)
            distinct_flagged += bool(mine)
            for x in mine:
                key = tuple(sorted((person, x.member_id)))
                pairs[(key[0], key[1])] = min(pairs.get((key[0], key[1]), 9.0), x.distance)
            nearest = match(others, face.encoding, MatchPolicy(threshold=1.99, min_margin=0.0))
            old_flagged += nearest.distance is not None and nearest.distance <= old_threshold
    same_total = 0
    same_caught = 0
    same_would = 0
    old_caught = 0
    for person, faces in faceset.members.items():
        if len(faces) < 2:
            continue
        rest = [(m, f) for m, f in full_rows if m != person]
        for probe in faces:
            enrolled = next(f for f in faces if f is not probe)
            snapshot = _snapshot(rest + [(person, enrolled)])
            findings = check_lookalikes(snapshot, "new-member", [(probe.name, probe.encoding)], policy)
            same_total += 1
            same_caught += any(x.member_id == person for x in findings)
            same_would += any(x.member_id == person and x.kind == WOULD_MATCH for x in findings)
            old = match(snapshot, probe.encoding, MatchPolicy(threshold=1.99, min_margin=0.0))
            old_caught += old.nearest_id == person and (old.distance or 9.0) <= old_threshold
    return {
        "policy": policy.name,
        "distinct": {
            "photos": distinct_photos,
            "would_match": distinct_would,
            "flagged": distinct_flagged,
            "pairs": [
                {"members": list(k), "distance": round(v, 4)}
                for k, v in sorted(pairs.items(), key=lambda i: i[1])
            ],
            "old_rule_flagged": old_flagged,
        },
        "same_person": {
            "photos": same_total,
            "caught": same_caught,
            "would_match": same_would,
            "old_rule_caught": old_caught,
        },
        "old_rule": f"nearest other member within {old_threshold}",
    }


# ------------------------------------------------------------------------------------------ timing


def time_score(faceset: FaceSet, policy: ScoringPolicy, rows: int = TIMING_ROWS) -> dict[str, Any]:
    """`score`, `verify_1to1` and the old `match` on a `rows`-row roster (real members + fitted padding)."""
    from bench.recognition import padded_rows, padding_vectors

    real = {f"{p}": faces[0].encoding for p, faces in faceset.members.items()}
    pad = padding_vectors(np.stack(list(real.values())), rows)
    snapshot = RosterSnapshot.build(padded_rows(real, pad, rows))
    query = next(iter(faceset.members.values()))[-1].encoding
    member = next(iter(faceset.members))

    def timed(fn: Callable[[], object]) -> dict[str, float]:
        fn()
        samples = []
        for _ in range(TIMING_CALLS):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1000.0)
        return {
            "p50_ms": round(float(np.median(samples)), 3),
            "p95_ms": round(float(np.percentile(samples, 95)), 3),
        }

    return {
        "rows": rows,
        "score": timed(lambda: score(snapshot, query, policy)),
        "verify_1to1": timed(lambda: verify_1to1(snapshot, member, query, policy)),
        "match": timed(lambda: match(snapshot, query, policy.as_match_policy())),
    }


# --------------------------------------------------------------------------------------------- run


def evaluate(faceset: FaceSet, size: int) -> dict[str, Any]:
    """Everything measured for enrolments of up to `size` photos per member."""
    trials = build_trials(faceset, size)
    presets = PRESETS["dlib_resnet_v1"]
    by_preset = {
        name: [score(t.snapshot, t.probe.encoding, p) for t in trials] for name, p in presets.items()
    }
    numbers = by_preset[DEFAULT_PRESET]
    default = preset(DEFAULT_PRESET)
    plain = [r.subject_id if (r.distance or 9.0) <= BASELINE_THRESHOLD else None for r in numbers]
    shipped = [accepted_with(r, SHIPPED_RULE.threshold, SHIPPED_RULE.min_margin, 9.9) for r in numbers]
    sweep = []
    for ratio in SWEEP_RATIOS:
        decided = [accepted_with(r, default.max_distance, default.min_margin, ratio) for r in numbers]
        sweep.append({"max_ratio": ratio, **tally(trials, decided)})
    failures = {
        name: [
            {
                "probe": t.probe.name,
                "kind": t.kind,
                "truth": t.truth,
                "accepted_as": r.member_id,
                "reason": r.reason,
                "distance": round(r.distance or 0.0, 4),
                "margin": None if r.margin is None else round(r.margin, 4),
                "ratio": None if r.ratio is None else round(r.ratio, 4),
            }
            for t, r in zip(trials, results, strict=True)
            if (t.kind == "genuine" and r.member_id != t.truth) or (t.kind != "genuine" and r.accepted)
        ]
        for name, results in by_preset.items()
    }
    claims = build_claims(faceset, trials, size)
    verify_by_preset = {
        name: tally_claims(
            claims, [verify_1to1(c.snapshot, c.claimed, c.probe.encoding, p).accepted for c in claims]
        )
        for name, p in presets.items()
    }
    plain_claims = [plain_verify(c) for c in claims]
    closest_claims = sorted(
        (
            (d, c.probe.name, c.claimed, c.kind)
            for c, (_, d) in zip(claims, plain_claims, strict=True)
            if c.kind != "genuine"
        ),
    )[:5]
    return {
        "enrol_photos": size,
        "trials": {
            "genuine": sum(1 for t in trials if t.kind == "genuine"),
            "genuine_east_asian": sum(1 for t in trials if t.kind == "genuine" and t.probe.east_asian),
            "strangers": sum(1 for t in trials if t.kind == "stranger"),
            "heldout": sum(1 for t in trials if t.kind == "heldout"),
            "templates_per_member": round(len(roster_rows(faceset, size)) / max(1, len(faceset.members)), 2),
        },
        "presets": {
            name: tally(trials, [r.member_id for r in results]) for name, results in by_preset.items()
        },
        "baseline_plain_dlib": tally(trials, plain),
        "shipped_rule": tally(trials, shipped),
        "tar_at_zero_fa": {
            "plain_distance": tar_at_zero_fa(trials, numbers, lambda r: -(r.distance or 9.0)),
            "cohort_ratio": tar_at_zero_fa(trials, numbers, gated_ratio(default)),
        },
        "cross_validated": cross_validated(trials, numbers, default, CV_BUFFER),
        "cross_validated_no_buffer": cross_validated(trials, numbers, default, 0.0),
        "sweep": sweep,
        "failures": failures,
        "two_factor": {
            "claims": len(claims),
            "presets": verify_by_preset,
            "baseline_plain_dlib": tally_claims(claims, [a for a, _ in plain_claims]),
            "closest_impostor_claims": [
                {"distance": round(d, 4), "probe": n, "claimed": m, "kind": k}
                for d, n, m, k in closest_claims
            ],
        },
    }


def machine() -> dict[str, Any]:
    from bench.recognition import machine_info

    return machine_info()


def run_benchmark(
    pipeline: FacePipeline, root: Path, *, timing: bool = True, faceset: FaceSet | None = None
) -> dict[str, Any]:
    """Encode the data set once (or take `faceset`, already encoded), then evaluate every enrolment
    size, rule and check on it."""
    started = time.perf_counter()
    if faceset is None:
        faceset = encode_faces(pipeline, root)
    evaluated = time.perf_counter()
    results = {str(size): evaluate(faceset, size) for size in ENROL_SIZES}
    lookalikes = lookalike_study(faceset, preset(DEFAULT_PRESET))
    evaluate_s = time.perf_counter() - evaluated
    timings = time_score(faceset, preset(DEFAULT_PRESET)) if timing else None
    default = {size: results[str(size)]["presets"][DEFAULT_PRESET] for size in ENROL_SIZES}
    best = max(ENROL_SIZES)
    targets = {
        "zero_false_accepts_at_default": {
            "value": {str(s): default[s]["all"]["false_accepts"] for s in ENROL_SIZES},
            "met": all(default[s]["all"]["false_accepts"] == 0 for s in ENROL_SIZES),
        },
        "tar_97_overall_at_default": {
            "value": {str(s): default[s]["all"]["tar"] for s in ENROL_SIZES},
            "met_with_up_to_3_photos": (default[best]["all"]["tar"] or 0.0) >= TARGET_TAR,
            "met_with_1_photo": (default[1]["all"]["tar"] or 0.0) >= TARGET_TAR,
        },
        "tar_95_east_asian_at_default": {
            "value": {str(s): default[s]["east_asian"]["tar"] for s in ENROL_SIZES},
            "met_with_up_to_3_photos": (default[best]["east_asian"]["tar"] or 0.0) >= TARGET_TAR_EAST_ASIAN,
            "met_with_1_photo": (default[1]["east_asian"]["tar"] or 0.0) >= TARGET_TAR_EAST_ASIAN,
        },
    }
    if timings is not None:
        targets["score_100k_p50_5ms"] = {
            "value": timings["score"]["p50_ms"],
            "met": timings["score"]["p50_ms"] <= TARGET_SCORE_100K_MS,
        }
    return {
        "measured_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "data": {
            "root": os.path.relpath(faceset.root, REPO),
            "members": len(faceset.members),
            "member_photos": sum(len(v) for v in faceset.members.values()),
            "east_asian_members": sum(1 for v in faceset.members.values() if any(f.east_asian for f in v)),
            "group_member_faces": len(faceset.group_members),
            "stranger_faces": len(faceset.strangers),
            "east_asian_stranger_faces": sum(1 for f in faceset.strangers if f.east_asian),
            "enlarged": faceset.enlarged,
            "missing": faceset.missing,
        },
        "presets": {
            name: {**p.limits(), "description": p.description}
            for name, p in PRESETS["dlib_resnet_v1"].items()
        },
        "default_preset": DEFAULT_PRESET,
        "baseline": f"plain dlib: nearest template within {BASELINE_THRESHOLD}, one template per member",
        "shipped_rule": f"threshold {SHIPPED_RULE.threshold}, margin {SHIPPED_RULE.min_margin}",
        "results": results,
        "lookalikes": lookalikes,
        "timing": timings,
        "targets": targets,
        "durations_s": {
            "encode": round(faceset.encode_s, 1),
            "evaluate": round(evaluate_s, 1),
            "total": round(time.perf_counter() - started, 1),
        },
    }


# ------------------------------------------------------------------------------------------ output


def _pct(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100.0 * part / whole:.1f}%)" if whole else "-"


def _fa(t: Mapping[str, Any]) -> str:
    return (
        f"**{t['false_accepts']}** ({t['stranger_accepts']}/{t['strangers']} strangers, "
        f"{t['heldout_accepts']}/{t['heldout']} held-out, {t['misidentified']} wrong member)"
    )


def render_markdown(result: Mapping[str, Any], command: str) -> str:
    m, data = result["machine"], result["data"]
    yes = {True: "yes", False: "**no**"}
    lines = [
        MARK_START,
        "## Recognition quality: presets, plain-dlib baseline, East Asian faces",
        "",
        f"Measured {result['measured_at']} with `{command}`. Machine: {m['cpu']}, {m['cores']} cores; "
        f"Python {m['python']}, numpy {m['numpy']}, dlib {m['dlib']}; OPENBLAS_NUM_THREADS="
        f"{m['openblas_num_threads']}. The rule, the presets and how to choose are in docs/RECOGNITION.md.",
        "",
        f"Data: `{data['root']}`: {data['members']} members ({data['east_asian_members']} East Asian), "
        f"{data['member_photos']} member photos, {data['group_member_faces']} faces of members in group "
        "photos, "
        f"{data['stranger_faces']} stranger faces ({data['east_asian_stranger_faces']} marked East Asian in "
        "MANIFEST.tsv). Encoded with the photo pipeline (detection at 1280 px, default quality gates); "
        f"photos enlarged because a face was too small: {', '.join(data['enlarged']) or 'none'}. "
        f"Not usable even enlarged: {', '.join(data['missing']) or 'none'}.",
        "",
        "Trials per enrolment size: genuine = each member photo against the roster where its member is "
        "enrolled from their *other* photos (1: the first other photo; 3: up to three chosen by "
        "`recognizer.templates`), plus group faces; strangers = unknown/ and group faces of people not "
        "enrolled; held-out = each member's photos against the roster without that member (an unseen "
        "identity among lookalikes). A false accept is an impostor accepted, or a member accepted as "
        "someone else. East Asian = rows whose MANIFEST notes say so.",
        "",
        "### At the door (1:N), per preset",
        "",
        "| photos enrolled | rule | TAR | TAR East Asian | false rejects | false accepts | "
        "East Asian false accepts |",
        "|---|---|---|---|---|---|---|",
    ]
    for size in ENROL_SIZES:
        r = result["results"][str(size)]
        rows: list[tuple[str, Mapping[str, Any]]] = [
            (f"plain dlib ({result['baseline'].split(': ')[1].split(',')[0]})", r["baseline_plain_dlib"]),
            (f"shipped before ({result['shipped_rule']})", r["shipped_rule"]),
        ]
        for name in result["presets"]:
            label = f"`{name}`" + (" (default)" if name == result["default_preset"] else "")
            rows.append((label, r["presets"][name]))
        for label, t in rows:
            a, e = t["all"], t["east_asian"]
            lines.append(
                f"| {size} | {label} | {_pct(a['true_accepts'], a['genuine'])} | "
                f"{_pct(e['true_accepts'], e['genuine'])} | {a['false_rejects']} | {_fa(a)} | "
                f"{e['false_accepts']} |"
            )
    lines += [
        "",
        "Preset limits (distance cap / min margin / max ratio over the 5 next-nearest members; two-factor "
        "cap / ratio; frames that must agree):",
        "",
    ]
    for name, p in result["presets"].items():
        lines.append(
            f"- `{name}`: {p['max_distance']} / {p['min_margin']} / {p['max_ratio']}; two-factor "
            f"{p['verify_max_distance']} / {p['verify_max_ratio']}; frames {p['require_frames']}. "
            f"{p['description']}."
        )
    lines += [
        "",
        "### TAR at zero false accepts (oracle threshold: just past the most confident impostor)",
        "",
        "| photos enrolled | score | TAR | TAR East Asian | threshold | nearest impostor |",
        "|---|---|---|---|---|---|",
    ]
    for size in ENROL_SIZES:
        z = result["results"][str(size)]["tar_at_zero_fa"]
        for label, key, sign in (
            ("plain dlib distance", "plain_distance", -1),
            ("cohort ratio (cap 0.55, margin 0.05)", "cohort_ratio", -1),
        ):
            v = z[key]
            threshold = "-" if v["threshold"] is None else f"{sign * v['threshold']:.4f}"
            lines.append(
                f"| {size} | {label} | {_pct(v['all']['true_accepts'], v['all']['genuine'])} | "
                f"{_pct(v['east_asian']['true_accepts'], v['east_asian']['genuine'])} | < {threshold} | "
                f"{v['nearest_impostor']} |"
            )
    lines += [
        "",
        "### How a zero-false-accept threshold generalises (leave one identity out)",
        "",
        "For each identity (a member, or a stranger photo), `max_ratio` is set from all the *other* trials "
        "(nearest impostor ratio minus a buffer, cap and margin of the default) and applied to that "
        "identity's trials only. False accepts here are what a threshold tuned on this data would let in "
        "on a new face.",
        "",
        "| photos enrolled | buffer | max_ratio chosen | false accepts | TAR | TAR East Asian |",
        "|---|---|---|---|---|---|",
    ]
    for size in ENROL_SIZES:
        for key in ("cross_validated_no_buffer", "cross_validated"):
            c = result["results"][str(size)][key]
            a, e = c["all"], c["east_asian"]
            lines.append(
                f"| {size} | {c['buffer']} | {c['max_ratio_range'][0]}-{c['max_ratio_range'][1]} | "
                f"{_fa(a)} | "
                f"{_pct(a['true_accepts'], a['genuine'])} | {_pct(e['true_accepts'], e['genuine'])} |"
            )
    lines += [
        "",
        "### Sweep of max_ratio (distance cap 0.55, margin 0.05)",
        "",
        "| max_ratio | "
        + " | ".join(f"TAR ({s} photo{'s' if s > 1 else ''})" for s in ENROL_SIZES)
        + " | "
        + " | ".join(f"TAR East Asian ({s})" for s in ENROL_SIZES)
        + " | "
        + " | ".join(f"false accepts ({s})" for s in ENROL_SIZES)
        + " |",
        "|---|" + "---|" * (3 * len(ENROL_SIZES)),
    ]
    for index, ratio in enumerate(SWEEP_RATIOS):
        cells = [str(ratio)]
        sweeps = [result["results"][str(s)]["sweep"][index] for s in ENROL_SIZES]
        cells += [_pct(w["all"]["true_accepts"], w["all"]["genuine"]) for w in sweeps]
        cells += [_pct(w["east_asian"]["true_accepts"], w["east_asian"]["genuine"]) for w in sweeps]
        cells += [str(w["all"]["false_accepts"]) for w in sweeps]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "### Two-factor: a QR code names the member, the face confirms it (1:1)",
        "",
        "Genuine: the member's own code with their face (same trials as above). Impostor claims: every "
        "member photo with every other member's code, once enrolled themselves (a colleague) and once not "
        "(a stranger), and every stranger face with every member's code. East Asian: both the face and the "
        "claimed member.",
        "",
        "| photos enrolled | rule | TAR | TAR East Asian | false accepts (colleague / stranger claims) | "
        "East Asian false accepts |",
        "|---|---|---|---|---|---|",
    ]
    for size in ENROL_SIZES:
        tf = result["results"][str(size)]["two_factor"]
        rows2: list[tuple[str, Mapping[str, Any]]] = [
            ("plain dlib 1:1 within 0.6", tf["baseline_plain_dlib"])
        ]
        rows2 += [(f"`{name}`", tf["presets"][name]) for name in result["presets"]]
        for label, t in rows2:
            a, e = t["all"], t["east_asian"]
            lines.append(
                f"| {size} | {label} | {_pct(a['true_accepts'], a['genuine'])} | "
                f"{_pct(e['true_accepts'], e['genuine'])} | **{a['false_accepts']}** "
                f"({a['colleague_accepts']}/{a['colleague_claims']} / {a['stranger_accepts']}/"
                f"{a['stranger_claims']}) | {e['false_accepts']} |"
            )
    closest = result["results"][str(ENROL_SIZES[0])]["two_factor"]["closest_impostor_claims"]
    lines += [
        "",
        "Closest impostor claims by plain distance (1 photo enrolled): "
        + "; ".join(f"{c['probe']} with {c['claimed']}'s code at {c['distance']}" for c in closest)
        + ". A distance threshold alone cannot refuse these without refusing members; the cohort ratio does.",
        "",
        "### Duplicate enrolment checks (same scoring, `balanced`)",
        "",
    ]
    look = result["lookalikes"]
    d, sp = look["distinct"], look["same_person"]
    pairs = ", ".join(f"{p['members'][0]}/{p['members'][1]} ({p['distance']})" for p in d["pairs"])
    lines += [
        f"- Distinct people (each member's photos against the roster without them): {d['flagged']} of "
        f'{d["photos"]} photos flagged as lookalikes, {d["would_match"]} as "would match"; pairs flagged: '
        f"{pairs or 'none'}. The old check ({look['old_rule']}) called {d['old_rule_flagged']} of them "
        "duplicates.",
        f"- Same person enrolled again under a new id: {sp['caught']} of {sp['photos']} flagged "
        f'({sp["would_match"]} as "would match"); the old check caught {sp["old_rule_caught"]}.',
        "",
    ]
    t = result["timing"]
    if t is not None:
        lines += [
            "### Cost",
            "",
            f"On a {t['rows']:,}-row roster (real members + fitted padding, as bench.recognition): "
            f"`score` p50 {t['score']['p50_ms']} ms (p95 {t['score']['p95_ms']}), `verify_1to1` p50 "
            f"{t['verify_1to1']['p50_ms']} ms, the old `match` p50 {t['match']['p50_ms']} ms.",
            "",
        ]
    tg = result["targets"]
    lines += [
        "### Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        f"| zero false accepts at the default (`{result['default_preset']}`) | "
        + ", ".join(f"{v} with {k} photo(s)" for k, v in tg["zero_false_accepts_at_default"]["value"].items())
        + f" | {yes[tg['zero_false_accepts_at_default']['met']]} |",
        "| TAR >= 97 % overall at the default | "
        + ", ".join(
            f"{100 * (v or 0):.1f}% with {k} photo(s)"
            for k, v in tg["tar_97_overall_at_default"]["value"].items()
        )
        + f" | up to 3 photos: {yes[tg['tar_97_overall_at_default']['met_with_up_to_3_photos']]}; 1 photo: "
        f"{yes[tg['tar_97_overall_at_default']['met_with_1_photo']]} |",
        "| TAR >= 95 % East Asian at the default | "
        + ", ".join(
            f"{100 * (v or 0):.1f}% with {k} photo(s)"
            for k, v in tg["tar_95_east_asian_at_default"]["value"].items()
        )
        + f" | up to 3 photos: {yes[tg['tar_95_east_asian_at_default']['met_with_up_to_3_photos']]}; "
        f"1 photo: {yes[tg['tar_95_east_asian_at_default']['met_with_1_photo']]} |",
    ]
    if "score_100k_p50_5ms" in tg:
        lines.append(
            f"| `score` at 100k rows p50 <= 5 ms | {tg['score_100k_p50_5ms']['value']} ms | "
            f"{yes[tg['score_100k_p50_5ms']['met']]} |"
        )
    lines += ["", f"### Refusals and accepts of the default (`{result['default_preset']}`)", ""]
    for size in ENROL_SIZES:
        failures = result["results"][str(size)]["failures"][result["default_preset"]]
        text = "; ".join(
            f"{f['probe']} ({f['reason'] or 'accepted as ' + str(f['accepted_as'])}: d {f['distance']}, "
            f"margin {f['margin']}, ratio {f['ratio']})"
            for f in failures
        )
        lines.append(f"- {size} photo(s): {text or 'none'}.")
    lines += [
        "",
        f"Run time: {result['durations_s']['total']} s (encoding {result['durations_s']['encode']} s).",
        MARK_END,
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of `path` (between its markers), keeping everything else."""
    report.write_section(path, section, MARK_START, MARK_END)


def render_text(result: Mapping[str, Any]) -> str:
    out = [
        f"{result['data']['members']} members, default preset {result['default_preset']!r}",
        f"{'photos':>6} {'rule':<22} {'TAR':>16} {'TAR East Asian':>16} {'FA':>4} {'FA EA':>6}",
    ]
    for size in ENROL_SIZES:
        r = result["results"][str(size)]
        rows = [("plain dlib 0.6", r["baseline_plain_dlib"]), ("shipped 0.55/0.10", r["shipped_rule"])]
        rows += [(name, r["presets"][name]) for name in result["presets"]]
        for label, t in rows:
            a, e = t["all"], t["east_asian"]
            out.append(
                f"{size:>6} {label:<22} {_pct(a['true_accepts'], a['genuine']):>16} "
                f"{_pct(e['true_accepts'], e['genuine']):>16} {a['false_accepts']:>4} {e['false_accepts']:>6}"
            )
    out.append(
        "targets: "
        + ", ".join(
            f"{name}={json.dumps({k: v for k, v in t.items() if k != 'value'})}"
            for name, t in result["targets"].items()
        )
    )
    out.append(f"total {result['durations_s']['total']} s")
    return "\n".join(out) + "\n"


def command_line(argv: Sequence[str]) -> str:
    return report.command_line("bench.quality", argv)


def photo_pipeline() -> FacePipeline:
    """The photo pipeline, as enrolment, `yizhan identify` and the dataset tests use it."""
    from recognizer.encoder import DlibFaceModel
    from recognizer.face_pipeline import DetectionSettings

    return FacePipeline(DlibFaceModel(), DetectionSettings(detect_max_side=1280))


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/BENCHMARKS.md")
    parser.add_argument("--no-timing", action="store_true", help="skip the 100k-row timing of `score`")
    args = parser.parse_args(args_list)
    root = faces_dir()
    if root is None:
        parser.error("the labelled face set is needed: set YIZHAN_TEST_FACES (default ../shared/data/faces)")
    result = run_benchmark(photo_pipeline(), root, timing=not args.no_timing)
    command = command_line(args_list)
    result["command"] = command
    if not args.no_write:
        write_section(BENCHMARKS_MD, render_markdown(result, command))
    sys.stdout.write(json.dumps(result) + "\n" if args.json else render_text(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
