"""`yizhan-central`: init, stations, members, events, keys; exit codes; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from pathlib import Path

import pytest
from central_fixtures import CentralDb
from sqlalchemy import make_url, text

from central.cli import main
from central.config import CentralConfig
from central.data_key import DataKey
from central.store import events as event_store
from central.store import members as member_store
from central.store.database import open_engine
from common.passwords import Passwords

SECRET_RE = re.compile(r"^[a-z2-9]{4}(-[a-z2-9]{4}){3}$")


def _write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "central.toml"
    path.write_text(
        f'[storage]\ndata_dir = "data"\n[database]\nurl = "{url}"\n[mqtt]\nenabled = false\n'
        '[logging]\nformat = "text"\n',
        encoding="utf-8",
    )
    return path


class Run:
    def __init__(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.config = config
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        try:
            code = main(["--config", str(self.config), *args])
        except SystemExit as exc:  # argparse refusing the command line
            code = int(exc.code or 0)
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err


@pytest.fixture
def cli(central_db: CentralDb, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    return Run(_write_config(tmp_path, central_db.url), capsys)


def test_init_creates_the_database_and_an_admin_whose_password_is_the_last_line(
    central_db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = Run(_write_config(tmp_path, central_db_url), capsys)
    code, out, err = run("init", "--admin", "Ops.Liu")
    assert code == 0, err
    secret = out.rstrip("\n").splitlines()[-1]
    assert SECRET_RE.fullmatch(secret)
    assert (tmp_path / "data" / "central.key").stat().st_mode & 0o077 == 0
    engine = open_engine(make_url(central_db_url))
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT username, role, password_hash FROM staff")).one()
            assert row[0] == "ops.liu" and row[1] == "admin" and secret not in row[2]
            assert Passwords().verify(row[2], secret).ok
            active = conn.execute(
                text("SELECT purpose FROM signing_keys WHERE state = 'active' ORDER BY purpose")
            )
            assert active.scalars().all() == ["messages", "qr"]
    finally:
        engine.dispose()
    code, _, err = run("init", "--admin", "ops.liu")
    assert code == 2 and "already exists" in err  # nothing overwritten
    code, out, _ = run("init", "--admin", "second")
    assert code == 0 and SECRET_RE.fullmatch(out.splitlines()[-1])


def test_stations_add_and_list(cli: Run) -> None:
    hours = json.dumps(
        {"always_open": False, "timezone": "Asia/Shanghai", "weekly": {"mon": ["06:00-22:00"]}}
    )
    code, out, err = cli(
        "stations", "add", "haidian-012", "--name", "中关村驿站", "--district", "haidian",
        "--address", "海淀区 1 号", "--lat", "39.98", "--lon", "116.31",
        "--service", "water", "--service", "microwave", "--hours", hours,
        "--contact-phone", "010-12345678", "--group", "riders", "--json",
    )  # fmt: skip
    assert code == 0, err
    added = json.loads(out)
    assert added["station_id"] == "haidian-012" and added["services"] == ["water", "microwave"]
    assert added["hours"]["weekly"] == {"mon": ["06:00-22:00"]} and added["allowed_groups"] == ["riders"]
    assert cli("stations", "add", "s2", "--name", "Two")[0] == 0
    code, out, _ = cli("stations", "list", "--json")
    listed = json.loads(out)
    assert [s["station_id"] for s in listed] == ["haidian-012", "s2"]
    assert listed[1]["district_id"] == "default" and listed[1]["open_now"] is True


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["../etc", "--name", "x"], "station id"),
        (["s1", "--name", ""], "name"),
        (["s1", "--name", "x", "--lat", "39.9"], "go together"),
        (["s1", "--name", "x", "--lat", "91", "--lon", "0"], "latitude"),
        (["s1", "--name", "x", "--hours", "{not json"], "not JSON"),
        (["s1", "--name", "x", "--hours", '{"always_open": false}'], "opening hours refused"),
        (["s1", "--name", "x", "--hours", '{"timezone": "Mars/Olympus"}'], "opening hours refused"),
        (["s1", "--name", "x", "--district", "a b"], "district"),
        (["s1", "--name", "x\x00y"], "control characters"),
        (["s1", "--name", "x" * 201], "name"),
    ],
)
def test_bad_stations_are_refused_with_exit_2_and_nothing_stored(
    cli: Run, args: list[str], words: str
) -> None:
    code, _, err = cli("stations", "add", *args)
    assert code == 2 and words in err
    assert json.loads(cli("stations", "list", "--json")[1]) == []


def test_a_station_id_is_registered_once(cli: Run) -> None:
    assert cli("stations", "add", "s1", "--name", "One")[0] == 0
    code, _, err = cli("stations", "add", "s1", "--name", "Again")
    assert code == 2 and "already exists" in err


def test_members_list_shows_template_counts(
    cli: Run, central_db: CentralDb, central_config: CentralConfig
) -> None:
    assert cli("members", "add", "m-1", "--name", "张三", "--kind", "rider", "--group", "riders")[0] == 0
    assert cli("members", "add", "m-1", "--name", "again")[0] == 2
    data_key = DataKey.load(central_config)
    with central_db.sessions.begin() as db:
        member_store.add_member(
            db, member_id="m-2", name="李四", consent_face=True, consent_cross_station=True
        )
        member_store.add_template(db, data_key.templates, member_id="m-2", vector=[0.01] * 128)
        member_store.add_template(db, data_key.templates, member_id="m-2", vector=[0.02] * 128)
    code, out, _ = cli("members", "list", "--json")
    rows = json.loads(out)
    assert code == 0
    assert [(r["member_id"], r["name"], r["templates"]) for r in rows] == [
        ("m-1", "张三", 0),
        ("m-2", "李四", 2),
    ]
    assert json.loads(cli("members", "list", "--json", "--search", "李")[1])[0]["member_id"] == "m-2"
    assert (
        json.loads(cli("members", "list", "--json", "--search", "%")[1]) == []
    )  # LIKE wildcards are literal


def test_events_list_is_newest_first_and_stored_once(cli: Run, central_db: CentralDb) -> None:
    base = dt.datetime(2026, 11, 24, 6, 0, tzinfo=dt.UTC)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    with central_db.sessions.begin() as db:
        for i, event_id in enumerate(ids):
            assert event_store.store_event(
                db, id=event_id, ts=base + dt.timedelta(minutes=i), station_id="s1", kind="entry",
                method="face", member_id=f"m-{i}", details={"distance": 0.38},
            )  # fmt: skip
        # At-least-once delivery: the same event again changes nothing.
        assert not event_store.store_event(db, id=ids[0], ts=base, station_id="s1", kind="entry")
    code, out, _ = cli("events", "list", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["id"] for r in rows] == ids[::-1]
    assert {"id", "station_id", "kind", "member_id"} <= set(rows[0]) and rows[0]["member_id"] == "m-2"
    assert len(json.loads(cli("events", "list", "--json", "--limit", "1")[1])) == 1
    assert json.loads(cli("events", "list", "--json", "--station", "other")[1]) == []


def test_keys_rotate_keeps_the_old_key_trusted_until_its_passes_expire(cli: Run) -> None:
    code, out, _ = cli("keys", "rotate", "--json")
    first = json.loads(out)
    assert code == 0 and first["previous"] is None
    code, out, _ = cli("keys", "rotate", "--json")
    second = json.loads(out)
    assert second["previous"] == first["kid"] and second["kid"] != first["kid"]
    until = dt.datetime.fromisoformat(second["previous_trusted_until"])
    assert until - dt.datetime.now(dt.UTC) > dt.timedelta(days=364)
    code, out, _ = cli("keys", "rotate", "--purpose", "messages", "--json")
    messages = json.loads(out)
    assert code == 0 and messages["purpose"] == "messages" and messages["previous"] is None
    keys = {k["kid"]: (k["purpose"], k["state"]) for k in json.loads(cli("keys", "list", "--json")[1])}
    assert keys == {
        first["kid"]: ("qr", "retiring"),
        second["kid"]: ("qr", "active"),
        messages["kid"]: ("messages", "active"),
    }
    assert cli("keys", "rotate", "--purpose", "nonsense")[0] == 2


def test_bad_config_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[web]\nprot = 1\n", encoding="utf-8")
    assert main(["--config", str(path), "stations", "list"]) == 2
    assert "web.prot: unknown key" in capsys.readouterr().err


def test_a_database_from_a_newer_centre_is_exit_3(cli: Run, central_db: CentralDb) -> None:
    with central_db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'zzzz'"))
    code, _, err = cli("stations", "list")
    assert code == 3 and "newer yizhan-central" in err


def test_an_unreachable_database_is_exit_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mqtt_broker import free_port

    url = f"postgresql+psycopg://yz@127.0.0.1:{free_port()}/nothing"
    config = _write_config(tmp_path, url)
    assert main(["--config", str(config), "stations", "list"]) == 3
    assert "cannot be used" in capsys.readouterr().err


def test_a_sealed_qr_key_needs_the_same_data_key(
    central_db: CentralDb, central_config: CentralConfig
) -> None:
    from central.data_key import SealedDataError
    from central.store import signing_keys
    from contract.signing import PublicKey, verify_message
    from recognizer.qr_token import public_key_for

    key = DataKey.load(central_config)
    now = dt.datetime.now(dt.UTC)
    with central_db.sessions.begin() as db:
        row, _ = signing_keys.rotate_key(db, key, purpose="messages", now=now, overlap=dt.timedelta(days=1))
        assert public_key_for(signing_keys.private_key(row, key)) == row.public_key
        signed = signing_keys.message_signer(row, key).sign(
            {"v": 1, "type": "ack", "id": "a-1", "station_id": "s1"}
        )
        trusted = [PublicKey.from_b64(signing_keys.public_key_b64(row))]
        assert verify_message(signed, trusted, "s1") == row.kid  # what a station checks
        with pytest.raises(SealedDataError, match="wrong key"):
            signing_keys.private_key(row, DataKey(b"\x01" * 32))
        row.private_key = row.private_key[:-1] + bytes([row.private_key[-1] ^ 1])
        with pytest.raises(SealedDataError, match="damaged"):
            signing_keys.private_key(row, key)
