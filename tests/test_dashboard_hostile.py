"""Hostile input to the dashboard's routes, on SQLite and PostgreSQL: another district's ids are
404 everywhere (never 403: ids cannot be probed), the cookie needs the CSRF header for every
change, oversized bodies are 413 before they are read, malformed values are 422 with nothing
stored, search strings are data (not SQL wildcards), and hostile text is stored as text."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from central_fixtures import CentralDb
from dashboard_support import NOW, PASSWORD, Api, Fleet, build_fleet, config_for
from fastapi.testclient import TestClient

from central.config import CentralConfig
from central.store.tables import AuditEntry, Member
from central.web.app import create_app
from central.web.middleware import CSRF_HEADER


@pytest.fixture
def fleet(central_db: CentralDb, central_config: CentralConfig) -> Iterator[tuple[Fleet, TestClient]]:
    fleet = build_fleet(central_db, config_for(central_config), now=NOW)
    with TestClient(create_app(fleet.ctx), base_url="https://testserver") as client:
        yield fleet, client


def _state(fleet: Fleet) -> tuple[list[tuple[str, str, str]], int]:
    with fleet.ctx.db() as db:
        members = [(m.member_id, m.name, m.status) for m in db.query(Member).order_by(Member.member_id)]
        return members, db.query(AuditEntry).filter(AuditEntry.action != "password_ok").count()


def test_another_districts_ids_are_404_everywhere(fleet: tuple[Fleet, TestClient]) -> None:
    fleet_, client = fleet
    event_id = fleet_.store_event(station_id="cy-1", member_id="m-wang", publish=False)
    hd = Api(client, "hd.staff")
    before = _state(fleet_)
    for method, path, body in (
        ("GET", "/api/v1/stations/cy-1", None),
        ("PATCH", "/api/v1/stations/cy-1", {"name": "x"}),
        ("GET", "/api/v1/members/m-wang", None),
        ("PATCH", "/api/v1/members/m-wang", {"groups": ["x"]}),
        ("POST", "/api/v1/members/m-wang/suspend", {}),
        ("POST", "/api/v1/members/m-wang/activate", {}),
        ("POST", "/api/v1/members/m-wang/erase", {"confirm": "m-wang"}),
        ("POST", "/api/v1/members/m-wang/passes", {}),
        ("GET", "/api/v1/members/m-zhao", None),  # no home station: admins only
        ("GET", "/api/v1/events?station_id=cy-1", None),
        ("GET", "/api/v1/events?station_id=cy-1&day=2026-11-24", None),
        ("GET", "/api/v1/visits?station_id=cy-1", None),
        ("GET", "/api/v1/visits?station_id=hd-1&station_id=cy-1", None),
        ("GET", "/api/v1/visits/export?station_id=cy-1", None),
        ("GET", f"/api/v1/events/{event_id}/snapshot", None),
    ):
        response = client.request(method, path, json=body, headers=hd.headers)
        assert response.status_code == 404, (method, path, response.status_code, response.text)
    assert _state(fleet_) == before
    # Their own district works with the same requests.
    assert hd.get("/api/v1/stations/hd-1").status_code == 200
    assert hd.post("/api/v1/members/m-li/suspend").status_code == 200
    # The district's own lists never contain the other district.
    assert {e["station_id"] for e in hd.get("/api/v1/events").json()} <= {"hd-1", "hd-2"}
    assert [m["member_id"] for m in hd.get("/api/v1/members?search=m-").json()] == ["m-li"]


def test_cookie_logins_need_the_csrf_header_for_every_change(fleet: tuple[Fleet, TestClient]) -> None:
    fleet_, client = fleet
    login = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
    csrf = login.json()["csrf_token"]
    assert client.cookies.get("yizhan_staff")
    before = _state(fleet_)
    changes = (
        ("POST", "/api/v1/members", {"name": "伪造"}),
        ("PATCH", "/api/v1/members/m-li", {"name": "伪造"}),
        ("POST", "/api/v1/members/m-li/suspend", {}),
        ("POST", "/api/v1/members/m-li/activate", {}),
        ("POST", "/api/v1/members/m-li/erase", {"confirm": "m-li"}),
        ("POST", "/api/v1/members/m-li/passes", {}),
        ("PATCH", "/api/v1/stations/hd-1", {"name": "伪造"}),
        ("POST", "/api/v1/staff", {"username": "evil", "role": "admin"}),
        ("PATCH", "/api/v1/staff/hd.staff", {"active": False}),
        ("POST", "/api/v1/staff/hd.staff/reset", {}),
        ("POST", "/api/v1/districts", {"district_id": "evil", "name": "evil"}),
    )
    for method, path, body in changes:
        for headers in ({}, {CSRF_HEADER: "wrong"}, {CSRF_HEADER: ""}):
            response = client.request(method, path, json=body, headers=headers)
            assert response.status_code == 403 and response.json()["code"] == "csrf", (method, path, headers)
    assert _state(fleet_) == before
    # Reading needs no token; changing with it works.
    assert client.get("/api/v1/members").status_code == 200
    assert (
        client.post("/api/v1/members/m-li/suspend", json={}, headers={CSRF_HEADER: csrf}).status_code == 200
    )


def test_huge_bodies_are_refused_unread(fleet: tuple[Fleet, TestClient]) -> None:
    fleet_, client = fleet
    admin = Api(client, "admin")
    before = _state(fleet_)
    big = {"name": "大" * 400_000}
    for method, path in (
        ("POST", "/api/v1/members"),
        ("PATCH", "/api/v1/members/m-li"),
        ("POST", "/api/v1/members/m-li/erase"),
        ("PATCH", "/api/v1/stations/hd-1"),
        ("POST", "/api/v1/staff"),
    ):
        response = client.request(method, path, json=big, headers=admin.headers)
        assert response.status_code == 413 and response.json()["code"] == "too_large", (method, path)
    lying = client.post(
        "/api/v1/members",
        content=b'{"name": "' + b"x" * 600_000 + b'"}',
        headers={**admin.headers, "Content-Type": "application/json", "Content-Length": "20"},
    )
    assert lying.status_code in (400, 413, 422)
    assert _state(fleet_) == before


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "   "},
        {"name": "a\x00b"},
        {"name": "line\nbreak"},
        {"name": "x" * 101},
        {"name": "x", "groups": ["g"] * 33},
        {"name": "x", "groups": [""]},
        {"name": "x", "groups": "not-a-list"},
        {"name": "x", "kind": "astronaut"},
        {"name": "x", "member_id": "../etc"},
        {"name": "x", "member_id": "a" * 65},
        {"name": "x", "valid_until": "2030-13-45T00:00:00+08:00"},
        {"name": "x", "valid_until": "2030-01-01T00:00:00"},  # no zone
        {"name": "x", "valid_from": "2030-01-01T00:00:00+08:00", "valid_until": "2029-01-01T00:00:00+08:00"},
        {"name": "x", "home_station_id": "no-such"},
        {"name": "x", "consent_face": "yes"},
        {"name": "x", "status": "active"},
        {"name": "x", "extra": 1},
        [],
        "x",
    ],
)
def test_malformed_members_are_refused(fleet: tuple[Fleet, TestClient], body: object) -> None:
    fleet_, client = fleet
    admin = Api(client, "admin")
    before = _state(fleet_)
    response = admin.post("/api/v1/members", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] in ("invalid_request", "invalid_value")
    response = admin.patch("/api/v1/members/m-li", json=body if isinstance(body, dict) else body)
    assert response.status_code == 422
    assert _state(fleet_) == before


@pytest.mark.parametrize(
    "query",
    [
        "first=2026-02-30",
        "first=9999-01-01&last=9999-01-02",
        "first=1970-01-01&last=1970-01-02",
        "period=month",
        "station_id=" + "a" * 65,
        "station_id=../../x",
        "format=exe",
        "lang=fr",
    ],
)
def test_malformed_visit_queries_are_422(fleet: tuple[Fleet, TestClient], query: str) -> None:
    _, client = fleet
    admin = Api(client, "admin")
    path = "/api/v1/visits/export" if query.startswith(("format", "lang")) else "/api/v1/visits"
    assert admin.get(f"{path}?{query}").status_code == 422


def test_searches_are_text_not_patterns_and_hostile_names_stay_text(fleet: tuple[Fleet, TestClient]) -> None:
    _, client = fleet
    admin = Api(client, "admin")
    for needle in ("%", "_", "' OR '1'='1", "\\", "李%"):
        assert admin.get("/api/v1/members", params={"search": needle}).json() == []
    name = "<script>alert(1)</script>\u202e王\U0001f600"
    created = admin.post("/api/v1/members", json={"name": name})
    assert created.status_code == 201 and created.json()["name"] == name
    assert [m["name"] for m in admin.get("/api/v1/members", params={"search": "<script>"}).json()] == [name]
    assert created.headers["content-type"].startswith("application/json")


def test_the_dashboard_files_carry_a_strict_policy(fleet: tuple[Fleet, TestClient]) -> None:
    _, client = fleet
    page = client.get("/dashboard/")
    assert page.status_code == 200 and "驿站管理中心" in page.text
    policy = page.headers["Content-Security-Policy"]
    assert (
        "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    )
    assert client.get("/", follow_redirects=False).headers["location"] == "/dashboard/"
    assert client.get("/dashboard/../central/config.py").status_code == 404
    assert client.get("/dashboard/%2e%2e/config.py").status_code == 404
    for asset in ("js/main.js", "css/app.css", "i18n/zh-CN.json", "i18n/en.json", "vendor/echarts/LICENSE"):
        assert client.get(f"/dashboard/{asset}").status_code == 200, asset
