"""The systemd unit: the settings the service relies on, and `systemd-analyze verify` where present."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "yizhan.service"


def load() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return parser


def test_unit_has_the_required_settings() -> None:
    unit = load()
    service = unit["Service"]
    assert service["Type"] == "notify" and service["Restart"] == "always"
    assert service["RestartPreventExitStatus"].split() == ["2", "3"]
    assert int(service["WatchdogSec"]) > 0
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    assert service["StateDirectory"] == "yizhan" and service["DevicePolicy"] == "closed"
    text = UNIT.read_text()
    assert "ExecStopPost=/opt/yizhan/.venv/bin/yizhan door safe" in text
    assert "ExecStartPre=/opt/yizhan/.venv/bin/yizhan door safe" in text
    assert "DeviceAllow=char-gpiochip rw" in text and "DeviceAllow=char-video4linux rw" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # Point the unit at this checkout's executable so verify can check that the commands exist.
    yizhan = Path(sys.executable).parent / "yizhan"
    text = UNIT.read_text().replace("/opt/yizhan/.venv/bin/yizhan", str(yizhan))
    unit = tmp_path / "yizhan.service"
    unit.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "yizhan.service" in line
        and "Documentation" not in line
        # User/group lookups depend on the machine, not on the unit.
        and "user" not in line.lower()
        and "group" not in line.lower()
    ]
    assert problems == [], result.stdout + result.stderr
