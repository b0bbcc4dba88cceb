"""The phone benchmarks run (their figures are in docs/BENCHMARKS.md; nothing here judges speed)."""

from __future__ import annotations

from bench import phone_pass


def test_the_pass_reach_bench_runs() -> None:
    report = phone_pass.run()
    assert {r["lens_deg"] for r in report["results"]} == set(phone_pass.LENSES_DEG)
    assert all(r["read_mm"] for r in report["results"])  # every rendering reads from up close
    assert "bench.phone_pass" in phone_pass.markdown(report)


def test_the_scan_to_relay_bench_runs() -> None:
    """`python -m bench.phone_open` end to end with two taps (mosquitto, the centre, a station)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from mqtt_broker import mosquitto_path

    mosquitto_path()  # skip (locally) or fail (CI) like the other broker tests
    done = subprocess.run(
        [sys.executable, "-m", "bench.phone_open", "--opens", "2", "--json"],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["opens"] == 2 and result["failures"] == [] and result["measured"] == 2
    assert {"p50_ms", "p95_ms"} <= set(result["request_to_relay"])
