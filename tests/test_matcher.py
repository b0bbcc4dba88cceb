"""1:N matching on synthetic vectors: the rule (threshold and margin) and the arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recognizer.matcher import MatchPolicy, as_query, best_two, match, verify
from recognizer.roster import MemberInfo, RosterError, RosterHolder, RosterSnapshot


def unit(rng: np.random.Generator, n: int = 1) -> np.ndarray:
    v = rng.normal(size=(n, 128)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True) * 0.5


def towards(a: np.ndarray, b: np.ndarray, distance: float) -> np.ndarray:
    """A point at `distance` from a, in the direction of b."""
    d = (b - a) / np.linalg.norm(b - a)
    return (a + d * distance).astype(np.float32)


def test_match_accepts_close_probe_with_margin() -> None:
    rng = np.random.default_rng(1)
    a, b = unit(rng, 2)
    snap = RosterSnapshot.build([("alice", a), ("bob", b)])
    probe = towards(a, unit(rng)[0], 0.3)
    out = match(snap, probe, MatchPolicy(threshold=0.55, min_margin=0.1))
    assert out.accepted and out.nearest_id == "alice" and out.runner_up_id == "bob"
    assert out.distance == pytest.approx(0.3, abs=1e-4)
    assert out.margin is not None and out.margin > 0.1


def test_over_threshold_is_unknown_with_numbers() -> None:
    rng = np.random.default_rng(2)
    a, b = unit(rng, 2)
    snap = RosterSnapshot.build([("alice", a), ("bob", b)])
    probe = towards(a, -b, 0.6)
    out = match(snap, probe, MatchPolicy(threshold=0.55, min_margin=0.0))
    assert not out.accepted and out.reason == "over_threshold"
    assert out.nearest_id == "alice" and out.distance == pytest.approx(0.6, abs=1e-4)


def test_lookalike_between_two_members_is_refused_for_low_margin() -> None:
    rng = np.random.default_rng(3)
    a = unit(rng)[0]
    b = towards(a, unit(rng)[0], 0.3)  # two members 0.3 apart
    snap = RosterSnapshot.build([("alice", a), ("bob", b)])
    probe = (a + b) / 2 + 0.001  # halfway: within threshold of both
    out = match(snap, probe, MatchPolicy(threshold=0.55, min_margin=0.1))
    assert not out.accepted and out.reason == "low_margin"
    assert out.margin is not None and out.margin < 0.1


def test_several_templates_of_one_member_do_not_count_as_runner_up() -> None:
    rng = np.random.default_rng(4)
    a = unit(rng)[0]
    a2 = towards(a, unit(rng)[0], 0.05)
    c = unit(rng)[0]
    snap = RosterSnapshot.build([("alice", a), ("alice", a2), ("carol", c)])
    out = match(snap, a, MatchPolicy())
    assert out.accepted and out.runner_up_id == "carol"


def test_single_member_roster_has_no_margin_and_uses_threshold() -> None:
    rng = np.random.default_rng(5)
    a = unit(rng)[0]
    snap = RosterSnapshot.build([("alice", a)])
    assert match(snap, a, MatchPolicy()).accepted
    assert match(snap, a, MatchPolicy()).margin is None
    far = towards(a, unit(rng)[0], 0.9)
    assert match(snap, far, MatchPolicy()).reason == "over_threshold"


def test_empty_roster() -> None:
    out = match(RosterSnapshot.build(()), np.zeros(128, np.float32), MatchPolicy())
    assert not out.accepted and out.reason == "empty_roster"


@pytest.mark.parametrize(
    "bad", [np.zeros(127), np.full(128, np.nan), np.full(128, np.inf), np.zeros((2, 128))]
)
def test_bad_queries_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        as_query(bad)


@pytest.mark.parametrize("bad", [np.zeros(64), np.full(128, np.nan)])
def test_bad_templates_refuse_to_build(bad: np.ndarray) -> None:
    with pytest.raises(RosterError):
        RosterSnapshot.build([("alice", bad)])


def test_template_of_unknown_member_refused() -> None:
    with pytest.raises(RosterError, match="unknown member"):
        RosterSnapshot.build([("ghost", np.zeros(128))], members=[MemberInfo("alice", "Alice")])


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=2, max_value=300), st.integers(min_value=0, max_value=2**31 - 1))
def test_fast_form_agrees_with_brute_force(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    templates = unit(rng, n)
    owners = [f"m{i % max(2, n // 3)}" for i in range(n)]
    snap = RosterSnapshot.build(zip(owners, templates, strict=True))
    q = unit(rng)[0]
    d = np.linalg.norm(templates.astype(np.float64) - q, axis=1)
    per_member: dict[str, float] = {}
    for owner, dist in zip(owners, d, strict=True):
        per_member[owner] = min(dist, per_member.get(owner, np.inf))
    ranked = sorted(per_member.items(), key=lambda kv: kv[1])
    best, best_d, second, second_d = best_two(snap, q)
    assert best == ranked[0][0] and best_d == pytest.approx(ranked[0][1], abs=1e-4)
    assert second == ranked[1][0] and second_d == pytest.approx(ranked[1][1], abs=1e-4)


def test_verify_one_to_one() -> None:
    rng = np.random.default_rng(6)
    a, b = unit(rng, 2)
    snap = RosterSnapshot.build([("alice", a), ("bob", b)])
    ok, dist = verify(snap, "alice", a, 0.5)
    assert ok and dist == pytest.approx(0.0, abs=1e-3)
    ok, _ = verify(snap, "alice", b, 0.5)
    assert not ok
    assert verify(snap, "nobody", a, 0.5) == (False, None)


def test_snapshot_is_immutable_and_swaps_forward_only() -> None:
    rng = np.random.default_rng(7)
    snap = RosterSnapshot.build([("alice", unit(rng)[0])], version=3)
    with pytest.raises(ValueError):
        snap.templates[0, 0] = 1.0
    holder = RosterHolder(snap)
    newer = RosterSnapshot.build([("bob", unit(rng)[0])], version=4)
    assert holder.swap(newer) is snap and holder.current is newer
    with pytest.raises(RosterError, match="older"):
        holder.swap(RosterSnapshot.build((), version=2))


def test_policy_bounds() -> None:
    with pytest.raises(ValueError):
        MatchPolicy(threshold=0)
    with pytest.raises(ValueError):
        MatchPolicy(min_margin=-0.1)
