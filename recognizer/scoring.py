"""The door's face rule: zones over the fused evidence of one appearance, safe at any roster size.

Why zones and not one threshold: dlib's 128-d model packs East Asian faces close together. On our
22 East Asian identities the nearest two *different* people sit 0.36-0.39 apart while half of the
members' own door frames sit further than that from their enrolment photos. No single distance both
keeps every stranger out and lets every member in, so the rule says which it is sure of:

    frames  = the encodings of one appearance (several door-camera frames of one person)
    D(M)    = distance of the frames' mean encoding to member M's nearest template
    best    = the member with the smallest D;  D1 = D(best);  margin = D(runner-up) - D1

    accept     (face alone opens)  iff  enough frames (min_frames), every frame's own nearest
                                        member is `best`, D1 <= accept_distance, margin >= min_margin,
                                        the member does not require the pass, and, on a roster of
                                        at least `cohort_min_members` members, D1 / mean D of the
                                        next `cohort_size` members <= max_ratio;
    show_pass  (the door asks)     iff  not accepted but D1 <= grey_distance: the pass names the
                                        member and the face confirms it 1:1 (`verify`);
    unknown                        otherwise.

`accept_distance` is an absolute distance chosen so that no two distinct people of the labelled
data come that close (leave-identity-out, `recognizer.calibration`): it holds whether the roster has
one member or a thousand, which a rule judging a face against the station's *other* members (the
cohort ratio) cannot promise on a new station with no crowd. The ratio stays as an extra gate once
the roster is large enough to have a crowd, never as what makes a small roster safe. `grey_distance`
is where members' own faces stop (most of them); beyond it nobody is asked for anything.

Fusion: the frames' mean encoding is compared with each template (measured against the mean of the
per-frame distances and the templates' centroid in bench.quality: the best at zero false accepts
on our data, and it costs one extra 1:N product); agreement asks each frame's own nearest member.

Every number is in the result (`ScoreResult.to_json` goes into the event). Pure: a frozen roster
snapshot and encodings in, a frozen result out. The presets are measured per face model
(`PRESETS[model][name]`, numbers from `recognizer.calibration.choose_operating_point`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from recognizer.encoder import MODEL_DLIB
from recognizer.matcher import as_query, nearest_members, squared_distances
from recognizer.roster import RosterSnapshot

__all__ = ["MODEL_DLIB", "MODEL_EVAL_ONNX"]
#: The evaluation model of `make eval-model` (`fr_feature.onnx`, npm `faceplugin-face-recognition-js`
#: 0.0.1; `onnx-` + the first 12 hex of its SHA-256). Provenance unknown: evaluation only, never a
#: default; its measured numbers ship here, its weights never do.
MODEL_EVAL_ONNX: Final = "onnx-87aacdfe5751"
DEFAULT_PRESET: Final = "balanced"

# Zones (what the door does with an appearance).
ACCEPT: Final = "accept"
SHOW_PASS: Final = "show_pass"
UNKNOWN: Final = "unknown"
PENDING: Final = "pending"  # fewer frames than the rule needs: keep looking

# Stable reason words (events, logs, the page and the centre key on them).
EMPTY_ROSTER: Final = "empty_roster"
OVER_THRESHOLD: Final = "over_threshold"  # beyond grey_distance: nobody we know
NOT_SURE: Final = "not_sure"  # within grey_distance but over accept_distance
LOW_MARGIN: Final = "low_margin"
HIGH_RATIO: Final = "high_ratio"
FRAMES_DISAGREE: Final = "frames_disagree"
TOO_FEW_FRAMES: Final = "too_few_frames"
REQUIRES_PASS: Final = "requires_pass"
NOT_ENROLLED: Final = "not_enrolled"
CLOSER_TO_OTHER_MEMBER: Final = "closer_to_other_member"

IDENTIFY: Final = "identify"
VERIFY: Final = "verify"


@dataclass(frozen=True, slots=True)
class ScoringPolicy:
    """One operating point of the rule in the module docstring (distances in the model's units).

    Door: `min_frames`, `accept_distance`, `grey_distance`, `verify_distance` (the 1:1 limit when
    a pass names a member who must show it: two-factor station or group, requires_pass; a pass
    shown after the door asked a face in the grey zone is checked against `grey_distance`: that pass
    alone would have opened, the face only must not contradict it), `min_margin`, the cohort gate
    (`max_ratio` / `verify_max_ratio` over `cohort_size` members, active from `cohort_min_members`
    members; None: off).
    Enrolment, photo against template (`recognizer.duplicates`): `same_person_distance` (a new face
    this close to a member *is* that member for the door: never enrolled under another id; a photo
    added to a member this close to them needs no confirmation), `lookalike_distance` (distinct
    people this close both require the pass once an installer confirms them), `review_distance` (a
    new id this close to a member may be the same person: refused unless the installer confirms).
    `procedure` records how the numbers were chosen and on what.
    """

    name: str = DEFAULT_PRESET
    model: str = MODEL_DLIB
    min_frames: int = 3
    accept_distance: float = 0.3186
    grey_distance: float = 0.5594
    verify_distance: float = 0.4435
    min_margin: float = 0.0319
    cohort_size: int = 5
    cohort_min_members: int = 20
    max_ratio: float | None = None
    verify_max_ratio: float | None = None
    same_person_distance: float = 0.3286
    lookalike_distance: float = 0.3893
    review_distance: float = 0.5234
    #: Photos given together in one enrolment must be this close to each other to be taken for one
    #: person (`[recognition] same_person_max_distance` overrides it).
    same_person_max_distance: float = 0.65
    description: str = ""
    procedure: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a scoring policy needs a name (it is recorded with every decision)")
        for label, value in (
            ("accept_distance", self.accept_distance),
            ("grey_distance", self.grey_distance),
            ("verify_distance", self.verify_distance),
            ("same_person_distance", self.same_person_distance),
            ("lookalike_distance", self.lookalike_distance),
            ("review_distance", self.review_distance),
            ("same_person_max_distance", self.same_person_max_distance),
        ):
            if not 0.0 < value < 2.0:
                raise ValueError(f"{label} must be in (0, 2), got {value}")
        if not self.accept_distance <= self.verify_distance <= self.grey_distance:
            raise ValueError(
                f"distances must be ordered: accept ({self.accept_distance}) <= verify "
                f"({self.verify_distance}) <= grey ({self.grey_distance})"
            )
        if not self.same_person_distance <= self.lookalike_distance <= self.review_distance:
            raise ValueError("enrolment distances must be ordered: same_person <= lookalike <= review")
        if not 0.0 <= self.min_margin < 1.0:
            raise ValueError(f"min_margin must be in [0, 1), got {self.min_margin}")
        for label, ratio in (("max_ratio", self.max_ratio), ("verify_max_ratio", self.verify_max_ratio)):
            if ratio is not None and not 0.0 < ratio <= 1.5:
                raise ValueError(f"{label} must be in (0, 1.5] or None, got {ratio}")
        if not 1 <= self.cohort_size <= 50:
            raise ValueError(f"cohort_size must be in [1, 50], got {self.cohort_size}")
        if self.cohort_min_members < self.cohort_size + 1:
            raise ValueError("cohort_min_members must exceed cohort_size (the gate needs a crowd)")
        if not 1 <= self.min_frames <= 10:
            raise ValueError(f"min_frames must be in [1, 10], got {self.min_frames}")
        object.__setattr__(self, "procedure", MappingProxyType(dict(self.procedure)))

    @property
    def require_frames(self) -> int:
        """Name kept for the tracker settings: how many frames an appearance needs."""
        return self.min_frames

    def limits(self) -> dict[str, Any]:
        """The numbers a decision is compared with, recorded next to the measured ones."""
        return {
            "min_frames": self.min_frames,
            "accept_distance": self.accept_distance,
            "grey_distance": self.grey_distance,
            "verify_distance": self.verify_distance,
            "min_margin": self.min_margin,
            "cohort_size": self.cohort_size,
            "cohort_min_members": self.cohort_min_members,
            "max_ratio": self.max_ratio,
            "verify_max_ratio": self.verify_max_ratio,
        }

    def enrolment_limits(self) -> dict[str, Any]:
        return {
            "same_person_distance": self.same_person_distance,
            "lookalike_distance": self.lookalike_distance,
            "review_distance": self.review_distance,
            "same_person_max_distance": self.same_person_max_distance,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            **self.limits(),
            **self.enrolment_limits(),
            "description": self.description,
            "procedure": dict(self.procedure),
        }

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> ScoringPolicy:
        """The policy `to_json` wrote (an operating point file); unknown keys are refused."""
        known = {f.name for f in dataclasses.fields(ScoringPolicy)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown operating point keys: {', '.join(unknown)}")
        return ScoringPolicy(**dict(data))

    def with_overrides(self, **changes: Any) -> ScoringPolicy:
        """This preset with some numbers changed; the name gets a '*' so no event claims the
        measured preset's figures for numbers that were not measured."""
        changes = {key: value for key, value in changes.items() if value is not None}
        if not changes or all(getattr(self, key) == value for key, value in changes.items()):
            return self
        name = changes.pop("name", self.name if self.name.endswith("*") else f"{self.name}*")
        return dataclasses.replace(self, name=name, **changes)

    def for_one_photo(self) -> ScoringPolicy:
        """The same numbers judging a single photo (`yizhan identify`): one frame is all there is."""
        if self.min_frames == 1:
            return self
        return dataclasses.replace(self, min_frames=1)


_MEASURED_ON: Final = "../shared/data/faces + faces-ea: 46 people (22 East Asian), 20 strangers"


def _measured(
    model: str, name: str, description: str, tail: float, grey_quantile: float, **numbers: Any
) -> ScoringPolicy:
    return ScoringPolicy(
        name=name,
        model=model,
        description=description,
        procedure={"accept_tail": tail, "grey_quantile": grey_quantile, "measured_on": _MEASURED_ON},
        **numbers,
    )


def _dlib(name: str, description: str, tail: float, grey_quantile: float, **numbers: Any) -> ScoringPolicy:
    return _measured(MODEL_DLIB, name, description, tail, grey_quantile, **numbers)


def _eval_onnx(name: str, tail: float, grey_quantile: float, **numbers: Any) -> ScoringPolicy:
    description = (
        f"{name} settings measured on the evaluation model (make eval-model; provenance unknown, "
        "evaluation only)"
    )
    # Photos enrolled together: the farthest same-person photo pair seen on this model is 1.163
    # (bench.encoders), + 3 % (`calibration.TOGETHER_HEADROOM`); dlib's 0.65 would refuse most
    # pairs of one person's photos on this model.
    numbers.setdefault("same_person_max_distance", 1.2)
    return _measured(MODEL_EVAL_ONNX, name, description, tail, grey_quantile, **numbers)


#: Measured presets per face model: `recognizer.calibration.derive_presets` on the labelled data
#: (the settings of each name are `calibration.PRESET_SETTINGS`; tests/test_calibration.py derives
#: them again and compares). docs/RECOGNITION.md has the figures, leave-identity-out.
PRESETS: Final[Mapping[str, Mapping[str, ScoringPolicy]]] = MappingProxyType(
    {
        MODEL_DLIB: MappingProxyType(
            {
                "strict": _dlib(
                    "strict",
                    "four agreeing frames, face alone only at a per-pair tail probability of 1e-5: "
                    "most members show the pass",
                    1e-5,
                    0.99,
                    min_frames=4,
                    accept_distance=0.2677,
                    grey_distance=0.5649,
                    verify_distance=0.3733,
                    min_margin=0.0268,
                    max_ratio=0.7998,
                    verify_max_ratio=0.7998,
                    same_person_distance=0.2759,
                    lookalike_distance=0.3893,
                    review_distance=0.5234,
                ),
                "balanced": _dlib(
                    "balanced",
                    "default: three agreeing frames, face alone at a per-pair tail probability of "
                    "1e-4; the other members are asked for the pass",
                    1e-4,
                    0.99,
                    min_frames=3,
                    accept_distance=0.3186,
                    grey_distance=0.5594,
                    verify_distance=0.4435,
                    min_margin=0.0319,
                    max_ratio=0.8057,
                    verify_max_ratio=0.8057,
                    same_person_distance=0.3286,
                    lookalike_distance=0.3893,
                    review_distance=0.5234,
                ),
                "convenient": _dlib(
                    "convenient",
                    "two frames (a quicker decision), same tail probability, a wider grey zone",
                    1e-4,
                    0.995,
                    min_frames=2,
                    accept_distance=0.3153,
                    grey_distance=0.5855,
                    verify_distance=0.443,
                    min_margin=0.0315,
                    max_ratio=0.8033,
                    verify_max_ratio=0.8033,
                    same_person_distance=0.3286,
                    lookalike_distance=0.3893,
                    review_distance=0.5341,
                ),
            }
        ),
        # Measured with `python -m bench.quality --onnx var/models/fr_feature.onnx` (BENCHMARKS.md).
        MODEL_EVAL_ONNX: MappingProxyType(
            {
                "strict": _eval_onnx(
                    "strict",
                    1e-5,
                    0.99,
                    min_frames=4,
                    accept_distance=0.8394,
                    grey_distance=1.0441,
                    verify_distance=1.0094,
                    min_margin=0.0839,
                    max_ratio=0.814,
                    verify_max_ratio=0.814,
                    same_person_distance=0.8644,
                    lookalike_distance=1.0358,
                    review_distance=1.0358,
                ),
                "balanced": _eval_onnx(
                    "balanced",
                    1e-4,
                    0.99,
                    min_frames=3,
                    accept_distance=0.9214,
                    grey_distance=1.0383,
                    verify_distance=1.0383,
                    min_margin=0.0921,
                    max_ratio=0.8098,
                    verify_max_ratio=0.8098,
                    same_person_distance=0.944,
                    lookalike_distance=1.0358,
                    review_distance=1.0358,
                ),
                "convenient": _eval_onnx(
                    "convenient",
                    1e-4,
                    0.995,
                    min_frames=2,
                    accept_distance=0.9249,
                    grey_distance=1.0678,
                    verify_distance=1.0678,
                    min_margin=0.0925,
                    max_ratio=0.8107,
                    verify_max_ratio=0.8107,
                    same_person_distance=0.944,
                    lookalike_distance=1.0358,
                    review_distance=1.0358,
                ),
            }
        ),
    }
)


def preset(name: str = DEFAULT_PRESET, model: str = MODEL_DLIB) -> ScoringPolicy:
    """The named preset for `model`; a model without measured presets is refused, not guessed."""
    try:
        by_name = PRESETS[model]
    except KeyError:
        raise ValueError(
            f"no measured scoring presets for face model {model!r}: its distances have their own scale, "
            "so no preset of another model applies. Measure its operating point on labelled photos "
            "with `yizhan calibrate --faces DIR` (docs/RECOGNITION.md, 'Switching a station's encoder')"
        ) from None
    try:
        return by_name[name]
    except KeyError:
        raise ValueError(f"unknown scoring preset {name!r} (one of {sorted(by_name)})") from None


def preset_names(model: str = MODEL_DLIB) -> tuple[str, ...]:
    return tuple(PRESETS.get(model, {}))


# ------------------------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """A face decision over one appearance and every number it was made on.

    `mode` "identify" (1:N) or "verify" (the pass names `claimed_id`, 1:1). `zone` is accept /
    show_pass / unknown / pending; `accepted` is zone == accept (identify) or the face confirmed the
    claim (verify). `subject_id` is the member the numbers are about: the nearest (identify) or the
    claimed one (verify). `distance` is the fused distance (frames' mean encoding to the subject's
    nearest template); `frame_distances` each frame's own distance to the subject; `agreeing` how
    many frames had the subject as their own nearest member. `runner_up_*` the nearest other
    member, `margin = runner_up_distance - distance`; `ratio = distance / cohort_distance` over
    `cohort_size` other members (None below `cohort_min_members`). `reason` is the refusal word
    (`show_pass` for the grey zone) and `failed` every gate that kept the face from face-only entry.
    """

    accepted: bool
    mode: str
    zone: str
    member_id: str | None
    reason: str | None
    policy: str
    frames: int = 0
    subject_id: str | None = None
    claimed_id: str | None = None
    distance: float | None = None
    frame_distances: tuple[float, ...] = ()
    agreeing: int = 0
    templates: int = 0
    runner_up_id: str | None = None
    runner_up_distance: float | None = None
    margin: float | None = None
    cohort_distance: float | None = None
    cohort_size: int = 0
    ratio: float | None = None
    failed: tuple[str, ...] = ()
    limits: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def nearest_id(self) -> str | None:
        return self.subject_id

    @property
    def gate(self) -> str | None:
        """The first gate that kept the face from face-only entry (None when accepted)."""
        return self.failed[0] if self.failed else None

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "mode": self.mode,
            "zone": self.zone,
            "member_id": self.member_id,
            "reason": self.reason,
            "policy": self.policy,
            "frames": self.frames,
            "subject_id": self.subject_id,
            "claimed_id": self.claimed_id,
            "distance": _round(self.distance),
            "frame_distances": [_round(d) for d in self.frame_distances],
            "agreeing": self.agreeing,
            "templates": self.templates,
            "runner_up_id": self.runner_up_id,
            "runner_up_distance": _round(self.runner_up_distance),
            "margin": _round(self.margin),
            "cohort_distance": _round(self.cohort_distance),
            "cohort_size": self.cohort_size,
            "ratio": _round(self.ratio),
            "failed": list(self.failed),
            "limits": dict(self.limits),
        }

    def explain(self) -> str:
        """One line for a log or an installer: the verdict and the numbers against the limits."""
        if self.accepted:
            verdict = f"accepted {self.member_id}"
        elif self.zone == SHOW_PASS:
            verdict = f"asks for the pass ({self.gate})"
        else:
            verdict = f"refused ({self.reason})"
        head = f"{self.mode} [{self.policy}]: {verdict}"
        if self.subject_id is None:
            return head
        parts = [f"{head}; {self.subject_id}"]
        accept = self.limits.get("accept_distance")
        grey = self.limits.get("grey_distance")
        parts.append(f"distance {_fmt(self.distance)} (accept {_fmt(accept)}, grey {_fmt(grey)})")
        parts.append(f"{self.agreeing}/{self.frames} frames agree")
        if self.margin is not None:
            parts.append(f"margin {_fmt(self.margin)} to {self.runner_up_id}")
        if self.ratio is not None:
            parts.append(f"ratio {_fmt(self.ratio)} against {self.cohort_size} members")
        parts.append(f"{self.templates} template(s)")
        return ", ".join(parts)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{float(value):.3f}"


# ------------------------------------------------------------------------------------ scoring


def check_model(snapshot: RosterSnapshot, policy: ScoringPolicy) -> None:
    """Refuse a policy measured for one face model on another model's roster (its distances mean
    something else). Rosters that do not name their model are trusted to be the policy's."""
    if snapshot.model is not None and snapshot.model != policy.model:
        raise ValueError(
            f"scoring policy {policy.name!r} was measured for face model {policy.model!r}, "
            f"the roster holds {snapshot.model!r} templates"
        )


def as_frames(frames: npt.ArrayLike | Sequence[npt.ArrayLike], dim: int) -> npt.NDArray[np.float32]:
    """One encoding or a sequence of them as a validated (k, dim) float32 matrix (k >= 1)."""
    array = np.asarray(frames, dtype=np.float32)
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError("expected one encoding or a non-empty sequence of encodings")
    return np.stack([as_query(row, dim) for row in array])


def _frame_distances(snapshot: RosterSnapshot, frames: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Squared distances of every frame to every template row: (k, rows)."""
    products = frames @ snapshot.templates.T
    d2 = snapshot.sq_norms[None, :] - 2.0 * products
    d2 += np.einsum("ij,ij->i", frames, frames)[:, None]
    np.maximum(d2, 0.0, out=d2)
    return d2


def _cohort_gate(
    snapshot: RosterSnapshot, distances: npt.NDArray[np.float32], policy: ScoringPolicy
) -> tuple[float | None, int]:
    """Mean distance of the cohort (the given other members' distances), when the roster has a crowd."""
    if len(snapshot.member_ids) < policy.cohort_min_members or distances.shape[0] == 0:
        return None, 0
    return float(np.mean(distances[: policy.cohort_size], dtype=np.float64)), int(
        min(policy.cohort_size, distances.shape[0])
    )


def score(
    snapshot: RosterSnapshot,
    frames: npt.ArrayLike | Sequence[npt.ArrayLike],
    policy: ScoringPolicy,
    *,
    requires_pass: Collection[str] = (),
) -> ScoreResult:
    """1:N over one appearance: accept, ask for the pass, or unknown (module docstring)."""
    check_model(snapshot, policy)
    matrix = as_frames(frames, snapshot.dim)
    count = int(matrix.shape[0])
    limits = MappingProxyType(policy.limits())
    if snapshot.size == 0:
        return ScoreResult(
            False,
            IDENTIFY,
            UNKNOWN,
            None,
            EMPTY_ROSTER,
            policy.name,
            count,
            failed=(EMPTY_ROSTER,),
            limits=limits,
        )
    mean = np.ascontiguousarray(matrix.mean(axis=0), dtype=np.float32)
    near_positions, near_distances = nearest_members(
        snapshot, squared_distances(snapshot, mean), policy.cohort_size + 1
    )
    best = int(near_positions[0])
    distance = float(near_distances[0])
    subject = snapshot.member_ids[best]
    runner_up_id: str | None = None
    runner_up_distance: float | None = None
    margin: float | None = None
    if near_positions.shape[0] > 1:
        runner_up_id = snapshot.member_ids[int(near_positions[1])]
        runner_up_distance = float(near_distances[1])
        margin = runner_up_distance - distance
    cohort, cohort_size = _cohort_gate(snapshot, near_distances[1:], policy)
    ratio = None if cohort is None else (distance / cohort if cohort > 0 else float("inf"))
    per_frame = _frame_distances(snapshot, matrix)
    owners = snapshot.owner_index[np.argmin(per_frame, axis=1)]
    agreeing = int(np.count_nonzero(owners == best))
    own_rows = snapshot.owner_index == best
    frame_distances = tuple(float(v) for v in np.sqrt(per_frame[:, own_rows].min(axis=1)))
    failed: list[str] = []
    if distance > policy.grey_distance:
        failed.append(OVER_THRESHOLD)
    if count < policy.min_frames:
        failed.append(TOO_FEW_FRAMES)
    if distance > policy.accept_distance and distance <= policy.grey_distance:
        failed.append(NOT_SURE)
    if agreeing < count:
        failed.append(FRAMES_DISAGREE)
    if margin is not None and margin < policy.min_margin:
        failed.append(LOW_MARGIN)
    if policy.max_ratio is not None and ratio is not None and ratio > policy.max_ratio:
        failed.append(HIGH_RATIO)
    info = snapshot.members.get(subject)
    if subject in requires_pass or (info is not None and info.requires_pass):
        failed.append(REQUIRES_PASS)
    if count < policy.min_frames:
        zone, reason = PENDING, TOO_FEW_FRAMES
    elif distance > policy.grey_distance:
        zone, reason = UNKNOWN, OVER_THRESHOLD
    elif failed:
        zone, reason = SHOW_PASS, SHOW_PASS
    else:
        zone, reason = ACCEPT, None
    accepted = zone == ACCEPT
    return ScoreResult(
        accepted=accepted,
        mode=IDENTIFY,
        zone=zone,
        member_id=subject if accepted else None,
        reason=reason,
        policy=policy.name,
        frames=count,
        subject_id=subject,
        distance=distance,
        frame_distances=frame_distances,
        agreeing=agreeing,
        templates=snapshot.template_count(subject),
        runner_up_id=runner_up_id,
        runner_up_distance=runner_up_distance,
        margin=margin,
        cohort_distance=cohort,
        cohort_size=cohort_size,
        ratio=ratio,
        failed=tuple(failed),
        limits=limits,
    )


def verify(
    snapshot: RosterSnapshot,
    member_id: str,
    frames: npt.ArrayLike | Sequence[npt.ArrayLike],
    policy: ScoringPolicy,
    *,
    on_demand: bool = False,
) -> ScoreResult:
    """The pass names `member_id`; does this appearance's face confirm it (1:1)?

    Confirmed when the frames' mean encoding is within `verify_distance` (`grey_distance` when the
    door asked for the pass on demand) of the member's nearest template, no other enrolled member
    is nearer by more than `min_margin` (someone holding a colleague's pass), and, on a roster with
    a crowd, the cohort ratio is under `verify_max_ratio`. A small lead of another member is
    allowed: the pass already says which of two lookalikes this is, which is what 1:1 buys over
    1:N. "not_enrolled": the member has no face template (a pass-only member: the caller decides).
    "pending": fewer frames than `min_frames` so far.
    """
    check_model(snapshot, policy)
    matrix = as_frames(frames, snapshot.dim)
    count = int(matrix.shape[0])
    limits = MappingProxyType(policy.limits())
    position = snapshot.position_of(member_id)
    if position is None or snapshot.size == 0:
        return ScoreResult(
            False,
            VERIFY,
            UNKNOWN,
            None,
            NOT_ENROLLED,
            policy.name,
            count,
            subject_id=member_id,
            claimed_id=member_id,
            failed=(NOT_ENROLLED,),
            limits=limits,
        )
    mean = np.ascontiguousarray(matrix.mean(axis=0), dtype=np.float32)
    d2 = squared_distances(snapshot, mean)
    own = snapshot.owner_index == position
    distance = float(np.sqrt(np.min(d2[own])))
    positions, distances = nearest_members(snapshot, d2, policy.cohort_size, exclude=position)
    runner_up_id: str | None = None
    runner_up_distance: float | None = None
    margin: float | None = None
    if positions.shape[0] > 0:
        runner_up_id = snapshot.member_ids[int(positions[0])]
        runner_up_distance = float(distances[0])
        margin = runner_up_distance - distance
    cohort, cohort_size = _cohort_gate(snapshot, distances, policy)
    ratio = None if cohort is None else (distance / cohort if cohort > 0 else float("inf"))
    per_frame = _frame_distances(snapshot, matrix)
    frame_distances = tuple(float(v) for v in np.sqrt(per_frame[:, own].min(axis=1)))
    owners = snapshot.owner_index[np.argmin(per_frame, axis=1)]
    agreeing = int(np.count_nonzero(owners == position))
    failed: list[str] = []
    if count < policy.min_frames:
        failed.append(TOO_FEW_FRAMES)
    if distance > (policy.grey_distance if on_demand else policy.verify_distance):
        failed.append(OVER_THRESHOLD)
    if margin is not None and margin < -policy.min_margin:
        failed.append(CLOSER_TO_OTHER_MEMBER)
    if policy.verify_max_ratio is not None and ratio is not None and ratio > policy.verify_max_ratio:
        failed.append(HIGH_RATIO)
    if count < policy.min_frames:
        zone, reason = PENDING, TOO_FEW_FRAMES
    elif failed:
        zone, reason = UNKNOWN, failed[0]
    else:
        zone, reason = ACCEPT, None
    accepted = zone == ACCEPT
    return ScoreResult(
        accepted=accepted,
        mode=VERIFY,
        zone=zone,
        member_id=member_id if accepted else None,
        reason=reason,
        policy=policy.name,
        frames=count,
        subject_id=member_id,
        claimed_id=member_id,
        distance=distance,
        frame_distances=frame_distances,
        agreeing=agreeing,
        templates=int(np.count_nonzero(own)),
        runner_up_id=runner_up_id,
        runner_up_distance=runner_up_distance,
        margin=margin,
        cohort_distance=cohort,
        cohort_size=cohort_size,
        ratio=ratio,
        failed=tuple(failed),
        limits=limits,
    )


def verify_1to1(
    snapshot: RosterSnapshot, member_id: str, encoding: npt.ArrayLike, policy: ScoringPolicy
) -> ScoreResult:
    """`verify` judging whatever frames are given against `min_frames` 1 (one photo, one look)."""
    return verify(snapshot, member_id, encoding, policy.for_one_photo())


def without_member(snapshot: RosterSnapshot, member_id: str) -> RosterSnapshot:
    """The roster minus `member_id`'s templates (what a new or re-enrolled face is compared with)."""
    if snapshot.position_of(member_id) is None:
        return snapshot
    return RosterSnapshot.build(
        (
            (owner, row)
            for owner, row in zip(snapshot.owners, snapshot.templates, strict=True)
            if owner != member_id
        ),
        model=snapshot.model,
        dim=snapshot.dim,
    )
