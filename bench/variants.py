"""Choosing pipeline variants on the development set only: ../shared/data/faces, leave-identity-out.

Why a separate, small run: the figures we report (bench.quality) pool faces + faces-ea. Choosing a
pipeline change (test-time flip, enrolment jitter, how the five alignment points are derived) on
those same trials would be tuning on what we report. So variants are compared here on
../shared/data/faces alone (31 people with photos, 7 of them East Asian, and its strangers), with the
same leave-identity-out procedure and the `balanced` preset's settings, on fewer random rosters; the
chosen variant is then measured once by bench.quality on everything.

Run: `python -m bench.variants [--onnx MODEL.onnx] [VARIANT ...]` (default: every variant of each
model). Prints one line per variant: members let in by face alone (1 and 3 enrolment photos,
overall and East Asian, Wilson 95 %), false accepts, and the encoder's median time per face.
Encodings are cached per variant under bench/out/variants/ (git-ignored).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from bench.dataset import faces_dir  # noqa: E402
from bench.quality import (  # noqa: E402
    CACHE_DIR,
    BenchSettings,
    measure_rosters,
    padding_for,
    pipelines,
    roster_sets,
)
from edge.faceset import EncodingCache, encode_many  # noqa: E402
from recognizer.calibration import PRESET_SETTINGS, leave_identity_out, policies_by_identity  # noqa: E402
from recognizer.encoder import FaceModel  # noqa: E402
from recognizer.face_pipeline import FacePipeline  # noqa: E402

PRESET = "balanced"
FRAMES = 3  # what `balanced` judges


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str  # "dlib" or "onnx"
    #: Enrolment (photo) side: dlib's num_jitters; ONNX: flip-sum at enrolment.
    photo_jitters: int = 1
    photo_flip: bool = False
    #: Door side: ONNX flip-sum on every frame.
    door_flip: bool = False
    #: Five alignment points from 68 (ONNX only): "mean" (outer+inner lip corners), "outer", "inner".
    mouth: str = "mean"
    nose: int = 30
    #: Eye centres: "contour" (mean of the 6 points) or "lids" (the 4 lid points, as the evaluation
    #: model's own package derives them).
    eyes: str = "contour"


VARIANTS: tuple[Variant, ...] = (
    Variant("dlib-base", "dlib"),
    Variant("dlib-enrol-jitter10", "dlib", photo_jitters=10),
    Variant("onnx-base", "onnx"),
    Variant("onnx-flip", "onnx", photo_flip=True, door_flip=True),
    Variant("onnx-flip-enrol-only", "onnx", photo_flip=True),
    Variant("onnx-mouth-outer", "onnx", mouth="outer"),
    Variant("onnx-mouth-inner", "onnx", mouth="inner"),
    Variant("onnx-eyes-lids", "onnx", eyes="lids"),
)

_MOUTH = {"mean": ((48, 60), (54, 64)), "outer": ((48,), (54,)), "inner": ((60,), (64,))}
_EYES = {
    "contour": (tuple(range(36, 42)), tuple(range(42, 48))),
    "lids": ((37, 38, 40, 41), (43, 44, 46, 47)),
}


def five_points(variant: Variant) -> Callable[[npt.ArrayLike], npt.NDArray[np.float64]]:
    left, right = _MOUTH[variant.mouth]
    eye_left, eye_right = _EYES[variant.eyes]

    def points(points68: npt.ArrayLike) -> npt.NDArray[np.float64]:
        pts = np.asarray(points68, dtype=np.float64)
        return np.array(
            [
                pts[list(eye_left)].mean(axis=0),
                pts[list(eye_right)].mean(axis=0),
                pts[variant.nose],
                pts[list(left)].mean(axis=0),
                pts[list(right)].mean(axis=0),
            ]
        )

    return points


def build(variant: Variant, onnx: Path | None) -> tuple[FaceModel, FaceModel]:
    """(photo model, door model) for a variant (the alignment points are set by `evaluate`)."""
    if variant.kind == "dlib":
        from recognizer.encoder import DlibFaceModel

        model = DlibFaceModel()
        return model, model
    if onnx is None:
        raise SystemExit(f"{variant.name} needs --onnx MODEL (or $YIZHAN_EVAL_MODEL)")
    from recognizer.onnx_encoder import OnnxFaceModel

    photo = OnnxFaceModel(onnx, flip=variant.photo_flip)
    same = variant.door_flip == variant.photo_flip
    return photo, photo if same else OnnxFaceModel(onnx, flip=variant.door_flip)


def evaluate(variant: Variant, root: Path, onnx: Path | None, settings: BenchSettings) -> dict[str, Any]:
    from recognizer import onnx_encoder

    # The encoder looks the function up at call time: swap it for the variant, restore it after.
    name = "five_points_from_68"  # imported there from recognizer.alignment, not re-exported
    shipped = getattr(onnx_encoder, name)
    setattr(onnx_encoder, name, five_points(variant))
    try:
        return _evaluate(variant, root, onnx, settings)
    finally:
        setattr(onnx_encoder, name, shipped)


def _evaluate(variant: Variant, root: Path, onnx: Path | None, settings: BenchSettings) -> dict[str, Any]:
    photo_model, door_model = build(variant, onnx)
    # bench.quality's own pipelines (what the station builds), so the base variant is the product.
    photo, _ = pipelines(photo_model)
    _, door = pipelines(door_model)
    photo = FacePipeline(
        photo_model, replace(photo.detection, jitters=variant.photo_jitters), photo.quality_policy
    )
    cache = EncodingCache(CACHE_DIR / "variants" / f"{variant.name}-{photo_model.name}.npz")
    started = time.perf_counter()
    samples, stats = encode_many([root], photo, door, frames=FRAMES, cache=cache)
    encode_ms = [ms for s in stats for ms in s.encode_ms]
    proc = PRESET_SETTINGS[PRESET]
    lio = leave_identity_out(samples, proc, model=photo_model.name, name=PRESET)
    policy_for = policies_by_identity(lio)
    rosters = roster_sets(samples, settings, padding_for(samples))
    measured = measure_rosters(samples, rosters, policy_for, frames=proc.min_frames)
    out: dict[str, Any] = {"variant": variant.name, "encode_s": round(time.perf_counter() - started, 1)}
    if encode_ms:
        out["encode_ms_p50"] = round(float(np.median(encode_ms)), 1)
    accepts = [c.policy.accept_distance for c in lio.values()]
    out["accept_distance"] = [round(min(accepts), 4), round(max(accepts), 4)]
    for size, kinds in measured.items():
        every = kinds["every roster"]
        out[f"{size}_photo"] = {
            "let_in": every["all"]["let_in_rate"],
            "east_asian": every["east_asian"]["let_in_rate"],
            "false_accepts": every["all"]["false_accepts"],
            "trials": every["all"]["genuine"] + every["all"]["impostor"],
        }
    return out


def _pct(rate: dict[str, Any]) -> str:
    low, high = rate["wilson95"]
    return f"{100 * rate['value']:.1f} ({100 * low:.1f}-{100 * high:.1f})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.variants", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="variants to run (default: all)")
    parser.add_argument("--onnx", default=os.environ.get("YIZHAN_EVAL_MODEL"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    root = faces_dir()
    if root is None:
        parser.error("set YIZHAN_TEST_FACES (default ../shared/data/faces)")
    wanted = [v for v in VARIANTS if not args.names or v.name in args.names]
    if not args.onnx:
        wanted = [v for v in wanted if v.kind == "dlib"]
    settings = BenchSettings(rosters_small=30, rosters_30=10, video=False, timing=False)
    for variant in wanted:
        result = evaluate(variant, root, Path(args.onnx) if args.onnx else None, settings)
        if args.json:
            sys.stdout.write(json.dumps(result) + "\n")
        else:
            parts = [f"{variant.name:<22}"]
            for size in ("1", "3"):
                r = result[f"{size}_photo"]
                parts.append(
                    f"{size} photo(s): {_pct(r['let_in'])} EA {_pct(r['east_asian'])} "
                    f"FA {r['false_accepts']}/{r['trials']}"
                )
            parts.append(f"accept {result['accept_distance']} encode p50 {result.get('encode_ms_p50')} ms")
            sys.stdout.write(" | ".join(parts) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
