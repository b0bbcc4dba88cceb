"""Smoke test of bench/door.py: every part runs end to end with tiny settings and the output keeps
the shape docs/BENCHMARKS.md and anyone parsing `--json` rely on.

One face and one QR appearance, a 2 s CPU window and a 200-member roster: no number here is a
measurement. The test proves the benchmark still drives the current daemon, CLI, member store and
mock pins, and that its two latency clocks time the same pulses (about 30-40 s, most of it real-time
video). Nothing here may depend on how busy the machine is.
"""

from __future__ import annotations

import json
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest

from bench import door

PinState = namedtuple("PinState", ("timestamp", "state"))  # as gpiozero.pins.mock defines it

TINY = door.BenchConfig(
    face_appearances=1,
    qr_appearances=1,
    face_s=3.0,
    qr_s=1.0,
    gap_s=0.7,
    floor_repeats=1,
    cpu_settle_s=0.5,
    cpu_window_s=2.0,
    roster_size=200,
    memory_runs=1,
)


@pytest.fixture(scope="module")
def result(face_model: Any) -> dict[str, Any]:
    out = door.run_benchmark(TINY, face_model)
    out["command"] = door.command_line(["--json"])
    return out


def _is_ms(value: object) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool) and value >= 0


def test_rising_edges_are_rebuilt_from_gpiozero_deltas() -> None:
    states = [PinState(0.0, False), PinState(0.5, True), PinState(0.25, False), PinState(1.0, True)]
    assert door.rising_edge_times(states, base=10.0) == pytest.approx([10.5, 11.75])
    assert door.rising_edge_times([PinState(0.0, True), PinState(0.1, False)], base=0.0) == []


def test_each_entry_gets_the_first_unused_edge_after_its_frame() -> None:
    assert door.pair_edges([1.0, 2.0, 3.0], [1.1, 2.2]) == [1.1, 2.2, None]
    assert door.pair_edges([1.0, 1.05], [0.5, 1.1, 1.2]) == [1.1, 1.2]


def test_notify_listener_drains_so_a_pinging_daemon_never_blocks(tmp_path: Path) -> None:
    """More datagrams than a unix socket queues (10): a sender blocks unless someone reads them."""
    from edge.sdnotify import SystemdNotifier

    listener = door.NotifyListener(tmp_path)
    try:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": listener.address, "WATCHDOG_USEC": "1000000"})
        assert notifier.ready("deciding")
        for _ in range(50):
            assert notifier.watchdog()
            time.sleep(0.005)  # sends never block now; the listener must keep the queue drained
        assert listener.ready.wait(30.0) and listener.ready_at is not None
    finally:
        listener.close()


def test_latency_shape_and_the_two_clocks_agree(result: dict[str, Any]) -> None:
    decoded = json.loads(json.dumps(result))  # plain JSON types only
    latency = decoded["latency"]
    for method in ("face", "qr"):
        row = latency[method]
        assert row["n"] == 1, f"expected one {method} entry, other events: {latency['other_events']}"
        assert _is_ms(row["p50_ms"]) and _is_ms(row["p95_ms"]) and _is_ms(row["pin_p50_ms"])
        assert row["onset_p50_ms"] >= row["p50_ms"]
    assert latency["relay_rising_edges"] == 2 and latency["unpaired_entries"] == 0
    # The two clocks time the same pulse: far less apart than two pulses (seconds) would be; how
    # close (0.006 ms on a quiet box) is the benchmark's figure, a busy machine widens it.
    assert latency["pin_vs_daemon_max_abs_ms"] < 1000.0  # pulses are seconds apart
    floor = latency["floor_ms"]
    assert floor["n"] == 1 and floor["misses"] == 0
    assert floor["detect"] > 0 and floor["encode"] > 0 and floor["total"] >= floor["encode"]
    assert floor["cold"]["n"] == 1 and floor["cold"]["total"] > 0
    assert latency["qr_floor_ms"]["n"] == 1 and latency["qr_floor_ms"]["misses"] == 0
    assert latency["ratio_face_to_floor"] > 0
    assert latency["face"]["in_loop_pipeline_p50_ms"] > 0


def test_cpu_and_memory_shape(result: dict[str, Any]) -> None:
    cpu = result["cpu_static_15fps"]
    assert cpu["returncode"] == 0 and "camera_down" not in cpu["events"]
    assert cpu["percent_of_one_core"] > 0 and cpu["seconds_measured"] >= 1.9
    assert set(cpu["attribution"]["cpu_ms_per_s"]) == {
        "video_decode",
        "grey",
        "qr_decode",
        "change",
        "idle_face_detection",
    }
    assert cpu["attribution"]["frames"] > 30
    memory = result["rss_mb"]
    # Obama is enrolled from both of his photos (bench.door.FACE_MEMBERS): three templates.
    assert (memory["baseline"]["members"], memory["baseline"]["templates"]) == (3, 3)
    assert (memory["roster_10k"]["members"], memory["roster_10k"]["templates"]) == (203, 203)
    for run in (memory["baseline"], memory["roster_10k"]):
        assert run["returncodes"] == [0] and run["runs"] == 1 and run["peak_mb"] > 50
        assert run["peak_mb"] >= run["rss_end_mb"] > 0
        assert ["entry", "face", "m-obama", None] in json.loads(json.dumps(run["decisions"]))
    assert result["machine"]["openblas_num_threads"] == "1"
    assert set(result["other_processes_cpu_percent"]) == {"latency", "cpu", "memory"}


def test_markdown_section_is_rewritten_in_place(result: dict[str, Any], tmp_path: Path) -> None:
    section = door.render_markdown(result, result["command"])
    assert section.startswith(door.MARK_START) and section.rstrip().endswith(door.MARK_END)
    assert result["machine"]["cpu"] in section and result["command"] in section
    other = "<!-- bench.recognition:start -->\nrecognition numbers\n<!-- bench.recognition:end -->\n"
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(
        "# Benchmarks\n\nintro\n\n"
        + other
        + "\n"
        + door.MARK_START
        + "\nstale\n"
        + door.MARK_END
        + "\ntail\n"
    )
    door.write_section(doc, section)
    text = doc.read_text()
    assert "stale" not in text and other in text and text.endswith("tail\n")
    assert text.count(door.MARK_START) == 1
    door.write_section(doc, section)
    assert doc.read_text() == text  # idempotent
    fresh = tmp_path / "new.md"
    fresh.write_text("# Benchmarks\n\n" + other)
    door.write_section(fresh, section)
    assert fresh.read_text().startswith("# Benchmarks\n\n" + other) and door.MARK_END in fresh.read_text()
    assert "latency" in door.render_text(result)


def test_latency_by_encoder_shape(result: dict[str, Any]) -> None:
    """dlib's row always; the evaluation model's when `make eval-model` ran, else the reason."""
    by_encoder = json.loads(json.dumps(result))["latency_by_encoder"]
    assert by_encoder["dlib"]["model"] == "dlib_resnet_v1"
    assert by_encoder["dlib"]["face_p50_ms"] == result["latency"]["face"]["p50_ms"]
    if by_encoder["onnx"] is None:
        assert "make eval-model" in by_encoder["not_measured"]
    else:
        assert by_encoder["onnx"]["model"].startswith("onnx-")
        assert by_encoder["onnx"]["face_n"] == TINY.face_appearances  # the member was let in
        assert _is_ms(by_encoder["onnx"]["floor_total_ms"]) and by_encoder["speedup_p50"] > 0
    assert "### Latency by face encoder" in door.render_markdown(result, result["command"])
