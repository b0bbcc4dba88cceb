"""The dashboard's REST routes on SQLite and PostgreSQL: members (scoped by home station, edited,
suspended, erased, QR passes that a station would accept), stations with health, events as the
dashboard shows them, snapshots, visits in station-local days and their exports, the audit log
and staff accounts. Roles are enforced on the server: every refusal here is an HTTP status."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openpyxl
import pytest
import zxingcpp
from central_fixtures import CentralDb
from dashboard_support import NOW, PASSWORD, Api, Fleet, build_fleet, config_for
from fastapi.testclient import TestClient
from PIL import Image

from central.config import CentralConfig
from central.store import members as member_store
from central.store import signing_keys
from central.store.tables import AuditEntry, Erasure, FaceTemplate, Station
from central.web.app import create_app
from recognizer.qr_token import public_key_map, verify_token


@pytest.fixture
def fleet(central_db: CentralDb, central_config: CentralConfig) -> Iterator[tuple[Fleet, TestClient]]:
    fleet = build_fleet(central_db, config_for(central_config), now=NOW)
    with TestClient(create_app(fleet.ctx), base_url="https://testserver") as client:
        yield fleet, client


def jpeg(width: int = 640, height: int = 480) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (40, 120, 90)).save(out, format="JPEG")
    return out.getvalue()


def audit_actions(fleet: Fleet) -> list[tuple[str, str | None, str | None]]:
    with fleet.ctx.db() as db:
        return [(e.action, e.target_id, e.district_id) for e in db.query(AuditEntry).order_by(AuditEntry.id)]


# -- members -----------------------------------------------------------------------------------------


def test_members_are_scoped_by_their_home_station(fleet: tuple[Fleet, TestClient]) -> None:
    _, client = fleet
    admin, hd, hd_viewer = Api(client, "admin"), Api(client, "hd.staff"), Api(client, "hd.viewer")
    assert {m["member_id"] for m in admin.get("/api/v1/members").json()} == {"m-li", "m-wang", "m-zhao"}
    assert [m["member_id"] for m in hd.get("/api/v1/members").json()] == ["m-li"]
    assert [m["member_id"] for m in hd_viewer.get("/api/v1/members?search=李").json()] == ["m-li"]
    for other in ("m-wang", "m-zhao", "m-nobody"):
        response = hd.get(f"/api/v1/members/{other}")
        assert response.status_code == 404 and response.json()["code"] == "member_not_found"
        assert hd.post(f"/api/v1/members/{other}/suspend").status_code == 404
        assert hd.patch(f"/api/v1/members/{other}", json={"groups": []}).status_code == 404
    assert hd.get("/api/v1/members/m-li").json()["name"] == "李娜"


def test_creating_members(fleet: tuple[Fleet, TestClient]) -> None:
    fleet_, client = fleet
    admin, hd, viewer = Api(client, "admin"), Api(client, "hd.staff"), Api(client, "viewer")
    body = {"name": "张伟", "phone": "13800000000", "kind": "courier", "groups": ["couriers", "couriers"],
            "valid_until": "2027-06-30T23:59:59+08:00"}  # fmt: skip
    assert viewer.post("/api/v1/members", json=body).status_code == 403
    response = hd.post("/api/v1/members", json=body)
    assert response.status_code == 422 and "home station" in response.json()["detail"]
    response = hd.post("/api/v1/members", json={**body, "home_station_id": "cy-1"})
    assert response.status_code == 422 and "no station 'cy-1' in your district" in response.json()["detail"]
    response = hd.post("/api/v1/members", json={**body, "home_station_id": "hd-2", "member_id": "m-zhang"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["groups"] == ["couriers"]
    assert dt.datetime.fromisoformat(created["valid_until"]) == dt.datetime(
        2027, 6, 30, 15, 59, 59, tzinfo=dt.UTC
    )
    assert created["templates"] == 0 and created["source"] == "staff"
    assert (
        hd.post(
            "/api/v1/members", json={**body, "home_station_id": "hd-2", "member_id": "m-zhang"}
        ).status_code
        == 422
    )
    response = admin.post("/api/v1/members", json={"name": "无站点"})
    assert response.status_code == 201 and response.json()["member_id"].startswith("m-")
    assert admin.post("/api/v1/members", json={"name": "x", "consent_cross_station": True}).status_code == 422
    assert ("member_created", "m-zhang", "haidian") in audit_actions(fleet_)


def test_editing_validity_groups_and_consent(fleet: tuple[Fleet, TestClient]) -> None:
    fleet_, client = fleet
    hd = Api(client, "hd.staff")
    with fleet_.ctx.db.begin() as db:
        cipher = fleet_.ctx.data_key.templates
        member_store.update_member(db, member=member_store.get_member(db, member_id="m-li"),
                                   changes={"consent_cross_station": True})  # fmt: skip
        member_store.add_template(db, cipher, member_id="m-li", vector=np.zeros(128, np.float32))
        member_store.add_template(db, cipher, member_id="m-li", vector=np.ones(128, np.float32) / 12)
    response = hd.patch("/api/v1/members/m-li", json={"groups": ["sanitation", "night"],
                        "valid_from": "2026-01-01T00:00:00+08:00", "valid_until": None})  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["groups"] == ["sanitation", "night"] and response.json()["templates"] == 2
    assert (
        hd.patch("/api/v1/members/m-li", json={"valid_until": "2025-01-01T00:00:00+08:00"}).status_code == 422
    )
    assert hd.patch("/api/v1/members/m-li", json={"valid_until": "2030-01-01T00:00:00"}).status_code == 422
    assert hd.patch("/api/v1/members/m-li", json={"name": None}).status_code == 422
    assert hd.patch("/api/v1/members/m-li", json={"status": "active"}).status_code == 422  # not here
    # Withdrawing cross-station consent keeps templates at home only: they have no origin -> gone.
    response = hd.patch("/api/v1/members/m-li", json={"consent_cross_station": False})
    assert response.status_code == 200 and response.json()["templates"] == 0
    with fleet_.ctx.db() as db:
        assert db.query(FaceTemplate).filter_by(member_id="m-li").count() == 0
    # The edit and the withdrawal (the roster's entry: an erasure without the data) are both audited,
    # in the member's district.
    entries = [a for a in audit_actions(fleet_) if a[0] in ("member_updated", "consent_withdrawn")]
    assert sorted(a[0] for a in entries) == ["consent_withdrawn", "member_updated"]
    assert {a[2] for a in entries} == {"haidian"}


def test_withdrawing_face_consent_deletes_templates_and_narrowing_keeps_the_origin(
    fleet: tuple[Fleet, TestClient],
) -> None:
    fleet_, client = fleet
    admin = Api(client, "admin")
    with fleet_.ctx.db.begin() as db:
        cipher = fleet_.ctx.data_key.templates
        member = member_store.get_member(db, member_id="m-li")
        assert member is not None
        member_store.update_member(db, member=member, changes={"consent_cross_station": True})
        member_store.add_template(db, cipher, member_id="m-li", vector=np.zeros(128, np.float32),
                                  origin_station_id="hd-1")  # fmt: skip
    assert admin.patch("/api/v1/members/m-li", json={"consent_cross_station": False}).json()["templates"] == 1
    with fleet_.ctx.db() as db:
        assert [t.scope for t in db.query(FaceTemplate).filter_by(member_id="m-li")] == ["station"]
    assert admin.patch("/api/v1/members/m-li", json={"consent_face": False}).json()["templates"] == 0
    detail = admin.get("/api/v1/members/m-li").json()
    assert detail["consent_face"] is False and detail["consent_face_at"] is not None  # when withdrawn


def test_suspend_activate_and_erase(fleet: tuple[Fleet, TestClient]) -> None:
    fleet_, client = fleet
    hd, viewer = Api(client, "hd.staff"), Api(client, "hd.viewer")
    assert viewer.post("/api/v1/members/m-li/suspend").status_code == 403
    response = hd.post("/api/v1/members/m-li/suspend", json={"reason": "lost card"})
    assert response.status_code == 200 and response.json()["status"] == "suspended"
    assert hd.post("/api/v1/members/m-li/activate").json()["status"] == "active"
    snapshot_event = fleet_.store_event(station_id="hd-1", member_id="m-li", snapshot=jpeg(), publish=False)
    with fleet_.ctx.db.begin() as db:
        member_store.add_template(db, fleet_.ctx.data_key.templates, member_id="m-li",
                                  vector=np.zeros(128, np.float32), origin_station_id="hd-1")  # fmt: skip
    response = hd.post("/api/v1/members/m-li/erase", json={"confirm": "m-wrong"})
    assert response.status_code == 422 and response.json()["code"] == "confirmation_required"
    assert viewer.post("/api/v1/members/m-li/erase", json={"confirm": "m-li"}).status_code == 403
    response = hd.post("/api/v1/members/m-li/erase", json={"confirm": "m-li"})
    assert response.status_code == 200, response.text
    assert response.json()["templates_deleted"] == 1 and response.json()["snapshots_deleted"] == 1
    assert hd.get("/api/v1/members/m-li").status_code == 404
    assert not list(fleet_.ctx.config.storage.snapshots_dir.rglob(f"{snapshot_event}.jpg"))
    with fleet_.ctx.db() as db:
        erasure = db.query(Erasure).one()
        assert (erasure.member_id, erasure.requested_by, erasure.reason) == (
            "m-li",
            "staff:hd.staff",
            "member_request",
        )
        assert "李娜" not in str(erasure.__dict__)
    # The event stays (the log outlives the member), without a name or a photo.
    event = hd.get("/api/v1/events?station_id=hd-1").json()[0]
    assert (
        event["member_id"] == "m-li" and event["member_name"] is None and event["snapshot_state"] == "expired"
    )
    actions = [a[0] for a in audit_actions(fleet_) if a[0].startswith("member_")]
    assert actions == ["member_suspended", "member_activated", "member_erased"]


def test_a_pass_is_a_png_the_stations_accept(fleet: tuple[Fleet, TestClient]) -> None:
    fleet_, client = fleet
    hd = Api(client, "hd.staff")
    with fleet_.ctx.db.begin() as db:
        key = signing_keys.active_key(db, purpose="qr")
        assert key is not None
        keys = public_key_map([key.public_key])
        member = member_store.get_member(db, member_id="m-li")
        assert member is not None
        member.valid_until = NOW + dt.timedelta(days=30)
    response = hd.post("/api/v1/members/m-li/passes", json={"valid_days": 365})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "李娜" and body["expires_at"].startswith("2026-12-24")  # cut to the validity
    image = np.array(Image.open(io.BytesIO(base64.b64decode(body["png_base64"]))).convert("L"))
    decoded = zxingcpp.read_barcodes(image)
    assert [d.text for d in decoded] == [body["token"]]
    claims = verify_token(body["token"], keys, now=int(NOW.timestamp()) + 60, max_clock_skew_s=0)
    assert claims.member_id == "m-li" and claims.kid == body["kid"]
    pass_audit = [a for a in audit_actions(fleet_) if a[0] == "pass_issued"]
    assert pass_audit == [("pass_issued", "m-li", "haidian")]
    hd.post("/api/v1/members/m-li/suspend")
    response = hd.post("/api/v1/members/m-li/passes")
    assert response.status_code == 422 and "suspended" in response.json()["detail"]
    assert Api(client, "hd.viewer").post("/api/v1/members/m-li/passes").status_code == 403


# -- stations ----------------------------------------------------------------------------------------


def test_station_health_from_the_last_heartbeat(fleet: tuple[Fleet, TestClient]) -> None:
    fleet_, client = fleet
    with fleet_.ctx.db.begin() as db:
        station = db.get(Station, "hd-1")
        assert station is not None
        station.last_state, station.last_seen_at = "online", NOW - dt.timedelta(seconds=42)
        station.last_status_at = NOW - dt.timedelta(seconds=42)
        station.applied_version, station.issued_version = 55, 57
        station.last_health = {
            "camera": {"state": "down", "fps": 0.0}, "disk": {"status": "warn", "detail": "900 MiB free"},
            "clock": {"status": "ok", "station_time": (NOW - dt.timedelta(seconds=42 - 95)).isoformat()},
            "outbox_depth": 12, "door": {"door_open": False, "alarm": True, "tampered": "yes"},
            "face_model": {"name": "dlib_resnet_v1"},
        }  # fmt: skip
    stations = {s["station_id"]: s for s in Api(client, "admin").get("/api/v1/stations").json()}
    health = stations["hd-1"]["health"]
    assert health["heartbeat_age_s"] == 42.0 and health["camera"] == "down" and health["disk"] == "warn"
    assert health["clock_skew_s"] == 95.0 and health["outbox_depth"] == 12 and health["roster_behind"] == 2
    assert health["door_alarm"] is True and health["tampered"] is None  # a non-boolean is not believed
    assert stations["cy-1"]["health"]["camera"] is None and stations["cy-1"]["timezone"] == "Asia/Shanghai"


def test_station_edits_are_scoped_and_audited(fleet: tuple[Fleet, TestClient]) -> None:
    fleet_, client = fleet
    hd, admin = Api(client, "hd.staff"), Api(client, "admin")
    hours = {"always_open": False, "timezone": "Asia/Shanghai", "weekly": {"mon": ["08:00-20:00"]}}
    response = hd.patch("/api/v1/stations/hd-1", json={"schedule": hours, "allowed_groups": ["sanitation"]})
    assert response.status_code == 200, response.text
    assert (
        response.json()["hours"]["weekly"] == {"mon": ["08:00-20:00"]}
        and response.json()["open_now"] is False
    )
    assert hd.patch("/api/v1/stations/cy-1", json={"name": "x"}).status_code == 404
    assert hd.patch("/api/v1/stations/hd-1", json={"district_id": "chaoyang"}).status_code == 403
    assert Api(client, "hd.viewer").patch("/api/v1/stations/hd-1", json={"name": "x"}).status_code == 403
    response = hd.patch(
        "/api/v1/stations/hd-1", json={"schedule": {"always_open": False, "weekly": {"xyz": "24h"}}}
    )
    assert response.status_code == 422
    assert hd.patch("/api/v1/stations/hd-1", json={"latitude": 39.9}).status_code == 200  # longitude kept
    assert hd.patch("/api/v1/stations/hd-1", json={"latitude": None}).status_code == 422  # pairs
    assert (
        admin.patch("/api/v1/stations/hd-2", json={"district_id": "chaoyang"}).json()["district_id"]
        == "chaoyang"
    )
    assert ("station_updated", "hd-1", "haidian") in audit_actions(fleet_)


# -- events and snapshots ----------------------------------------------------------------------------


def test_events_show_names_snapshots_and_station_local_days(fleet: tuple[Fleet, TestClient]) -> None:
    fleet_, client = fleet
    hd = Api(client, "hd.staff")
    late = dt.datetime(2026, 11, 23, 16, 30, tzinfo=dt.UTC)  # 00:30 on the 24th in Beijing
    early = dt.datetime(2026, 11, 23, 15, 50, tzinfo=dt.UTC)  # 23:50 on the 23rd
    with_photo = fleet_.store_event(
        station_id="hd-1", member_id="m-li", ts=late, snapshot=jpeg(), publish=False
    )
    fleet_.store_event(station_id="hd-1", kind="refused", member_id=None, ts=early, reason="unknown_face",
                       publish=False)  # fmt: skip
    fleet_.store_event(station_id="cy-1", member_id="m-wang", ts=late, publish=False)
    today = hd.get("/api/v1/events?station_id=hd-1&day=2026-11-24").json()
    assert [e["id"] for e in today] == [with_photo]
    entry = today[0]
    assert (entry["member_name"], entry["station_name"], entry["district_id"]) == (
        "李娜",
        "海淀一号",
        "haidian",
    )
    assert entry["granted"] is True and entry["snapshot_state"] == "ok"
    assert [e["reason"] for e in hd.get("/api/v1/events?station_id=hd-1&day=2026-11-23").json()] == [
        "unknown_face"
    ]
    assert {e["station_id"] for e in hd.get("/api/v1/events").json()} == {"hd-1"}
    assert hd.get("/api/v1/events?day=2026-11-24").status_code == 422
    assert hd.get("/api/v1/events?station_id=cy-1").status_code == 404
    assert len(hd.get("/api/v1/events?kind=refused").json()) == 1

    full = hd.get(entry["snapshot_url"])
    assert full.status_code == 200 and full.headers["content-type"] == "image/jpeg"
    assert full.headers["cache-control"] == "no-store"
    thumb = hd.get(entry["snapshot_url"] + "?size=thumb")
    assert thumb.status_code == 200 and max(Image.open(io.BytesIO(thumb.content)).size) == 320
    other = Api(client, "cy.staff")
    assert other.get(entry["snapshot_url"]).status_code == 404
    assert hd.get("/api/v1/events/00000000-0000-4000-8000-000000000000/snapshot").status_code == 404


def test_snapshot_rows_never_lead_outside_the_snapshot_folder(
    fleet: tuple[Fleet, TestClient], tmp_path: Path
) -> None:
    fleet_, client = fleet
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(jpeg())
    event_id = fleet_.store_event(station_id="hd-1", snapshot=jpeg(), publish=False)
    from central.store.tables import Snapshot

    with fleet_.ctx.db.begin() as db:
        row = db.get(Snapshot, event_id)
        assert row is not None
        row.path = "../../" + str(secret)
    assert Api(client, "admin").get(f"/api/v1/events/{event_id}/snapshot").status_code == 404
    with fleet_.ctx.db.begin() as db:
        row = db.get(Snapshot, event_id)
        assert row is not None
        row.path = str(secret)
    assert Api(client, "admin").get(f"/api/v1/events/{event_id}/snapshot").status_code == 404
    with fleet_.ctx.db.begin() as db:
        row = db.get(Snapshot, event_id)
        assert row is not None
        row.deleted_at = NOW
    assert Api(client, "admin").get(f"/api/v1/events/{event_id}/snapshot").status_code == 410


# -- visits ------------------------------------------------------------------------------------------


def _visits_fixture(fleet: Fleet) -> None:
    beijing = dt.timezone(dt.timedelta(hours=8))
    for day, hour, station, member, kind in (
        (20, 8, "hd-1", "m-li", "entry"),
        (20, 9, "hd-1", "m-li", "entry"),
        (20, 23, "hd-1", "m-x", "entry"),
        (21, 0, "hd-1", "m-y", "entry"),  # 00:xx local: the 21st, though the 20th in UTC
        (21, 10, "hd-1", None, "refused"),
        (21, 11, "hd-1", None, "emergency"),
        (22, 12, "hd-2", "m-li", "entry"),
        (22, 12, "cy-1", "m-wang", "entry"),
        (23, 7, "hd-1", "m-z", "exit"),  # not counted
    ):
        ts = dt.datetime(2026, 11, day, hour, 30, tzinfo=beijing)
        fleet.store_event(station_id=station, member_id=member, kind=kind, ts=ts, publish=False)


def test_visits_per_station_local_day_and_week(fleet: tuple[Fleet, TestClient]) -> None:
    fleet_, client = fleet
    _visits_fixture(fleet_)
    admin, hd = Api(client, "admin"), Api(client, "hd.staff")
    body = admin.get("/api/v1/visits?first=2026-11-20&last=2026-11-23").json()
    rows = {(r["station_id"], r["period"]): r for r in body["rows"]}
    assert rows[("hd-1", "2026-11-20")] == {"station_id": "hd-1", "period": "2026-11-20", "entries": 3,
                                           "members": 2, "refused": 0, "emergencies": 0}  # fmt: skip
    assert (rows[("hd-1", "2026-11-21")]["entries"], rows[("hd-1", "2026-11-21")]["refused"]) == (1, 1)
    assert rows[("hd-1", "2026-11-21")]["emergencies"] == 1
    assert ("hd-1", "2026-11-23") not in rows and len(body["periods"]) == 4
    week = admin.get("/api/v1/visits?first=2026-11-16&last=2026-11-29&period=week&station_id=hd-1").json()
    assert week["periods"] == ["2026-11-16", "2026-11-23"]
    assert week["rows"] == [{"station_id": "hd-1", "period": "2026-11-16", "entries": 4, "members": 3,
                             "refused": 1, "emergencies": 1}]  # fmt: skip
    scoped = hd.get("/api/v1/visits?first=2026-11-20&last=2026-11-23").json()
    assert {s["station_id"] for s in scoped["stations"]} == {"hd-1", "hd-2"}
    assert hd.get("/api/v1/visits?station_id=cy-1").status_code == 404
    assert admin.get("/api/v1/visits?first=2026-11-23&last=2026-11-20").status_code == 422
    assert admin.get("/api/v1/visits?first=2020-01-01&last=2026-11-20").status_code == 422  # > 400 days


def test_visits_export_csv_and_excel(fleet: tuple[Fleet, TestClient]) -> None:
    fleet_, client = fleet
    _visits_fixture(fleet_)
    admin = Api(client, "admin")
    admin.patch("/api/v1/stations/hd-2", json={"name": '=HYPERLINK("http://evil")'})
    response = admin.get("/api/v1/visits/export?format=csv&first=2026-11-20&last=2026-11-22")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith("\ufeff".encode())
    lines = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert lines[0] == [
        "日期",
        "驿站编号",
        "驿站名称",
        "区域",
        "进站人次",
        "进站人数",
        "拒绝次数",
        "紧急呼叫",
    ]
    assert len(lines) == 1 + 3 * 3  # every station, every day, zeros included
    assert ["2026-11-20", "hd-1", "海淀一号", "haidian", "3", "2", "0", "0"] in lines
    assert ["2026-11-21", "cy-1", "朝阳一号", "chaoyang", "0", "0", "0", "0"] in lines
    assert any(line[2] == '\'=HYPERLINK("http://evil")' for line in lines)

    response = admin.get("/api/v1/visits/export?format=xlsx&lang=en&first=2026-11-20&last=2026-11-22")
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert "2026-11-20 to 2026-11-22" in values[0][0]
    assert values[1][:5] == ["Date", "Station ID", "Station", "District", "Entries"]
    assert ["2026-11-22", "hd-2", '\'=HYPERLINK("http://evil")', "haidian", 1, 1, 0, 0] in values
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
    hd = Api(client, "hd.staff")
    export = hd.get("/api/v1/visits/export?format=csv&first=2026-11-22&last=2026-11-22")
    rows = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert {r[1] for r in rows[1:]} == {"hd-1", "hd-2"}


# -- audit and staff ---------------------------------------------------------------------------------


def test_audit_log_is_scoped(fleet: tuple[Fleet, TestClient]) -> None:
    _, client = fleet
    admin, hd, cy = Api(client, "admin"), Api(client, "hd.staff"), Api(client, "cy.staff")
    hd.post("/api/v1/members/m-li/suspend")
    cy.post("/api/v1/members/m-wang/suspend")
    mine = hd.get("/api/v1/audit").json()
    assert {e["district_id"] for e in mine} == {"haidian"} and mine[0]["actor"] == "staff:hd.staff"
    assert {e["target_id"] for e in mine if e["action"] == "member_suspended"} == {"m-li"}
    everything = admin.get("/api/v1/audit?action=member_suspended").json()
    assert {e["target_id"] for e in everything} == {"m-li", "m-wang"}
    page = admin.get(f"/api/v1/audit?limit=1&before_id={everything[0]['id']}").json()
    assert page[0]["id"] < everything[0]["id"]


def test_staff_accounts_are_for_admins(fleet: tuple[Fleet, TestClient]) -> None:
    fleet_, client = fleet
    admin, hd = Api(client, "admin"), Api(client, "hd.staff")
    assert hd.get("/api/v1/staff").status_code == 403
    assert hd.post("/api/v1/staff", json={"username": "x", "role": "viewer"}).status_code == 403
    account = {"username": "New.Staff", "role": "district", "district_id": "haidian", "display_name": "小王"}
    response = admin.post("/api/v1/staff", json=account)
    assert response.status_code == 201, response.text
    secret = response.json()["secret"]
    assert response.json()["username"] == "new.staff" and len(secret) >= 16
    login = client.post("/api/auth/login", json={"username": "new.staff", "password": secret})
    assert login.status_code == 200 and login.json()["district_id"] == "haidian"
    token = {"Authorization": f"Bearer {login.json()['token']}"}
    assert admin.post("/api/v1/staff", json={"username": "y", "role": "district"}).status_code == 422
    assert admin.post("/api/v1/staff", json={"username": "new.staff", "role": "viewer"}).status_code == 422
    assert "secret" not in admin.get("/api/v1/staff").json()[0]
    # Disabling ends the account's logins at once.
    assert admin.patch("/api/v1/staff/new.staff", json={"active": False}).json()["active"] is False
    assert client.get("/api/v1/auth/me", headers=token).status_code == 401
    # A reset gives a new one-time secret.
    admin.patch("/api/v1/staff/new.staff", json={"active": True})
    fresh = admin.post("/api/v1/staff/new.staff/reset").json()["secret"]
    assert (
        client.post("/api/auth/login", json={"username": "new.staff", "password": secret}).status_code == 401
    )
    assert (
        client.post("/api/auth/login", json={"username": "new.staff", "password": fresh}).status_code == 200
    )
    # The last admin stays an admin.
    response = admin.patch("/api/v1/staff/admin", json={"role": "viewer"})
    assert response.status_code == 422
    admin.post("/api/v1/staff", json={"username": "admin2", "role": "admin"})
    assert admin.patch("/api/v1/staff/admin2", json={"role": "viewer"}).json()["role"] == "viewer"
    assert admin.patch("/api/v1/staff/admin2", json={"district_id": "haidian"}).status_code == 422
    assert admin.patch("/api/v1/staff/nobody", json={"active": False}).status_code == 404
    actions = [a[0] for a in audit_actions(fleet_)]
    assert {"staff_created", "staff_updated", "staff_secret_reset"} <= set(actions)
    assert PASSWORD not in str(admin.get("/api/v1/audit").json())


def test_districts_and_settings(fleet: tuple[Fleet, TestClient]) -> None:
    _, client = fleet
    admin, hd = Api(client, "admin"), Api(client, "hd.staff")
    assert {d["district_id"]: d["stations"] for d in admin.get("/api/v1/districts").json()} == {
        "haidian": 2,
        "chaoyang": 1,
    }
    assert [d["district_id"] for d in hd.get("/api/v1/districts").json()] == ["haidian"]
    assert (
        admin.post("/api/v1/districts", json={"district_id": "dongcheng", "name": "东城区"}).status_code
        == 201
    )
    assert admin.post("/api/v1/districts", json={"district_id": "dongcheng", "name": "x"}).status_code == 409
    assert hd.post("/api/v1/districts", json={"district_id": "x", "name": "x"}).status_code == 403
    settings = hd.get("/api/v1/dashboard/settings").json()
    assert settings["map"]["tile_url"] == "" and settings["languages"] == ["zh-CN", "en"]
