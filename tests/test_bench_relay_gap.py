"""bench/relay_gap runs (one kill -9 and one `yizhan door safe`); no number here is a measurement."""

from __future__ import annotations

from pathlib import Path

from bench import relay_gap


def test_the_relay_gap_benchmark_runs(tmp_path: Path) -> None:
    config = relay_gap._config(tmp_path)
    (gap,) = relay_gap.measure_supervisor(config, 1)
    assert gap > 0
    text = relay_gap.section(
        {
            "mode": "supervisor",
            "runs": 1,
            "median_s": gap,
            "max_s": gap,
            "door_safe_alone_s": gap,
            "load_average_1m": 0.0,
            "machine": {"cpu": "x", "cores": 2},
            "command": "python -m bench.relay_gap --runs 1",
        }
    )
    assert text.startswith(relay_gap.START) and text.rstrip().endswith(relay_gap.END)
