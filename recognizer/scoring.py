"""The door's face scoring rule, its named operating points, and the numbers behind every decision.

Why not one global distance: dlib's 128-d model packs East Asian faces close together (on our
data set 98 of 246 East Asian impostor pairs are closer than dlib's usual 0.6), so a distance that
is a safe "same person" for one face is a lookalike's distance for another. The rule therefore
judges the nearest member's distance *against the crowd around this probe*:

    d1     = distance from the probe to the nearest member (their nearest template)
    d2     = distance to the best *other* member;   margin = d2 - d1
    cohort = mean distance to the `cohort_size` (5) next-nearest members after the best one
    ratio  = d1 / cohort        ("how much closer than the crowd is this member?")

    accept  iff  d1 <= max_distance  and  margin >= min_margin  and  ratio <= max_ratio

A stranger who happens to sit 0.40 from a member sits about as close to that member's lookalikes
too, so their ratio stays high (~0.75 and above on our data) even though their distance alone
would pass; a genuine probe is clearly nearer to its member than to the crowd (ratio ~0.45-0.70).
The ratio is a probe-side cohort normalisation: it costs one partial sort of the distances the
1:N search computes anyway (~1 ms at 100k rows) and no per-member statistics at roster build.
`max_distance` stays as an absolute cap (a roster of very different faces makes every ratio small)
and `min_margin` as a tie guard between two enrolled lookalikes. The numbers of each preset were
chosen from the measurement in docs/RECOGNITION.md and are model-specific: presets are keyed by the
face model's name, so a stronger model added later brings its own measured presets and this code
stays as it is.

Two-factor (`verify_1to1`): a QR code names the member and the face must confirm it. The same
numbers are computed for the *claimed* member (distance, the nearest other member, the cohort
ratio), so a lookalike holding someone else's code is still refused with the reason and numbers.

Everything here is pure: a frozen roster snapshot and an encoding in, a frozen result out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from recognizer.encoder import MODEL_DLIB
from recognizer.matcher import MatchPolicy, as_query, nearest_members, squared_distances
from recognizer.roster import RosterSnapshot

DEFAULT_PRESET: Final = "balanced"
#: The ONNX evaluation model of `make eval-model` (bench/eval_model.py): its name is its file's hash.
MODEL_EVAL_ONNX: Final = "onnx-87aacdfe5751"

# Stable reason words (events, logs and the screen key on them).
EMPTY_ROSTER: Final = "empty_roster"
OVER_THRESHOLD: Final = "over_threshold"
LOW_MARGIN: Final = "low_margin"
HIGH_RATIO: Final = "high_ratio"
NOT_ENROLLED: Final = "not_enrolled"
CLOSER_TO_OTHER_MEMBER: Final = "closer_to_other_member"
FRAMES_DISAGREE: Final = "frames_disagree"
TOO_FEW_FRAMES: Final = "too_few_frames"

IDENTIFY: Final = "identify"
VERIFY: Final = "verify"


@dataclass(frozen=True, slots=True)
class ScoringPolicy:
    """One operating point of the rule in the module docstring (all distances in the model's units).

    `max_ratio=None` turns the cohort normalisation off (the legacy threshold + margin rule).
    `verify_*` apply to two-factor checks, where the QR code already names the member.
    `require_frames` is how many encodings of one appearance must agree before the door acts
    (wired into the door's tracker). `lookalike_ratio` is where enrolment starts flagging a new face
    as a lookalike of an existing member (see `check_lookalikes`).

    `no_cohort_max_distance` replaces the distance cap when there is no other enrolled member to
    compare with (a one-member roster): without a crowd the ratio cannot be judged, and the distance
    alone must then be under the nearest stranger seen in our data (0.398, an East Asian stranger
    to an East Asian member).
    """

    name: str = DEFAULT_PRESET
    model: str = MODEL_DLIB
    max_distance: float = 0.55
    min_margin: float = 0.05
    max_ratio: float | None = 0.74
    cohort_size: int = 5
    verify_max_distance: float = 0.55
    verify_max_ratio: float | None = 0.74
    no_cohort_max_distance: float = 0.38
    require_frames: int = 1
    lookalike_ratio: float = 0.85
    #: Enrolment: photos given together must be this close to each other to be taken for one
    #: person (model units, like every distance here; `[recognition] same_person_max_distance`
    #: overrides it).
    same_person_max_distance: float = 0.65
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a scoring policy needs a name (it is recorded with every decision)")
        for label, value in (
            ("max_distance", self.max_distance),
            ("verify_max_distance", self.verify_max_distance),
            ("same_person_max_distance", self.same_person_max_distance),
        ):
            if not 0.0 < value < 2.0:
                raise ValueError(f"{label} must be in (0, 2), got {value}")
        if not 0.0 <= self.min_margin < 2.0:
            raise ValueError(f"min_margin must be in [0, 2), got {self.min_margin}")
        for label, ratio in (("max_ratio", self.max_ratio), ("verify_max_ratio", self.verify_max_ratio)):
            if ratio is not None and not 0.0 < ratio <= 1.0:
                raise ValueError(f"{label} must be in (0, 1] or None, got {ratio}")
        if not 0.0 < self.lookalike_ratio <= 1.5:
            raise ValueError(f"lookalike_ratio must be in (0, 1.5], got {self.lookalike_ratio}")
        if not 1 <= self.cohort_size <= 50:
            raise ValueError(f"cohort_size must be in [1, 50], got {self.cohort_size}")
        if not 1 <= self.require_frames <= 10:
            raise ValueError(f"require_frames must be in [1, 10], got {self.require_frames}")

    def limits(self) -> dict[str, Any]:
        """The numbers a decision is compared with, recorded next to the measured ones."""
        return {
            "max_distance": self.max_distance,
            "min_margin": self.min_margin,
            "max_ratio": self.max_ratio,
            "cohort_size": self.cohort_size,
            "verify_max_distance": self.verify_max_distance,
            "verify_max_ratio": self.verify_max_ratio,
            "no_cohort_max_distance": self.no_cohort_max_distance,
            "require_frames": self.require_frames,
        }

    def with_overrides(self, **changes: Any) -> ScoringPolicy:
        """This preset with some numbers changed; the name gets a '*' so no event claims the
        measured preset's figures for numbers that were not measured."""
        changes = {key: value for key, value in changes.items() if value is not None}
        if not changes or all(getattr(self, key) == value for key, value in changes.items()):
            return self
        name = changes.pop("name", self.name if self.name.endswith("*") else f"{self.name}*")
        return dataclasses.replace(self, name=name, **changes)

    def as_match_policy(self) -> MatchPolicy:
        """The legacy threshold + margin part of this policy (for code that still calls `match`)."""
        return MatchPolicy(threshold=self.max_distance, min_margin=self.min_margin)

    @staticmethod
    def from_match_policy(policy: MatchPolicy, name: str = "legacy") -> ScoringPolicy:
        """The old rule (threshold + margin, no cohort ratio) as a scoring policy."""
        return ScoringPolicy(
            name=name,
            max_distance=policy.threshold,
            min_margin=policy.min_margin,
            max_ratio=None,
            verify_max_distance=policy.threshold,
            verify_max_ratio=None,
            description="threshold and margin only (no cohort normalisation)",
        )


#: Measured presets per face model (docs/RECOGNITION.md has the figures and how they were chosen).
PRESETS: Final[Mapping[str, Mapping[str, ScoringPolicy]]] = MappingProxyType(
    {
        MODEL_DLIB: MappingProxyType(
            {
                "strict": ScoringPolicy(
                    name="strict",
                    max_distance=0.55,
                    min_margin=0.05,
                    max_ratio=0.70,
                    verify_max_distance=0.55,
                    verify_max_ratio=0.70,
                    no_cohort_max_distance=0.35,
                    require_frames=2,
                    lookalike_ratio=0.85,
                    description="ratio 0.05 under the nearest impostor, two agreeing frames; more retries",
                ),
                "balanced": ScoringPolicy(
                    name="balanced",
                    max_distance=0.55,
                    min_margin=0.05,
                    max_ratio=0.74,
                    verify_max_distance=0.55,
                    verify_max_ratio=0.74,
                    no_cohort_max_distance=0.38,
                    require_frames=1,
                    lookalike_ratio=0.85,
                    description="default: no stranger let in on our data; ratio 0.01 under the nearest one",
                ),
                "convenient": ScoringPolicy(
                    name="convenient",
                    max_distance=0.60,
                    min_margin=0.03,
                    max_ratio=0.78,
                    verify_max_distance=0.60,
                    verify_max_ratio=0.80,
                    no_cohort_max_distance=0.45,
                    require_frames=1,
                    lookalike_ratio=0.90,
                    description="fewest retries; lets the nearest lookalike strangers in: two-factor only",
                ),
            }
        ),
        # PROVISIONAL, evaluation only: the ONNX evaluation model of `make eval-model` (provenance
        # unknown, never shipped), so that a station can run on it for benchmarks. Threshold + margin,
        # no cohort ratio: the nearest impostor on ../shared/data/faces + faces-ea (0.970) minus 0.02;
        # leave-identity-out that choice admitted 88.8 % of members (East Asian 89.5 %) with 1 false
        # accept in 157 impostor trials (docs/BENCHMARKS.md, bench.encoders). Enrolment's same-person
        # distance: above the largest same-person pair seen (1.163). To be replaced by the measured
        # presets of the redesigned rule.
        MODEL_EVAL_ONNX: MappingProxyType(
            {
                "balanced": ScoringPolicy(
                    name="balanced",
                    model=MODEL_EVAL_ONNX,
                    max_distance=0.95,
                    min_margin=0.05,
                    max_ratio=None,
                    verify_max_distance=0.95,
                    verify_max_ratio=None,
                    no_cohort_max_distance=0.95,
                    require_frames=1,
                    lookalike_ratio=0.85,
                    same_person_max_distance=1.2,
                    description="PROVISIONAL (evaluation model; threshold + margin measured "
                    "leave-identity-out, 1 false accept in 157 impostor trials): evaluation only",
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


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """A face decision and every number it was made on.

    `mode` is "identify" (1:N) or "verify" (two-factor 1:1, `claimed_id` set). `member_id` is the
    accepted member (None when refused). `subject_id` is the member the numbers are about: the
    nearest member (identify) or the claimed one (verify); `distance` is to their nearest template
    and `templates` their template count. `runner_up_*` is the nearest member other than the
    subject; `margin = runner_up_distance - distance` (negative in verify when the face is closer to
    someone else). `ratio = distance / cohort_distance`, the cohort being the `cohort_size` nearest
    members other than the subject (fewer on a small roster: `cohort_size` records how many).
    `reason` is the first gate that refused; `failed` lists every gate that would have.
    """

    accepted: bool
    mode: str
    member_id: str | None
    reason: str | None
    policy: str
    subject_id: str | None = None
    claimed_id: str | None = None
    distance: float | None = None
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
        """The member the numbers are about (name kept from `MatchOutcome` for log readers)."""
        return self.subject_id

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "mode": self.mode,
            "member_id": self.member_id,
            "reason": self.reason,
            "policy": self.policy,
            "subject_id": self.subject_id,
            "claimed_id": self.claimed_id,
            "distance": _round(self.distance),
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
        verdict = f"accepted {self.member_id}" if self.accepted else f"refused ({self.reason})"
        if self.subject_id is None:
            return f"{self.mode} [{self.policy}]: {verdict}"
        parts = [f"{self.mode} [{self.policy}]: {verdict}; {self.subject_id}"]
        parts.append(f"distance {_fmt(self.distance)} (max {_fmt(self._limit('distance'))})")
        if self.margin is not None:
            parts.append(f"margin {_fmt(self.margin)} to {self.runner_up_id}")
        if self.ratio is not None:
            limit = _fmt(self._limit("ratio"))
            parts.append(f"ratio {_fmt(self.ratio)} (max {limit}) against {self.cohort_size} members")
        parts.append(f"{self.templates} template(s)")
        return ", ".join(parts)

    def _limit(self, what: str) -> float | None:
        if (
            what == "distance"
            and self.ratio is None
            and self.limits.get("no_cohort_max_distance") is not None
        ):
            base = self.limits.get("verify_max_distance" if self.mode == VERIFY else "max_distance")
            return min(float(base or 2.0), float(self.limits["no_cohort_max_distance"]))
        key = f"verify_max_{what}" if self.mode == VERIFY else f"max_{what}"
        value = self.limits.get(key)
        return None if value is None else float(value)


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@dataclass(frozen=True, slots=True)
class _Neighbourhood:
    """The ranked members around one probe (internal: what both rules are computed from)."""

    positions: npt.NDArray[np.intp]
    distances: npt.NDArray[np.float32]


def _neighbourhood(
    snapshot: RosterSnapshot, d2: npt.NDArray[np.float32], count: int, exclude: int | None = None
) -> _Neighbourhood:
    positions, distances = nearest_members(snapshot, d2, count, exclude)
    return _Neighbourhood(positions, distances)


def _cohort(distances: npt.NDArray[np.float32]) -> tuple[float | None, int]:
    if distances.shape[0] == 0:
        return None, 0
    return float(np.mean(distances, dtype=np.float64)), int(distances.shape[0])


def _ratio(distance: float, cohort: float | None) -> float | None:
    if cohort is None:
        return None
    return distance / cohort if cohort > 0.0 else float("inf")


def check_model(snapshot: RosterSnapshot, policy: ScoringPolicy) -> None:
    """Refuse a policy measured for one face model on another model's roster (a configuration error:
    its distances mean something else, so its figures would be wrong). Rosters that do not name their
    model are trusted to be the policy's."""
    if snapshot.model is not None and snapshot.model != policy.model:
        raise ValueError(
            f"scoring policy {policy.name!r} was measured for face model {policy.model!r}, "
            f"the roster holds {snapshot.model!r} templates"
        )


def score(snapshot: RosterSnapshot, encoding: npt.ArrayLike, policy: ScoringPolicy) -> ScoreResult:
    """1:N: who is this face, if anyone, under `policy`? Every number is in the result."""
    check_model(snapshot, policy)
    query = as_query(encoding, snapshot.dim)
    limits = MappingProxyType(policy.limits())
    if snapshot.size == 0:
        return ScoreResult(
            False, IDENTIFY, None, EMPTY_ROSTER, policy.name, failed=(EMPTY_ROSTER,), limits=limits
        )
    d2 = squared_distances(snapshot, query)
    near = _neighbourhood(snapshot, d2, policy.cohort_size + 1)
    best = int(near.positions[0])
    distance = float(near.distances[0])
    subject = snapshot.member_ids[best]
    runner_up_id: str | None = None
    runner_up_distance: float | None = None
    margin: float | None = None
    if near.positions.shape[0] > 1:
        runner_up_id = snapshot.member_ids[int(near.positions[1])]
        runner_up_distance = float(near.distances[1])
        margin = runner_up_distance - distance
    cohort, cohort_size = _cohort(near.distances[1:])
    ratio = _ratio(distance, cohort)
    failed: list[str] = []
    cap = (
        policy.max_distance if ratio is not None else min(policy.max_distance, policy.no_cohort_max_distance)
    )
    if distance > cap:
        failed.append(OVER_THRESHOLD)
    if margin is not None and margin < policy.min_margin:
        failed.append(LOW_MARGIN)
    if policy.max_ratio is not None and ratio is not None and ratio > policy.max_ratio:
        failed.append(HIGH_RATIO)
    accepted = not failed
    return ScoreResult(
        accepted=accepted,
        mode=IDENTIFY,
        member_id=subject if accepted else None,
        reason=failed[0] if failed else None,
        policy=policy.name,
        subject_id=subject,
        distance=distance,
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


def verify_1to1(
    snapshot: RosterSnapshot, member_id: str, encoding: npt.ArrayLike, policy: ScoringPolicy
) -> ScoreResult:
    """Two-factor: does this face confirm `member_id` (named by a verified QR code)?

    Refused with "not_enrolled" when the member has no face template (a QR-only member: the caller
    decides whether QR alone admits them), "over_threshold" when the face is too far from the
    member's templates, "closer_to_other_member" when another enrolled member is nearer (someone
    holding a colleague's code), "high_ratio" when the member is not clearly nearer than the crowd
    (a stranger who resembles the member, on a roster of lookalikes). No margin is required: the
    code already says which of two lookalike members this is, which is what 1:1 buys over 1:N.
    """
    check_model(snapshot, policy)
    query = as_query(encoding, snapshot.dim)
    limits = MappingProxyType(policy.limits())
    position = snapshot.position_of(member_id)
    if position is None or snapshot.size == 0:
        return ScoreResult(
            False,
            VERIFY,
            None,
            NOT_ENROLLED,
            policy.name,
            subject_id=member_id,
            claimed_id=member_id,
            failed=(NOT_ENROLLED,),
            limits=limits,
        )
    d2 = squared_distances(snapshot, query)
    own = d2[snapshot.owner_index == position]
    distance = float(np.sqrt(np.min(own)))
    others = _neighbourhood(snapshot, d2, policy.cohort_size, exclude=position)
    runner_up_id: str | None = None
    runner_up_distance: float | None = None
    margin: float | None = None
    if others.positions.shape[0] > 0:
        runner_up_id = snapshot.member_ids[int(others.positions[0])]
        runner_up_distance = float(others.distances[0])
        margin = runner_up_distance - distance
    cohort, cohort_size = _cohort(others.distances)
    ratio = _ratio(distance, cohort)
    failed: list[str] = []
    cap = policy.verify_max_distance
    if ratio is None:
        cap = min(cap, policy.no_cohort_max_distance)
    if distance > cap:
        failed.append(OVER_THRESHOLD)
    if margin is not None and margin < 0.0:
        failed.append(CLOSER_TO_OTHER_MEMBER)
    if policy.verify_max_ratio is not None and ratio is not None and ratio > policy.verify_max_ratio:
        failed.append(HIGH_RATIO)
    accepted = not failed
    return ScoreResult(
        accepted=accepted,
        mode=VERIFY,
        member_id=member_id if accepted else None,
        reason=failed[0] if failed else None,
        policy=policy.name,
        subject_id=member_id,
        claimed_id=member_id,
        distance=distance,
        templates=int(own.shape[0]),
        runner_up_id=runner_up_id,
        runner_up_distance=runner_up_distance,
        margin=margin,
        cohort_distance=cohort,
        cohort_size=cohort_size,
        ratio=ratio,
        failed=tuple(failed),
        limits=limits,
    )


@dataclass(frozen=True, slots=True)
class FramesVerdict:
    """Agreement over the encodings of one appearance (several video frames of one person).

    `accepted` when the last `required` results were all accepted for the same member and none of
    them named somebody else; the worst of their numbers is kept (largest distance and ratio,
    smallest margin) so the event shows the weakest frame the door relied on.
    """

    accepted: bool
    member_id: str | None
    reason: str | None
    frames: int
    required: int
    worst_distance: float | None
    worst_margin: float | None
    worst_ratio: float | None
    results: tuple[ScoreResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "member_id": self.member_id,
            "reason": self.reason,
            "frames": self.frames,
            "required": self.required,
            "worst_distance": _round(self.worst_distance),
            "worst_margin": _round(self.worst_margin),
            "worst_ratio": _round(self.worst_ratio),
            "per_frame": [r.to_json() for r in self.results],
        }


def agree(results: Sequence[ScoreResult], required: int) -> FramesVerdict:
    """Do the last `required` scored frames of one appearance agree on one accepted member?

    Two lookalikes alternating never add up (a frame accepted for someone else breaks the run), and
    a refused frame in the run refuses the appearance for now (the door tries the next frame).
    """
    if required < 1:
        raise ValueError("required must be at least 1")
    recent = tuple(results[-required:])
    worst_distance = max((r.distance for r in recent if r.distance is not None), default=None)
    worst_margin = min((r.margin for r in recent if r.margin is not None), default=None)
    worst_ratio = max((r.ratio for r in recent if r.ratio is not None), default=None)

    def verdict(accepted: bool, member: str | None, reason: str | None) -> FramesVerdict:
        return FramesVerdict(
            accepted,
            member,
            reason,
            len(results),
            required,
            worst_distance,
            worst_margin,
            worst_ratio,
            recent,
        )

    if len(recent) < required:
        return verdict(False, None, TOO_FEW_FRAMES)
    refused = next((r for r in recent if not r.accepted), None)
    if refused is not None:
        return verdict(False, None, refused.reason)
    members = {r.member_id for r in recent}
    if len(members) != 1:
        return verdict(False, None, FRAMES_DISAGREE)
    return verdict(True, recent[-1].member_id, None)


# ----------------------------------------------------------------------------------- enrolment

WOULD_MATCH: Final = "would_match"
LOOKALIKE: Final = "lookalike"


@dataclass(frozen=True, slots=True)
class LookalikeFinding:
    """An existing member a new face could be confused with, with the numbers for the installer.

    `kind` "would_match": under the policy the door would already accept this face as that member
    (the same person enrolled twice, or a lookalike the door cannot tell apart: refuse unless the
    installer confirms). "lookalike": not accepted, but the member is unusually close relative to
    the crowd (`ratio <= policy.lookalike_ratio`): both will see more retries; consider putting them
    in a two-factor group.
    """

    source: str
    member_id: str
    kind: str
    distance: float
    ratio: float | None
    cohort_size: int
    policy: str

    def describe(self) -> str:
        ratio = "-" if self.ratio is None else f"{self.ratio:.3f}"
        if self.kind == WOULD_MATCH:
            what = "the door would accept this face as"
        else:
            what = "looks like"
        return (
            f"{self.source}: {what} existing member {self.member_id!r} "
            f"(distance {self.distance:.3f}, ratio {ratio} against {self.cohort_size} members, "
            f"policy {self.policy})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "member_id": self.member_id,
            "kind": self.kind,
            "distance": _round(self.distance),
            "ratio": _round(self.ratio),
            "cohort_size": self.cohort_size,
            "policy": self.policy,
        }


#: How many of the nearest existing members are examined for each new face.
LOOKALIKE_CANDIDATES: Final = 3


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


def check_lookalikes(
    snapshot: RosterSnapshot,
    member_id: str,
    faces: Sequence[tuple[str, npt.ArrayLike]],
    policy: ScoringPolicy,
) -> tuple[LookalikeFinding, ...]:
    """Existing members that each new face of `member_id` could be confused with, same scoring.

    Each face is scored 1:N against the roster without `member_id`; if the door would accept it as
    somebody, that is a "would_match". Then each of the few nearest members X is judged by the same
    cohort ratio with X as the subject (distance to X / mean distance to the `cohort_size` nearest
    members other than X): at or under `policy.lookalike_ratio` it is a "lookalike" (on a roster too
    small for a cohort, within `policy.max_distance`). Distinct people are flagged, never merged or
    refused silently: the caller shows `describe()` to the installer and records the numbers.
    """
    others = without_member(snapshot, member_id)
    if others.size == 0:
        return ()
    findings: list[LookalikeFinding] = []
    for source, encoding in faces:
        result = score(others, encoding, policy)
        query = as_query(encoding, others.dim)
        d2 = squared_distances(others, query)
        near = _neighbourhood(others, d2, policy.cohort_size + LOOKALIKE_CANDIDATES)
        flagged: set[str] = set()
        if result.accepted and result.member_id is not None:
            findings.append(
                LookalikeFinding(
                    source,
                    result.member_id,
                    WOULD_MATCH,
                    float(result.distance or 0.0),
                    result.ratio,
                    result.cohort_size,
                    policy.name,
                )
            )
            flagged.add(result.member_id)
        for index in range(min(LOOKALIKE_CANDIDATES, near.positions.shape[0])):
            candidate = others.member_ids[int(near.positions[index])]
            if candidate in flagged:
                continue
            distance = float(near.distances[index])
            rest = np.delete(near.distances, index)[: policy.cohort_size]
            cohort, cohort_size = _cohort(rest)
            ratio = _ratio(distance, cohort)
            close = ratio <= policy.lookalike_ratio if ratio is not None else distance <= policy.max_distance
            if close:
                findings.append(
                    LookalikeFinding(source, candidate, LOOKALIKE, distance, ratio, cohort_size, policy.name)
                )
                flagged.add(candidate)
    return tuple(findings)
