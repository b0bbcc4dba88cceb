"""`yizhan doctor` names what is wrong."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from edge.config import parse_config
from edge.doctor import check_camera, check_clock, check_database, check_disk, check_gpio, check_keys
from edge.station import Station


def config_for(tmp_path: Path, **extra: object) -> object:
    return parse_config({"storage": {"data_dir": str(tmp_path / "data")}, **extra})


def test_clock_in_the_past_fails() -> None:
    assert check_clock(dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).status == "fail"
    assert check_clock(dt.datetime(2026, 11, 24, tzinfo=dt.UTC)).status in ("ok", "warn")


def test_database_states(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    assert check_database(config).status == "warn"  # not created yet
    Station(config, env={}).close()
    ok = check_database(config)
    assert ok.status == "ok" and "0 members" in ok.detail
    db = config.storage.database_path
    data = bytearray(db.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)
    db.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    assert check_database(config).status == "fail"


def test_keys_and_disk(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    station = Station(config, env={})
    station.cipher  # noqa: B018  (creates the key file)
    station.close()
    checks = {c.name: c for c in check_keys(config, {})}
    assert checks["template key"].status == "ok" and "600" in checks["template key"].detail
    assert checks["qr keys"].status == "warn"
    (tmp_path / "data" / "template.key").chmod(0o644)
    assert {c.name: c for c in check_keys(config, {})}["template key"].status == "fail"
    assert check_disk(config).status in ("ok", "warn")


def test_camera_and_gpio(tmp_path: Path) -> None:
    missing = config_for(tmp_path, camera={"source": str(tmp_path / "nope.avi")})
    assert check_camera(missing).status == "fail"
    device = config_for(tmp_path, camera={"source": "7"})
    assert check_camera(device, opener=lambda _: False).status == "fail"
    assert check_camera(device, opener=lambda _: True).status == "ok"
    assert check_gpio(config_for(tmp_path)).status == "warn"  # mock pins off a Pi
    real = config_for(tmp_path, door={"gpio": {"pin_factory": "lgpio"}})
    failed = check_gpio(real)
    assert failed.status == "fail" and "mock" in failed.detail
