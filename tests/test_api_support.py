"""Shared set-up for the API tests (this module holds no tests).

Every API test runs against a real `StationDaemon`: real SQLite, a real video file as the camera,
gpiozero's MockFactory pins, the session's dlib model. Nothing of ours is mocked.
"""

from __future__ import annotations

import functools
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from gpiozero.pins.mock import MockFactory

from edge.api.app import create_app
from edge.api.auth import InstallerStore
from edge.app import RunOptions, StationDaemon
from edge.config import Config, parse_config
from edge.demo_video import Scene, face_crop, write_video
from edge.station import Station, read_photo

RELAY_PIN = 17
USERNAME = "installer"


@functools.cache
def api_face_model() -> Any:
    """The API's own dlib model for TestClient apps, loaded once per test session.

    Never the `face_model` fixture: that one is the decide loop's, and dlib models must not be used
    by two threads at once (see edge/api/faces.py).
    """
    from recognizer.encoder import DlibFaceModel

    return DlibFaceModel()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_config(data_dir: Path, *, api: dict[str, Any] | None = None, **sections: Any) -> Config:
    return parse_config(
        {
            "storage": {"data_dir": str(data_dir)},
            "station": {"station_id": "st-api"},
            "api": {"enabled": True, "host": "127.0.0.1", "port": free_port(), **(api or {})},
            "camera": {"fps_limit": 8.0},
            **sections,
        }
    )


def face_video(
    station: Station, fixtures: Path, path: Path, photo: str = "eileen_collins.png", seconds: float = 8.0
) -> Path:
    """A door video: a short empty doorway, then one person standing at the camera (it loops)."""
    rgb = read_photo(fixtures / photo)
    face = face_crop(rgb, station.photo_pipeline.detect(rgb)[0].box)
    write_video(path, [Scene("empty", None, 0.5), Scene("face", face, seconds)])
    return path


#: Waits give up after at least this long (they return as soon as the condition holds): a busy
#: machine must not turn a slow moment into a failure.
WAIT_FLOOR_S = 60.0


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    timeout = max(timeout, WAIT_FLOOR_S)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


@dataclass
class ApiEnv:
    daemon: StationDaemon
    station: Station
    config: Config
    data_dir: Path
    factory: MockFactory
    app: Any
    client: TestClient
    password: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def login(self, client: TestClient | None = None) -> dict[str, Any]:
        response = (client or self.client).post(
            "/auth/login", json={"username": USERNAME, "password": self.password}
        )
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data


@contextmanager
def running_daemon(
    config: Config, station: Station, video: Path, *, with_api: bool = False, with_sync: bool = False
) -> Iterator[tuple[StationDaemon, MockFactory]]:
    factory = MockFactory()
    daemon = StationDaemon(
        config,
        RunOptions(camera_source=str(video), with_sync=with_sync, with_api=with_api),
        pin_factory=factory,
        station=station,
    )
    try:
        daemon.start()
        wait_for(daemon.latest_frame, timeout=15.0)
        yield daemon, factory
    finally:
        daemon.stop()
        factory.close()


@contextmanager
def api_env(
    data_dir: Path,
    face_model: Any,
    fixtures: Path,
    *,
    api: dict[str, Any] | None = None,
    photo: str = "eileen_collins.png",
    **sections: Any,
) -> Iterator[ApiEnv]:
    """A running daemon (without its HTTP server) and a TestClient on its app, logged in."""
    config = make_config(data_dir, api=api, **sections)
    station = Station(config, env={})
    station.face_model = face_model  # share the session's loaded dlib model
    password = InstallerStore.for_data_dir(data_dir).add(USERNAME)
    video = face_video(station, fixtures, data_dir / "door.avi", photo=photo)
    try:
        with running_daemon(config, station, video) as (daemon, factory):
            app = create_app(daemon, face_model=api_face_model())
            with TestClient(app) as client:
                token = client.post("/auth/login", json={"username": USERNAME, "password": password}).json()[
                    "token"
                ]
                client.cookies.clear()  # tests choose cookie or bearer explicitly
                yield ApiEnv(daemon, station, config, data_dir, factory, app, client, password, token)
    finally:
        station.close()
