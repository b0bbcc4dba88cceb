"""`python -m bench.fleet --json` runs end to end (a handful of stations; the figures are in
docs/BENCHMARKS.md, measured with 2,000: a test never asserts speed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mqtt_broker import mosquitto_path
from pg_server import postgres_bin_dir

REPO = Path(__file__).resolve().parent.parent


def test_the_fleet_benchmark_runs_and_reports_the_contract_keys() -> None:
    mosquitto_path()
    postgres_bin_dir()  # skip (locally) or fail (CI) like the other tests without the servers
    done = subprocess.run(
        [sys.executable, "-m", "bench.fleet", "--stations", "6", "--workers", "2", "--rate", "2",
         "--duration", "4", "--warmup", "1", "--ack-timeout", "5", "--steady-s", "2", "--steady-rate", "1",
         "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for key in (
        "stations",
        "workers",
        "events_per_s",
        "live_p95_ms",
        "roster_fanout_s",
        "lost",
        "duplicated",
    ):
        assert key in result, key
    assert result["stations"] == 6 and result["workers"] == 2
    assert result["lost"] == 0 and result["duplicated"] == 0  # across the kill -9 of a worker
    run = result["runs"][0]
    assert run["killed_worker"] and run["published"] == run["stored"] > 0
    assert result["roster_fanout_s"] is not None  # every station got the change
