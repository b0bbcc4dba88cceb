"""`GET /api/v1/alarms` and `POST /api/v1/alarms/{id}/ack` on both databases: district scoping,
roles, the required note, audit, the live bus, hostile input."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from test_central_web import Web, web  # noqa: F401  (the centre's web fixture: stations hd-1, hd-2, cy-1)

from central import live
from central.alarms.rules import SEVERITY, Raise
from central.store import alarms as alarm_store
from central.store import audit
from central.store.tables import AlarmDelivery

NOW = dt.datetime(2026, 11, 24, 4, 0, tzinfo=dt.UTC)


def raise_alarm(web: Web, kind: str, station_id: str, district: str) -> int:  # noqa: F811
    with web.ctx.db.begin() as session:
        change = alarm_store.raise_alarm(
            session,
            Raise(kind, station_id, SEVERITY[kind], {"reason": "test"}),
            now=NOW,
            district_id=district,
        )
        assert change is not None
        return change.alarm_id


@pytest.fixture
def three(web: Web) -> dict[str, int]:  # noqa: F811
    return {
        "hd_emergency": raise_alarm(web, "emergency", "hd-1", "haidian"),
        "hd_offline": raise_alarm(web, "station_offline", "hd-2", "haidian"),
        "cy_tamper": raise_alarm(web, "tamper", "cy-1", "chaoyang"),
    }


def test_staff_see_their_districts_alarms_newest_first(web: Web, three: dict[str, int]) -> None:  # noqa: F811
    everything = web.client.get("/api/v1/alarms", headers=web.login("admin")).json()
    assert [a["id"] for a in everything] == sorted(three.values(), reverse=True)
    district = web.client.get("/api/v1/alarms?state=open", headers=web.login("hd.staff")).json()
    assert {a["id"] for a in district} == {three["hd_emergency"], three["hd_offline"]}
    first = next(a for a in district if a["id"] == three["hd_emergency"])
    assert (first["kind"], first["severity"], first["state"], first["station_id"]) == (
        "emergency",
        "emergency",
        "open",
        "hd-1",
    )
    scoped_viewer = web.client.get("/api/v1/alarms", headers=web.login("hd.viewer")).json()
    assert {a["district_id"] for a in scoped_viewer} == {"haidian"}
    by_station = web.client.get("/api/v1/alarms?station_id=hd-2", headers=web.login("admin")).json()
    assert [a["id"] for a in by_station] == [three["hd_offline"]]
    other = web.client.get("/api/v1/alarms?station_id=cy-1", headers=web.login("hd.staff"))
    assert other.status_code == 404  # another district's station: not even its existence
    paged = web.client.get(
        f"/api/v1/alarms?limit=1&before_id={three['cy_tamper']}", headers=web.login("admin")
    ).json()
    assert [a["id"] for a in paged] == [three["hd_offline"]]


def test_acknowledging_needs_a_note_and_is_audited_and_published(web: Web, three: dict[str, int]) -> None:  # noqa: F811
    headers = web.login("hd.staff")
    watcher = web.ctx.live.subscribe({live.ALARM})
    alarm_id = three["hd_emergency"]
    for body in (
        {},
        {"note": ""},
        {"note": "   "},
        {"note": "x" * 1001},
        {"note": 5},
        {"note": "ok", "by": "x"},
    ):
        response = web.client.post(f"/api/v1/alarms/{alarm_id}/ack", headers=headers, json=body)
        assert response.status_code == 422, (body, response.text)
    json_headers = {**headers, "Content-Type": "application/json"}
    for raw in (b'{"note": "\\ud800 lone surrogate"}', b'{"note": "nul \\u0000 inside"}'):
        response = web.client.post(f"/api/v1/alarms/{alarm_id}/ack", headers=json_headers, content=raw)
        assert response.status_code == 422, (raw, response.text)
    note = "已电话联系驿站联系人：误按，已复位"
    response = web.client.post(f"/api/v1/alarms/{alarm_id}/ack", headers=headers, json={"note": note})
    assert response.status_code == 200, response.text
    acked = response.json()
    assert (acked["state"], acked["note"], acked["acknowledged_by"]) == ("acknowledged", note, "hd.staff")
    message = watcher.get(timeout=5)
    assert message is not None and message.data["id"] == alarm_id and message.data["state"] == "acknowledged"
    assert message.district == "haidian"
    again = web.client.post(f"/api/v1/alarms/{alarm_id}/ack", headers=headers, json={"note": "again"})
    assert again.status_code == 409 and again.json()["code"] == "already_acknowledged"
    with web.ctx.db.begin() as session:
        entries = [e for e in audit.list_entries(session) if e.action == "alarm_acknowledged"]
        assert [(e.actor, e.target_id, e.district_id, e.details["note"]) for e in entries] == [
            ("staff:hd.staff", str(alarm_id), "haidian", note)
        ]
        purposes = session.scalars(
            select(AlarmDelivery.purpose).where(AlarmDelivery.alarm_id == alarm_id)
        ).all()
        assert list(purposes) == ["acknowledged"]  # the groups hear who took it
    listed = web.client.get("/api/v1/alarms?state=acknowledged", headers=headers).json()
    assert [a["id"] for a in listed] == [alarm_id]


def test_who_may_acknowledge(web: Web, three: dict[str, int]) -> None:  # noqa: F811
    body = {"note": "looked at it"}
    viewer = web.client.post(
        f"/api/v1/alarms/{three['hd_offline']}/ack", headers=web.login("viewer"), json=body
    )
    assert viewer.status_code == 403
    elsewhere = web.client.post(
        f"/api/v1/alarms/{three['cy_tamper']}/ack", headers=web.login("hd.staff"), json=body
    )
    assert elsewhere.status_code == 404
    assert (
        web.client.get(f"/api/v1/alarms/{three['cy_tamper']}", headers=web.login("hd.staff")).status_code
        == 404
    )
    admin = web.client.post(f"/api/v1/alarms/{three['cy_tamper']}/ack", headers=web.login("admin"), json=body)
    assert admin.status_code == 200
    assert (
        web.client.post("/api/v1/alarms/999999/ack", headers=web.login("admin"), json=body).status_code == 404
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/alarms/0",
        "/api/v1/alarms/-1",
        "/api/v1/alarms/abc",
        "/api/v1/alarms/99999999999999999999999",
        "/api/v1/alarms?state=closed",
        "/api/v1/alarms?limit=0",
        "/api/v1/alarms?limit=100000",
        "/api/v1/alarms?station_id=../etc",
        "/api/v1/alarms?severity=apocalyptic",
        "/api/v1/alarms?kind=DROP%20TABLE",
    ],
)
def test_hostile_queries_are_refused(web: Web, path: str) -> None:  # noqa: F811
    response = web.client.get(path, headers=web.login("admin"))
    assert response.status_code == 422, response.text


def test_one_alarm_shows_its_notification_log(web: Web, three: dict[str, int]) -> None:  # noqa: F811
    alarm_id = three["hd_emergency"]
    with web.ctx.db.begin() as session:
        delivery = alarm_store.queue_delivery(
            session,
            alarm_id=alarm_id,
            purpose="raised",
            round=0,
            channel="wecom",
            target="wecom-haidian",
            now=NOW,
        )
        session.flush()
        alarm_store.record_attempt(
            session,
            alarm_id=alarm_id,
            channel="wecom",
            target="wecom-haidian",
            now=NOW,
            ok=False,
            status_code=500,
            error="HTTP 500",
        )
        alarm_store.retry_delivery(
            session,
            delivery_id=delivery.id,
            attempts=1,
            due_at=NOW + dt.timedelta(seconds=2),
            error="HTTP 500",
        )
    detail = web.client.get(f"/api/v1/alarms/{alarm_id}", headers=web.login("hd.staff")).json()
    assert detail["deliveries"] == [
        {
            "purpose": "raised",
            "round": 0,
            "channel": "wecom",
            "target": "wecom-haidian",
            "due_at": "2026-11-24T04:00:02Z",
            "attempts": 1,
            "outcome": None,
            "last_error": "HTTP 500",
        }
    ]
    assert [(a["ok"], a["status_code"]) for a in detail["attempts"]] == [(False, 500)]
