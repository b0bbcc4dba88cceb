"""The scoring rule, presets, two-factor check, frame agreement, lookalike flags and template choice.

Synthetic vectors built on orthonormal directions, so every distance in a test is known exactly and
the rule can be checked case by case (the data-set guarantees are in test_quality_presets.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recognizer.matcher import MatchPolicy, as_query, match, nearest_members, squared_distances
from recognizer.quality import QualityReport
from recognizer.roster import RosterSnapshot
from recognizer.scoring import (
    CLOSER_TO_OTHER_MEMBER,
    DEFAULT_PRESET,
    EMPTY_ROSTER,
    FRAMES_DISAGREE,
    HIGH_RATIO,
    LOOKALIKE,
    LOW_MARGIN,
    MODEL_DLIB,
    NOT_ENROLLED,
    OVER_THRESHOLD,
    PRESETS,
    TOO_FEW_FRAMES,
    WOULD_MATCH,
    ScoringPolicy,
    agree,
    check_lookalikes,
    preset,
    preset_names,
    score,
    verify_1to1,
    without_member,
)
from recognizer.templates import (
    ENOUGH_TEMPLATES,
    NEAR_DUPLICATE,
    NOT_SAME_PERSON,
    SelectionPolicy,
    TemplateCandidate,
    quality_score,
    select_templates,
)

BALANCED = preset("balanced")


def basis(count: int, seed: int = 0) -> np.ndarray:
    """`count` orthonormal 128-d directions."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(128, count)))
    return q.T.astype(np.float64)


def crowd(seed: int = 0) -> tuple[RosterSnapshot, np.ndarray, np.ndarray]:
    """Six members 0.45 apart around a centre (an East Asian cluster, as dlib sees it)."""
    e = basis(20, seed)
    centre = 0.8 * e[19]
    members = [centre + 0.32 * e[i] for i in range(6)]
    snap = RosterSnapshot.build((f"m{i}", v) for i, v in enumerate(members))
    return snap, np.array(members), e


# ------------------------------------------------------------------------------- nearest members


def brute_force(snap: RosterSnapshot, query: np.ndarray, exclude: int | None) -> list[tuple[int, float]]:
    d = np.linalg.norm(snap.templates.astype(np.float64) - query, axis=1)
    best: dict[int, float] = {}
    for row, owner in enumerate(snap.owner_index):
        best[int(owner)] = min(best.get(int(owner), math.inf), float(d[row]))
    return sorted(((m, v) for m, v in best.items() if m != exclude), key=lambda item: item[1])


@settings(max_examples=40, deadline=None)
@given(
    rows=st.integers(min_value=1, max_value=120),
    members=st.integers(min_value=1, max_value=40),
    count=st.integers(min_value=1, max_value=8),
    seed=st.integers(min_value=0, max_value=10_000),
    exclude=st.booleans(),
)
def test_nearest_members_equals_brute_force(
    rows: int, members: int, count: int, seed: int, exclude: bool
) -> None:
    rng = np.random.default_rng(seed)
    owners = [f"p{int(rng.integers(members))}" for _ in range(rows)]
    vectors = rng.normal(size=(rows, 128)).astype(np.float32) * 0.05
    snap = RosterSnapshot.build(zip(owners, vectors, strict=True))
    query = as_query(rng.normal(size=128) * 0.05)
    skip = 0 if exclude else None
    positions, distances = nearest_members(snap, squared_distances(snap, query), count, skip)
    everyone = brute_force(snap, query.astype(np.float64), skip)
    expected = everyone[:count]
    assert len(positions) == len(expected) == len(set(int(p) for p in positions))
    assert np.allclose(distances, [v for _, v in expected], atol=1e-4)
    own = dict(everyone)  # each returned member really is at the distance reported (ties may reorder)
    assert all(abs(own[int(p)] - float(d)) < 1e-4 for p, d in zip(positions, distances, strict=True))


def test_nearest_members_on_a_large_roster_with_many_templates_per_member() -> None:
    """Above 4096 rows the prefix comes from a sampled bound; a member owning the nearest 50 rows
    must not hide the others (the prefix widens)."""
    rng = np.random.default_rng(7)
    query = rng.normal(size=128).astype(np.float32) * 0.05
    flood = [("flood", query + rng.normal(size=128).astype(np.float32) * 0.001) for _ in range(50)]
    rest = [(f"p{i % 3000}", rng.normal(size=128).astype(np.float32) * 0.05) for i in range(9000)]
    snap = RosterSnapshot.build(flood + rest)
    q = as_query(query)
    positions, distances = nearest_members(snap, squared_distances(snap, q), 6)
    expected = brute_force(snap, q.astype(np.float64), None)[:6]
    assert snap.member_ids[int(positions[0])] == "flood"
    assert np.allclose(distances, [v for _, v in expected], atol=1e-4)
    positions, distances = nearest_members(snap, squared_distances(snap, q), 6, exclude=int(positions[0]))
    expected = brute_force(snap, q.astype(np.float64), snap.member_position["flood"])[:6]
    assert np.allclose(distances, [v for _, v in expected], atol=1e-4)


# ------------------------------------------------------------------------------------- the rule


def test_genuine_probe_is_accepted_with_every_number() -> None:
    snap, members, e = crowd()
    probe = members[0] + 0.25 * e[10]
    result = score(snap, probe, BALANCED)
    assert result.accepted and result.member_id == "m0" and result.reason is None
    assert result.distance == pytest.approx(0.25, abs=1e-4)
    expected_other = math.sqrt(0.25**2 + 2 * 0.32**2)
    assert result.runner_up_distance == pytest.approx(expected_other, abs=1e-4)
    assert result.margin == pytest.approx(expected_other - 0.25, abs=1e-4)
    assert result.cohort_size == 5 and result.cohort_distance == pytest.approx(expected_other, abs=1e-4)
    assert result.ratio == pytest.approx(0.25 / expected_other, abs=1e-4)
    assert result.templates == 1 and result.policy == "balanced" and result.mode == "identify"
    payload = result.to_json()
    for key in (
        "distance",
        "margin",
        "ratio",
        "cohort_distance",
        "cohort_size",
        "templates",
        "policy",
        "limits",
    ):
        assert payload[key] is not None
    assert payload["limits"]["max_ratio"] == BALANCED.max_ratio
    assert "ratio 0.48" in result.explain() and "balanced" in result.explain()


def test_stranger_inside_a_crowd_of_lookalikes_is_refused_on_the_ratio() -> None:
    """Distance and margin both pass (what the old rule looked at); the ratio does not."""
    snap, members, e = crowd()
    centre = 0.8 * e[19]
    stranger = centre + 0.16 * e[0] + 0.35 * e[12]
    old = match(snap, stranger, MatchPolicy(threshold=0.55, min_margin=0.10))
    assert old.accepted  # the shipped rule would have opened the door
    result = score(snap, stranger, BALANCED)
    assert not result.accepted and result.reason == HIGH_RATIO and result.failed == (HIGH_RATIO,)
    assert result.subject_id == "m0" and result.member_id is None
    assert result.distance is not None and result.distance < BALANCED.max_distance
    assert result.margin is not None and result.margin > BALANCED.min_margin
    assert result.ratio is not None and result.ratio > (BALANCED.max_ratio or 1.0)


def test_over_threshold_low_margin_and_every_failed_gate_recorded() -> None:
    snap, members, e = crowd()
    far = members[0] + 0.7 * e[11]
    result = score(snap, far, BALANCED)
    assert result.reason == OVER_THRESHOLD and OVER_THRESHOLD in result.failed
    between = (members[0] + members[1]) / 2 + 0.2 * e[12]
    result = score(snap, between, BALANCED)
    assert result.reason == LOW_MARGIN and result.failed == (LOW_MARGIN,)
    assert result.margin is not None and result.margin < 0.01
    vague = (members[0] + members[1]) / 2 + 0.5 * e[12]
    result = score(snap, vague, BALANCED)
    assert result.reason == LOW_MARGIN and result.failed == (LOW_MARGIN, HIGH_RATIO)


def test_empty_roster_and_single_member_roster() -> None:
    empty = score(RosterSnapshot.build(()), np.zeros(128, np.float32), BALANCED)
    assert not empty.accepted and empty.reason == EMPTY_ROSTER
    e = basis(3)
    solo = RosterSnapshot.build([("only", e[0])])
    near = score(solo, e[0] + 0.3 * e[1], BALANCED)
    assert near.accepted and near.ratio is None and near.cohort_size == 0 and near.margin is None
    # No crowd to compare with: the distance alone must be under the stricter no-cohort cap.
    lookalike = score(solo, e[0] + 0.45 * e[1], BALANCED)
    assert lookalike.reason == OVER_THRESHOLD and "max 0.380" in lookalike.explain()
    assert verify_1to1(solo, "only", e[0] + 0.45 * e[1], BALANCED).reason == OVER_THRESHOLD
    assert verify_1to1(solo, "only", e[0] + 0.3 * e[1], BALANCED).accepted


def test_several_templates_count_as_one_member_and_are_recorded() -> None:
    snap, members, e = crowd()
    rows = [(o, t) for o, t in zip(snap.owners, snap.templates, strict=True)]
    rows += [("m0", members[0] + 0.1 * e[13]), ("m0", members[0] + 0.1 * e[14])]
    multi = RosterSnapshot.build(rows)
    result = score(multi, members[0] + 0.1 * e[13] + 0.05 * e[15], BALANCED)
    assert result.accepted and result.templates == 3 and result.runner_up_id != "m0"
    assert multi.template_count("m0") == 3 and multi.template_count("nobody") == 0


def test_legacy_policy_reproduces_match() -> None:
    snap, members, e = crowd()
    legacy = ScoringPolicy.from_match_policy(MatchPolicy())
    rng = np.random.default_rng(3)
    for _ in range(50):
        probe = members[int(rng.integers(6))] + rng.normal(size=128) * 0.03
        old, new = match(snap, probe, MatchPolicy()), score(snap, probe, legacy)
        assert old.accepted == new.accepted and old.reason == new.reason
        assert old.distance == pytest.approx(new.distance, abs=1e-5)


# ---------------------------------------------------------------------------------------- presets


def test_presets_are_named_measured_and_ordered() -> None:
    assert DEFAULT_PRESET == "balanced" and preset() is PRESETS[MODEL_DLIB]["balanced"]
    assert set(preset_names()) == {"strict", "balanced", "convenient"}
    strict, balanced, convenient = preset("strict"), preset("balanced"), preset("convenient")
    assert (
        strict.max_ratio is not None and balanced.max_ratio is not None and convenient.max_ratio is not None
    )
    assert strict.max_ratio < balanced.max_ratio < convenient.max_ratio
    assert strict.require_frames >= balanced.require_frames >= convenient.require_frames
    assert all(p.description for p in PRESETS[MODEL_DLIB].values())


def test_presets_are_per_model_and_unknown_ones_are_refused() -> None:
    with pytest.raises(ValueError, match="no measured scoring presets"):
        preset("balanced", model="some_future_model")
    with pytest.raises(ValueError, match="unknown scoring preset"):
        preset("lenient")


def test_overrides_rename_the_policy_so_events_do_not_claim_measured_figures() -> None:
    custom = BALANCED.with_overrides(max_ratio=0.72)
    assert custom.name == "balanced*" and custom.max_ratio == 0.72
    assert BALANCED.with_overrides(max_ratio=None) is BALANCED
    assert BALANCED.with_overrides(max_ratio=0.74) is BALANCED


@pytest.mark.parametrize(
    "changes",
    [
        {"max_distance": 0.0},
        {"min_margin": -0.1},
        {"max_ratio": 1.5},
        {"cohort_size": 0},
        {"require_frames": 0},
        {"name": ""},
    ],
)
def test_policy_refuses_unsafe_numbers(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ScoringPolicy(**changes)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- two-factor


def test_right_qr_and_right_face_is_accepted() -> None:
    snap, members, e = crowd()
    result = verify_1to1(snap, "m2", members[2] + 0.25 * e[10], BALANCED)
    assert result.accepted and result.member_id == "m2" and result.mode == "verify"
    assert result.claimed_id == "m2" and result.templates == 1 and result.ratio is not None


def test_right_qr_with_a_colleagues_face_is_refused_with_the_reason() -> None:
    snap, members, e = crowd()
    colleague = members[3] + 0.2 * e[10]
    result = verify_1to1(snap, "m2", colleague, BALANCED)
    assert not result.accepted and result.member_id is None
    assert result.reason == CLOSER_TO_OTHER_MEMBER and result.runner_up_id == "m3"
    assert result.margin is not None and result.margin < 0
    assert "closer_to_other_member" in result.explain()


def test_right_qr_with_a_strangers_face_is_refused_with_the_reason() -> None:
    snap, members, e = crowd()
    lookalike_stranger = 0.8 * e[19] + 0.16 * e[2] + 0.35 * e[12]
    result = verify_1to1(snap, "m2", lookalike_stranger, BALANCED)
    assert not result.accepted and result.reason == HIGH_RATIO
    assert result.distance is not None and result.distance < BALANCED.verify_max_distance
    unrelated = members[2] + 0.8 * e[11]
    assert verify_1to1(snap, "m2", unrelated, BALANCED).reason == OVER_THRESHOLD


def test_qr_only_member_is_not_enrolled_for_the_face_check() -> None:
    snap, _, e = crowd()
    result = verify_1to1(snap, "qr-only", e[0], BALANCED)
    assert not result.accepted and result.reason == NOT_ENROLLED and result.claimed_id == "qr-only"


def test_two_factor_tells_two_lookalike_members_apart_where_1_to_n_cannot() -> None:
    e = basis(20, 5)
    twin_a, twin_b = e[0], e[0] + 0.06 * e[1]
    rows = [("a", twin_a), ("b", twin_b)] + [(f"o{i}", e[0] + 0.9 * e[2 + i]) for i in range(5)]
    snap = RosterSnapshot.build(rows)
    probe = twin_a + 0.2 * e[10]
    assert score(snap, probe, BALANCED).reason == LOW_MARGIN  # 1:N cannot say which twin
    assert verify_1to1(snap, "a", probe, BALANCED).accepted  # the code says which
    refused = verify_1to1(snap, "b", probe, BALANCED)
    assert refused.reason == CLOSER_TO_OTHER_MEMBER  # twin b's code with twin a's face


# --------------------------------------------------------------------------------- frame agreement


def test_frames_must_agree_on_one_member() -> None:
    snap, members, e = crowd()
    a = score(snap, members[0] + 0.2 * e[10], BALANCED)
    a2 = score(snap, members[0] + 0.22 * e[11], BALANCED)
    b = score(snap, members[1] + 0.2 * e[10], BALANCED)
    refused = score(snap, members[0] + 0.8 * e[12], BALANCED)
    verdict = agree([a, a2], 2)
    assert verdict.accepted and verdict.member_id == "m0" and verdict.frames == 2
    assert verdict.worst_distance == pytest.approx(max(a.distance or 0, a2.distance or 0))
    assert verdict.worst_ratio == pytest.approx(max(a.ratio or 0, a2.ratio or 0))
    assert agree([a], 2).reason == TOO_FEW_FRAMES
    assert agree([a, b], 2).reason == FRAMES_DISAGREE
    assert agree([a, refused], 2).reason == OVER_THRESHOLD
    assert agree([b, a, a2], 2).accepted  # only the last `required` frames count
    assert len(agree([a, a2], 2).to_json()["per_frame"]) == 2


# ------------------------------------------------------------------------------------- lookalikes


def test_same_person_enrolled_twice_would_match() -> None:
    snap, members, e = crowd()
    findings = check_lookalikes(snap, "new", [("photo.jpg", members[4] + 0.15 * e[10])], BALANCED)
    assert [(f.member_id, f.kind) for f in findings][0] == ("m4", WOULD_MATCH)
    assert "the door would accept this face as existing member 'm4'" in findings[0].describe()
    assert findings[0].to_json()["distance"] == pytest.approx(0.15, abs=1e-3)


def test_lookalike_of_an_existing_member_is_flagged_not_refused() -> None:
    snap, members, e = crowd()
    lookalike = 0.8 * e[19] + 0.16 * e[0] + 0.35 * e[12]
    findings = check_lookalikes(snap, "new", [("new.jpg", lookalike)], BALANCED)
    assert findings and all(f.kind == LOOKALIKE for f in findings)
    assert findings[0].member_id == "m0" and findings[0].ratio is not None
    assert findings[0].ratio <= BALANCED.lookalike_ratio and "looks like" in findings[0].describe()


def test_distinct_faces_are_not_flagged_and_own_templates_are_ignored() -> None:
    snap, members, e = crowd()
    assert check_lookalikes(snap, "new", [("far.jpg", members[0] + 0.9 * e[13])], BALANCED) == ()
    # Re-enrolling m0 with another photo: m0's own templates are not a "duplicate".
    again = check_lookalikes(snap, "m0", [("m0-2.jpg", members[0] + 0.1 * e[10])], BALANCED)
    assert all(f.member_id != "m0" for f in again)
    assert "m0" not in without_member(snap, "m0").member_ids


# -------------------------------------------------------------------------------------- templates


def candidate(source: str, encoding: np.ndarray, **quality: float) -> TemplateCandidate:
    values = {"face_px": 200, "sharpness": 200.0, "brightness": 128.0, "roll_deg": 0.0, "yaw": 0.0}
    values.update(quality)
    return TemplateCandidate(
        source,
        encoding.astype(np.float32),
        int(values["face_px"]),
        values["sharpness"],
        values["brightness"],
        values["roll_deg"],
        values["yaw"],
    )


def test_quality_score_prefers_frontal_sharp_large_well_lit_faces() -> None:
    v = basis(1)[0]
    good = quality_score(candidate("good", v))
    assert good.total == pytest.approx(1.0)
    for worse in (
        candidate("turned", v, yaw=0.3),
        candidate("blurry", v, sharpness=20.0),
        candidate("small", v, face_px=90),
        candidate("dark", v, brightness=50.0),
    ):
        assert quality_score(worse).total < good.total


def test_burst_keeps_best_and_diverse_rejects_duplicates_and_someone_else() -> None:
    e = basis(10, 3)
    person = e[0]
    burst = [
        candidate("f1", person + 0.01 * e[1], yaw=0.2),
        candidate("f2", person + 0.012 * e[2]),  # best quality, kept first
        candidate("f3", person + 0.015 * e[3]),  # near-duplicate of f2
        candidate("f4", person + 0.25 * e[4], yaw=0.1),  # other pose: diverse
        candidate("f5", person + 0.2 * e[5], sharpness=30.0),
        candidate("intruder", e[6] * 1.0),  # someone walking past
    ]
    selection = select_templates(burst, SelectionPolicy(max_templates=3))
    assert selection.sources[0] == "f2" and "f4" in selection.sources and len(selection.kept) == 3
    reasons = {r.source: r.reason for r in selection.rejected}
    assert reasons["intruder"] == NOT_SAME_PERSON
    assert reasons["f3"] == NEAR_DUPLICATE
    assert set(reasons.values()) <= {NOT_SAME_PERSON, NEAR_DUPLICATE, ENOUGH_TEMPLATES}
    assert selection.kept[1].spread is not None and selection.kept[1].spread >= 0.06
    assert selection.to_json()["kept"][0]["quality"]["total"] == pytest.approx(1.0)


def test_selection_edge_cases_and_quality_json() -> None:
    assert select_templates([]).kept == ()
    e = basis(3)
    one = select_templates([candidate("a", e[0])])
    assert one.sources == ["a"] and one.medoid == "a"
    two = select_templates([candidate("a", e[0], yaw=0.3), candidate("b", e[1])])
    assert two.sources == ["b"] and two.rejected[0].reason == NOT_SAME_PERSON
    report = QualityReport(150, 80.0, 120.0, 2.0, 0.05, True, None)
    from_report = TemplateCandidate.from_report("x", e[0], report)
    from_json = TemplateCandidate.from_quality_json("x", e[0], report.to_json())
    assert quality_score(from_report).total == pytest.approx(quality_score(from_json).total, abs=1e-3)


# ------------------------------------------------------------------------------ another face model


def test_a_future_model_brings_its_own_presets_and_embedding_size() -> None:
    """Nothing in the rule is dlib-specific except the measured numbers, which are keyed by model."""
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(6, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    roster = RosterSnapshot.build(((f"p{i}", v) for i, v in enumerate(vectors)), model="future", dim=512)
    future = ScoringPolicy(name="future-balanced", model="future", max_distance=0.9, max_ratio=0.8)
    result = score(roster, vectors[2] + 0.01, future)
    assert result.accepted and result.member_id == "p2" and roster.dim == 512
    assert verify_1to1(roster, "p2", vectors[2], future).accepted
    with pytest.raises(ValueError, match="measured for face model 'dlib_resnet_v1'"):
        score(roster, vectors[2], BALANCED)
    with pytest.raises(ValueError, match="expected 512"):
        score(roster, np.zeros(128, np.float32), future)
