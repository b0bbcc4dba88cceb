"""`yizhan-central run` as operators start it: a real process serving HTTP, stopped by SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mqtt_broker import free_port


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "central.cli", "--config", str(config), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_init_then_run_serves_until_sigterm(central_db_url: str, tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "central.toml"
    config.write_text(
        f'[database]\nurl = "{central_db_url}"\n[storage]\ndata_dir = "data"\n[mqtt]\nenabled = false\n'
        f'[web]\nport = {port}\n[logging]\nformat = "json"\n',
        encoding="utf-8",
    )
    init = _cli(config, "init", "--admin", "ops")
    assert init.returncode == 0, init.stderr
    secret = init.stdout.splitlines()[-1]
    assert _cli(config, "stations", "add", "s1", "--name", "驿站一号", "--service", "water").returncode == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "central.cli", "--config", str(config), "run"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = _get(f"{base}/healthz")
                break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "the centre did not start listening"
                time.sleep(0.1)
        assert (status, body) == (200, {"status": "ok"})
        status, stations = _get(f"{base}/api/public/stations")
        assert status == 200 and stations[0]["station_id"] == "s1" and stations[0]["open_now"] is True
        assert _get(f"{base}/api/v1/stations")[0] == 401
        login = urllib.request.Request(
            f"{base}/api/auth/login", data=json.dumps({"username": "ops", "password": secret}).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )  # fmt: skip
        with urllib.request.urlopen(login, timeout=10) as response:
            token = json.loads(response.read())["token"]
        status, listed = _get(f"{base}/api/v1/stations", {"Authorization": f"Bearer {token}"})
        assert status == 200 and [s["station_id"] for s in listed] == ["s1"]
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(line.get("event") == "centre_started" for line in lines)
