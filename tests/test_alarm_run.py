"""Alarms in `yizhan-central run`, a real process: an emergency stored by ingest reaches a group
robot on 127.0.0.1, staff acknowledge it over HTTP with a note, the robot hears who took it; the
`alarms` commands; a webhook secret file others can read stops `run` with the file named."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from alarm_support import ok_answer, receiver, store_event
from mqtt_broker import free_port
from sqlalchemy import make_url

from central.store.database import open_engine, session_factory


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "central.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _request(url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _write_config(path: Path, db_url: str, port: int, hook: str) -> None:
    path.write_text(
        f'[database]\nurl = "{db_url}"\n[storage]\ndata_dir = "data"\n[mqtt]\nenabled = false\n'
        f'[web]\nport = {port}\npublic_url = "https://centre.test"\n[logging]\nformat = "json"\n'
        f"[alarms]\nsweep_interval_s = 0.5\n"
        f'[[alarms.webhooks]]\ndistrict = "haidian"\nformat = "wecom"\nname = "haidian-duty"\n{hook}\n',
        encoding="utf-8",
    )


def test_run_raises_notifies_and_takes_an_acknowledgement(central_db_url: str, tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "central.toml"
    with receiver(ok_answer("wecom")) as robot:
        url_file = tmp_path / "haidian.url"
        url_file.write_text(robot.url + "?key=SECRETKEY\n")
        url_file.chmod(0o600)
        _write_config(config, central_db_url, port, f'url_file = "{url_file}"')
        init = _cli(config, "init", "--admin", "ops")
        assert init.returncode == 0, init.stderr
        secret = init.stdout.splitlines()[-1]
        added = _cli(config, "stations", "add", "hd-1", "--name", "学院路驿站", "--district", "haidian")
        assert added.returncode == 0, added.stderr
        process = subprocess.Popen(
            [sys.executable, "-m", "central.cli", "--config", str(config), "run"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if _request(f"{base}/healthz")[0] == 200:
                        break
                except (urllib.error.URLError, ConnectionError):
                    pass
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "the centre did not start"
                time.sleep(0.1)
            # Ingest (another process here) committed an emergency; the centre's sweep finds it.
            engine = open_engine(make_url(central_db_url))
            try:
                store_event(session_factory(engine), "hd-1", "emergency", ts=dt.datetime.now(dt.UTC))
            finally:
                engine.dispose()
            [raised] = robot.wait_for(1)
            assert raised.query == {"key": ["SECRETKEY"]}
            content = raised.body["text"]["content"]
            assert "学院路驿站" in content and "https://centre.test/dashboard/#/stations/hd-1" in content
            _, login = _request(f"{base}/api/auth/login", {"username": "ops", "password": secret})
            token = login["token"]
            status, open_alarms = _request(f"{base}/api/v1/alarms?state=open", token=token)
            assert status == 200 and [a["kind"] for a in open_alarms] == ["emergency"]
            alarm_id = open_alarms[0]["id"]
            status, acked = _request(
                f"{base}/api/v1/alarms/{alarm_id}/ack", {"note": "值班员已电话确认：误按"}, token=token
            )
            assert status == 200 and acked["state"] == "acknowledged" and acked["acknowledged_by"] == "ops"
            told = robot.wait_for(2)[1]
            assert "ops 已确认：值班员已电话确认：误按" in told.body["markdown"]["content"]
            listed = _cli(config, "alarms", "list", "--json")
            assert listed.returncode == 0 and json.loads(listed.stdout)[0]["state"] == "acknowledged"
            tested = _cli(config, "alarms", "test")
            assert tested.returncode == 0 and "haidian-duty (wecom): ok" in tested.stdout
            assert "测试" in robot.wait_for(3)[2].body["markdown"]["content"]
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                _, err = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
        assert process.returncode == 0, err
        assert "SECRETKEY" not in err  # the robot's key never reaches the log


def test_a_webhook_secret_others_can_read_stops_run(tmp_path: Path) -> None:
    url_file = tmp_path / "open.url"
    url_file.write_text("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K\n")
    url_file.chmod(0o644)
    config = tmp_path / "central.toml"
    _write_config(config, f"sqlite:///{tmp_path / 'c.db'}", free_port(), f'url_file = "{url_file}"')
    result = _cli(config, "run")
    assert result.returncode == 2 and "open.url" in result.stderr and "chmod 600" in result.stderr


def test_alarms_test_reports_a_failing_target(tmp_path: Path) -> None:
    config = tmp_path / "central.toml"
    with receiver(lambda _: (200, b'{"errcode":93000,"errmsg":"invalid webhook url"}')) as robot:
        _write_config(config, f"sqlite:///{tmp_path / 'c.db'}", free_port(), f'url = "{robot.url}"')
        result = _cli(config, "alarms", "test", "--json")
    assert result.returncode == 1
    [outcome] = json.loads(result.stdout)
    assert outcome["ok"] is False and "93000" in outcome["error"]
    assert _cli(config, "alarms", "test", "--target", "nobody").returncode == 2
