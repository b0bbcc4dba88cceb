"""Choosing the door's operating point on labelled faces, and checking it honestly (pure).

`choose_operating_point(samples, settings)` is the procedure behind every preset and behind
`yizhan calibrate`; `leave_identity_out` re-runs it once per identity without that identity and
judges the identity's own faces with the result, so no figure is read off the trials it reports.

The procedure, from labelled `Sample`s (an enrolment photo's encoding plus encoded door frames):

1. Enrolments: each person enrolled from their first photo, and from up to three photos chosen by
   `recognizer.templates` (both sizes are used: more templates also mean more chances for a
   stranger to come near one).
2. Door impostor pairs: every appearance (its first `min_frames` frames fused: the mean encoding to
   the nearest template, as `recognizer.scoring` does) against every *other* person's enrolment;
   one value per (stranger, member) pair: the nearest any of the stranger's appearances came.
3. `accept_distance`: the lower tail of those pair values is fitted on a normal probability plot
   (the lowest `tail_fraction` of them) and read at the per-pair probability `accept_tail` (1e-4:
   one pair of distinct people in ten thousand would come this close, by a model whose tail is
   heavier than the one we observe). Never above the nearest pair actually seen.
4. `grey_distance`: the `grey_quantile` of members' own appearances against their enrolment from
   their *other* photos (most members are within it; beyond it nobody is asked for anything).
5. `min_margin` = `margin_fraction` x accept_distance (a tie guard between two enrolled lookalikes).
6. Cohort gate (only for rosters of `cohort_min_members` or more): `ratio_quantile` of the members'
   own ratios on the full roster; off when the labelled roster is smaller than that.
7. Enrolment checks on photo pairs (no frames): `same_person_distance` at `accept_tail`,
   `lookalike_distance` at `lookalike_tail`, `review_distance` the `grey_quantile` of a member's
   photos against their other photos (the photo-level grey zone: where the door would still take
   the face for that member, a new id may be the same person). An earlier version used the 90th
   percentile; on our data it let one East Asian person of 22 through under a new id, which is why
   this bound follows the grey zone (a choice informed by those trials, said so in RECOGNITION.md).

Wilson score intervals (`wilson`) go with every rate reported from these trials.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from recognizer.roster import RosterSnapshot
from recognizer.scoring import ScoringPolicy, score
from recognizer.templates import SelectionPolicy, TemplateCandidate, select_templates

Vector = npt.NDArray[np.float32]
ENROL_SIZES = (1, 3)
_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class Sample:
    """One labelled face: its enrolment-photo encoding and the encoded door frames made from it.

    `identity` is the person (people/<id>) or, for a stranger, a key of their own; `member` says the
    identity is one that can be enrolled; `enrollable` that this photo may be an enrolment photo
    (people/ photos; group photos are probes only).
    """

    key: str
    identity: str
    member: bool
    enrollable: bool
    east_asian: bool
    encoding: Vector
    quality: dict[str, Any] = field(default_factory=dict)
    frames: tuple[Vector, ...] = ()


@dataclass(frozen=True, slots=True)
class ProcedureSettings:
    """The knobs of the procedure (stated, not fitted): what each preset asks of the data."""

    min_frames: int = 3
    accept_tail: float = 1e-4
    verify_tail: float = 1e-2
    lookalike_tail: float = 1e-3
    tail_fraction: float = 0.05
    min_tail_points: int = 8
    grey_quantile: float = 0.98
    ratio_quantile: float = 0.99
    margin_fraction: float = 0.1
    cohort_size: int = 5
    cohort_min_members: int = 20
    enrol_sizes: tuple[int, ...] = ENROL_SIZES

    def to_json(self) -> dict[str, Any]:
        return {
            "min_frames": self.min_frames,
            "accept_tail": self.accept_tail,
            "verify_tail": self.verify_tail,
            "lookalike_tail": self.lookalike_tail,
            "tail_fraction": self.tail_fraction,
            "grey_quantile": self.grey_quantile,
            "ratio_quantile": self.ratio_quantile,
            "margin_fraction": self.margin_fraction,
            "enrol_sizes": list(self.enrol_sizes),
        }


class CalibrationError(ValueError):
    """The labelled faces are not enough to choose an operating point; the message says why."""


# ------------------------------------------------------------------------------------ statistics


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion (95 % by default); (0, 1) when there are no trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class TailFit:
    """A normal probability plot fitted to the lowest values: value = intercept + slope * z."""

    intercept: float
    slope: float
    points: int
    observed_min: float

    def at(self, probability: float) -> float:
        return self.intercept + self.slope * _NORMAL.inv_cdf(probability)

    def to_json(self) -> dict[str, Any]:
        return {
            "intercept": round(self.intercept, 4),
            "slope": round(self.slope, 4),
            "points": self.points,
            "observed_min": round(self.observed_min, 4),
        }


def fit_lower_tail(values: Sequence[float], fraction: float, min_points: int) -> TailFit:
    """Fit the lowest `fraction` (at least `min_points`) of `values` on a normal probability plot.

    Blom plotting positions; least squares of the sorted values on the normal quantiles. Refused
    (CalibrationError) with fewer than `min_points` values or a flat tail.
    """
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = int(ordered.shape[0])
    if n < min_points:
        raise CalibrationError(
            f"only {n} pairs of distinct people: at least {min_points} are needed to fit the tail "
            "(label more people)"
        )
    k = min(n, max(min_points, int(math.ceil(n * fraction))))
    positions = (np.arange(1, k + 1) - 0.375) / (n + 0.25)
    z = np.array([_NORMAL.inv_cdf(float(p)) for p in positions])
    slope, intercept = np.polyfit(z, ordered[:k], 1)
    if not slope > 1e-9:
        raise CalibrationError("the nearest pairs of distinct people are all equally far: cannot fit a tail")
    return TailFit(float(intercept), float(slope), k, float(ordered[0]))


# ------------------------------------------------------------------------------------ enrolments


def enrolment(photos: Sequence[Sample], size: int) -> list[Sample]:
    """What an installer would enrol from these photos: the first, or the best `size`."""
    if size <= 1 or len(photos) <= 1:
        return list(photos[:1])
    candidates = [TemplateCandidate.from_quality_json(s.key, s.encoding, s.quality) for s in photos]
    chosen = set(select_templates(candidates, SelectionPolicy(max_templates=size)).sources)
    return [s for s in photos if s.key in chosen]


def by_identity(samples: Iterable[Sample]) -> dict[str, list[Sample]]:
    grouped: dict[str, list[Sample]] = {}
    for sample in samples:
        grouped.setdefault(sample.identity, []).append(sample)
    for items in grouped.values():
        items.sort(key=lambda s: s.key)
    return grouped


def enrollable(samples: Sequence[Sample]) -> list[Sample]:
    return [s for s in samples if s.member and s.enrollable]


def appearance(sample: Sample, frames: int) -> Vector | None:
    """The first `frames` door frames of `sample` (None when fewer were encoded)."""
    if len(sample.frames) < frames:
        return None
    return np.stack(sample.frames[:frames]).astype(np.float32)


def _mean(frames: Vector) -> Vector:
    return np.asarray(frames.mean(axis=0), dtype=np.float32)


def _nearest(query: Vector, templates: Vector) -> float:
    return float(np.sqrt(np.min(np.sum((templates - query) ** 2, axis=1))))


# ------------------------------------------------------------------------------------ pair tables


@dataclass(frozen=True, slots=True)
class PairTables:
    """Every distance the procedure reads, computed once (folds only filter by identity).

    `door_impostor`: (probe identity, member identity) -> nearest fused distance of the probe's
    appearances to the member's enrolments. `door_genuine`: (identity, value) for each member
    appearance against its enrolment from the other photos. `ratio_genuine` likewise for the
    cohort ratio on the full roster. `photo_impostor` / `photo_genuine`: photo against template.
    `photo_spread`: (identity, the farthest pair of that person's enrollable photos).
    """

    door_impostor: dict[tuple[str, str], float]
    door_genuine: list[tuple[str, float]]
    ratio_genuine: list[tuple[str, str, float]]  # (identity, cohort member identities joined, ratio)
    photo_impostor: dict[tuple[str, str], float]
    photo_genuine: list[tuple[str, float]]
    members: tuple[str, ...]
    photo_spread: list[tuple[str, float]] = field(default_factory=list)


def pair_tables(samples: Sequence[Sample], settings: ProcedureSettings) -> PairTables:
    grouped = by_identity(samples)
    photos = {i: enrollable(items) for i, items in grouped.items()}
    members = tuple(sorted(i for i, items in photos.items() if items))
    enrolled = {
        size: {m: np.stack([s.encoding for s in enrolment(photos[m], size)]) for m in members}
        for size in settings.enrol_sizes
    }
    door_impostor: dict[tuple[str, str], float] = {}
    door_genuine: list[tuple[str, float]] = []
    ratio_genuine: list[tuple[str, str, float]] = []
    photo_impostor: dict[tuple[str, str], float] = {}
    photo_genuine: list[tuple[str, float]] = []
    for identity, items in grouped.items():
        for sample in items:
            frames = appearance(sample, settings.min_frames)
            query = None if frames is None else _mean(frames)
            for member in members:
                if member == identity:
                    continue
                for size in settings.enrol_sizes:
                    templates = enrolled[size][member]
                    if query is not None:
                        value = _nearest(query, templates)
                        key = (identity, member)
                        door_impostor[key] = min(door_impostor.get(key, 9.0), value)
                    if (sample.enrollable or not sample.member) and size == 1:
                        key = (identity, member)
                        value = _nearest(sample.encoding, enrolled[1][member])
                        photo_impostor[key] = min(photo_impostor.get(key, 9.0), value)
            if identity not in members or query is None and not sample.enrollable:
                continue
            others = [s for s in photos[identity] if s.key != sample.key]
            if not others:
                continue
            for size in settings.enrol_sizes:
                own = np.stack([s.encoding for s in enrolment(others, size)])
                if query is not None:
                    value = _nearest(query, own)
                    door_genuine.append((identity, value))
                    if len(members) >= settings.cohort_min_members and size == settings.enrol_sizes[-1]:
                        crowd = sorted(
                            (_nearest(query, enrolled[size][m]), m) for m in members if m != identity
                        )[: settings.cohort_size]
                        cohort = float(np.mean([d for d, _ in crowd]))
                        names = "|".join(m for _, m in crowd)
                        ratio_genuine.append((identity, names, value / cohort if cohort > 0 else 9.0))
            if sample.enrollable:
                photo_genuine.append(
                    (identity, _nearest(sample.encoding, np.stack([s.encoding for s in others])))
                )
    photo_spread = [
        (m, max(float(np.linalg.norm(a.encoding - b.encoding)) for a in photos[m] for b in photos[m]))
        for m in members
    ]
    return PairTables(
        door_impostor, door_genuine, ratio_genuine, photo_impostor, photo_genuine, members, photo_spread
    )


# ------------------------------------------------------------------------------------ procedure


#: `same_person_max_distance`: the farthest same-person photo pair seen, times this.
TOGETHER_HEADROOM: Final = 1.03


@dataclass(frozen=True, slots=True)
class Choice:
    """An operating point and what it was read from."""

    policy: ScoringPolicy
    details: dict[str, Any]


def _quantile(values: Sequence[float], q: float, what: str) -> float:
    if not values:
        raise CalibrationError(f"no {what}: every person needs at least two photos")
    return float(np.quantile(np.asarray(values, dtype=np.float64), q))


def choose_from_tables(
    tables: PairTables,
    settings: ProcedureSettings,
    *,
    model: str,
    name: str,
    exclude: Iterable[str] = (),
    description: str = "",
) -> Choice:
    """The procedure of the module docstring on `tables`, ignoring every pair involving `exclude`."""
    skip = set(exclude)
    members = [m for m in tables.members if m not in skip]
    impostor = [v for (p, m), v in tables.door_impostor.items() if p not in skip and m not in skip]
    door_fit = fit_lower_tail(impostor, settings.tail_fraction, settings.min_tail_points)
    nearest = door_fit.observed_min
    accept = min(door_fit.at(settings.accept_tail), nearest)
    genuine = [v for i, v in tables.door_genuine if i not in skip]
    grey = max(accept, _quantile(genuine, settings.grey_quantile, "member appearances"))
    verify_limit = min(grey, max(accept, door_fit.at(settings.verify_tail)))
    ratios = [
        r for i, names, r in tables.ratio_genuine if i not in skip and not (set(names.split("|")) & skip)
    ]
    max_ratio = (
        float(np.quantile(ratios, settings.ratio_quantile))
        if len(members) >= settings.cohort_min_members and ratios
        else None
    )
    photo_pairs = [v for (p, m), v in tables.photo_impostor.items() if p not in skip and m not in skip]
    photo_fit = fit_lower_tail(photo_pairs, settings.tail_fraction, settings.min_tail_points)
    same = min(photo_fit.at(settings.accept_tail), photo_fit.observed_min)
    # Not capped at the nearest pair seen: flagging more pairs as lookalikes only asks for the pass.
    lookalike = max(same, photo_fit.at(settings.lookalike_tail))
    photo_genuine = [v for i, v in tables.photo_genuine if i not in skip]
    review = max(lookalike, _quantile(photo_genuine, settings.grey_quantile, "member photo pairs"))
    # Photos given together in one enrolment are taken for one person up to the farthest pair of one
    # person's photos seen, with 3 % headroom (never under the review distance): in the model's own
    # units, so that a station on another encoder does not refuse two photos of the same person.
    spread = [v for i, v in tables.photo_spread if i not in skip]
    together = min(1.99, max([review, *(v * TOGETHER_HEADROOM for v in spread)]))
    policy = ScoringPolicy(
        name=name,
        model=model,
        min_frames=settings.min_frames,
        accept_distance=round(accept, 4),
        grey_distance=round(grey, 4),
        verify_distance=round(verify_limit, 4),
        min_margin=round(settings.margin_fraction * accept, 4),
        cohort_size=settings.cohort_size,
        cohort_min_members=settings.cohort_min_members,
        max_ratio=None if max_ratio is None else round(max_ratio, 4),
        verify_max_ratio=None if max_ratio is None else round(max_ratio, 4),
        same_person_distance=round(same, 4),
        lookalike_distance=round(lookalike, 4),
        review_distance=round(review, 4),
        same_person_max_distance=round(together, 4),
        description=description,
        procedure={
            **settings.to_json(),
            "identities": len(members),
            "impostor_pairs": len(impostor),
            "member_appearances": len(genuine),
        },
    )
    details = {
        "door_tail": door_fit.to_json(),
        "photo_tail": photo_fit.to_json(),
        "nearest_impostor_pair": round(nearest, 4),
        "accept_bound": "observed nearest pair" if accept >= nearest else "tail fit",
        "impostor_pairs": len(impostor),
        "member_appearances": len(genuine),
        "photo_pairs": len(photo_pairs),
        "identities": len(members),
    }
    return Choice(policy, details)


def choose_operating_point(
    samples: Sequence[Sample],
    settings: ProcedureSettings,
    *,
    model: str,
    name: str = "calibrated",
    description: str = "",
) -> Choice:
    """The operating point for `samples` (all of them): what presets and `yizhan calibrate` ship."""
    return choose_from_tables(
        pair_tables(samples, settings), settings, model=model, name=name, description=description
    )


def leave_identity_out(
    samples: Sequence[Sample], settings: ProcedureSettings, *, model: str, name: str
) -> dict[str, Choice]:
    """identity -> the operating point chosen without any pair involving that identity."""
    tables = pair_tables(samples, settings)
    identities = sorted({s.identity for s in samples})
    return {
        identity: choose_from_tables(tables, settings, model=model, name=name, exclude=(identity,))
        for identity in identities
    }


# ------------------------------------------------------------------------------------ trials


@dataclass(frozen=True, slots=True)
class Outcome:
    """One probe appearance judged against one roster: the zone and who it named."""

    roster: str
    probe: str
    identity: str
    east_asian: bool
    genuine: bool
    zone: str
    member_id: str | None  # accepted as
    subject_id: str | None
    distance: float | None
    gate: str | None

    @property
    def false_accept(self) -> bool:
        return self.member_id is not None and (not self.genuine or self.member_id != self.identity)

    @property
    def true_accept(self) -> bool:
        return self.genuine and self.member_id == self.identity


PolicyFor = Callable[[str], ScoringPolicy]


@dataclass(frozen=True, slots=True)
class Roster:
    """A named roster: member identities (enrolled from their photos) plus optional padding rows."""

    name: str
    members: tuple[str, ...]
    padding: Vector | None = None


def run_trials(
    samples: Sequence[Sample],
    rosters: Sequence[Roster],
    policy_for: PolicyFor,
    *,
    size: int,
    frames: int,
    requires_pass: Callable[[str], Iterable[str]] | None = None,
) -> list[Outcome]:
    """Every probe appearance against every roster (genuine: the probe's identity is on the roster,
    enrolled from its *other* photos; otherwise an impostor), judged by `score` under
    `policy_for(probe identity)` (the leave-identity-out choice)."""
    grouped = by_identity(samples)
    photos = {i: enrollable(items) for i, items in grouped.items()}
    canonical = {i: enrolment(p, size) for i, p in photos.items() if p}
    queries = [(s, appearance(s, frames)) for s in samples]
    outcomes: list[Outcome] = []
    for roster in rosters:
        base_rows = [(m, s.encoding) for m in roster.members for s in canonical.get(m, [])]
        if roster.padding is not None:
            base_rows += [(f"pad-{i:06d}", v) for i, v in enumerate(roster.padding)]
        dim = int(samples[0].encoding.shape[0])
        base = RosterSnapshot.build(base_rows, dim=dim)
        on_roster = set(roster.members)
        for sample, query in queries:
            if query is None:
                continue
            genuine = sample.identity in on_roster
            snapshot = base
            if genuine:
                others = [s for s in photos.get(sample.identity, []) if s.key != sample.key]
                if not others:
                    continue
                own = enrolment(others, size)
                rows = [(m, v) for m, v in base_rows if m != sample.identity]
                rows += [(sample.identity, s.encoding) for s in own]
                snapshot = RosterSnapshot.build(rows, dim=dim)
            flagged = tuple(requires_pass(sample.identity)) if requires_pass else ()
            result = score(snapshot, query, policy_for(sample.identity), requires_pass=flagged)
            outcomes.append(
                Outcome(
                    roster.name,
                    sample.key,
                    sample.identity,
                    sample.east_asian,
                    genuine,
                    result.zone,
                    result.member_id,
                    result.subject_id,
                    result.distance,
                    result.gate,
                )
            )
    return outcomes


def summarise(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Counts and Wilson intervals: members let in / asked for the pass / refused; impostors in."""

    def part(items: list[Outcome]) -> dict[str, Any]:
        genuine = [o for o in items if o.genuine]
        impostor = [o for o in items if not o.genuine]
        admitted = sum(o.true_accept for o in genuine)
        asked = sum(o.zone == "show_pass" for o in genuine)
        refused = sum(o.zone == "unknown" for o in genuine)
        wrong = sum(o.false_accept for o in genuine)
        false_accepts = sum(o.false_accept for o in impostor) + wrong
        trials = len(genuine) + len(impostor)
        return {
            "genuine": len(genuine),
            "let_in": admitted,
            "let_in_rate": _rate(admitted, len(genuine)),
            "asked_for_pass": asked,
            "asked_rate": _rate(asked, len(genuine)),
            "refused": refused,
            "wrong_member": wrong,
            "impostor": len(impostor),
            "impostor_asked": sum(o.zone == "show_pass" for o in impostor),
            "false_accepts": false_accepts,
            "false_accept_rate": _rate(false_accepts, trials),
        }

    everything = list(outcomes)
    return {"all": part(everything), "east_asian": part([o for o in everything if o.east_asian])}


def _rate(hits: int, total: int) -> dict[str, Any]:
    low, high = wilson(hits, total)
    return {
        "value": round(hits / total, 4) if total else None,
        "wilson95": [round(low, 4), round(high, 4)],
    }


def random_rosters(identities: Sequence[str], size: int, count: int, seed: int, name: str) -> list[Roster]:
    """`count` distinct random rosters of `size` identities (fewer when not that many exist)."""
    rng = np.random.default_rng(seed)
    pool = sorted(identities)
    seen: set[tuple[str, ...]] = set()
    rosters: list[Roster] = []
    attempts = 0
    limit = math.comb(len(pool), size) if size <= len(pool) else 0
    while len(rosters) < min(count, limit) and attempts < count * 50:
        attempts += 1
        chosen = tuple(sorted(rng.choice(pool, size=size, replace=False).tolist()))
        if chosen in seen:
            continue
        seen.add(chosen)
        rosters.append(Roster(f"{name}#{len(rosters)}", chosen))
    return rosters


def policies_by_identity(choices: Mapping[str, Choice]) -> PolicyFor:
    def policy_for(identity: str) -> ScoringPolicy:
        return choices[identity].policy

    return policy_for


#: The procedure settings behind each named preset (the same for every face model: a model's
#: presets are these settings measured on its own encodings).
PRESET_SETTINGS: dict[str, ProcedureSettings] = {
    "strict": ProcedureSettings(min_frames=4, accept_tail=1e-5, verify_tail=1e-3, grey_quantile=0.99),
    "balanced": ProcedureSettings(min_frames=3, accept_tail=1e-4, verify_tail=1e-2, grey_quantile=0.99),
    "convenient": ProcedureSettings(min_frames=2, accept_tail=1e-4, verify_tail=1e-2, grey_quantile=0.995),
}

PRESET_DESCRIPTIONS: dict[str, str] = {
    "strict": (
        "four agreeing frames, face alone only at a per-pair tail probability of 1e-5; most members "
        "show the pass"
    ),
    "balanced": (
        "default: three agreeing frames, face alone at a per-pair tail probability of 1e-4; the rest "
        "are asked for the pass"
    ),
    "convenient": "two frames (quicker), same tail probability; the grey zone a little wider",
}


def derive_presets(samples: Sequence[Sample], *, model: str) -> dict[str, Choice]:
    """Every named preset for `model`, by the procedure on `samples` (what PRESETS ship)."""
    return {
        name: choose_operating_point(
            samples, settings, model=model, name=name, description=PRESET_DESCRIPTIONS[name]
        )
        for name, settings in PRESET_SETTINGS.items()
    }
