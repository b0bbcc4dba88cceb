"""Smoke test of bench/sync.py: a small backlog drains through the real broker and the output keeps
its shape. No number here is a measurement (and none is asserted: the machine may be busy)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import sync


def test_a_small_drain_runs_end_to_end_and_renders(tmp_path: Path) -> None:
    result: dict[str, Any] = json.loads(json.dumps(sync.run_benchmark(events=300, runs=1)))
    assert result["all_delivered"] and result["events"] == 300
    (run,) = result["runs"]
    assert run["delivered"] == 300 and run["in_order"] and run["exit_code"] == 0 and run["seconds"] > 0
    section = sync.render_markdown(result, sync.command_line(["--events", "300"]))
    assert section.startswith(sync.MARK_START) and section.rstrip().endswith(sync.MARK_END)
    assert "bench.sync --events 300" in section and result["machine"]["cpu"] in section
