"""The centre's web skeleton on SQLite and PostgreSQL: open and closed routes, staff logins,
CSRF, lockout, roles and district scoping, the public station directory, hostile requests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from argon2 import PasswordHasher
from central_fixtures import CentralDb
from fastapi.testclient import TestClient
from routes import app_routes

from central.config import CentralConfig
from central.data_key import DataKey
from central.store import staff as staff_store
from central.store import stations as station_store
from central.web.app import create_app
from central.web.auth import StaffAuth
from central.web.context import WebContext
from central.web.middleware import CSRF_HEADER, SESSION_COOKIE
from common.passwords import Passwords

FAST = Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
PASSWORD = "correct horse battery"
NIGHT_ONLY = {"always_open": False, "timezone": "Asia/Shanghai", "weekly": {d: ["20:00-22:00"] for d in
              ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}  # fmt: skip
NOON_SHANGHAI = dt.datetime(2026, 11, 24, 4, 0, tzinfo=dt.UTC)


@dataclass
class Web:
    client: TestClient
    ctx: WebContext

    def login(self, username: str, password: str = PASSWORD) -> dict[str, str]:
        response = self.client.post("/api/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['token']}"}


@pytest.fixture
def web(central_db: CentralDb, central_config: CentralConfig) -> Iterator[Web]:
    config = central_config.model_copy(
        update={
            "web": central_config.web.model_copy(update={"login_max_failures": 3, "login_lockout_s": 60.0})
        }
    )
    ctx = WebContext(
        config=config,
        db=central_db.sessions,
        auth=StaffAuth(central_db.sessions, config.web, passwords=FAST),
        data_key=DataKey.load(config),
        now=lambda: NOON_SHANGHAI,
    )
    with central_db.sessions.begin() as db:
        station_store.add_station(
            db,
            station_id="hd-1",
            name="海淀一号",
            district_id="haidian",
            latitude=39.98,
            longitude=116.31,
            services=["water"],
            contact_phone="010-1",
        )
        station_store.add_station(
            db, station_id="hd-2", name="海淀二号", district_id="haidian", schedule=NIGHT_ONLY
        )
        station_store.add_station(db, station_id="cy-1", name="朝阳一号", district_id="chaoyang")
        for name, role, district in (
            ("admin", "admin", None),
            ("hd.staff", "district", "haidian"),
            ("viewer", "viewer", None),
            ("hd.viewer", "viewer", "haidian"),
        ):
            staff_store.create_staff(
                db, FAST, username=name, role=role, district_id=district, password=PASSWORD
            )
    # fmt: skip
    with TestClient(create_app(ctx), base_url="https://testserver") as client:
        yield Web(client, ctx)


# -- what is open ------------------------------------------------------------------------------------


def test_healthz_is_open(web: Web) -> None:
    response = web.client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert (
        response.headers["X-Frame-Options"] == "DENY"
        and "default-src 'self'" in response.headers["Content-Security-Policy"]
    )


def test_the_public_directory_says_which_stations_are_open_now(web: Web) -> None:
    response = web.client.get("/api/public/stations")
    assert response.status_code == 200
    stations = {s["station_id"]: s for s in response.json()}
    assert set(stations) == {"hd-1", "hd-2", "cy-1"}
    assert stations["hd-1"]["open_now"] is True and stations["hd-2"]["open_now"] is False  # noon, open 20-22
    first = stations["hd-1"]
    assert (first["name"], first["latitude"], first["longitude"]) == ("海淀一号", 39.98, 116.31)
    assert first["services"] == ["water"] and first["contact"] == {"name": None, "phone": "010-1"}
    assert not {"allowed_groups", "last_health", "broker_username", "public_key"} & set(first)


def test_every_api_v1_route_needs_credentials(web: Web) -> None:
    routes = [(p, m) for p, m in app_routes(web.client.app) if p.startswith("/api/v1/")]
    assert len(routes) >= 6
    for route_path, methods in routes:
        path = route_path.replace("{station_id}", "hd-1")
        for method in methods:
            for headers in ({}, {"Authorization": "Bearer forged"}, {"Cookie": f"{SESSION_COOKIE}=forged"}):
                response = web.client.request(method, path, headers=headers, content=b"{not json")
                assert response.status_code == 401, (method, path, headers, response.text)
                assert response.headers["Cache-Control"] == "no-store"
    assert web.client.get("/api/v1/no-such-route").status_code == 401
    assert web.client.get("/api/v1/openapi.json").status_code == 401


# -- logging in --------------------------------------------------------------------------------------


def test_login_me_logout(web: Web) -> None:
    response = web.client.post("/api/auth/login", json={"username": " Admin ", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "admin" and body["role"] == "admin" and body["district_id"] is None
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    bearer = {"Authorization": f"Bearer {body['token']}"}
    assert web.client.get("/api/v1/auth/me", headers=bearer).json()["csrf_token"] == body["csrf_token"]
    assert web.client.post("/api/v1/auth/logout", headers=bearer).status_code == 204
    assert web.client.get("/api/v1/auth/me", headers=bearer).status_code == 401


def test_wrong_passwords_lock_the_account_without_revealing_which_names_exist(web: Web) -> None:
    for username in ("admin", "nobody"):
        response = web.client.post(
            "/api/auth/login", json={"username": username, "password": "wrong password"}
        )
        assert response.status_code == 401 and response.json()["code"] == "bad_credentials"
    for _ in range(2):
        web.client.post("/api/auth/login", json={"username": "admin", "password": "wrong again!"})
    response = web.client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
    assert response.status_code == 429 and response.json()["code"] == "locked_out"
    assert int(response.headers["Retry-After"]) >= 1
    web.login("viewer")  # other accounts are not affected
    with web.ctx.db() as db:
        from central.store import audit

        assert any(e.action == "login_lockout" for e in audit.list_entries(db))


@pytest.mark.parametrize(
    "body",
    [{}, {"username": "admin"}, {"username": "a" * 65, "password": "x"},
     {"username": "admin", "password": "x" * 257}, {"username": ["admin"], "password": PASSWORD},
     {"username": "admin", "password": PASSWORD, "extra": 1}, []],
)  # fmt: skip
def test_malformed_logins_are_422(web: Web, body: object) -> None:
    response = web.client.post("/api/auth/login", json=body)
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"


def test_bodies_over_the_limit_are_refused_unread(web: Web) -> None:
    huge = b'{"username": "' + b"a" * (300 * 1024) + b'"}'
    response = web.client.post("/api/auth/login", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert (
        web.client.post(
            "/api/auth/login", content=b"{bad", headers={"Content-Type": "application/json"}
        ).json()["code"]
        == "bad_json"
    )


def test_a_disabled_account_is_logged_out_at_its_next_request(web: Web) -> None:
    headers = web.login("hd.staff")
    with web.ctx.db.begin() as db:
        account = staff_store.get_by_username(db, username="hd.staff")
        assert account is not None
        account.active = False
    assert web.client.get("/api/v1/stations", headers=headers).status_code == 401
    response = web.client.post("/api/auth/login", json={"username": "hd.staff", "password": PASSWORD})
    assert response.status_code == 401


def test_password_change_needs_the_current_password_and_ends_other_logins(web: Web) -> None:
    first = web.login("admin")
    second = web.login("admin")
    wrong = web.client.post(
        "/api/v1/auth/password",
        headers=first,
        json={"current_password": "not it at all", "new_password": "a new long password"},
    )
    assert wrong.status_code == 403
    weak = web.client.post(
        "/api/v1/auth/password", headers=first, json={"current_password": PASSWORD, "new_password": "short"}
    )
    assert weak.status_code == 422
    done = web.client.post(
        "/api/v1/auth/password",
        headers=first,
        json={"current_password": PASSWORD, "new_password": "a new long password"},
    )
    assert done.status_code == 204
    assert web.client.get("/api/v1/auth/me", headers=first).status_code == 200
    assert web.client.get("/api/v1/auth/me", headers=second).status_code == 401
    web.login("admin", "a new long password")
    # fmt: skip


# -- CSRF --------------------------------------------------------------------------------------------


def test_cookie_logins_need_the_csrf_header_for_changes(web: Web) -> None:
    response = web.client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
    csrf = response.json()["csrf_token"]
    station = {"station_id": "new-1", "name": "New", "district_id": "haidian"}
    assert web.client.get("/api/v1/stations").status_code == 200  # the cookie alone reads
    refused = web.client.post("/api/v1/stations", json=station)
    assert refused.status_code == 403 and refused.json()["code"] == "csrf"
    assert (
        web.client.post("/api/v1/stations", json=station, headers={CSRF_HEADER: "x" * 32}).status_code == 403
    )
    assert (
        web.client.post(
            "/api/v1/stations", json=station, headers={CSRF_HEADER: "é".encode("latin-1")}
        ).status_code
        == 403
    )  # type: ignore[dict-item]
    assert web.client.post("/api/v1/stations", json=station, headers={CSRF_HEADER: csrf}).status_code == 201


# -- roles and districts -----------------------------------------------------------------------------


def test_district_staff_see_only_their_district(web: Web) -> None:
    for user, expected in (
        ("admin", {"hd-1", "hd-2", "cy-1"}),
        ("viewer", {"hd-1", "hd-2", "cy-1"}),
        ("hd.staff", {"hd-1", "hd-2"}),
        ("hd.viewer", {"hd-1", "hd-2"}),
    ):
        headers = web.login(user)
        assert {
            s["station_id"] for s in web.client.get("/api/v1/stations", headers=headers).json()
        } == expected
    # fmt: skip
    headers = web.login("hd.staff")
    assert web.client.get("/api/v1/stations/hd-1", headers=headers).status_code == 200
    other = web.client.get("/api/v1/stations/cy-1", headers=headers)
    assert other.status_code == 404 and other.json()["code"] == "station_not_found"  # not 403: no probing
    assert web.client.get("/api/v1/events?station_id=cy-1", headers=headers).status_code == 404
    assert web.client.get("/api/v1/stations/..%2Fx", headers=headers).status_code in (404, 422)


def test_only_admins_register_stations(web: Web) -> None:
    station = {"station_id": "new-2", "name": "New", "district_id": "haidian"}
    for user in ("hd.staff", "viewer"):
        response = web.client.post("/api/v1/stations", json=station, headers=web.login(user))
        assert response.status_code == 403 and response.json()["code"] == "forbidden_role"
    admin = web.login("admin")
    created = web.client.post("/api/v1/stations", json=station, headers=admin)
    assert created.status_code == 201 and created.json()["open_now"] is True
    again = web.client.post("/api/v1/stations", json=station, headers=admin)
    assert again.status_code == 422 and "already exists" in again.json()["detail"]
    bad = web.client.post(
        "/api/v1/stations",
        headers=admin,
        json={**station, "station_id": "new-3", "schedule": {"always_open": False}},
    )
    assert bad.status_code == 422 and "opening hours" in bad.json()["detail"]
    # fmt: skip


def test_members_and_events_lists_answer_for_staff(web: Web) -> None:
    headers = web.login("viewer")
    assert web.client.get("/api/v1/members?search=%25", headers=headers).json() == []
    assert web.client.get("/api/v1/members?limit=0", headers=headers).status_code == 422
    assert web.client.get("/api/v1/events?since=2026-01-01T00:00:00", headers=headers).json() == []
    assert web.client.get("/api/v1/events?since=yesterday", headers=headers).status_code == 422
