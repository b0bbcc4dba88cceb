"""The roster master without a broker: views, ops, numbered changes, snapshots, erasure, consent.

The messages it builds are checked with the station's own strict parser (`contract.messages`), so
what passes here is what a station accepts. Store-level tests run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from central_fixtures import CentralDb
from sqlalchemy import select
from sqlalchemy.orm import Session

from central import roster
from central.config import parse_config
from central.data_key import DataKey
from central.ingest.messages import RosterRequestIn
from central.roster import changes, state
from central.roster.messages import Templates, change_message, snapshot_messages
from central.roster.requests import answer_request
from central.roster.view import MemberState, StationBasis, TemplateRef, diff, view
from central.store import members as member_store
from central.store import signing_keys
from central.store import stations as station_store
from central.store.tables import Erasure, FaceTemplate, RosterChange, Station
from contract.messages import RosterChange as ContractChange
from contract.messages import RosterSnapshotPart, parse_roster

T1, T2, T3 = "a" * 32, "b" * 32, "c" * 32


def member(groups: tuple[str, ...] = (), cross: bool = True, **fields: Any) -> MemberState:
    values = {
        "name": "张三",
        "phone": None,
        "groups": list(groups),
        "kind": "courier",
        "valid_from": None,
        "valid_until": None,
        "status": "active",
        "consent_face": True,
        "consent_cross_station": cross,
        **fields,
    }
    refs = (TemplateRef(T1, "dlib_resnet_v1", "fleet", "s1"), TemplateRef(T2, "onnx-abc", "fleet", "s1"))
    return MemberState("m-1", values, True, refs)


S1 = StationBasis("s1", (), "dlib_resnet_v1")
S2 = StationBasis("s2", (), "dlib_resnet_v1")
S3 = StationBasis("s3", ("riders",), "dlib_resnet_v1")


# -- pure views and ops -------------------------------------------------------------------------------


def test_a_face_goes_everywhere_with_cross_station_consent_and_stays_home_without() -> None:
    assert view(member(), S2).templates == (T1,)  # only the station's model
    assert view(member(cross=False), S2).templates == ()
    assert view(member(cross=False), S1).templates == (T1,)  # its origin keeps it
    assert view(member(consent_face=False, consent_cross_station=False), S1).templates == ()
    assert view(member(), S3) is None  # not in the station's groups
    assert view(member(groups=("riders",)), S3) is not None
    assert view(MemberState("m-1", member().fields, False), S1) is None  # pending approval: nowhere
    inactive = StationBasis("s2", (), "dlib_resnet_v1", active=False)
    assert view(member(), inactive) is None


def test_diffs_are_the_contracts_ops_in_apply_order() -> None:
    before, after = view(member(), S2), view(member(cross=False, status="suspended"), S2)
    ops = diff("m-1", before, after)
    assert ops == [
        {"op": "update_member", "member_id": "m-1", "fields": {"consent_cross_station": False}},
        {"op": "suspend_member", "member_id": "m-1"},
        {"op": "remove_template", "member_id": "m-1", "template_id": T1},
    ]
    assert diff("m-1", None, view(member(), S2))[0]["op"] == "add_member"
    assert diff("m-1", view(member(), S2), None) == [{"op": "remove_member", "member_id": "m-1"}]
    gone = diff("m-1", before, view(member(consent_face=False, consent_cross_station=False), S2))
    assert [o["op"] for o in gone] == ["update_member"]  # the station deletes templates itself
    assert diff("m-1", before, before) == []


# -- against the database -----------------------------------------------------------------------------


@pytest.fixture
def keyed(central_db: CentralDb, tmp_path: Path) -> Iterator[tuple[CentralDb, DataKey]]:
    config = parse_config({"storage": {"data_dir": str(tmp_path)}}, "test")
    data_key = DataKey.load(config, env={})
    now = dt.datetime.now(dt.UTC)
    with central_db.sessions.begin() as db:
        for purpose in ("qr", "messages"):
            signing_keys.rotate_key(db, data_key, purpose=purpose, now=now, overlap=dt.timedelta(days=1))
        for sid, groups in (("s1", []), ("s2", []), ("s3", ["riders"])):
            station_store.add_station(db, station_id=sid, name=sid, district_id="d1", allowed_groups=groups)
    yield central_db, data_key


def built(db: Session, data_key: DataKey, *station_ids: str) -> None:
    """The stations asked for their roster once (a snapshot): from now on they get changes."""
    for sid in station_ids:
        request = RosterRequestIn.model_validate(
            {
                "v": 1,
                "type": "roster_request",
                "station_id": sid,
                "id": f"q-{sid}",
                "have_version": 0,
                "reason": "new",
                "ts": "2026-12-01T00:00:00+00:00",
            },
            strict=False,
        )
        assert answer_request(
            db, data_key.templates, station_id=sid, request=request, now=dt.datetime.now(dt.UTC)
        )


def vector(seed: int) -> list[float]:
    return np.random.default_rng(seed).normal(0, 0.1, 128).tolist()


def station_changes(db: Session, sid: str) -> list[RosterChange]:
    return list(
        db.scalars(select(RosterChange).where(RosterChange.station_id == sid).order_by(RosterChange.version))
    )


def parsed(message: dict[str, Any]) -> Any:
    return parse_roster(json.dumps(message).encode(), 8 << 20)


def test_member_changes_are_numbered_per_station_without_gaps_and_parse_at_the_station(
    keyed: tuple[CentralDb, DataKey],
) -> None:
    central_db, data_key = keyed
    with central_db.sessions.begin() as db:
        built(db, data_key, "s1", "s2", "s3")
        versions = {s.station_id: s.issued_version for s in db.scalars(select(Station))}
        assert versions == {"s1": 1, "s2": 1, "s3": 1}  # the snapshot markers of their first request
        member_store.add_member(
            db,
            member_id="m-1",
            name="李四",
            groups=["riders"],
            consent_face=True,
            consent_cross_station=True,
            home_station_id="s1",
        )
        member_store.add_template(
            db, data_key.templates, member_id="m-1", vector=vector(1), template_id=T1, origin_station_id="s1"
        )
        assert roster.member_changed(db, "m-1") == 3
        assert roster.member_changed(db, "m-1") == 0  # nothing new
        m = member_store.get_member(db, member_id="m-1")
        assert m is not None
        m.status = "suspended"
        assert roster.member_changed(db, "m-1") == 3
        m.groups = ["sanitation"]  # s3 admits riders only: it loses the member
        assert roster.member_changed(db, "m-1") == 3
    with central_db.sessions() as db:
        for sid in ("s1", "s2", "s3"):
            rows = station_changes(db, sid)
            assert [r.version for r in rows] == list(range(1, len(rows) + 1))
        s3_ops = [[op["op"] for op in r.ops] for r in station_changes(db, "s3")[1:]]
        assert s3_ops == [["add_member"], ["suspend_member"], ["remove_member"]]
        templates = Templates(db, data_key.templates)
        message = change_message(station_changes(db, "s2")[1], templates)
        change = parsed(message)
        assert isinstance(change, ContractChange)
        added = change.ops[0].member  # type: ignore[union-attr]
        assert added.templates[0].template_id == T1
        assert np.allclose(added.templates[0].vector, vector(1), atol=1e-6)
        stored = db.scalars(select(RosterChange.ops)).all()
        assert all("vector" not in json.dumps(ops) for ops in stored)  # no face data in clear at rest


def test_stations_never_built_get_a_snapshot_not_changes(keyed: tuple[CentralDb, DataKey]) -> None:
    central_db, data_key = keyed
    with central_db.sessions.begin() as db:
        member_store.add_member(db, member_id="m-1", name="王五")
        roster.member_changed(db, "m-1")
        assert db.scalars(select(RosterChange)).all() == []  # nobody has a roster to change yet
        request = RosterRequestIn.model_validate(
            {
                "v": 1,
                "type": "roster_request",
                "station_id": "s2",
                "id": "q1",
                "have_version": 0,
                "reason": "new",
                "ts": "2026-12-01T00:00:00+00:00",
                "face_model": {"name": "dlib_resnet_v1", "dim": 128},
            },
            strict=False,
        )
        answer = answer_request(
            db, data_key.templates, station_id="s2", request=request, now=dt.datetime.now(dt.UTC)
        )
        assert answer is not None and answer.snapshot and answer.version == 1
        *parts, status = answer.messages
        snapshot = parsed(parts[0])
        assert isinstance(snapshot, RosterSnapshotPart)
        assert [m.member_id for m in snapshot.members] == ["m-1"]
        assert snapshot.qr_keys and status["type"] == "roster_status" and status["request_id"] == "q1"
        assert status["version"] == 1
        # Asked again at version 1: current, a status only.
        request = request.model_copy(update={"have_version": 1, "reason": "pull", "id": "q2"})
        again = answer_request(
            db, data_key.templates, station_id="s2", request=request, now=dt.datetime.now(dt.UTC)
        )
        assert again is not None and [m["type"] for m in again.messages] == ["roster_status"]
        # A station ahead of the centre (a restored backup): jumped past, with a snapshot.
        ahead = request.model_copy(update={"have_version": 40, "id": "q3"})
        jump = answer_request(
            db, data_key.templates, station_id="s2", request=ahead, now=dt.datetime.now(dt.UTC)
        )
        assert jump is not None and jump.snapshot and jump.version == 41


def test_big_snapshots_come_in_parts_under_the_stations_payload_limit(
    keyed: tuple[CentralDb, DataKey],
) -> None:
    central_db, data_key = keyed
    with central_db.sessions.begin() as db:
        for i in range(300):
            mid = f"m-{i:04d}"
            member_store.add_member(
                db, member_id=mid, name=f"worker {i}", consent_face=True, consent_cross_station=True
            )
            for j in range(3):
                member_store.add_template(db, data_key.templates, member_id=mid, vector=vector(i * 3 + j))
            roster.member_changed(db, mid)
        station = db.get(Station, "s1")
        assert station is not None
        parts = snapshot_messages(db, data_key.templates, station, 7, now=dt.datetime.now(dt.UTC))
    assert len(parts) > 1
    sizes = [len(json.dumps(p)) for p in parts]
    assert max(sizes) < 2 * 1024 * 1024  # the stations' default max_payload_bytes
    members = [m for p in parts for m in parsed(p).members]
    assert len(members) == 300 and all(len(m.templates) == 3 for m in members)
    assert {p["parts"] for p in parts} == {len(parts)}


def test_erasure_reaches_every_holder_and_is_recorded_without_the_data(
    keyed: tuple[CentralDb, DataKey],
) -> None:
    central_db, data_key = keyed
    with central_db.sessions.begin() as db:
        built(db, data_key, "s1", "s2", "s3")
        member_store.add_member(
            db,
            member_id="m-9",
            name="赵六",
            phone="13800000000",
            consent_face=True,
            consent_cross_station=True,
        )
        member_store.add_template(db, data_key.templates, member_id="m-9", vector=vector(9), template_id=T3)
        roster.member_changed(db, "m-9")
        erasure = roster.erase_member(db, "m-9", "staff:ops")
        erasure_id = erasure.id
    with central_db.sessions.begin() as db:
        row = db.get(Erasure, erasure_id)
        assert row is not None and sorted(row.stations_pending) == ["s1", "s2"] and row.templates_deleted == 1
        assert "赵六" not in json.dumps(
            {c.name: str(getattr(row, c.name)) for c in Erasure.__table__.columns}
        )
        assert member_store.get_member(db, member_id="m-9") is None
        assert db.get(FaceTemplate, T3) is None
        last = station_changes(db, "s1")[-1]
        assert last.ops == [{"op": "remove_member", "member_id": "m-9"}]
        assert roster.confirm_applied(db, station_id="s1", applied_version=last.version - 1) == []
        assert roster.confirm_applied(db, station_id="s1", applied_version=last.version) == []
        s2 = station_changes(db, "s2")[-1].version
        assert roster.confirm_applied(db, station_id="s2", applied_version=s2) == [erasure_id]
        row = db.get(Erasure, erasure_id, populate_existing=True)
        assert row is not None and row.completed_at is not None and row.stations_pending == []


def test_withdrawn_cross_station_consent_keeps_the_face_only_where_it_was_enrolled(
    keyed: tuple[CentralDb, DataKey],
) -> None:
    central_db, data_key = keyed
    with central_db.sessions.begin() as db:
        built(db, data_key, "s1", "s2")
        member_store.add_member(
            db,
            member_id="m-5",
            name="钱七",
            consent_face=True,
            consent_cross_station=True,
            home_station_id="s1",
        )
        member_store.add_template(
            db, data_key.templates, member_id="m-5", vector=vector(5), template_id=T1, origin_station_id="s1"
        )
        roster.member_changed(db, "m-5")
        erasure = roster.withdraw_consent(db, "m-5", "staff:ops", cross_station=True)
        assert (
            erasure is not None and erasure.reason == "consent_withdrawn" and erasure.templates_deleted == 1
        )
        s1_last, s2_last = station_changes(db, "s1")[-1].ops, station_changes(db, "s2")[-1].ops
        assert {"op": "remove_template", "member_id": "m-5", "template_id": T1} in s2_last
        assert all(op["op"] != "remove_template" for op in s1_last)  # its origin keeps it
        row = db.get(FaceTemplate, T1)
        assert row is not None and row.ciphertext == state.WITHDRAWN  # the centre holds no copy
        # Face consent withdrawn: gone everywhere, the origin too (the station deletes on consent_face=false).
        roster.withdraw_consent(db, "m-5", "staff:ops", face=True)
        assert db.get(FaceTemplate, T1) is None
        ops = station_changes(db, "s1")[-1].ops
        assert ops[0] == {"op": "update_member", "member_id": "m-5", "fields": {"consent_face": False}}


def test_a_station_admitting_another_group_gains_and_loses_members(keyed: tuple[CentralDb, DataKey]) -> None:
    central_db, data_key = keyed
    with central_db.sessions.begin() as db:
        built(db, data_key, "s3")
        for mid, groups in (("m-r", ["riders"]), ("m-s", ["sanitation"])):
            member_store.add_member(db, member_id=mid, name=mid, groups=groups)
            roster.member_changed(db, mid)
        s3 = db.get(Station, "s3")
        assert s3 is not None
        s3.allowed_groups = ["sanitation"]
        assert changes.station_changed(db, "s3") == 2
        ops = station_changes(db, "s3")[-1].ops
        assert {o["op"] for o in ops} == {"remove_member", "add_member"}
        assert changes.station_changed(db, "s3") == 0


def test_qr_key_rotation_reaches_every_station(keyed: tuple[CentralDb, DataKey]) -> None:
    central_db, data_key = keyed
    now = dt.datetime.now(dt.UTC)
    with central_db.sessions.begin() as db:
        built(db, data_key, "s1")
        roster.keys_changed(db, now=now)
        before = len(station_changes(db, "s1"))
        new, old = signing_keys.rotate_key(db, data_key, purpose="qr", now=now, overlap=dt.timedelta(hours=1))
        roster.keys_changed(db, now=now)
        ops = station_changes(db, "s1")[-1].ops
        assert len(station_changes(db, "s1")) == before + 1
        assert ops == [
            {
                "op": "add_qr_key",
                "key": {"kid": new.kid, "public_key": signing_keys.public_key_b64(new), "label": new.label},
            }
        ]
        assert old is not None
        roster.keys_changed(db, now=now + dt.timedelta(hours=2))  # the old one's overlap is over
        assert station_changes(db, "s1")[-1].ops == [{"op": "revoke_qr_key", "kid": old.kid}]
        parsed(change_message(station_changes(db, "s1")[-1], Templates(db, data_key.templates)))


def test_each_station_gets_only_templates_of_its_face_model(keyed: tuple[CentralDb, DataKey]) -> None:
    central_db, data_key = keyed
    onnx = "onnx-1a2b3c4d"
    with central_db.sessions.begin() as db:
        s2 = db.get(Station, "s2")
        assert s2 is not None
        s2.face_model = onnx  # as its roster requests announce it
        built(db, data_key, "s1", "s2")
        member_store.add_member(
            db, member_id="m-7", name="孙八", consent_face=True, consent_cross_station=True
        )
        member_store.add_template(db, data_key.templates, member_id="m-7", vector=vector(7), template_id=T1)
        wide = np.random.default_rng(8).normal(0, 0.05, 512).tolist()
        member_store.add_template(
            db, data_key.templates, member_id="m-7", vector=wide, template_id=T2, model=onnx
        )
        with pytest.raises(ValueError, match="128"):
            member_store.add_template(db, data_key.templates, member_id="m-7", vector=wide, template_id=T3)
        roster.member_changed(db, "m-7")
        templates = Templates(db, data_key.templates)
        dlib_change = parsed(change_message(station_changes(db, "s1")[-1], templates))
        onnx_change = parsed(change_message(station_changes(db, "s2")[-1], templates))
    (dlib_template,) = dlib_change.ops[0].member.templates
    (onnx_template,) = onnx_change.ops[0].member.templates
    assert (dlib_template.template_id, dlib_template.model) == (T1, "dlib_resnet_v1")
    assert (onnx_template.template_id, onnx_template.model, len(onnx_template.vector)) == (T2, onnx, 512)
    assert np.allclose(onnx_template.vector, wide, atol=1e-6)
