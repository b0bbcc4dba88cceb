"""`make demo` (`python -m demo`): the whole system on one machine, and the fresh-machine fallback.

With mosquitto: a centre, the shipped broker config, two stations on generated videos; the story
must run to its end (a member enrolled at one station opens the other, alarms reach the group
robot, a station's power cut and return). Without it: the station alone, and one line that says
how to see the fleet (never a silent skip).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mqtt_broker import free_port, mosquitto_path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_without_mosquitto_the_station_runs_alone_and_says_how_to_see_the_fleet(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "demo", "--broker", str(tmp_path / "no-such-mosquitto")],
        capture_output=True, text=True, timeout=900, env=ENV, cwd=ROOT, check=False,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "mosquitto was not found" in lines[0] and "make demo again" in lines[0]
    assert "all decisions as expected" in done.stdout


@pytest.mark.skipif(
    importlib.util.find_spec("central.ingest") is None,
    reason="the fleet demo needs the centre's ingest (branch ingest), not merged here yet",
)
def test_the_whole_fleet_story_runs_to_its_end(tmp_path: Path) -> None:
    mosquitto_path()  # skips locally without mosquitto, fails under CI
    folder = tmp_path / "fleet"
    done = subprocess.run(
        # A port of its own: another test run on this machine may have a fleet demo on 8090.
        [sys.executable, "-m", "demo", "--until-done", "--timeout", "300", "--dir", str(folder),
         "--web-port", str(free_port())],
        capture_output=True, text=True, timeout=2400, env=ENV, cwd=ROOT, check=False,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-2000:]
    for step in (
        "ok both stations online, with the centre's roster",
        "ok the centre has m-obama's face from st-a",
        "ok m-obama, enrolled at st-a, opened st-b",
        "ok the refusals at st-b raised an alarm the group robot received",
        "ok station offline alarm for st-b reached the group robot",
        "ok st-b back online",
    ):
        assert step in out, step
    assert "/dashboard/   user admin, password " in out
    assert "[group chat] 【严重】驿站告警：望京驿站 · 驿站离线" in out
    assert "st-b entry    face   奥巴马 [snapshot]" in out
