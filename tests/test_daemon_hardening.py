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


# -- item 2: one daemon per data directory ----------------------------------------------------------


def test_a_second_daemon_on_the_same_data_dir_is_refused(tmp_path: Path, face_model: Any) -> None:
    from edge.run_lock import DataDirBusy

    config = make_config(tmp_path / "d")
    first = make_daemon(config, face_model, tmp_path)
    thread = threading.Thread(target=first.run)
    thread.start()
    second_factory = MockFactory()
    second = make_daemon(config, face_model, tmp_path, second_factory)
    try:
        deadline = time.monotonic() + 30
        while first.loop is None and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            with pytest.raises(DataDirBusy, match="already running") as refused:
                second.start()  # refused before it builds anything
        finally:
            second.stop()
        assert str(tmp_path / "d") in str(refused.value)
        assert second.door is None and second_factory.pin(RELAY_PIN).state is False
    finally:
        first.stop_event.set()
        thread.join(30)
    assert first._station is not None
    with first._station.sessions() as session:
        kinds = [e.kind for e in event_store.list_events(session)]
    assert kinds.count("station_started") == 1 and kinds.count("station_stopped") == 1
    # Once the first one stopped, the lock is free again.
    third = make_daemon(config, face_model, tmp_path)
    third.start()
    third.stop()
    for daemon in (first, second, third):
        assert daemon._station is not None
        daemon._station.close()


def _write_config(path: Path, data: Path, **extra: str) -> Path:
    sections = {
        "storage": f'data_dir = "{data}"',
        "station": 'station_id = "st-cli"',
        "api": "enabled = false",
        "camera": f'source = "{path.parent / "no-camera.avi"}"\nreconnect_max_s = 1.0',
        **extra,
    }
    path.write_text("".join(f"[{name}]\n{body}\n\n" for name, body in sections.items()), encoding="utf-8")
    return path


def test_yizhan_run_twice_exits_2_and_cli_writes_keep_working(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    config = _write_config(tmp_path / "yizhan.toml", tmp_path / "data")
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    yizhan = [sys.executable, "-m", "edge.cli", "--config", str(config), "--log-format", "text"]
    first = subprocess.Popen([*yizhan, "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        lock = tmp_path / "data" / "yizhan.lock"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (lock.exists() and lock.read_text().strip()):
            assert first.poll() is None, first.communicate()
            time.sleep(0.1)
        assert lock.read_text().strip() == str(first.pid)
        second = subprocess.run([*yizhan, "run"], capture_output=True, text=True, timeout=120, env=env)
        assert second.returncode == 2, second.stderr
        assert f"another yizhan daemon (pid {first.pid}) is already running" in second.stderr
        assert "Traceback" not in second.stderr
        # Writing CLI commands do not take the daemon lock: they work while it runs.
        added = subprocess.run(
            [*yizhan, "members", "add", "--member-id", "w-1", "--name", "张三"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert added.returncode == 0, added.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err.decode()


def test_a_missing_gpio_driver_is_exit_2_with_doctors_words(cli: Any, station_dir: Path) -> None:
    config = station_dir / "yizhan.toml"
    config.write_text(config.read_text() + '\n[door.gpio]\npin_factory = "lgpio"\n\n[api]\nenabled = false\n')
    run = cli("run", "--source", str(station_dir / "none.avi"))
    assert run.code == 2, run.err
    assert "Traceback" not in run.err and "no GPIO here" in run.err
    doctor = cli("doctor", "--no-camera", "--json")
    (gpio,) = [c for c in doctor.json() if c["check"] == "gpio"]
    assert gpio["status"] == "fail" and gpio["detail"] in run.err


def test_door_safe_loads_nothing_but_the_config_and_gpio(tmp_path: Path) -> None:
    """ExecStopPost's `yizhan door safe` is what de-energises the relay after a kill -9: it used to
    import SQLAlchemy, NumPy and OpenCV first (seconds on a Pi while the door stayed unlocked)."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from edge.cli import main\n"
        "code = main(['--config', sys.argv[1], 'door', 'safe'])\n"
        "heavy = ('sqlalchemy', 'numpy', 'cv2', 'dlib', 'fastapi')\n"
        "print(code, sorted(m for m in heavy if m in sys.modules))\n"
    )
    config = tmp_path / "y.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "d"}"\n', encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-c", script, str(config)], capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stdout + out.stderr
