"""The procedure behind the presets and `yizhan calibrate`: its statistics, and calibrating a station
on a tiny labelled set (an operating point that reproduces the figures it reports)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.calibrate import OperatingPointError, load_operating_point, measure
from recognizer.calibration import (
    CalibrationError,
    ProcedureSettings,
    Sample,
    choose_operating_point,
    fit_lower_tail,
    random_rosters,
    wilson,
)
from recognizer.scoring import MODEL_DLIB, preset


def test_wilson_intervals() -> None:
    low, high = wilson(0, 100)
    assert low == 0.0 and high == pytest.approx(0.037, abs=1e-3)  # "0 of 100" still allows ~3.7 %
    low, high = wilson(50, 100)
    assert low == pytest.approx(0.404, abs=1e-3) and high == pytest.approx(0.596, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)


def test_the_tail_fit_reads_a_normal_tail_back() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(0.8, 0.1, size=20_000)
    fit = fit_lower_tail(values, 0.05, 8)
    assert fit.slope == pytest.approx(0.1, rel=0.1)
    assert fit.at(1e-4) == pytest.approx(0.8 - 3.719 * 0.1, abs=0.02)
    assert fit.observed_min == pytest.approx(values.min())
    with pytest.raises(CalibrationError, match="at least 8"):
        fit_lower_tail([0.5, 0.6], 0.05, 8)
    with pytest.raises(CalibrationError, match="equally far"):
        fit_lower_tail([0.5] * 20, 0.05, 8)


def test_random_rosters_are_distinct_and_bounded() -> None:
    rosters = random_rosters([f"p{i}" for i in range(5)], 3, 100, 1, "r")
    assert len(rosters) == math.comb(5, 3) and len({r.members for r in rosters}) == len(rosters)
    assert all(len(r.members) == 3 for r in rosters)


def synthetic(people: int, photos: int, seed: int = 0) -> list[Sample]:
    """People as points 0.6-1.0 apart, photos and frames scattered 0.1-0.2 around them."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, 32)) * 0.12
    samples = []
    for p in range(people):
        for k in range(photos):
            photo = (centres[p] + rng.normal(size=32) * 0.03).astype(np.float32)
            frames = tuple((photo + rng.normal(size=32) * 0.01).astype(np.float32) for _ in range(4))
            samples.append(Sample(f"people/p{p}/{k}.jpg", f"p{p}", True, True, p % 2 == 0, photo, {}, frames))
    return samples


def test_the_procedure_keeps_every_distinct_pair_out_and_orders_its_numbers() -> None:
    samples = synthetic(12, 3)
    choice = choose_operating_point(samples, ProcedureSettings(), model="synthetic", name="t")
    policy = choice.policy
    assert policy.model == "synthetic" and policy.name == "t" and policy.min_frames == 3
    assert policy.accept_distance <= choice.details["nearest_impostor_pair"]
    assert policy.accept_distance <= policy.grey_distance
    assert policy.same_person_distance <= policy.lookalike_distance <= policy.review_distance
    # Photos given together: up to the farthest pair of one person's photos, in this model's units.
    farthest = max(
        float(np.linalg.norm(a.encoding - b.encoding))
        for a in samples
        for b in samples
        if a.identity == b.identity and a.key < b.key  # fmt: skip
    )
    assert policy.same_person_max_distance >= max(policy.review_distance, farthest)
    assert policy.max_ratio is None  # 12 people: too few for the cohort gate
    assert policy.procedure["identities"] == 12 and choice.details["accept_bound"] in (
        "tail fit",
        "observed nearest pair",
    )
    figures = measure(samples, policy, sizes=(1,))
    # Everyone on one roster, then each person alone: every photo is a member trial twice.
    assert figures["1"]["all"]["false_accepts"] == 0 and figures["1"]["all"]["genuine"] == 2 * 36
    with pytest.raises(CalibrationError):
        choose_operating_point(synthetic(2, 1), ProcedureSettings(), model="synthetic", name="t")


def test_an_operating_point_file_is_checked_before_the_door_uses_it(tmp_path: Path) -> None:
    path = tmp_path / "op.json"
    path.write_text("not json")
    with pytest.raises(OperatingPointError, match="not JSON"):
        load_operating_point(path, model=MODEL_DLIB)
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(OperatingPointError, match="not a yizhan operating point"):
        load_operating_point(path, model=MODEL_DLIB)
    good = {"format": "yizhan-operating-point", "version": 1, "policy": preset().to_json()}
    path.write_text(json.dumps({**good, "policy": {**good["policy"], "accept_distance": 0.9}}))
    with pytest.raises(OperatingPointError, match="not usable"):  # over the grey distance
        load_operating_point(path, model=MODEL_DLIB)
    path.write_text(json.dumps(good))
    with pytest.raises(OperatingPointError, match="calibrate again"):
        load_operating_point(path, model="another_model")
    with pytest.raises(OperatingPointError, match="cannot read"):
        load_operating_point(tmp_path / "missing.json", model=MODEL_DLIB)
    assert load_operating_point(path, model=MODEL_DLIB) == preset()


# ------------------------------------------------------------------------------- on real faces

TINY = (
    "annette_lu",
    "antony_leung",
    "choi_sung_hong",
    "edward_lu",
    "fujio_cho",
    "hee_won_han",
    "kim_jong_il",
)


@pytest.mark.dataset
def test_calibrate_on_a_tiny_labelled_set_writes_a_point_that_reproduces_its_figures(
    cli: Any, labelled_faces: Any, tmp_path: Path
) -> None:
    samples, roots, _ = labelled_faces
    ea = roots[-1]
    faces = tmp_path / "staff"
    manifest = [(ea / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[0]]
    for row in (ea / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        relpath = row.split("\t", 1)[0]
        person = relpath.split("/")[1] if relpath.startswith("people/") else None
        if person in TINY or relpath.startswith("unknown/"):
            target = faces / relpath
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(ea / relpath)
            manifest.append(row)
    (faces / "MANIFEST.tsv").write_text("\n".join(manifest) + "\n", encoding="utf-8")
    out = tmp_path / "op.json"
    result = cli("calibrate", "--faces", str(faces), "--out", str(out))
    assert result.code == 0, result.err
    assert f'operating_point = "{out}"' in result.out and "fewer than 20 people" in result.out
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["identities"] == len(TINY) + 1 and document["members"] == len(TINY)
    policy = load_operating_point(out, model=MODEL_DLIB)
    assert policy.name == "calibrated-balanced" and policy.min_frames == 3
    # The same faces (encoded by the test session, the same pipelines) judged with the written
    # numbers give exactly the figures the file reports.
    mine = [
        s
        for s in samples
        if s.key.startswith(tuple(f"people/{p}/" for p in TINY)) or s.key.startswith("unknown/lee_soo")
    ]
    assert len({s.identity for s in mine}) == len(TINY) + 1
    assert measure(mine, policy, sizes=(1, 3)) == document["measured"]
    assert document["measured"]["3"]["all"]["false_accepts"] == 0
    assert document["leave_identity_out"]["1"]["all"]["genuine"] > 0
    # The station uses it when the config points at it.
    from edge.config import parse_config
    from edge.station import Station

    station = Station(parse_config({"storage": {"data_dir": str(tmp_path / "st")},
                                    "recognition": {"operating_point": str(out)}}), env={})  # fmt: skip
    try:
        assert station.scoring_policy == policy
    finally:
        station.close()
    nowhere = cli("calibrate", "--faces", str(tmp_path / "nowhere"), "--json")
    assert nowhere.code == 2 and "no people/ folder" in nowhere.err
