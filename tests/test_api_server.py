"""`yizhan run` serves the API with real uvicorn on its own thread; an HTTP problem never stops the door."""

from __future__ import annotations

import json
import signal
import socket
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_api_support import USERNAME, face_video, make_config, running_daemon, wait_for

from edge.api.auth import InstallerStore
from edge.api.server import ApiServer
from edge.station import Station

ARTIFACTS = Path(__file__).parent / "artifacts"


def _station(data: Path, face_model: Any, fixtures: Path, **api: Any) -> tuple[Any, Station, Path, str]:
    config = make_config(data, api=api or None)
    station = Station(config, env={})
    station.face_model = face_model
    secret = InstallerStore.for_data_dir(data).add(USERNAME)
    return config, station, face_video(station, fixtures, data / "door.avi"), secret


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_the_daemon_serves_the_api_on_its_own_thread(tmp_path: Path, face_model: Any, fixtures: Path) -> None:
    config, station, video, secret = _station(tmp_path, face_model, fixtures)
    handlers = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    base = f"http://127.0.0.1:{config.api.port}"
    try:
        with running_daemon(config, station, video, with_api=True) as (daemon, _):
            server = daemon.api
            assert isinstance(server, ApiServer) and server.listening
            assert [t.name for t in threading.enumerate()].count("api") == 1
            assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers
            with httpx.Client(base_url=base, timeout=120) as http:  # a hang, not a slow moment
                assert http.get("/healthz").status_code == 200
                assert http.get("/api/v1/members").status_code == 401
                token = http.post("/auth/login", json={"username": USERNAME, "password": secret}).json()[
                    "token"
                ]
                auth = {"Authorization": f"Bearer {token}"}
                timings: dict[str, list[float]] = {
                    "/healthz": [],
                    "/api/v1/members": [],
                    "/api/v1/events?limit=50": [],
                }
                for _ in range(40):
                    for path, samples in timings.items():
                        started = time.perf_counter()
                        assert http.get(path, headers=auth).status_code == 200
                        samples.append((time.perf_counter() - started) * 1000)
                # A live preview and the hints, over real HTTP, while the door keeps deciding.
                frames = 0
                assert daemon.loop is not None
                decided_before = daemon.loop.stats.frames
                with http.stream(
                    "GET", "/api/v1/camera/preview.mjpg", headers=auth, params={"max_frames": 6}
                ) as stream:
                    for chunk in stream.iter_bytes():
                        frames += chunk.count(b"--yizhanframe")
                        http.get("/api/v1/camera/analysis", headers=auth)
                assert frames == 6
                # The loop went on taking frames meanwhile (it is never waiting for HTTP).
                wait_for(lambda: daemon.loop is not None and daemon.loop.stats.frames > decided_before, 30)
                page = http.get("/")
                assets = sum(
                    len(http.get(f"/static/{name}").content)
                    for name in ("app.js", "app.css", "i18n/zh-CN.json")
                )
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "api-latency.json").write_text(
                json.dumps(
                    {
                        "requests_per_route": 40,
                        "ms": {
                            path: {
                                "p50": round(statistics.median(v), 2),
                                "p95": round(_percentile(v, 0.95), 2),
                            }
                            for path, v in timings.items()
                        },
                        "page_bytes": len(page.content) + assets,
                    },
                    indent=2,
                ),
                encoding="utf-8",
            )
            # The figures are in the artifact only: a busy machine would fail any bound on them.
        assert not [t for t in threading.enumerate() if t.name == "api"]
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/healthz", timeout=2)
    finally:
        station.close()


def test_a_taken_port_does_not_keep_the_door_from_starting(
    tmp_path: Path, face_model: Any, fixtures: Path
) -> None:
    config, station, video, _ = _station(tmp_path, face_model, fixtures)
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", config.api.port))
    blocker.listen(1)
    try:
        with running_daemon(config, station, video, with_api=True) as (daemon, _):
            server = daemon.api
            assert isinstance(server, ApiServer) and not server.listening
            assert daemon.healthy_for_watchdog()  # the door runs
            blocker.close()  # the port frees up: the API binds at its next retry
            wait_for(lambda: server.listening, timeout=10)
            assert httpx.get(f"http://127.0.0.1:{config.api.port}/healthz", timeout=5).status_code == 200
    finally:
        blocker.close()
        station.close()


def test_metrics_and_health_follow_the_mqtt_connection(
    tmp_path: Path, face_model: Any, fixtures: Path
) -> None:
    from mqtt_broker import start_broker

    broker = start_broker(tmp_path / "broker")
    config = make_config(tmp_path / "data", mqtt={"enabled": True, "host": "127.0.0.1", "port": broker.port})
    station = Station(config, env={})
    station.face_model = face_model
    secret = InstallerStore.for_data_dir(tmp_path / "data").add(USERNAME)
    video = face_video(station, fixtures, tmp_path / "door.avi")
    try:
        with running_daemon(config, station, video, with_api=True, with_sync=True) as (daemon, _):
            with httpx.Client(base_url=f"http://127.0.0.1:{config.api.port}", timeout=120) as http:
                token = http.post("/auth/login", json={"username": USERNAME, "password": secret}).json()[
                    "token"
                ]
                auth = {"Authorization": f"Bearer {token}"}

                def metric() -> str:
                    return str(http.get("/metrics", headers=auth).text)

                wait_for(lambda: "yizhan_mqtt_connected 1.0" in metric(), 20)
                assert "yizhan_mqtt_enabled 1.0" in metric()
                assert http.get("/api/v1/health", headers=auth).json()["mqtt"]["connected"] is True
                broker.stop()
                wait_for(lambda: "yizhan_mqtt_connected 0.0" in metric(), 20)
                assert daemon.healthy_for_watchdog()  # the door does not care
    finally:
        broker.stop()
        station.close()
