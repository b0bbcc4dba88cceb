"""Smoke test of bench/recognition.py: every section runs on the fixture photos and the output keeps
the shape `make bench`, docs/BENCHMARKS.md and anyone parsing `--json` rely on.

Repeat counts are tiny, so no number here is a measurement; the test only proves the benchmark
still runs end to end against the current recognizer, QR and roster APIs (about 15 s).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import recognition


@pytest.fixture(scope="module")
def result(pipeline: Any) -> dict[str, Any]:
    config = recognition.BenchConfig(
        frame_repeats=1,
        photo_repeats=1,
        match_repeats=3,
        naive_match_repeats=2,
        qr_repeats=3,
        door_rss_rows=2_000,
        use_fixtures=True,
    )
    out = recognition.run_benchmark(config, pipeline)
    out["command"] = recognition.command_line(["--json"])
    return out


def _is_ms(value: object) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool) and value >= 0


def test_json_shape(result: dict[str, Any]) -> None:
    decoded = json.loads(json.dumps(result))  # plain JSON types only
    for path in ("face", "naive"):
        assert _is_ms(decoded[path]["p50_ms"]) and _is_ms(decoded[path]["p95_ms"])
        assert decoded[path]["n"] >= 1
        assert decoded["photos"][path]["p50_ms"] > 0
    assert set(decoded["face"]["stages"]) >= {"detect"}
    assert set(decoded["naive"]["stages"]) == {"encodings", "match"}
    assert set(decoded["match_1n_ms"]) == {"1000", "10000", "100000"}
    for size in ("1000", "10000", "100000"):
        assert _is_ms(decoded["match_1n_ms"][size]["p50_ms"])
        assert _is_ms(decoded["match_1n_naive_norm_ms"][size]["p50_ms"])
    assert _is_ms(decoded["qr"]["p50_ms"])
    assert decoded["qr"]["failures"] == 0, "the rendered token must decode and verify on every call"
    for scenario in (decoded, decoded["photos"]):
        assert scenario["speedup_p50"] > 0
        for path in ("yizhan", "naive"):
            acc = scenario["accuracy"][path]
            assert set(acc) >= {"true_accepts", "genuine", "tar", "false_accepts", "impostors", "no_face"}
            assert acc["genuine"] == 1 and acc["impostors"] == 1  # obama_2; eileen_collins
    assert decoded["peak_rss_mb"] > 50
    assert decoded["memory"]["door_process"]["peak_rss_mb"] > 50
    assert decoded["data"]["source"] == "fixtures"
    assert decoded["machine"]["openblas_num_threads"] == "1"
    assert set(decoded["targets"]) == {
        "face_speedup_2x",
        "accuracy_equal_or_better",
        "match_100k_p50_5ms",
        "qr_p50_15ms",
    }


def test_markdown_section_is_rewritten_in_place(result: dict[str, Any], tmp_path: Path) -> None:
    section = recognition.render_markdown(result, result["command"])
    assert section.startswith(recognition.MARK_START) and section.rstrip().endswith(recognition.MARK_END)
    assert result["machine"]["cpu"] in section and result["command"] in section
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(
        "# Benchmarks\n\nintro\n\n"
        + recognition.MARK_START
        + "\nstale\n"
        + recognition.MARK_END
        + "\n\n## Another section\nkept\n",
        encoding="utf-8",
    )
    recognition.write_section(doc, section)
    recognition.write_section(doc, section)  # idempotent
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks\n\nintro\n\n")
    assert text.endswith("\n\n## Another section\nkept\n")
    assert "stale" not in text and text.count(recognition.MARK_START) == 1
    fresh = tmp_path / "new" / "BENCHMARKS.md"
    recognition.write_section(fresh, section)
    assert recognition.MARK_END in fresh.read_text(encoding="utf-8")
    assert "frames" in recognition.render_text(result)


def test_frame_keeps_aspect_and_size() -> None:
    tall = np.zeros((1000, 500, 3), dtype=np.uint8)
    frame = recognition.to_frame(tall)
    assert frame.shape == (480, 640, 3)
    columns = np.where((frame != 114).any(axis=(0, 2)))[0]
    assert columns.size == 240  # 500 * 480 / 1000, centred
    assert frame.dtype == np.uint8


def test_padding_rows_sit_like_strangers() -> None:
    rng = np.random.default_rng(1)
    real = (rng.normal(0.0, 0.053, (40, 128)) + rng.normal(0.0, 0.1, 128)).astype(np.float32)
    pad = recognition.padding_vectors(real, 500)
    distances = np.linalg.norm(real[:, None, :] - pad[None, :, :], axis=2)
    assert 0.5 < float(np.median(distances)) < 1.2


def test_encoders_benchmark_runs_on_the_fixture_photos(
    tmp_path: Path, fixtures: Path, face_model: Any, eval_model_path: Path
) -> None:
    """bench.encoders end to end on the public-domain fixtures (no number here is a measurement)."""
    import shutil

    from bench import encoders
    from recognizer.onnx_encoder import OnnxFaceModel

    root = tmp_path / "faces"
    rows = ["path\tperson_slug\twidth\theight\tfaces_expected\tnotes\tfixture_ok"]
    for folder, name, person in (
        ("people/barack_obama", "obama_1.jpg", "barack_obama"),
        ("people/barack_obama", "obama_2.jpg", "barack_obama"),
        ("people/joe_biden", "biden_1.jpg", "joe_biden"),
        ("unknown", "eileen_collins.png", "unknown"),
    ):
        (root / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(fixtures / name, root / folder / name)
        rows.append(f"{folder}/{name}\t{person}\t0\t0\t1\t\tyes")
    (root / "MANIFEST.tsv").write_text("\n".join(rows) + "\n")
    models = {"dlib": face_model, "onnx": OnnxFaceModel(eval_model_path)}
    result = json.loads(json.dumps(encoders.run_benchmark(eval_model_path, [root], models)))
    assert result["faces"] == 4 and result["people"] == 2 and result["strangers"] == 1
    for key in ("dlib", "onnx"):
        assert result["timing"][key]["encode"]["n"] == 4
        loo = result["quality"][key]["leave_identity_out"]
        assert loo["tar"]["n"] == 1 and loo["impostor_trials"] == 4
    assert result["encode_speedup_p50"] > 0
    section = encoders.render_markdown(result, "python -m bench.encoders")
    assert section.startswith(encoders.MARK_START) and section.rstrip().endswith(encoders.MARK_END)
