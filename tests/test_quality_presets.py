"""The presets' guarantees on the labelled set (../shared/data/faces), as bench.quality measures them.

Same trials as `python -m bench.quality` (docs/BENCHMARKS.md has the figures): enrol 1 or up to 3
photos per member, probe with every other photo, every stranger face, every group face, and every
member's photos against the roster without them. The default must let no stranger and no wrong
member in; the targets of the issue (97 % overall, 95 % East Asian) hold with up to 3 photos. The
tests need the data set: without it they skip locally and fail in CI (tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.quality import (
    BASELINE_THRESHOLD,
    MARK_END,
    MARK_START,
    FaceSet,
    Trial,
    build_claims,
    build_trials,
    encode_faces,
    render_markdown,
    roster_rows,
    run_benchmark,
    tally,
    write_section,
)
from recognizer.face_pipeline import FacePipeline
from recognizer.roster import RosterSnapshot
from recognizer.scoring import (
    DEFAULT_PRESET,
    HIGH_RATIO,
    LOOKALIKE,
    PRESETS,
    WOULD_MATCH,
    ScoreResult,
    check_lookalikes,
    preset,
    score,
    verify_1to1,
)


@pytest.fixture(scope="module")
def faceset(pipeline: FacePipeline, faces_root: Path) -> FaceSet:
    return encode_faces(pipeline, faces_root)


@pytest.fixture(scope="module")
def scored(faceset: FaceSet) -> dict[int, tuple[list[Trial], dict[str, list[ScoreResult]]]]:
    out = {}
    for size in (1, 3):
        trials = build_trials(faceset, size)
        out[size] = (
            trials,
            {
                name: [score(t.snapshot, t.probe.encoding, p) for t in trials]
                for name, p in PRESETS["dlib_resnet_v1"].items()
            },
        )
    return out


def wrong(trials: list[Trial], results: list[ScoreResult]) -> list[tuple[str, str | None, str | None, str]]:
    """Every accept that opened the door for the wrong person, with the numbers (for the message)."""
    return [
        (t.probe.name, t.truth, r.member_id, r.explain())
        for t, r in zip(trials, results, strict=True)
        if r.accepted and r.member_id != t.truth
    ]


def test_the_set_is_the_one_measured(faceset: FaceSet, scored: dict[int, Any]) -> None:
    assert len(faceset.members) == 31
    assert sum(any(f.east_asian for f in faces) for faces in faceset.members.values()) == 7
    trials = scored[1][0]
    assert sum(t.kind == "genuine" for t in trials) >= 90
    assert sum(t.kind == "genuine" and t.probe.east_asian for t in trials) >= 20
    assert sum(t.kind == "stranger" for t in trials) >= 15
    assert sum(t.kind == "heldout" for t in trials) >= 85


@pytest.mark.parametrize("size", [1, 3])
@pytest.mark.parametrize("name", ["strict", DEFAULT_PRESET])
def test_no_stranger_and_no_wrong_member_is_accepted(scored: dict[int, Any], size: int, name: str) -> None:
    trials, results = scored[size]
    assert wrong(trials, results[name]) == []


@pytest.mark.parametrize("size", [1, 3])
def test_presets_are_nested(scored: dict[int, Any], size: int) -> None:
    """Whatever strict accepts, balanced accepts; whatever balanced accepts, convenient accepts."""
    _, results = scored[size]
    for tighter, looser in (("strict", "balanced"), ("balanced", "convenient")):
        for a, b in zip(results[tighter], results[looser], strict=True):
            assert not a.accepted or (b.accepted and b.member_id == a.member_id)


def test_default_meets_the_targets_with_up_to_three_photos(scored: dict[int, Any]) -> None:
    trials, results = scored[3]
    counts = tally(trials, [r.member_id for r in results[DEFAULT_PRESET]])
    assert counts["all"]["false_accepts"] == 0
    assert counts["all"]["tar"] >= 0.97, counts["all"]
    assert counts["east_asian"]["tar"] >= 0.95, counts["east_asian"]


def test_default_with_one_photo_is_what_docs_say(scored: dict[int, Any]) -> None:
    """With one photo the 97 % target is not reached (measured 90/96, East Asian 22/24): enrol more."""
    trials, results = scored[1]
    counts = tally(trials, [r.member_id for r in results[DEFAULT_PRESET]])
    assert counts["all"]["false_accepts"] == 0
    assert counts["all"]["tar"] >= 0.92 and counts["east_asian"]["tar"] >= 0.90


def test_plain_dlib_lets_strangers_in_and_the_default_does_better_at_zero(scored: dict[int, Any]) -> None:
    """Guards the reason for the rule: dlib's 1:1 threshold lets strangers in on this data."""
    trials, results = scored[1]
    numbers = results[DEFAULT_PRESET]
    plain = [r.subject_id if (r.distance or 9.0) <= BASELINE_THRESHOLD else None for r in numbers]
    counts = tally(trials, plain)
    assert counts["all"]["stranger_accepts"] > 0 and counts["east_asian"]["false_accepts"] > 0
    # Plain distance at zero false accepts: its threshold must sit under the nearest impostor.
    nearest_impostor = min(
        r.distance or 9.0 for t, r in zip(trials, numbers, strict=True) if t.kind != "genuine"
    )
    plain_at_zero = sum(
        1
        for t, r in zip(trials, numbers, strict=True)
        if t.kind == "genuine" and r.subject_id == t.truth and (r.distance or 9.0) < nearest_impostor
    )
    default = tally(trials, [r.member_id for r in numbers])["all"]["true_accepts"]
    assert default > plain_at_zero + 20


def test_every_decision_carries_its_numbers(scored: dict[int, Any]) -> None:
    trials, results = scored[3]
    policy = preset(DEFAULT_PRESET)
    for result in results[DEFAULT_PRESET]:
        assert result.policy == DEFAULT_PRESET and result.limits["max_ratio"] == policy.max_ratio
        assert result.distance is not None and result.margin is not None
        assert result.ratio is not None and result.cohort_size == policy.cohort_size
        assert result.cohort_distance is not None and result.templates >= 1
        assert result.accepted == (result.reason is None)
    assert {r.templates for r in results[DEFAULT_PRESET]} >= {2, 3}


def test_two_factor_right_code_with_the_wrong_face_is_refused(
    faceset: FaceSet, scored: dict[int, Any]
) -> None:
    trials, _ = scored[1]
    policy = preset(DEFAULT_PRESET)
    claims = build_claims(faceset, trials, 1)
    accepted_impostors = [
        (c.probe.name, c.claimed, verify_1to1(c.snapshot, c.claimed, c.probe.encoding, policy).explain())
        for c in claims
        if c.kind != "genuine" and verify_1to1(c.snapshot, c.claimed, c.probe.encoding, policy).accepted
    ]
    assert accepted_impostors == []
    assert sum(c.kind != "genuine" for c in claims) > 5000


def test_two_factor_refuses_the_closest_lookalike_stranger_with_the_numbers(faceset: FaceSet) -> None:
    """unknown/lee_hoi_chang sits ~0.40 from li_zhaoxing: under any 1:1 distance a member would pass."""
    roster = RosterSnapshot.build((m, f.encoding) for m, f in roster_rows(faceset, 1))
    stranger = next(f for f in faceset.strangers if f.name.startswith("unknown/lee_hoi_chang"))
    result = verify_1to1(roster, "li_zhaoxing", stranger.encoding, preset(DEFAULT_PRESET))
    assert not result.accepted and result.reason == HIGH_RATIO
    assert result.distance is not None and result.distance < 0.45
    assert result.ratio is not None and result.ratio > (preset(DEFAULT_PRESET).verify_max_ratio or 1.0)
    assert "high_ratio" in result.explain() and "li_zhaoxing" in result.explain()
    own = faceset.members["li_zhaoxing"][-1]
    others = RosterSnapshot.build(
        [(m, f.encoding) for m, f in roster_rows(faceset, 1) if m != "li_zhaoxing"]
        + [("li_zhaoxing", faceset.members["li_zhaoxing"][0].encoding)]
    )
    assert verify_1to1(others, "li_zhaoxing", own.encoding, preset(DEFAULT_PRESET)).accepted


def test_duplicate_enrolment_flags_lookalikes_with_the_numbers(faceset: FaceSet) -> None:
    policy = preset(DEFAULT_PRESET)
    rows = roster_rows(faceset, 1)
    roster = RosterSnapshot.build((m, f.encoding) for m, f in rows)
    # Two distinct East Asian people dlib puts close together: flagged, not refused, not merged.
    koizumi = faceset.members["junichiro_koizumi"]
    findings = check_lookalikes(roster, "junichiro_koizumi", [(f.name, f.encoding) for f in koizumi], policy)
    assert findings and all(f.kind == LOOKALIKE for f in findings)
    assert any(f.member_id == "jackie_chan" for f in findings)
    assert all(f.distance > 0 and f.ratio is not None and f.policy == DEFAULT_PRESET for f in findings)
    # The same person enrolled again under a new id: the door would accept them as the first.
    chan = faceset.members["jackie_chan"]
    again = check_lookalikes(roster, "new-member", [(chan[2].name, chan[2].encoding)], policy)
    assert any(f.member_id == "jackie_chan" and f.kind == WOULD_MATCH for f in again)


def test_no_distinct_person_would_match_at_enrolment(faceset: FaceSet) -> None:
    """Distinct people are at most "lookalike": a "would match" would also be a false accept at the door."""
    policy = preset(DEFAULT_PRESET)
    roster = RosterSnapshot.build((m, f.encoding) for m, f in roster_rows(faceset, 1))
    would = [
        f.describe()
        for person, faces in faceset.members.items()
        for f in check_lookalikes(roster, person, [(x.name, x.encoding) for x in faces], policy)
        if f.kind == WOULD_MATCH
    ]
    assert would == []
    assert np.isfinite(roster.sq_norms).all()


def test_benchmark_report_keeps_the_rest_of_the_file(
    faceset: FaceSet, pipeline: FacePipeline, faces_root: Path, tmp_path: Path
) -> None:
    result = run_benchmark(pipeline, faces_root, timing=False, faceset=faceset)
    assert result["targets"]["zero_false_accepts_at_default"]["met"]
    section = render_markdown(result, "python -m bench.quality")
    assert section.startswith(MARK_START) and section.rstrip().endswith(MARK_END)
    target = tmp_path / "BENCHMARKS.md"
    target.write_text(
        f"# Benchmarks\n\nbefore\n\n{MARK_START}\nSTALE-SECTION\n{MARK_END}\n\nafter\n", encoding="utf-8"
    )
    write_section(target, section)
    text = target.read_text(encoding="utf-8")
    assert "before" in text and "after" in text and "STALE-SECTION" not in text
    assert "`balanced` (default)" in text
