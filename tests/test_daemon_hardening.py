"""The daemon's crash paths and its hold on the data directory (issue 10, items 2 and 14)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from edge.app import RunOptions, StationDaemon
from edge.config import Config, parse_config
from edge.decide_loop import DecideLoop
from edge.station import Station
from models import events as event_store

RELAY_PIN = 17


def make_config(data_dir: Path, **sections: Any) -> Config:
    return parse_config(
        {
            "storage": {"data_dir": str(data_dir)},
            "station": {"station_id": "st-hard"},
            "api": {"enabled": False},
            **sections,
        }
    )


def make_daemon(config: Config, face_model: Any, tmp_path: Path, factory: Any = None) -> StationDaemon:
    station = Station(config, env={})
    station.face_model = face_model
    return StationDaemon(
        config,
        RunOptions(camera_source=str(tmp_path / "no-camera.avi")),
        pin_factory=factory or MockFactory(),
        station=station,
    )


def test_an_exception_escaping_the_decide_loop_exits_non_zero(
    tmp_path: Path, face_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd restarts a failed unit; a crashed loop used to end the daemon with exit code 0."""
    started = threading.Event()

    def crash(self: DecideLoop) -> None:
        started.set()
        raise RuntimeError("a bug in the loop")

    monkeypatch.setattr(DecideLoop, "run", crash)
    factory = MockFactory()
    daemon = make_daemon(make_config(tmp_path / "d"), face_model, tmp_path, factory)
    assert daemon.run() == 1
    assert started.is_set() and daemon.crashed
    assert factory.pin(RELAY_PIN).state is False
    assert daemon._station is not None
    with daemon._station.sessions() as session:
        kinds = [e.kind for e in event_store.list_events(session)]
    assert kinds[0] == "station_started" and kinds[-1] == "station_stopped"
    daemon._station.close()


def test_a_requested_stop_still_exits_zero(tmp_path: Path, face_model: Any) -> None:
    daemon = make_daemon(make_config(tmp_path / "d"), face_model, tmp_path)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()))
    thread.start()
    deadline = time.monotonic() + 30
    while daemon.loop is None and time.monotonic() < deadline:
        time.sleep(0.02)
    daemon.stop_event.set()
    thread.join(30)
    assert result == [0]
    assert daemon._station is not None
    daemon._station.close()
