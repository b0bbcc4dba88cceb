"""The station store on real SQLite files: members, encrypted templates, QR keys, events, outbox."""

from __future__ import annotations

import ast
import datetime as dt
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from common.template_cipher import TemplateCipher, TemplateCorrupt, TemplateDecryptError, TemplateKeyMismatch
from models import events, members, qr_store
from models.database import StoreError, ValidationError, make_session_factory, migrate, open_engine
from models.members import DuplicateMemberError, MemberNotFoundError
from models.tables import Event, FaceTemplate

REPO = Path(__file__).resolve().parents[1]
UTC = dt.UTC
KEY = bytes(range(32))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "station.db"


@pytest.fixture
def engine(db_path: Path) -> Iterator[Engine]:
    eng = open_engine(db_path)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def cipher() -> TemplateCipher:
    return TemplateCipher(KEY)


def _vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=0.1, size=128).astype(np.float32)


def _enrol(
    sessions: sessionmaker[Session], cipher: TemplateCipher, member_id: str, n: int, seed: int = 0
) -> list[str]:
    with sessions() as s, s.begin():
        members.add_member(s, member_id=member_id, name=f"name {member_id}", consent_face=True)
        return members.add_templates(
            s,
            cipher,
            member_id=member_id,
            encodings=[_vec(seed + i) for i in range(n)],
            qualities=[{"sharpness": 0.9}] * n,
            sources=["enrol"] * n,
        )


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())


# --- members ---------------------------------------------------------------------------------------


def test_add_get_list_members(sessions: sessionmaker[Session]) -> None:
    start = dt.datetime(2024, 1, 1, 8, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with sessions() as s, s.begin():
        members.add_member(
            s,
            member_id="rider-002",
            name="张三",
            phone="+86 138-0013-8000",
            groups=["美团", "east", "美团"],
            kind="rider",
            valid_from=start,
            valid_until=start + dt.timedelta(days=365),
            consent_face=True,
        )
        members.add_member(s, member_id="courier.001", name="  Li Wei  ")
    with sessions() as s:
        listed = members.list_members(s)
        assert [m.member_id for m in listed] == ["courier.001", "rider-002"]
        m = members.get_member(s, "rider-002")
        assert m is not None
        assert m.name == "张三" and m.groups == ["美团", "east"] and m.kind == "rider"
        assert m.valid_from == dt.datetime(2024, 1, 1, 0, tzinfo=UTC)  # stored as UTC, returned aware
        assert m.consent_face and not m.consent_cross_station and m.consent_at is not None
        assert listed[0].name == "Li Wei" and listed[0].consent_at is None and listed[0].status == "active"
        assert members.get_member(s, "nobody") is None
        info = members.member_info(m)
        assert info.groups == ("美团", "east") and info.is_valid_at(start + dt.timedelta(days=1)) == (
            True,
            None,
        )


def test_duplicate_member_is_refused_and_original_kept(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        members.add_member(s, member_id="m1", name="first")
    with sessions() as s:
        with pytest.raises(DuplicateMemberError, match="m1"):
            members.add_member(s, member_id="m1", name="second")
        # The caller's transaction is still usable after the refusal.
        members.add_member(s, member_id="m2", name="other")
        s.commit()
    with sessions() as s:
        assert [(m.member_id, m.name) for m in members.list_members(s)] == [("m1", "first"), ("m2", "other")]


HOSTILE_BUT_VALID_NAMES = [
    "张三",
    "Zoë Ñúñez",
    "Robert'); DROP TABLE members;--",
    "' OR '1'='1",
    "🚴 骑手 王",
    "x" * 100,
    "%s %d {0} \\N",
]


@pytest.mark.parametrize("name", HOSTILE_BUT_VALID_NAMES)
def test_hostile_but_valid_names_are_stored_literally(
    sessions: sessionmaker[Session], engine: Engine, name: str
) -> None:
    with sessions() as s, s.begin():
        members.add_member(s, member_id="m1", name=name, groups=[name[:64]])
    with sessions() as s:
        m = members.get_member(s, "m1")
        assert m is not None and m.name == name and m.groups == [name[:64]]
    assert _count(engine, "members") == 1


BAD_MEMBER_INPUT: list[tuple[dict[str, Any], str]] = [
    ({"member_id": ""}, "member_id"),
    ({"member_id": "a" * 65}, "member_id"),
    ({"member_id": "a b"}, "member_id"),
    ({"member_id": "a/b"}, "member_id"),
    ({"member_id": ".."}, "member_id"),
    ({"member_id": "m1'; DROP TABLE members;--"}, "member_id"),
    ({"member_id": "张三"}, "member_id"),
    ({"member_id": "m\x00"}, "member_id"),
    ({"member_id": 42}, "member_id"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"name": "a\nb"}, "name"),
    ({"name": "bell\x07"}, "name"),
    ({"name": "rtl\u202eevil"}, "name"),
    ({"name": None}, "name"),
    ({"phone": ""}, "phone"),
    ({"phone": "call me"}, "phone"),
    ({"phone": "1" * 33}, "phone"),
    ({"phone": "+-"}, "phone"),
    ({"groups": "east"}, "groups"),
    ({"groups": [""]}, "groups[0]"),
    ({"groups": ["ok", "g" * 65]}, "groups[1]"),
    ({"groups": ["ok", 3]}, "groups[1]"),
    ({"groups": [f"g{i}" for i in range(33)]}, "groups"),
    ({"kind": "pilot"}, "kind"),
    ({"kind": "Courier"}, "kind"),
    ({"status": "deleted"}, "status"),
    ({"status": None}, "status"),
    ({"valid_from": dt.datetime(2024, 1, 1)}, "valid_from"),
    ({"valid_until": "2025-01-01"}, "valid_until"),
    (
        {
            "valid_from": dt.datetime(2025, 1, 1, tzinfo=UTC),
            "valid_until": dt.datetime(2025, 1, 1, tzinfo=UTC),
        },
        "valid_until",
    ),
    (
        {
            "valid_from": dt.datetime(2025, 1, 2, tzinfo=UTC),
            "valid_until": dt.datetime(2025, 1, 1, tzinfo=UTC),
        },
        "valid_until",
    ),
    ({"consent_face": 1}, "consent_face"),
    ({"consent_cross_station": "yes"}, "consent_cross_station"),
]


@pytest.mark.parametrize(("override", "field"), BAD_MEMBER_INPUT)
def test_member_validation_errors_name_the_field_and_write_nothing(
    sessions: sessionmaker[Session], engine: Engine, override: dict[str, Any], field: str
) -> None:
    with sessions() as s, s.begin():
        members.add_member(s, member_id="keep", name="Kept", groups=["g"])
    kwargs: dict[str, Any] = {"member_id": "m1", "name": "Li", **override}
    with sessions() as s:
        with pytest.raises(ValidationError, match=field.replace("[", r"\[").replace("]", r"\]")):
            members.add_member(s, **kwargs)
        s.commit()
    update = {k: v for k, v in override.items() if k != "member_id"}
    if update:
        with sessions() as s:
            with pytest.raises(ValidationError, match=field.split("[")[0]):
                members.update_member(s, "keep", **update)
            s.commit()
    assert _count(engine, "members") == 1
    with sessions() as s:
        kept = members.get_member(s, "keep")
        assert kept is not None and kept.name == "Kept" and kept.groups == ["g"] and kept.status == "active"


def test_validation_error_is_a_value_error_and_store_error() -> None:
    assert issubclass(ValidationError, ValueError) and issubclass(ValidationError, StoreError)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(max_size=120))
def test_any_name_is_stored_exactly_or_refused_clearly(sessions: sessionmaker[Session], name: str) -> None:
    with sessions() as s:
        try:
            members.add_member(s, member_id="h1", name=name)
        except ValidationError as exc:
            assert "name" in str(exc)
        else:
            s.flush()
            s.expire_all()
            stored = members.get_member(s, "h1")
            assert stored is not None and stored.name == name.strip()
        s.rollback()


def test_update_member(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        members.add_member(s, member_id="m1", name="Li", valid_from=dt.datetime(2024, 1, 1, tzinfo=UTC))
    with sessions() as s, s.begin():
        m = members.update_member(s, "m1", name="Li Wei", status="suspended", kind="sanitation", phone=None)
        assert m.consent_at is None
        before = m.updated_at
    with sessions() as s, s.begin():
        m = members.update_member(s, "m1", consent_cross_station=True)
        assert m.consent_at is not None and m.updated_at >= before
    with sessions() as s:
        got = members.get_member(s, "m1")
        assert got is not None and (got.name, got.status, got.kind) == ("Li Wei", "suspended", "sanitation")
        assert members.member_info(got).is_valid_at(dt.datetime.now(UTC)) == (False, "member_suspended")
        # valid_until is checked against the stored valid_from, and nothing is applied on error.
        with pytest.raises(ValidationError, match="valid_until"):
            members.update_member(s, "m1", name="X", valid_until=dt.datetime(2023, 1, 1, tzinfo=UTC))
        with pytest.raises(ValidationError, match="'colour'"):
            members.update_member(s, "m1", name="Y", colour="red")
        with pytest.raises(ValidationError, match="'member_id'"):
            members.update_member(s, "m1", member_id="m2")
        with pytest.raises(MemberNotFoundError):
            members.update_member(s, "ghost", name="Z")
        s.commit()
    with sessions() as s:
        final = members.get_member(s, "m1")
        assert final is not None and final.name == "Li Wei" and final.valid_until is None


def test_remove_member_cascades_templates_but_keeps_events(
    sessions: sessionmaker[Session], engine: Engine, cipher: TemplateCipher
) -> None:
    _enrol(sessions, cipher, "m1", 3)
    _enrol(sessions, cipher, "m2", 2, seed=10)
    with sessions() as s, s.begin():
        events.record_event(s, kind="access_granted", method="face", member_id="m1")
    with sessions() as s, s.begin():
        assert members.remove_member(s, "m1") is True
        assert members.remove_member(s, "m1") is False
    assert _count(engine, "face_templates") == 2
    assert _count(engine, "events") == 1
    with sessions() as s:
        assert members.template_counts(s) == {"m2": 2}
        assert [e.member_id for e in events.list_events(s)] == ["m1"]


def test_raw_delete_cascades_too(
    sessions: sessionmaker[Session], engine: Engine, cipher: TemplateCipher
) -> None:
    """foreign_keys=ON on every connection: even a bulk SQL delete cascades."""
    _enrol(sessions, cipher, "m1", 2)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM members WHERE member_id = 'm1'"))
    assert _count(engine, "face_templates") == 0


def test_status_check_constraint_in_database(engine: Engine) -> None:
    with pytest.raises(DBAPIError, match="ck_members_status"), engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO members (member_id, name, groups, status, consent_face, consent_cross_station, "
            "created_at, updated_at) VALUES ('m', 'n', '[]', 'banned', 0, 0, '2024-01-01', '2024-01-01')"
        )


# --- templates -------------------------------------------------------------------------------------


def test_templates_round_trip_into_roster(sessions: sessionmaker[Session], cipher: TemplateCipher) -> None:
    _enrol(sessions, cipher, "m1", 2, seed=0)
    _enrol(sessions, cipher, "m2", 1, seed=5)
    with sessions() as s, s.begin():
        members.add_member(s, member_id="qr-only", name="QR")
        members.set_state(s, members.ROSTER_VERSION_KEY, "7")
    with sessions() as s:
        roster = members.load_roster(s, cipher)
        assert roster.version == 7 and roster.size == 3
        assert roster.owners == ("m1", "m1", "m2")
        assert set(roster.members) == {"m1", "m2", "qr-only"}
        assert roster.member_ids == ("m1", "m2")
        stored = {tuple(v) for v in roster.templates_of("m1")}
        assert stored == {tuple(_vec(0)), tuple(_vec(1))}
        np.testing.assert_array_equal(roster.templates_of("m2")[0], _vec(5))
        assert members.load_roster(s, cipher, version=9).version == 9
        assert members.template_count(s, "m1") == 2 and members.template_count(s, "nobody") == 0
        assert members.template_counts(s) == {"m1": 2, "m2": 1, "qr-only": 0}
        row = s.scalars(select(FaceTemplate).where(FaceTemplate.member_id == "m1")).first()
        assert row is not None
        assert row.key_fingerprint == cipher.fingerprint and row.quality == {"sharpness": 0.9}
        assert len(row.template_id) == 32 and row.source == "enrol"


def test_empty_roster(sessions: sessionmaker[Session], cipher: TemplateCipher) -> None:
    with sessions() as s:
        roster = members.load_roster(s, cipher)
    assert roster.size == 0 and roster.version == 0 and dict(roster.members) == {}


def test_garbage_roster_version_is_an_error(sessions: sessionmaker[Session], cipher: TemplateCipher) -> None:
    with sessions() as s, s.begin():
        members.set_state(s, members.ROSTER_VERSION_KEY, "seven")
    with sessions() as s, pytest.raises(StoreError, match="roster_version"):
        members.load_roster(s, cipher)


def test_ciphertext_in_db_file_does_not_contain_raw_floats(
    sessions: sessionmaker[Session], cipher: TemplateCipher, db_path: Path
) -> None:
    vec = (np.arange(128, dtype=np.float32) + 1) * np.float32(0.0123)
    with sessions() as s, s.begin():
        members.add_member(s, member_id="m1", name="Li", consent_face=True)
        members.add_templates(s, cipher, member_id="m1", encodings=[vec], qualities=[{}], sources=[None])
    with sessions() as s:
        blob = s.scalars(select(FaceTemplate.ciphertext)).one()
    files = [db_path, Path(f"{db_path}-wal")]
    data = b"".join(p.read_bytes() for p in files if p.exists())
    assert blob in data  # positive control: we are reading the right bytes
    raw = vec.astype("<f4").tobytes()
    for start in range(0, len(raw) - 16, 16):
        assert raw[start : start + 16] not in data
    assert vec.astype("<f8").tobytes()[:32] not in data


@pytest.mark.parametrize(
    ("encodings", "field"),
    [
        ([np.zeros(127)], "encodings[0]"),
        ([np.zeros(128), np.full(128, np.nan)], "encodings[1]"),
        ([np.zeros(128), np.zeros(128), np.full(128, np.inf)], "encodings[2]"),
        ([["a"] * 128], "encodings[0]"),
        ([], "encodings"),
    ],
)
def test_add_templates_is_all_or_nothing(
    sessions: sessionmaker[Session], engine: Engine, cipher: TemplateCipher, encodings: list[Any], field: str
) -> None:
    with sessions() as s, s.begin():
        members.add_member(s, member_id="m1", name="Li", consent_face=True)
    n = len(encodings)
    with sessions() as s:
        with pytest.raises(ValidationError, match=field.replace("[", r"\[").replace("]", r"\]")):
            members.add_templates(
                s, cipher, member_id="m1", encodings=encodings, qualities=[{}] * n, sources=[None] * n
            )
        s.commit()
    assert _count(engine, "face_templates") == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"qualities": [{}, {}]}, ValidationError, "same length"),
        ({"sources": []}, ValidationError, "same length"),
        ({"qualities": [{"q": float("nan")}]}, ValidationError, r"qualities\[0\]"),
        ({"qualities": [{1: 2}]}, ValidationError, r"qualities\[0\]"),
        ({"qualities": ["good"]}, ValidationError, r"qualities\[0\]"),
        ({"sources": ["cam\x00"]}, ValidationError, r"sources\[0\]"),
        ({"member_id": "ghost"}, MemberNotFoundError, "ghost"),
        ({"member_id": "noconsent"}, ValidationError, "consent"),
    ],
)
def test_add_templates_validation(
    sessions: sessionmaker[Session],
    engine: Engine,
    cipher: TemplateCipher,
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    with sessions() as s, s.begin():
        members.add_member(s, member_id="m1", name="Li", consent_face=True)
        members.add_member(s, member_id="noconsent", name="Wang")
    args: dict[str, Any] = {"member_id": "m1", "encodings": [_vec(0)], "qualities": [{}], "sources": [None]}
    args.update(kwargs)
    with sessions() as s, pytest.raises(error, match=match):
        members.add_templates(s, cipher, **args)
    assert _count(engine, "face_templates") == 0


def test_numpy_scalars_in_quality_are_accepted(
    sessions: sessionmaker[Session], cipher: TemplateCipher
) -> None:
    with sessions() as s, s.begin():
        members.add_member(s, member_id="m1", name="Li", consent_face=True)
        members.add_templates(
            s, cipher, member_id="m1", encodings=[_vec(0)], qualities=[{"q": np.float32(0.5)}], sources=[None]
        )
    with sessions() as s:
        assert s.scalars(select(FaceTemplate.quality)).one() == {"q": 0.5}


def test_template_limit_per_member(sessions: sessionmaker[Session], cipher: TemplateCipher) -> None:
    _enrol(sessions, cipher, "m1", members.MAX_TEMPLATES_PER_MEMBER)
    with sessions() as s, pytest.raises(ValidationError, match="maximum"):
        members.add_templates(s, cipher, member_id="m1", encodings=[_vec(0)], qualities=[{}], sources=[None])


def test_withdrawing_face_consent_deletes_templates(
    sessions: sessionmaker[Session], engine: Engine, cipher: TemplateCipher
) -> None:
    _enrol(sessions, cipher, "m1", 3)
    with sessions() as s, s.begin():
        members.update_member(s, "m1", consent_face=False)
    assert _count(engine, "face_templates") == 0
    with sessions() as s, s.begin():
        members.update_member(s, "m1", consent_face=True)
        members.add_templates(s, cipher, member_id="m1", encodings=[_vec(1)], qualities=[{}], sources=[None])
        assert members.delete_templates(s, "m1") == 1
    assert _count(engine, "face_templates") == 0


def test_wrong_key_raises_key_mismatch(sessions: sessionmaker[Session], cipher: TemplateCipher) -> None:
    _enrol(sessions, cipher, "m1", 1)
    other = TemplateCipher(bytes(32))
    with sessions() as s, pytest.raises(TemplateKeyMismatch, match=cipher.fingerprint):
        members.load_roster(s, other)


def test_flipped_byte_in_row_raises_corrupt(
    sessions: sessionmaker[Session], engine: Engine, cipher: TemplateCipher
) -> None:
    (tid,) = _enrol(sessions, cipher, "m1", 1)
    with engine.begin() as conn:
        blob = bytearray(
            conn.execute(
                text("SELECT ciphertext FROM face_templates WHERE template_id = :t"), {"t": tid}
            ).scalar_one()
        )
        blob[100] ^= 0x80
        conn.execute(
            text("UPDATE face_templates SET ciphertext = :b WHERE template_id = :t"),
            {"b": bytes(blob), "t": tid},
        )
    with sessions() as s, pytest.raises(TemplateCorrupt, match=f"template {tid} of member m1"):
        members.load_roster(s, cipher)


@pytest.mark.parametrize("same_member", [True, False])
def test_ciphertexts_swapped_between_rows_raise_corrupt(
    sessions: sessionmaker[Session], engine: Engine, cipher: TemplateCipher, same_member: bool
) -> None:
    if same_member:
        t1, t2 = _enrol(sessions, cipher, "m1", 2)
    else:
        (t1,) = _enrol(sessions, cipher, "m1", 1)
        (t2,) = _enrol(sessions, cipher, "m2", 1, seed=3)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE face_templates SET ciphertext = CASE template_id "
                "WHEN :a THEN (SELECT ciphertext FROM face_templates WHERE template_id = :b) "
                "WHEN :b THEN (SELECT ciphertext FROM face_templates WHERE template_id = :a) END "
                "WHERE template_id IN (:a, :b)"
            ),
            {"a": t1, "b": t2},
        )
    with sessions() as s, pytest.raises(TemplateCorrupt):
        members.load_roster(s, cipher)


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE face_templates SET ciphertext = x'00' WHERE template_id = :t",
        "UPDATE face_templates SET ciphertext = zeroblob(540) WHERE template_id = :t",
        "UPDATE face_templates SET key_fingerprint = '0000000000000000' WHERE template_id = :t",
    ],
)
def test_load_roster_raises_instead_of_skipping_a_bad_row(
    sessions: sessionmaker[Session], engine: Engine, cipher: TemplateCipher, damage: str
) -> None:
    _enrol(sessions, cipher, "good", 2)
    (bad,) = _enrol(sessions, cipher, "zz-bad", 1, seed=9)
    with engine.begin() as conn:
        conn.execute(text(damage), {"t": bad})
    with sessions() as s, pytest.raises(TemplateDecryptError) as info:
        members.load_roster(s, cipher)
    assert info.value.template_id == bad and info.value.member_id == "zz-bad"


def test_station_state(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        assert members.get_state(s, "k") is None and members.get_state(s, "k", "d") == "d"
        members.set_state(s, "k", "1")
        members.set_state(s, "k", "2")
        with pytest.raises(ValidationError, match="value"):
            members.set_state(s, "k", 3)  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="key"):
            members.set_state(s, "", "x")
    with sessions() as s:
        assert members.get_state(s, "k") == "2"


# --- events and outbox -----------------------------------------------------------------------------


def test_record_and_list_events(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        events.record_event(
            s,
            kind="access_granted",
            method="face",
            member_id="m1",
            ts_wall=100.0,
            ts_mono=1.0,
            latency_ms=120.5,
            details={"distance": np.float32(0.25)},
        )
        events.record_event(s, kind="access_denied", method="qr", reason="qr_replayed", ts_wall=200.0)
        events.record_event(s, kind="access_granted", method="qr", member_id="m2", ts_wall=300.0)
    with sessions() as s:
        assert [e.ts_wall for e in events.list_events(s)] == [100.0, 200.0, 300.0]
        assert [e.ts_wall for e in events.list_events(s, since=200.0)] == [200.0, 300.0]
        assert [e.ts_wall for e in events.list_events(s, until=200.0)] == [100.0]
        assert [e.ts_wall for e in events.list_events(s, kind="access_granted")] == [100.0, 300.0]
        assert [e.member_id for e in events.list_events(s, member_id="m2")] == ["m2"]
        assert [e.ts_wall for e in events.list_events(s, limit=2, newest_first=True)] == [300.0, 200.0]
        first = events.list_events(s, limit=1)[0]
        payload = events.event_to_json(first)
        assert set(payload) == {
            "id",
            "ts",
            "ts_wall",
            "ts_mono",
            "kind",
            "method",
            "member_id",
            "reason",
            "details",
            "snapshot",
            "latency_ms",
        }
        assert payload["ts"] == "1970-01-01T00:01:40.000+00:00"
        assert payload["details"] == {"distance": 0.25} and payload["latency_ms"] == 120.5
        assert len(payload["id"]) == 36
        json.dumps(payload, allow_nan=False)
        with pytest.raises(ValidationError, match="limit"):
            events.list_events(s, limit=0)


def test_events_are_append_only(sessions: sessionmaker[Session], engine: Engine) -> None:
    with sessions() as s, s.begin():
        event_id = events.record_event(s, kind="door_opened").id
    for statement in ("UPDATE events SET kind = 'forged'", "DELETE FROM events"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.exec_driver_sql(statement)
    with sessions() as s:
        row = s.get(Event, event_id)
        assert row is not None
        row.reason = "rewritten"
        with pytest.raises(DBAPIError, match="append-only"):
            s.commit()
    with sessions() as s:
        row = s.get(Event, event_id)
        assert row is not None and row.kind == "door_opened" and row.reason is None


def test_event_and_outbox_share_the_transaction(sessions: sessionmaker[Session], engine: Engine) -> None:
    with sessions() as s:
        events.record_event(s, kind="access_granted", member_id="m1")
        assert events.outbox_depth(s) == 1
        s.rollback()
    assert _count(engine, "events") == 0 and _count(engine, "outbox") == 0

    with sessions() as s, s.begin():
        e = events.record_event(s, kind="access_granted", member_id="m1")
        events.record_event(s, kind="heartbeat", outbox_topic=None)
    with sessions() as s:
        (item,) = events.pending_outbox(s, 10)
        assert item.event_id == e.id and item.topic_kind == "event" and item.attempts == 0
        assert item.payload == events.event_to_json(e)
    assert _count(engine, "events") == 2


BAD_EVENTS: list[tuple[dict[str, Any], str]] = [
    ({"kind": ""}, "kind"),
    ({"kind": "door opened"}, "kind"),
    ({"method": "face\n"}, "method"),
    ({"member_id": "x" * 65}, "member_id"),
    ({"reason": "a\x00b"}, "reason"),
    ({"details": {"d": float("nan")}}, "details"),
    ({"details": {"s": {1, 2}}}, "details"),
    ({"details": {1: "x"}}, "details"),
    ({"details": ["x"]}, "details"),
    ({"latency_ms": -1.0}, "latency_ms"),
    ({"latency_ms": True}, "latency_ms"),
    ({"ts_wall": float("inf")}, "ts_wall"),
    ({"ts_wall": -1.0}, "ts_wall"),
    ({"ts_wall": 1e20}, "ts_wall"),
    ({"ts_mono": "now"}, "ts_mono"),
    ({"outbox_topic": "a/b"}, "outbox_topic"),
]


@pytest.mark.parametrize(("override", "field"), BAD_EVENTS)
def test_event_validation_writes_nothing(
    sessions: sessionmaker[Session], engine: Engine, override: dict[str, Any], field: str
) -> None:
    kwargs: dict[str, Any] = {"kind": "access_denied", **override}
    with sessions() as s:
        events.record_event(s, kind="ok")
        with pytest.raises(ValidationError, match=field):
            events.record_event(s, **kwargs)
        s.commit()  # the earlier event in the same transaction is unaffected
    assert _count(engine, "events") == 1 and _count(engine, "outbox") == 1


def test_outbox_drain(sessions: sessionmaker[Session], engine: Engine) -> None:
    with sessions() as s, s.begin():
        for i in range(5):
            events.record_event(s, kind="access_granted", ts_wall=float(i))
        events.enqueue(s, topic_kind="status", payload={"temp_c": 48.5})
    with sessions() as s, s.begin():
        batch = events.pending_outbox(s, 3)
        seqs = [item.seq for item in batch]
        assert seqs == sorted(seqs) and len(seqs) == 3
        assert events.record_attempts(s, seqs) == 3
        assert events.mark_sent(s, seqs, 1000.0) == 3
        assert events.mark_sent(s, seqs, 2000.0) == 0  # the first delivery time is kept
        assert all(item.sent_at == 1000.0 and item.attempts == 1 for item in batch)
    with sessions() as s, s.begin():
        assert events.outbox_depth(s) == 3
        rest = events.pending_outbox(s, 100)
        assert rest[-1].topic_kind == "status" and rest[-1].event_id is None
        assert min(i.seq for i in rest) > max(seqs)
        assert events.prune_sent_outbox(s, sent_before=1500.0) == 3
    assert _count(engine, "outbox") == 3 and _count(engine, "events") == 5


# --- QR keys, revocations, replay guard ------------------------------------------------------------


def test_public_keys_and_revocation(sessions: sessionmaker[Session]) -> None:
    k1, k2 = b"\x01" * 32, b"\x02" * 32
    with sessions() as s, s.begin():
        qr_store.add_public_key(s, kid="centre-2024", public_key=k1, label="centre")
        qr_store.add_public_key(s, kid="centre-2024", public_key=k1)  # idempotent
        qr_store.add_public_key(s, kid="centre-2025", public_key=k2)
        with pytest.raises(ValidationError, match="different public key"):
            qr_store.add_public_key(s, kid="centre-2024", public_key=k2)
        with pytest.raises(ValidationError, match="32 bytes"):
            qr_store.add_public_key(s, kid="short", public_key=b"\x00" * 31)
        with pytest.raises(ValidationError, match="kid"):
            qr_store.add_public_key(s, kid="bad kid", public_key=k1)
    with sessions() as s, s.begin():
        assert qr_store.public_keys(s) == {"centre-2024": k1, "centre-2025": k2}
        assert qr_store.revoke_key(s, "centre-2024") is True
        assert qr_store.revoke_key(s, "centre-2024") is False
        with pytest.raises(qr_store.UnknownKeyError):
            qr_store.revoke_key(s, "nope")
    with sessions() as s, s.begin():
        qr_store.add_public_key(s, kid="centre-2024", public_key=k1)  # re-adding does not un-revoke
        assert qr_store.public_keys(s) == {"centre-2025": k2}
        assert qr_store.revoked_kids(s) == frozenset({"centre-2024"})


def test_token_revocation(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        qr_store.revoke_token(s, nonce_hex="AABBCCDD", member_id="m1", expires_at=1000, reason="lost phone")
        qr_store.revoke_token(s, nonce_hex="aabbccdd", expires_at=2000, reason="again")
        qr_store.revoke_token(s, nonce_hex="11223344", member_id="张三", expires_at=500, reason="stolen")
        for bad, field in (
            ({"nonce_hex": "xyz"}, "nonce_hex"),
            ({"expires_at": 1.5}, "expires_at"),
            ({"reason": ""}, "reason"),
            ({"member_id": "a\x00b"}, "member_id"),
            ({"member_id": "x" * 65}, "member_id"),
        ):
            args: dict[str, Any] = {"nonce_hex": "99887766", "expires_at": 10, "reason": "r", **bad}
            with pytest.raises(ValidationError, match=field):
                qr_store.revoke_token(s, **args)
    with sessions() as s, s.begin():
        assert qr_store.revoked_nonces(s, 0, skew_s=0) == frozenset({"aabbccdd", "11223344"})
        assert qr_store.revoked_nonces(s, 1500, skew_s=0) == frozenset({"aabbccdd"})  # extended to 2000
        assert qr_store.prune_revocations(s, 1500, skew_s=0) == 1
        assert qr_store.revoked_nonces(s, 0, skew_s=0) == frozenset({"aabbccdd"})


def test_replay_guard_first_and_second_claim_persist(db_path: Path, engine: Engine) -> None:
    guard = qr_store.SqlReplayGuard(make_session_factory(engine))
    assert guard.claim("k1", "00ff00ff00ff", 2000, 1000) is True
    assert guard.claim("k1", "00ff00ff00ff", 2000, 1001) is False
    assert guard.claim("k1", "00FF00FF00FF", 2000, 1001) is False  # hex case does not matter
    assert guard.claim("k2", "00ff00ff00ff", 2000, 1001) is True
    engine.dispose()
    reopened = open_engine(db_path)
    migrate(reopened)
    guard2 = qr_store.SqlReplayGuard(make_session_factory(reopened))
    assert guard2.claim("k1", "00ff00ff00ff", 2000, 1002) is False
    reopened.dispose()


def test_replay_guard_is_atomic_across_threads(engine: Engine) -> None:
    guard = qr_store.SqlReplayGuard(make_session_factory(engine))
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def claim() -> None:
        barrier.wait()
        results.append(guard.claim("k1", "deadbeef", 2000, 1000))

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 5 + [True]


def test_replay_guard_prunes_expired_nonces(engine: Engine) -> None:
    guard = qr_store.SqlReplayGuard(make_session_factory(engine), prune_every=3, prune_grace_s=10)
    assert guard.claim("k", "00000001", 100, 50)
    assert guard.claim("k", "00000002", 1000, 50)
    assert _count(engine, "qr_nonces") == 2
    assert guard.claim("k", "00000003", 1000, 200)  # third claim prunes: 100 < 200 - 10
    assert _count(engine, "qr_nonces") == 2
    assert guard.prune(1005) == 0  # within the grace period
    assert guard.prune(2000) == 2
    with pytest.raises(qr_store.ReplayGuardUnavailable, match="nonce_hex"):
        guard.claim("k", "not-hex", 1000, 0)


class _CheckerError(Exception):
    """Stands in for the QR checker's ReplayGuardError (same call shape: one message argument)."""


def test_replay_guard_failure_raises_only_the_configured_error(engine: Engine) -> None:
    guard = qr_store.SqlReplayGuard(make_session_factory(engine), error_factory=_CheckerError)
    assert guard.claim("k", "00000001", 1000, 0) is True
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE qr_nonces")  # a real database failure, not a mock
    with pytest.raises(_CheckerError, match="could not record nonce") as info:
        guard.claim("k", "00000002", 1000, 0)
    assert isinstance(info.value.__cause__, DBAPIError)
    with pytest.raises(_CheckerError, match="kid"):
        guard.claim("", "00000002", 1000, 0)
    with pytest.raises(qr_store.ReplayGuardUnavailable):
        qr_store.SqlReplayGuard(make_session_factory(engine)).claim("k", "00000003", 1000, 0)


def test_failed_prune_does_not_undo_a_claim(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER no_prune BEFORE DELETE ON qr_nonces BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
    guard = qr_store.SqlReplayGuard(make_session_factory(engine), prune_every=1, prune_grace_s=0)
    assert guard.claim("k", "00000001", 10, 5000) is True
    assert guard.claim("k", "00000001", 10, 5000) is False
    assert "pruning expired QR nonces failed" in caplog.text


# --- durability ------------------------------------------------------------------------------------


def test_everything_survives_reopening(db_path: Path, engine: Engine, cipher: TemplateCipher) -> None:
    sessions = make_session_factory(engine)
    _enrol(sessions, cipher, "m1", 2)
    with sessions() as s, s.begin():
        event_id = events.record_event(s, kind="access_granted", member_id="m1").id
        qr_store.add_public_key(s, kid="k", public_key=b"\x07" * 32)
        members.set_state(s, "roster_version", "3")
    engine.dispose()

    reopened = open_engine(db_path)
    migrate(reopened)
    with make_session_factory(reopened)() as s:
        roster = members.load_roster(s, cipher)
        assert roster.version == 3 and roster.size == 2
        assert [e.id for e in events.list_events(s)] == [event_id]
        assert events.outbox_depth(s) == 1
        assert qr_store.public_keys(s) == {"k": b"\x07" * 32}
    reopened.dispose()


def test_committed_event_survives_process_death(db_path: Path, engine: Engine) -> None:
    """The writer dies right after commit, without closing anything; the event is there."""
    script = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO)!r})
        from models.database import open_engine, make_session_factory
        from models.events import record_event

        engine = open_engine(Path({str(db_path)!r}))
        with make_session_factory(engine)() as s:
            e = record_event(s, kind="access_granted", member_id="m1")
            s.commit()
            print(e.id, flush=True)
            os._exit(0)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    event_id = result.stdout.strip()
    with make_session_factory(engine)() as s:
        assert [e.id for e in events.list_events(s)] == [event_id]
        assert [i.event_id for i in events.pending_outbox(s, 10)] == [event_id]


def test_models_do_not_import_web_mqtt_or_gpio() -> None:
    """models/ must run in any process (CLI, sync, door) without pulling in those stacks."""
    forbidden = {"fastapi", "paho", "gpiozero"}
    for path in sorted((REPO / "models").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not {n.split(".")[0] for n in names} & forbidden, f"{path.name} imports {names}"


def test_latency_can_be_filled_once_and_nothing_else_changes(tmp_path: Path) -> None:
    """The event row is committed before the relay moves, so its latency is filled afterwards, once."""
    import sqlite3
    import uuid as uuid_module

    from models.database import make_session_factory, migrate, open_engine
    from models.events import list_events, pending_outbox, record_event, set_latency

    engine = open_engine(tmp_path / "y.db")
    migrate(engine)
    sessions = make_session_factory(engine)
    event_id = str(uuid_module.uuid4())
    with sessions() as session, session.begin():
        record_event(session, kind="entry", method="face", member_id="m1", event_id=event_id)
    with sessions() as session, session.begin():
        assert set_latency(session, event_id, 142.5)
    with sessions() as session, session.begin():
        assert not set_latency(session, event_id, 1.0)  # once only
    with sessions() as session:
        (event,) = list_events(session)
        assert event.id == event_id and event.latency_ms == 142.5
        assert pending_outbox(session, 10)[0].payload["latency_ms"] == 142.5
    engine.dispose()
    raw = sqlite3.connect(tmp_path / "y.db")
    for statement in (
        "update events set latency_ms = 1 where id = ?",
        "update events set kind = 'refused' where id = ?",
        "delete from events where id = ?",
    ):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            raw.execute(statement, (event_id,))
    raw.close()


def test_event_id_must_be_a_uuid(tmp_path: Path) -> None:
    from models.database import ValidationError, make_session_factory, migrate, open_engine
    from models.events import record_event

    engine = open_engine(tmp_path / "y.db")
    migrate(engine)
    with make_session_factory(engine)() as session, pytest.raises(ValidationError):
        record_event(session, kind="entry", event_id="../../etc")
    engine.dispose()
