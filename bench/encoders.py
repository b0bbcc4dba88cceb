"""Encoder benchmark: dlib against the ONNX evaluation model, same photos, same run.

Run it with `python -m bench.encoders [--json] [--no-write]` after `make eval-model`. It prints a
summary (or one JSON object) and rewrites its own section of docs/BENCHMARKS.md.

What it measures, on ../shared/data/faces and ../shared/data/faces-ea (people/ and unknown/):
- **Embedding time per face**, both encoders on the same faces, interleaved photo by photo (the
  order alternating) so that the load of this shared machine falls on both alike: `encode` is what
  the door pays for the embedding once the landmarks are known (dlib: chip + ResNet; ONNX:
  five-point alignment + the model + L2 normalisation), `landmarks` the shape predictor (dlib's
  5-point model; 68 points for the ONNX model).
- **A plain operating point for each encoder** (the same procedure on both, for comparison). The
  rule is the old door rule without the cohort ratio: nearest member within `max_distance`
  and ahead of the next member by `min_margin` (one enrolment photo per member, every member of both
  sets on the roster). Genuine trials: each other photo of a member. Impostor trials: every
  unknown/ face, and every photo of each member against the roster without that member.
  The threshold is chosen **leave-identity-out**: for the trials of one identity, it is the nearest
  impostor distance among the trials that involve neither that identity as the probe nor as the
  member it came nearest to, minus a buffer; the figures reported are those of each trial under its
  own fold's threshold, with 95 % Wilson intervals. The preset's value is the same choice on all
  trials (which no reported figure used).
- **Small rosters**: random 3- and 6-member rosters of East Asian identities, everyone else an
  impostor, each probe judged with the threshold chosen without its identity and without the
  roster's members.

This plain threshold + margin rule is a comparison of the encoders' raw separation only; the door's
rule (zones over fused frames) and both models' shipped presets are measured by bench.quality.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Mapping, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

from bench import report  # noqa: E402
from bench.dataset import REPO, faces_dir, load_manifest  # noqa: E402
from bench.eval_model import find_eval_model  # noqa: E402
from bench.recognition import machine_info, ratio, summary  # noqa: E402
from recognizer.encoder import FaceModel  # noqa: E402
from recognizer.face_pipeline import DetectionSettings, FacePipeline  # noqa: E402
from recognizer.images import decode_image  # noqa: E402

Vector = npt.NDArray[np.float32]

MARK_START = "<!-- bench.encoders:start -->"
MARK_END = "<!-- bench.encoders:end -->"
BENCHMARKS_MD = REPO / "docs" / "BENCHMARKS.md"

#: Subtracted from the nearest impostor's distance (each model's own units: dlib's distances sit in
#: 0..~1, the ONNX model's unit vectors in 0..2, so its buffer is twice dlib's).
BUFFER = {"dlib": 0.01, "onnx": 0.02}
MIN_MARGIN = {"dlib": 0.05, "onnx": 0.05}
SMALL_ROSTERS = (3, 6)
#: Encoders whose accuracy is measured ("onnxruntime", when present, is the "onnx" model on another
#: backend: same embeddings, timed only).
QUALITY_KEYS = ("dlib", "onnx")
SMALL_ROSTER_DRAWS = 300
SEED = 13
ENLARGE = 2


@dataclass(frozen=True, slots=True)
class Face:
    name: str
    person: str | None  # None: a stranger (unknown/)
    east_asian: bool
    encodings: dict[str, Vector]  # encoder -> vector


def faces_ea_dir(faces: Path) -> Path | None:
    """../shared/data/faces-ea beside ../shared/data/faces ($YIZHAN_TEST_FACES_EA overrides)."""
    candidate = Path(os.environ.get("YIZHAN_TEST_FACES_EA") or faces.parent / "faces-ea")
    return candidate if (candidate / "MANIFEST.tsv").is_file() else None


def _first_face(pipeline: FacePipeline, rgb: npt.NDArray[np.uint8]) -> tuple[Vector, dict[str, float]] | None:
    for observation in pipeline.analyze(rgb):
        if observation.encoding is not None:
            return observation.encoding, observation.timings_ms
    return None


def encode_all(
    pipelines: Mapping[str, FacePipeline], roots: Sequence[Path]
) -> tuple[list[Face], dict[str, dict[str, list[float]]], list[str]]:
    """Every people/ and unknown/ photo with a usable face for *every* encoder (same trials for all).

    Returns the faces, the per-encoder stage times, and what was left out and why.
    """
    faces: list[Face] = []
    timings: dict[str, dict[str, list[float]]] = {k: {"encode": [], "landmarks": []} for k in pipelines}
    skipped: list[str] = []
    names = list(pipelines)
    for root in roots:
        for index, photo in enumerate(load_manifest(root)):
            if photo.category not in ("people", "unknown"):
                continue
            name = f"{root.name}/{os.path.relpath(photo.path, root)}"
            rgb = decode_image(photo.path.read_bytes())
            found: dict[str, tuple[Vector, dict[str, float]]] = {}
            order = names if index % 2 == 0 else names[::-1]
            for image in (rgb, None):
                if image is None:  # a face too small at its size: as if the person stood closer
                    image = np.asarray(
                        cv2.resize(rgb, None, fx=ENLARGE, fy=ENLARGE, interpolation=cv2.INTER_CUBIC), np.uint8
                    )
                found = {}
                for key in order:
                    result = _first_face(pipelines[key], image)
                    if result is not None:
                        found[key] = result
                if len(found) == len(names):
                    break
            if len(found) < len(names):
                skipped.append(f"{name}: no usable face for {sorted(set(names) - set(found))}")
                continue
            for key, (_, stage) in found.items():
                for part in ("encode", "landmarks"):
                    if part in stage:
                        timings[key][part].append(stage[part])
            person = photo.person if photo.category == "people" else None
            faces.append(Face(name, person, photo.east_asian, {k: v for k, (v, _) in found.items()}))
    return faces, timings, skipped


# ----------------------------------------------------------------------------------- trials


@dataclass(frozen=True, slots=True)
class Trials:
    """Nearest-member numbers of every trial, as arrays (one row per trial)."""

    kind: npt.NDArray[np.str_]  # "genuine" | "stranger" | "heldout"
    probe: npt.NDArray[np.str_]  # the probe's identity (a stranger: its photo name)
    truth: npt.NDArray[np.object_]  # the member a genuine probe is, else None
    nearest: npt.NDArray[np.str_]
    distance: npt.NDArray[np.float64]
    margin: npt.NDArray[np.float64]  # to the next member (inf with one member)
    east_asian: npt.NDArray[np.bool_]

    @property
    def impostor(self) -> npt.NDArray[np.bool_]:
        return np.asarray(self.kind != "genuine")


def _nearest(
    probe: Vector, matrix: npt.NDArray[np.float32], owners: Sequence[str]
) -> tuple[str, float, float]:
    d = np.linalg.norm(matrix - probe, axis=1)
    order = np.argsort(d)
    second = float(d[order[1]]) if len(order) > 1 else math.inf
    return owners[int(order[0])], float(d[order[0]]), second - float(d[order[0]])


def build_trials(faces: Sequence[Face], encoder: str) -> Trials:
    """One enrolment photo per member (the first usable one), the whole people set on the roster."""
    members: dict[str, list[Face]] = {}
    for face in faces:
        if face.person is not None:
            members.setdefault(face.person, []).append(face)
    owners = sorted(members)
    enrolled = {m: members[m][0] for m in owners}
    matrix = np.stack([enrolled[m].encodings[encoder] for m in owners]).astype(np.float32)
    rows: list[tuple[str, str, str | None, str, float, float, bool]] = []
    for face in faces:
        vector = face.encodings[encoder]
        if face.person is None:
            nearest, distance, margin = _nearest(vector, matrix, owners)
            rows.append(("stranger", face.name, None, nearest, distance, margin, face.east_asian))
            continue
        if face is not enrolled[face.person]:
            nearest, distance, margin = _nearest(vector, matrix, owners)
            rows.append(("genuine", face.person, face.person, nearest, distance, margin, face.east_asian))
        keep = [i for i, m in enumerate(owners) if m != face.person]
        nearest, distance, margin = _nearest(vector, matrix[keep], [owners[i] for i in keep])
        rows.append(("heldout", face.person, None, nearest, distance, margin, face.east_asian))
    columns = list(zip(*rows, strict=True))
    return Trials(
        np.array(columns[0]),
        np.array(columns[1]),
        np.array(columns[2], dtype=object),
        np.array(columns[3]),
        np.array(columns[4], dtype=np.float64),
        np.array(columns[5], dtype=np.float64),
        np.array(columns[6], dtype=bool),
    )


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """95 % Wilson score interval of a proportion (None for no trials)."""
    if n == 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def fold_threshold(trials: Trials, excluded: set[str], buffer: float) -> float:
    """The nearest impostor distance among trials touching none of `excluded`, minus `buffer`
    (-inf, accepting nobody, when no such trial is left to justify any threshold)."""
    keep = trials.impostor & ~np.isin(trials.probe, list(excluded)) & ~np.isin(trials.nearest, list(excluded))
    if not keep.any():
        return -math.inf
    return float(trials.distance[keep].min()) - buffer


def accepted(trials: Trials, threshold: npt.ArrayLike, margin: float) -> npt.NDArray[np.bool_]:
    return np.asarray((trials.distance <= np.asarray(threshold)) & (trials.margin >= margin))


def _rate(hits: int, n: int) -> dict[str, Any]:
    interval = wilson(hits, n)
    return {
        "hits": hits,
        "n": n,
        "rate": round(hits / n, 4) if n else None,
        "wilson95": None if interval is None else [round(interval[0], 4), round(interval[1], 4)],
    }


def leave_identity_out(trials: Trials, encoder: str) -> dict[str, Any]:
    """Each trial judged with the threshold chosen without its identity (see the module docstring)."""
    buffer, margin = BUFFER[encoder], MIN_MARGIN[encoder]
    thresholds = np.array([fold_threshold(trials, {str(p)}, buffer) for p in trials.probe], dtype=np.float64)
    ok = accepted(trials, thresholds, margin)
    genuine = trials.kind == "genuine"
    right = genuine & (trials.nearest == trials.truth.astype(str))
    true_accepts = ok & right
    false_accepts = ok & (trials.impostor | (genuine & ~right))
    result: dict[str, Any] = {
        "buffer": buffer,
        "min_margin": margin,
        "fold_thresholds": {
            "min": round(float(thresholds.min()), 4),
            "median": round(float(np.median(thresholds)), 4),
            "max": round(float(thresholds.max()), 4),
        },
        "tar": _rate(int(true_accepts.sum()), int(genuine.sum())),
        "tar_east_asian": _rate(
            int((true_accepts & trials.east_asian).sum()), int((genuine & trials.east_asian).sum())
        ),
        "false_accepts": _rate(int(false_accepts.sum()), int((trials.impostor | genuine).sum())),
        "impostor_trials": int(trials.impostor.sum()),
        "impostor_trials_east_asian": int((trials.impostor & trials.east_asian).sum()),
        "false_accepted": sorted(
            {
                f"{p} as {n} at {d:.3f}"
                for p, n, d in zip(
                    trials.probe[false_accepts],
                    trials.nearest[false_accepts],
                    trials.distance[false_accepts],
                    strict=True,
                )
            }
        ),
    }
    all_threshold = fold_threshold(trials, set(), buffer)
    result["preset_max_distance"] = round(all_threshold, 3)
    return result


def small_rosters(faces: Sequence[Face], trials: Trials, encoder: str) -> dict[str, Any]:
    """Random East Asian rosters of 3 and 6 (1 photo each); every other face is an impostor."""
    rng = np.random.default_rng(SEED)
    buffer, margin = BUFFER[encoder], MIN_MARGIN[encoder]
    members: dict[str, list[Face]] = {}
    for face in faces:
        if face.person is not None:
            members.setdefault(face.person, []).append(face)
    east_asian = sorted(p for p, fs in members.items() if fs[0].east_asian)
    out: dict[str, Any] = {}
    for size in SMALL_ROSTERS:
        if len(east_asian) < size:
            continue  # not enough East Asian identities in this data set
        genuine = genuine_ok = impostors = false_accepts = 0
        worst: list[str] = []
        for _ in range(SMALL_ROSTER_DRAWS):
            roster = [str(p) for p in rng.choice(east_asian, size=size, replace=False)]
            matrix = np.stack([members[p][0].encodings[encoder] for p in roster]).astype(np.float32)
            for face in faces:
                probe_id = face.person or face.name
                if face.person in roster and face is members[face.person][0]:
                    continue  # the enrolled photo itself
                threshold = fold_threshold(trials, {probe_id, *roster}, buffer)
                nearest, distance, gap = _nearest(face.encodings[encoder], matrix, roster)
                ok = distance <= threshold and gap >= margin
                if face.person in roster:
                    genuine += 1
                    genuine_ok += int(ok and nearest == face.person)
                    false_accepts += int(ok and nearest != face.person)
                else:
                    impostors += 1
                    if ok:
                        false_accepts += 1
                        worst.append(f"{face.name} as {nearest} at {distance:.3f}")
        out[str(size)] = {
            "draws": SMALL_ROSTER_DRAWS,
            "tar": _rate(genuine_ok, genuine),
            "false_accepts": _rate(false_accepts, genuine + impostors),
            "impostor_trials": impostors,
            "examples": sorted(set(worst))[:5],
        }
    return out


def same_person_distances(faces: Sequence[Face], encoder: str) -> dict[str, Any]:
    """Distances between two photos of one member and of two different members (enrolment's check)."""
    people = [f for f in faces if f.person is not None]
    matrix = np.stack([f.encodings[encoder] for f in people]).astype(np.float64)
    labels = np.array([f.person for f in people])
    d = np.linalg.norm(matrix[:, None, :] - matrix[None, :, :], axis=2)
    upper = np.triu(np.ones_like(d, dtype=bool), k=1)
    same = d[upper & (labels[:, None] == labels[None, :])]
    different = d[upper & (labels[:, None] != labels[None, :])]
    return {
        "same_max": round(float(same.max()), 3),
        "same_p95": round(float(np.percentile(same, 95)), 3),
        "different_min": round(float(different.min()), 3),
        "same_pairs": int(same.size),
        "different_pairs": int(different.size),
    }


# -------------------------------------------------------------------------------------- run


def load_models(eval_model: Path) -> dict[str, FaceModel]:
    from recognizer.encoder import DlibFaceModel
    from recognizer.onnx_encoder import OnnxFaceModel

    # "onnx" as a station runs it (backend "auto": OpenCV's DNN here), "onnxruntime" the same model
    # forced onto onnxruntime: timed only (its embeddings are the same, checked at load).
    return {
        "dlib": DlibFaceModel(),
        "onnx": OnnxFaceModel(eval_model),
        "onnxruntime": OnnxFaceModel(eval_model, backend="onnxruntime"),
    }


def run_benchmark(
    eval_model: Path, roots: Sequence[Path], models: Mapping[str, FaceModel] | None = None
) -> dict[str, Any]:
    """Both encoders over `roots` (laid out like ../shared/data/faces); `models` for tests."""
    models = dict(models) if models is not None else load_models(eval_model)
    settings = DetectionSettings(detect_max_side=1280)
    pipelines = {k: FacePipeline(m, settings) for k, m in models.items()}
    started = time.perf_counter()
    faces, timings, skipped = encode_all(pipelines, roots)
    encode_s = time.perf_counter() - started
    result: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "onnxruntime": _version("onnxruntime"),
        "models": {
            k: {"name": m.name, "dim": m.dim, "backend": getattr(getattr(m, "info", None), "backend", "dlib")}
            for k, m in models.items()
        },
        "data": [str(r) for r in roots],
        "faces": len(faces),
        "people": len({f.person for f in faces if f.person}),
        "east_asian_people": len({f.person for f in faces if f.person and f.east_asian}),
        "strangers": sum(1 for f in faces if f.person is None),
        "skipped": skipped,
        "encode_s": round(encode_s, 1),
        "timing": {k: {part: summary(v) for part, v in parts.items()} for k, parts in timings.items()},
    }
    dlib_encode = result["timing"]["dlib"]["encode"]["p50_ms"]
    onnx_encode = result["timing"]["onnx"]["encode"]["p50_ms"]
    result["encode_speedup_p50"] = ratio(dlib_encode, onnx_encode)
    if "onnxruntime" in timings:
        result["encode_speedup_p50_onnxruntime"] = ratio(
            dlib_encode, result["timing"]["onnxruntime"]["encode"]["p50_ms"]
        )
    result["quality"] = {}
    for key in QUALITY_KEYS:
        trials = build_trials(faces, key)
        result["quality"][key] = {
            "leave_identity_out": leave_identity_out(trials, key),
            "small_rosters": small_rosters(faces, trials, key),
            "pairs": same_person_distances(faces, key),
        }
    return result


def _version(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _pct(rate: Mapping[str, Any]) -> str:
    if rate["n"] == 0:
        return "-"
    low, high = rate["wilson95"]
    return f"{100 * rate['rate']:.1f} % ({rate['hits']}/{rate['n']}; {100 * low:.1f}-{100 * high:.1f})"


def render_markdown(result: Mapping[str, Any], command: str) -> str:
    m = result["machine"]
    timing = result["timing"]
    lines = [
        MARK_START,
        "## Encoders: dlib against the ONNX evaluation model (bench.encoders)",
        "",
        f"Measured {result['when']} with `{command}`. Machine: {m['cpu']}, {m['cores']} cores, {m['os']}; "
        f"Python {m['python']}, numpy {m['numpy']}, dlib {m['dlib']}, OpenCV {m['opencv']}, onnxruntime "
        f"{result['onnxruntime']} (1 intra-op thread); OPENBLAS_NUM_THREADS={m['openblas_num_threads']}. "
        f"Models: dlib `{result['models']['dlib']['name']}` ({result['models']['dlib']['dim']}-d), "
        f"evaluation model `{result['models']['onnx']['name']}` ({result['models']['onnx']['dim']}-d, "
        "`make eval-model`: provenance unknown, evaluation only). Data: "
        f"{result['faces']} faces ({result['people']} people, {result['east_asian_people']} East Asian; "
        f"{result['strangers']} strangers) of ../shared/data/faces and faces-ea with a usable face for "
        f"both encoders ({len(result['skipped'])} photos left out).",
        "",
        "Per face, the encoders on the same faces, interleaved photo by photo (p50 / p95 / mean ms; "
        "`encode` is the embedding once the landmarks are known: dlib's chip + ResNet, or the ONNX "
        "model's alignment + inference + normalisation):",
        "",
        "| encoder | runs on | embedding (`encode`) | landmarks | n |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key in timing:
        enc, lm = timing[key]["encode"], timing[key]["landmarks"]
        lines.append(
            f"| {key} | {result['models'][key]['backend']} | "
            f"{enc['p50_ms']:.1f} / {enc['p95_ms']:.1f} / {enc['mean_ms']:.1f} | "
            f"{lm['p50_ms']:.2f} / {lm['p95_ms']:.2f} / {lm['mean_ms']:.2f} | {enc['n']} |"
        )
    other = result.get("encode_speedup_p50_onnxruntime")
    lines += [
        "",
        f"Embedding p50, dlib / evaluation model: **{result['encode_speedup_p50']}x** as a station runs "
        f'it (`onnx_backend = "auto"`)'
        + (f", {other}x on onnxruntime" if other is not None else "")
        + " (same run).",
        "",
        "Threshold + margin rule (no cohort ratio), one enrolment photo, every member on the roster; "
        "the threshold chosen leave-identity-out (nearest impostor of the other identities' trials minus "
        "the buffer); 95 % Wilson intervals:",
        "",
        "| encoder | TAR | TAR East Asian | false accepts | fold thresholds min / median / max | "
        "threshold on all trials (preset) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key in ("dlib", "onnx"):
        q = result["quality"][key]["leave_identity_out"]
        f = q["fold_thresholds"]
        lines.append(
            f"| {key} | {_pct(q['tar'])} | {_pct(q['tar_east_asian'])} | {_pct(q['false_accepts'])} | "
            f"{f['min']:.3f} / {f['median']:.3f} / {f['max']:.3f} | {q['preset_max_distance']:.3f} |"
        )
    lines += [
        "",
        f"Impostor trials: {result['quality']['onnx']['leave_identity_out']['impostor_trials']} "
        f"({result['quality']['onnx']['leave_identity_out']['impostor_trials_east_asian']} East Asian); "
        "buffer 0.01 (dlib) / 0.02 (ONNX, unit vectors: twice the scale); margin 0.05.",
        "",
    ]
    for key in ("dlib", "onnx"):
        fa = result["quality"][key]["leave_identity_out"]["false_accepted"]
        if fa:
            lines.append(
                f"False accepts ({key}): " + "; ".join(fa[:8]) + ("; ..." if len(fa) > 8 else "") + "."
            )
            lines.append("")
    lines += [
        f"Small East Asian rosters ({SMALL_ROSTER_DRAWS} random draws each, everyone else an impostor, "
        "thresholds chosen without the probe's identity and the roster's members):",
        "",
        "| encoder | members | TAR | false accepts |",
        "| --- | --- | --- | --- |",
    ]
    for key in ("dlib", "onnx"):
        for size, s in result["quality"][key]["small_rosters"].items():
            lines.append(f"| {key} | {size} | {_pct(s['tar'])} | {_pct(s['false_accepts'])} |")
    lines += ["", "Two photos of one person / of two people (enrolment's same-person check):", ""]
    for key in ("dlib", "onnx"):
        p = result["quality"][key]["pairs"]
        lines.append(
            f"- {key}: same person max {p['same_max']:.3f} "
            f"(p95 {p['same_p95']:.3f}, {p['same_pairs']} pairs); "
            f"different people min {p['different_min']:.3f} ({p['different_pairs']} pairs)."
        )
    lines += [
        "",
        "This compares the encoders on a plain threshold + margin rule; the door's rule and both models' "
        "shipped presets are measured by bench.quality (\"Recognition quality\").",
        MARK_END,
    ]
    return "\n".join(lines) + "\n"


def render_text(result: Mapping[str, Any]) -> str:
    t = result["timing"]
    lines = [
        f"faces {result['faces']} ({result['people']} people, {result['strangers']} strangers), "
        f"encoded in {result['encode_s']} s",
        f"embedding p50: dlib {t['dlib']['encode']['p50_ms']} ms, onnx {t['onnx']['encode']['p50_ms']} ms "
        f"({result['encode_speedup_p50']}x)",
    ]
    for key in ("dlib", "onnx"):
        q = result["quality"][key]["leave_identity_out"]
        lines.append(
            f"{key}: LOO TAR {_pct(q['tar'])}, East Asian {_pct(q['tar_east_asian'])}, "
            f"false accepts {_pct(q['false_accepts'])}, preset threshold {q['preset_max_distance']}"
        )
        for size, s in result["quality"][key]["small_rosters"].items():
            lines.append(f"  {size}-member EA rosters: TAR {_pct(s['tar'])}, FA {_pct(s['false_accepts'])}")
        p = result["quality"][key]["pairs"]
        lines.append(f"  same person max {p['same_max']}, different people min {p['different_min']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.encoders", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")
    parser.add_argument("--no-write", action="store_true", help="do not rewrite docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    model, why = find_eval_model()
    if model is None:
        sys.stderr.write(f"bench.encoders: {why}\n")
        return 2
    faces = faces_dir()
    if faces is None:
        sys.stderr.write("bench.encoders: face data set not found ($YIZHAN_TEST_FACES)\n")
        return 2
    roots = [faces] + [r for r in (faces_ea_dir(faces),) if r is not None]
    result = run_benchmark(model, roots)
    given = list(sys.argv[1:] if argv is None else argv)
    command = "python -m bench.encoders" + (" " + shlex.join(given) if given else "")
    if not args.no_write:
        report.write_section(BENCHMARKS_MD, render_markdown(result, command), MARK_START, MARK_END)
    sys.stdout.write((json.dumps(result, indent=1) if args.json else render_text(result)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
