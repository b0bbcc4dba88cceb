"""The centre's systemd units (systemd/yizhan-central*.service, the backup timer): the settings the
install guide relies on, `systemd-analyze verify`, and the backup command run for real against a
PostgreSQL server (pg_dump, then pg_restore reads the dump back)."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from central_fixtures import CentralDb
from sqlalchemy import make_url

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
CENTRE = SYSTEMD / "yizhan-central.service"
INGEST = SYSTEMD / "yizhan-central-ingest@.service"
BACKUP = SYSTEMD / "yizhan-central-backup.service"
TIMER = SYSTEMD / "yizhan-central-backup.timer"
INSTALLED = "/opt/yizhan/.venv/bin/yizhan-central"


def load(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


@pytest.mark.parametrize("unit", [CENTRE, INGEST], ids=lambda p: p.name)
def test_centre_units_run_hardened_as_their_own_user(unit: Path) -> None:
    service = load(unit)["Service"]
    assert service["User"] == "yizhan-central" and service["Type"] == "exec"
    assert service["Restart"] == "on-failure" and service["RestartPreventExitStatus"] == "2 3"
    assert service["StateDirectory"] == "yizhan-central" and service["UMask"] == "0077"
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    assert service["CapabilityBoundingSet"] == "" and service["PrivateDevices"] == "yes"
    assert service["ExecStart"].startswith(INSTALLED + " ")
    assert "postgresql.service" in load(unit)["Unit"]["After"]


def test_the_web_unit_runs_everything_and_the_template_only_ingest() -> None:
    assert load(CENTRE)["Service"]["ExecStart"] == f"{INSTALLED} run"
    ingest = load(INGEST)["Service"]
    assert ingest["ExecStart"] == f"{INSTALLED} ingest"
    assert ingest["Environment"] == "YIZHAN_CENTRAL_CONFIG=/etc/yizhan-central/ingest-%i.toml"


def test_the_centre_commands_in_the_units_exist() -> None:
    from central.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert "run" in commands
    if "ingest" not in commands:
        pytest.skip("`yizhan-central ingest` comes with the ingest branch")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # The units point at this checkout's executable so verify can check that the commands exist.
    here = str(Path(sys.executable).parent / "yizhan-central")
    names = {
        CENTRE: CENTRE.name,
        INGEST: "yizhan-central-ingest@2.service",
        BACKUP: BACKUP.name,
        TIMER: TIMER.name,
    }
    paths = []
    for source, name in names.items():
        target = tmp_path / name
        target.write_text(source.read_text().replace(INSTALLED, here))
        paths.append(str(target))
    result = subprocess.run(
        ["systemd-analyze", "verify", *paths], capture_output=True, text=True, timeout=120
    )
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "yizhan-central" in line
        and "Documentation" not in line
        # User/group lookups depend on the machine, not on the unit.
        and "user" not in line.lower()
        and "group" not in line.lower()
    ]
    assert problems == [], result.stdout + result.stderr


def _unescape(command: str) -> str:
    """A systemd ExecStart= line as the shell receives it ($$ -> $, %% -> %)."""
    return command.replace("$$", "$").replace("%%", "%")


@pytest.mark.parametrize("central_db", ["postgresql"], indirect=True)
def test_the_backup_command_dumps_a_database_pg_restore_can_read(
    central_db: CentralDb, tmp_path: Path
) -> None:
    pg_bin = Path(str(shutil.which("pg_dump") or "")).parent
    server_bin = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))
    if server_bin:
        pg_bin = server_bin[-1].parent
    service = load(BACKUP)["Service"]
    command = _unescape(service["ExecStart"])
    assert command.startswith("/bin/sh -c '") and command.endswith("'")
    script = command[len("/bin/sh -c '") : -1].replace("/var/backups/yizhan-central", str(tmp_path))
    url = make_url(central_db.url)
    env = {
        **os.environ,
        "DB": str(url.database),
        "PGHOST": str(url.host),
        "PGPORT": str(url.port),
        "PGUSER": str(url.username),
        "PATH": f"{pg_bin}:{os.environ['PATH']}",
    }
    done = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [dump] = list(tmp_path.glob("*.dump"))
    assert dump.name.startswith(f"{url.database}-") and not list(tmp_path.glob("*.part"))
    listing = subprocess.run(
        [str(pg_bin / "pg_restore"), "--list", str(dump)], capture_output=True, text=True, timeout=120
    )
    assert listing.returncode == 0 and "TABLE public alarms" in listing.stdout, listing.stderr
    assert load(TIMER)["Timer"]["OnCalendar"] == "*-*-* 03:30:00"
