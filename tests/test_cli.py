"""The CLI contract, end to end on real photos and a real SQLite store in a temporary folder."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest

from recognizer.images import decode_image
from tests.conftest import Cli


def enroll(cli: Cli, member_id: str, name: str, *photos: Path, extra: tuple[str, ...] = ()) -> None:
    result = cli("enroll", "--member-id", member_id, "--name", name, *extra, *map(str, photos))
    assert result.code == 0, result.err


def members(cli: Cli) -> dict[str, dict]:
    result = cli("members", "list", "--json")
    assert result.code == 0, result.err
    return {m["member_id"]: m for m in result.json()}


def save(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def test_enroll_then_identify_from_another_photo(cli: Cli, fixtures: Path) -> None:
    enroll(
        cli,
        "w-001",
        "Barack Obama",
        fixtures / "obama_1.jpg",
        extra=("--group", "drivers", "--kind", "driver"),
    )
    same = cli("identify", str(fixtures / "obama_1.jpg"), "--json").json()
    assert same["decision"] == "match" and same["member_id"] == "w-001"
    result = cli("identify", str(fixtures / "obama_2.jpg"), "--json")
    assert result.code == 0
    body = result.json()
    # Another photo of him sits 0.32 from the enrolled one: just past the face-alone distance, well
    # inside the grey zone. The door would ask him for the pass, naming nobody on the screen.
    scores = body["scores"]
    assert body["decision"] == "show_pass" and body["member_id"] is None and body["reason"] == "not_sure"
    assert scores["subject_id"] == "w-001" and scores["limits"]["accept_distance"] < body["distance"]
    assert body["distance"] < scores["limits"]["grey_distance"] and body["margin"] is None
    assert body["timings_ms"]["total"] > 0 and "encode" in body["timings_ms"]
    listed = members(cli)
    assert listed["w-001"]["templates"] == 1 and listed["w-001"]["groups"] == ["drivers"]
    assert listed["w-001"]["requires_pass"] is False


def test_stranger_and_no_face(cli: Cli, fixtures: Path) -> None:
    enroll(cli, "w-001", "Barack Obama", fixtures / "obama_1.jpg")
    enroll(cli, "w-002", "Joe Biden", fixtures / "biden_1.jpg")
    stranger = cli("identify", str(fixtures / "eileen_collins.png"), "--json").json()
    assert stranger["decision"] == "unknown" and stranger["member_id"] is None
    assert cli("identify", str(fixtures / "cat.png"), "--json").json()["decision"] == "no_face"


def _store_unchanged(cli: Cli, before: dict) -> None:
    assert members(cli) == before


@pytest.mark.parametrize(
    "case", ["no_face", "two_faces", "small", "blurry", "not_image", "missing", "directory", "empty"]
)
def test_enroll_refusals_store_nothing(cli: Cli, fixtures: Path, tmp_path: Path, case: str) -> None:
    enroll(cli, "w-001", "Barack Obama", fixtures / "obama_1.jpg")
    before = members(cli)
    img = decode_image((fixtures / "obama_2.jpg").read_bytes())
    if case == "no_face":
        photo = fixtures / "coffee.png"
    elif case == "two_faces":
        a = decode_image((fixtures / "biden_1.jpg").read_bytes())[:1100]
        b = cv2.resize(decode_image((fixtures / "eileen_collins.png").read_bytes()), (1100, 1100))
        photo = save(tmp_path / "two.jpg", np.hstack([a, b]))
    elif case == "small":
        photo = save(tmp_path / "small.jpg", cv2.resize(img, (img.shape[1] // 6, img.shape[0] // 6)))
    elif case == "blurry":
        photo = save(tmp_path / "blur.jpg", cv2.GaussianBlur(img, (0, 0), 6))
    elif case == "not_image":
        photo = tmp_path / "notes.jpg"
        photo.write_text("this is not a photo")
    elif case == "missing":
        photo = tmp_path / "nope.jpg"
    elif case == "directory":
        photo = tmp_path
    else:
        photo = tmp_path / "empty.jpg"
        photo.write_bytes(b"")
    # A good photo beside a bad one: still nothing stored (all or nothing).
    result = cli(
        "enroll", "--member-id", "w-009", "--name", "New Person", str(fixtures / "biden_1.jpg"), str(photo)
    )
    assert result.code == 2
    expected = {
        "no_face": "no face",
        "two_faces": "2 faces",
        "small": "too small",
        "blurry": "blurry",
        "not_image": "not a readable image",
        "missing": "cannot read",
        "directory": "directory",
        "empty": "empty",
    }[case]
    assert expected in result.err and "nothing was stored" in result.err
    _store_unchanged(cli, before)


def test_the_same_person_under_a_new_id_is_refused_with_one_member_even_when_confirmed(
    cli: Cli, fixtures: Path
) -> None:
    enroll(cli, "w-001", "Barack Obama", fixtures / "obama_1.jpg")
    before = members(cli)
    for confirm in ((), ("--confirm-different-person",), ("--force",)):
        result = cli(
            "enroll", "--member-id", "w-002", "--name", "Someone Else", *confirm, "--json",
            str(fixtures / "obama_2.jpg"),
        )
        assert result.code == 2
        assert "w-001" in result.err and "same person for the door" in result.err and "distance" in result.err
        finding = result.json()["findings"][0]
        assert finding["kind"] == "same_person" and finding["member_id"] == "w-001"
        assert finding["distance"] <= finding["limit"]
        _store_unchanged(cli, before)


def test_more_photos_for_the_same_member_are_added(cli: Cli, fixtures: Path) -> None:
    enroll(cli, "w-001", "Barack Obama", fixtures / "obama_1.jpg")
    enroll(cli, "w-001", "Barack Obama", fixtures / "obama_2.jpg")
    assert members(cli)["w-001"]["templates"] == 2
    renamed = cli("enroll", "--member-id", "w-001", "--name", "Other Name", str(fixtures / "obama_2.jpg"))
    assert renamed.code == 2 and "already exists" in renamed.err


def test_a_photo_of_someone_else_added_to_a_member_is_refused(cli: Cli, fixtures: Path) -> None:
    enroll(cli, "w-001", "Barack Obama", fixtures / "obama_1.jpg")
    before = members(cli)
    result = cli(
        "enroll", "--member-id", "w-001", "--name", "Barack Obama", "--json", str(fixtures / "biden_1.jpg")
    )
    assert result.code == 2 and "not certainly the same person" in result.err
    assert "--confirm-same-person" in result.err
    finding = result.json()["findings"][0]
    assert finding["kind"] == "unconfirmed_same_person" and finding["distance"] > 0.6
    _store_unchanged(cli, before)
    # Biden enrolled himself: his photo added to Obama is his, whatever the installer confirms.
    enroll(cli, "w-002", "Joe Biden", fixtures / "biden_1.jpg")
    before = members(cli)
    confirmed = cli(
        "enroll", "--member-id", "w-001", "--name", "Barack Obama", "--confirm-same-person",
        str(fixtures / "biden_1.jpg"),
    )
    assert confirmed.code == 2 and "w-002" in confirmed.err and "same person for the door" in confirmed.err
    _store_unchanged(cli, before)
    # The installer's confirmation is what adds a photo that is not certainly him (recorded).
    alone = cli("members", "remove", "w-002")
    assert alone.code == 0
    added = cli(
        "enroll", "--member-id", "w-001", "--name", "Barack Obama", "--confirm-same-person", "--json",
        str(fixtures / "biden_1.jpg"),
    )
    assert added.code == 0, added.err
    listed = cli("templates", "list", "w-001", "--json").json()
    assert [t["confirmed"] for t in listed] == [None, {"same_person": True, "different_person": False}]


def test_templates_are_listed_with_how_and_by_whom_and_removed_one_by_one(
    cli: Cli, fixtures: Path
) -> None:
    enroll(cli, "w-001", "Barack Obama", fixtures / "obama_1.jpg")
    enroll(cli, "w-001", "Barack Obama", fixtures / "obama_2.jpg")
    listed = cli("templates", "list", "w-001", "--json")
    assert listed.code == 0, listed.err
    rows = listed.json()
    assert [t["source"] for t in rows] == ["obama_1.jpg", "obama_2.jpg"]
    for row in rows:
        assert row["origin"] == "photo" and row["enrolled_by"].startswith("cli")
        assert row["created_at"] and row["quality"]["face_px"] > 80 and row["member_id"] == "w-001"
    text = cli("templates", "list", "w-001")
    assert "obama_2.jpg" in text.out and "photo" in text.out
    removed = cli("templates", "remove", rows[1]["template_id"], "--json")
    assert removed.code == 0 and removed.json()["templates_left"] == 1
    assert members(cli)["w-001"]["templates"] == 1
    assert cli("templates", "remove", rows[1]["template_id"]).code == 2  # already gone
    assert cli("templates", "list", "nobody").code == 2
    assert cli("templates", "remove", "x" * 500).code == 2


def test_qr_only_member_can_later_enrol_a_face(cli: Cli, fixtures: Path) -> None:
    assert cli("members", "add", "--member-id", "w-001", "--name", "Barack Obama").code == 0
    enroll(cli, "w-001", "Barack Obama", fixtures / "obama_1.jpg")
    shown = cli("members", "show", "w-001", "--json").json()
    assert shown["templates"] == 1 and shown["consent_face"] is True
    assert cli("identify", str(fixtures / "obama_2.jpg"), "--json").json()["scores"]["subject_id"] == "w-001"


def test_a_member_can_be_made_to_require_the_pass_by_hand(cli: Cli, fixtures: Path) -> None:
    enroll(cli, "w-001", "Barack Obama", fixtures / "obama_1.jpg")
    assert cli("members", "require-pass", "w-001").code == 0
    assert cli("members", "show", "w-001", "--json").json()["requires_pass"] is True
    assert "requires-pass" in cli("members", "list").out
    assert cli("identify", str(fixtures / "obama_1.jpg"), "--json").json()["decision"] == "show_pass"
    assert cli("members", "require-pass", "w-001", "--off").code == 0
    assert cli("members", "show", "w-001", "--json").json()["requires_pass"] is False
    assert cli("members", "require-pass", "nobody").code == 2


def test_photos_of_different_people_in_one_call_refused(cli: Cli, fixtures: Path) -> None:
    result = cli(
        "enroll",
        "--member-id",
        "w-003",
        "--name",
        "Mixed",
        str(fixtures / "obama_1.jpg"),
        str(fixtures / "eileen_collins.png"),
    )
    assert result.code == 2 and "same person" in result.err
    assert members(cli) == {}


def test_members_add_show_remove(cli: Cli, fixtures: Path) -> None:
    added = cli("members", "add", "--member-id", "q-1", "--name", "张三", "--kind", "courier", "--json")
    assert added.code == 0 and added.json()["templates"] == 0 and added.json()["name"] == "张三"
    assert cli("members", "add", "--member-id", "q-1", "--name", "again").code == 2
    shown = cli("members", "show", "q-1", "--json").json()
    assert shown["kind"] == "courier" and shown["status"] == "active"
    assert cli("members", "show", "nobody").code == 2
    enroll(cli, "w-001", "Barack Obama", fixtures / "obama_1.jpg")
    assert cli("members", "remove", "w-001").code == 0
    assert "w-001" not in members(cli)
    assert cli("identify", str(fixtures / "obama_2.jpg"), "--json").json()["decision"] == "unknown"
    assert cli("members", "remove", "w-001").code == 2


@pytest.mark.parametrize(
    "args",
    [
        ("members", "add", "--member-id", "", "--name", "x"),
        ("members", "add", "--member-id", "a b", "--name", "x"),
        ("members", "add", "--member-id", "x" * 65, "--name", "x"),
        ("members", "add", "--member-id", "ok", "--name", "\x00bad"),
        ("members", "add", "--member-id", "ok", "--name", "x", "--kind", "astronaut"),
        (
            "members",
            "add",
            "--member-id",
            "ok",
            "--name",
            "x",
            "--valid-from",
            "2027-01-01",
            "--valid-until",
            "2026-01-01",
        ),
        ("members", "add", "--member-id", "ok", "--name", "x", "--valid-until", "tomorrow"),
        ("members", "add", "--member-id", "'; DROP TABLE members; --", "--name", "x"),
    ],
)
def test_hostile_member_input_refused(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.code == 2
    assert members(cli) == {}


def test_qr_issue_check_and_removal(cli: Cli, tmp_path: Path) -> None:
    assert cli("keys", "init").code == 0
    assert cli("keys", "init").code == 2  # never silently replaced
    cli("members", "add", "--member-id", "q-1", "--name", "李四")
    png = tmp_path / "q.png"
    issued = cli("qr", "issue", "--member-id", "q-1", "--ttl", "600", "--png", str(png))
    assert issued.code == 0
    lines = issued.out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("YZ1:")
    token = lines[0]
    ok = cli("qr", "check", token, "--json").json()
    assert ok == {**ok, "decision": "qr_ok", "member_id": "q-1", "reason": None}
    from_image = cli("qr", "check", str(png), "--json").json()
    assert from_image["decision"] == "qr_ok" and from_image["member_id"] == "q-1"
    assert cli("qr", "check", str(tmp_path / "missing.png"), "--json").json()["reason"] == "malformed"
    assert cli("qr", "issue", "--member-id", "nobody").code == 2
    assert cli("members", "remove", "q-1").code == 0
    refused = cli("qr", "check", token, "--json").json()
    assert refused["decision"] == "qr_refused" and refused["reason"] == "unknown_member"


def test_qr_skew_setting_and_suspension(cli: Cli, station_dir: Path) -> None:
    cli("keys", "init")
    cli("members", "add", "--member-id", "q-1", "--name", "王五")
    token = cli("qr", "issue", "--member-id", "q-1", "--ttl", "1").out.strip()
    import time

    time.sleep(2.2)
    assert cli("qr", "check", token, "--json").json()["decision"] == "qr_ok"  # within default skew (120 s)
    config = station_dir / "yizhan.toml"
    config.write_text(config.read_text() + "\n[qr]\nmax_clock_skew_s = 0\n")
    assert cli("qr", "check", token, "--json").json()["reason"] == "expired"
    fresh = cli("qr", "issue", "--member-id", "q-1", "--ttl", "600").out.strip()
    assert cli("members", "suspend", "q-1").code == 0
    assert cli("qr", "check", fresh, "--json").json()["reason"] == "member_suspended"
    assert cli("qr", "issue", "--member-id", "q-1").code == 2
    cli("members", "activate", "q-1")
    assert cli("qr", "check", fresh, "--json").json()["decision"] == "qr_ok"


def test_qr_image_without_code_and_hostile_tokens(cli: Cli, fixtures: Path) -> None:
    cli("keys", "init")
    assert cli("qr", "check", str(fixtures / "cat.png"), "--json").json()["reason"] == "no_qr_code"
    for hostile in ("", "YZ1:", "YZ1:" + "A" * 5000, "yz1:abc", "\u202eYZ1:AAAA", "../../no/such/file"):
        result = cli("qr", "check", hostile, "--json")
        assert result.code == 0 and result.json()["decision"] == "qr_refused"
    # An existing file that is not an image is bad input, not a token.
    not_image = cli("qr", "check", "/etc/hostname", "--json")
    assert not_image.code == 2 and "not a readable image" in not_image.err


def test_template_key_file_is_private_and_wrong_key_is_loud(
    cli: Cli, fixtures: Path, station_dir: Path
) -> None:
    enroll(cli, "w-001", "Barack Obama", fixtures / "obama_1.jpg")
    key = station_dir / "data" / "template.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    wrong = cli("identify", str(fixtures / "obama_2.jpg"), "--json", env={"YIZHAN_TEMPLATE_KEY": "11" * 32})
    assert wrong.code == 3 and "key" in wrong.err and wrong.out == ""


def test_corrupted_template_row_is_loud(cli: Cli, fixtures: Path, station_dir: Path) -> None:
    enroll(cli, "w-001", "Barack Obama", fixtures / "obama_1.jpg")
    db = sqlite3.connect(station_dir / "data" / "yizhan.db")
    (blob,) = db.execute("select ciphertext from face_templates").fetchone()
    corrupted = bytes([blob[0] ^ 1]) + blob[1:]
    db.execute("update face_templates set ciphertext = ?", (corrupted,))
    db.commit()
    db.close()
    result = cli("identify", str(fixtures / "obama_2.jpg"), "--json")
    assert result.code == 3 and "w-001" in result.err and result.out == ""


def test_bad_config_stops_with_the_key_named(cli: Cli, station_dir: Path) -> None:
    (station_dir / "yizhan.toml").write_text("[recognition]\nthreshhold = 0.4\n")
    result = cli("members", "list")
    assert result.code == 2 and "recognition.threshhold" in result.err


def test_identify_refuses_unreadable_photo(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "x.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = cli("identify", str(bad), "--json")
    assert result.code == 2 and "x.png" in result.err


def test_data_stays_under_data_dir(cli: Cli, fixtures: Path, station_dir: Path) -> None:
    enroll(cli, "w-001", "Barack Obama", fixtures / "obama_1.jpg")
    cli("keys", "init")
    stored = {p.relative_to(station_dir).parts[0] for p in station_dir.rglob("*") if p.is_file()}
    assert stored == {"data", "yizhan.toml"}
    assert os.listdir(station_dir / "data")


def test_enrolment_is_queued_for_the_centre_when_sync_is_on(
    cli: Cli, fixtures: Path, station_dir: Path
) -> None:
    config = station_dir / "yizhan.toml"
    config.write_text(config.read_text() + "\n[mqtt]\nenabled = true\n")
    enroll(cli, "w-001", "Barack Obama", fixtures / "obama_1.jpg")
    db = sqlite3.connect(station_dir / "data" / "yizhan.db")
    rows = db.execute("select topic_kind, payload from outbox where topic_kind = 'enrolment'").fetchall()
    db.close()
    assert len(rows) == 1 and '"w-001"' in rows[0][1]
