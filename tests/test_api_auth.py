"""Installer accounts, login, sessions, CSRF, back-off and lockout; every /api/v1 route needs a login."""

from __future__ import annotations

import base64
import io
import os
import re
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from routes import app_routes
from test_api_support import USERNAME, ApiEnv, api_env

from edge.api.app import create_app
from edge.api.auth import InstallerError, InstallerFileError, InstallerStore
from edge.api.installers import add_installer_command, list_installers_command, remove_installer_command
from models import events as event_store

SECRET_RE = re.compile(r"^[a-z2-9]{4}(-[a-z2-9]{4}){3}$")
THROTTLE = {"login_max_failures": 3, "login_backoff_s": 0.3, "login_lockout_s": 2.0}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, face_model: Any, fixtures: Path) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-auth"), face_model, fixtures, api=THROTTLE) as value:
        yield value


# -- the open surface --------------------------------------------------------------------------------


def test_healthz_is_open_and_says_little(env: ApiEnv) -> None:
    response = env.client.get("/healthz")
    assert response.status_code == 200
    assert set(response.json()) == {"status", "camera", "loop_alive"}
    assert response.json()["status"] == "ok"


def test_page_shell_and_static_assets_are_open_and_local(env: ApiEnv) -> None:
    page = env.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/static/app.js" in page.text and "http" not in page.text.replace("http-equiv", "")  # no CDN
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("app.js", "app.css", "i18n/zh-CN.json", "i18n/en.json", "icon.svg"):
        response = env.client.get(f"/static/{asset}")
        assert response.status_code == 200, asset
    assert env.client.get("/static/i18n/zh-CN.json").json()["hint.move_closer"] == "靠近一点"


def _fill(path: str) -> str:
    values = {"member_id": "m-1", "event_id": str(uuid.uuid4()), "capture_id": "A" * 22}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m[1], "x"), path)


def test_every_api_v1_route_answers_401_without_credentials(env: ApiEnv) -> None:
    checked = 0
    for path, methods in app_routes(env.app):
        if not (path.startswith("/api/v1") or path == "/metrics"):
            continue
        for method in methods - {"HEAD"}:
            url = _fill(path)
            for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Cookie": "yizhan_session=forged"}):
                response = env.client.request(method, url, headers=headers, content=b"{not json")
                assert response.status_code == 401, (method, url, headers, response.text)
                assert "WWW-Authenticate" in response.headers
            checked += 1
    assert checked >= 20  # members, captures, enrolments, events, camera, door, schedule, health, auth
    assert env.client.get("/api/v1/no-such-route").status_code == 401  # no route enumeration either


# -- logging in --------------------------------------------------------------------------------------


def test_login_gives_a_bearer_token_and_a_strict_httponly_cookie(env: ApiEnv) -> None:
    with TestClient(env.app) as client:
        response = client.post("/auth/login", json={"username": " Installer ", "password": env.password})
        assert response.status_code == 200
        body = response.json()
        assert body["username"] == USERNAME and body["token"] and body["csrf_token"]
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=" in cookie
        assert client.get("/api/v1/auth/me").json()["username"] == USERNAME  # the cookie alone
        me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['token']}"})
        assert (
            me.status_code == 200
            and me.json()["csrf_token"] == body["csrf_token"]
            and me.json()["token"] is None
        )


def test_cookie_requests_that_change_something_need_the_csrf_header(env: ApiEnv) -> None:
    with TestClient(env.app) as client:
        session = env.login(client)
        forged = client.post("/api/v1/members", json={"name": "CSRF"})
        assert forged.status_code == 403 and forged.json()["code"] == "csrf"
        wrong = client.post("/api/v1/members", json={"name": "CSRF"}, headers={"X-CSRF-Token": "nope"})
        assert wrong.status_code == 403
        ok = client.post(
            "/api/v1/members", json={"name": "CSRF ok"}, headers={"X-CSRF-Token": session["csrf_token"]}
        )
        assert ok.status_code == 201
        assert (
            env.client.delete(f"/api/v1/members/{ok.json()['member_id']}", headers=env.auth).status_code
            == 200
        )


def test_wrong_password_and_unknown_user_are_the_same_401(env: ApiEnv) -> None:
    app = create_app(env.daemon)
    with TestClient(app, client=("10.0.0.1", 1)) as one, TestClient(app, client=("10.0.0.2", 1)) as two:
        wrong = one.post("/auth/login", json={"username": USERNAME, "password": "wrong password"})
        unknown = two.post("/auth/login", json={"username": "nobody", "password": "wrong password"})
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json() == unknown.json() == {"detail": "wrong user name or password", "code": "bad_credentials"}
    )
    assert "set-cookie" not in wrong.headers


class ManualClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_failed_logins_back_off_then_lock_the_account(env: ApiEnv) -> None:
    store = InstallerStore.for_data_dir(env.data_dir)
    secret = store.add("victim")
    # A fresh app: its own throttle, so the shared client's address is not locked for other tests.
    app = create_app(env.daemon)
    clock = ManualClock()  # the throttle's own clock seam: a busy machine cannot move these times
    app.state.ctx.auth.throttle.clock = clock
    with TestClient(app, client=("10.0.0.7", 5000)) as client:

        def attempt(password: str) -> Any:
            return client.post("/auth/login", json={"username": "victim", "password": password})

        assert attempt("guess-1").status_code == 401
        clock.advance(0.1)
        quick = attempt("guess-2")  # within the back-off: refused without checking the password
        assert quick.status_code == 429 and quick.json()["code"] == "slow_down"
        assert quick.json()["retry_after_s"] == pytest.approx(0.2)
        assert int(quick.headers["Retry-After"]) >= 1
        clock.advance(0.25)
        assert attempt("guess-2").status_code == 401
        clock.advance(0.5)  # the second failure doubled the wait to 0.6 s
        assert attempt("guess-3").status_code == 429
        clock.advance(0.15)
        assert attempt("guess-3").status_code == 401  # the third failure locks
        clock.advance(0.5)
        locked = attempt(secret)  # even the right password is refused while locked
        assert locked.status_code == 429 and locked.json()["code"] == "locked_out"
        assert locked.json()["retry_after_s"] == pytest.approx(1.5)
        clock.advance(1.4)
        assert attempt(secret).status_code == 429
        clock.advance(0.2)
        assert attempt(secret).status_code == 200
    with env.station.sessions() as session:
        lockouts = event_store.list_events(session, kind="installer_lockout")
    assert lockouts and lockouts[-1].details["scope"] == "account" and lockouts[-1].details["key"] == "victim"
    store.remove("victim")


def test_a_client_address_is_locked_after_spraying_many_accounts(env: ApiEnv) -> None:
    app = create_app(env.daemon)
    app.state.ctx.auth.throttle.clock = ManualClock()  # a slow argon2 check must not forgive a failure
    with TestClient(app, client=("10.0.0.8", 5000)) as client:
        codes = []
        for i in range(13):  # 3 failures x 4 for an address; one account each, so no account locks
            codes.append(
                client.post("/auth/login", json={"username": f"user{i}", "password": "x" * 12}).status_code
            )
        assert codes[:12] == [401] * 12 and codes[12] == 429
        assert (
            client.post("/auth/login", json={"username": USERNAME, "password": env.password}).status_code
            == 429
        )
    with TestClient(create_app(env.daemon), client=("10.0.0.9", 5000)) as other:
        assert (
            other.post("/auth/login", json={"username": USERNAME, "password": env.password}).status_code
            == 200
        )


def test_logout_ends_the_token_and_clears_the_cookie(env: ApiEnv) -> None:
    with TestClient(env.app) as client:
        session = env.login(client)
        bearer = {"Authorization": f"Bearer {session['token']}"}
        response = client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": session["csrf_token"]})
        assert response.status_code == 204 and 'yizhan_session=""' in response.headers["set-cookie"]
        assert client.get("/api/v1/auth/me", headers=bearer).status_code == 401


def test_password_change_ends_other_logins(env: ApiEnv) -> None:
    store = InstallerStore.for_data_dir(env.data_dir)
    secret = store.add("changer")
    login = {"username": "changer", "password": secret}
    with TestClient(create_app(env.daemon)) as client:
        first = client.post("/auth/login", json=login).json()
        second = client.post("/auth/login", json=login).json()
        auth = {"Authorization": f"Bearer {first['token']}"}
        weak = client.post(
            "/api/v1/auth/password", headers=auth, json={"current_password": secret, "new_password": "short"}
        )
        assert weak.status_code == 422
        wrong = client.post(
            "/api/v1/auth/password",
            headers=auth,
            json={"current_password": "not it", "new_password": "a much better one"},
        )
        assert wrong.status_code == 403 and wrong.json()["code"] == "wrong_password"
        time.sleep(0.35)  # the wrong guess started the account's back-off
        done = client.post(
            "/api/v1/auth/password",
            headers=auth,
            json={"current_password": secret, "new_password": "a much better one"},
        )
        assert done.status_code == 204
        assert client.get("/api/v1/auth/me", headers=auth).status_code == 200  # this login goes on
        assert (
            client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {second['token']}"}).status_code
            == 401
        )
        assert client.post("/auth/login", json=login).status_code == 401
        time.sleep(0.35)
        assert (
            client.post(
                "/auth/login", json={"username": "changer", "password": "a much better one"}
            ).status_code
            == 200
        )
    store.remove("changer")


def test_metrics_accept_basic_auth_for_prometheus(env: ApiEnv) -> None:
    good = base64.b64encode(f"{USERNAME}:{env.password}".encode()).decode()
    response = env.client.get("/metrics", headers={"Authorization": f"Basic {good}"})
    assert response.status_code == 200 and "yizhan_camera_fps" in response.text
    bad = base64.b64encode(b"installer:nope").decode()
    refused = env.client.get("/metrics", headers={"Authorization": f"Basic {bad}"})
    assert refused.status_code in (401, 429) and refused.headers.get("WWW-Authenticate", "Basic").startswith(
        "Basic"
    )
    # Basic is for the scraper only: the rest of the API wants a login.
    assert env.client.get("/api/v1/members", headers={"Authorization": f"Basic {good}"}).status_code == 401


def test_removing_an_installer_ends_their_sessions(env: ApiEnv) -> None:
    store = InstallerStore.for_data_dir(env.data_dir)
    secret = store.add("leaver")
    token = env.client.post("/auth/login", json={"username": "leaver", "password": secret}).json()["token"]
    env.client.cookies.clear()
    auth = {"Authorization": f"Bearer {token}"}
    assert env.client.get("/api/v1/auth/me", headers=auth).status_code == 200
    assert remove_installer_command(env.config, "leaver", out=io.StringIO(), err=io.StringIO()) == 0
    assert env.client.get("/api/v1/auth/me", headers=auth).status_code == 401


# -- `yizhan installer` ------------------------------------------------------------------------------


def test_installer_add_prints_the_secret_once_and_stores_only_a_hash(tmp_path: Path) -> None:
    from edge.config import parse_config

    config = parse_config({"storage": {"data_dir": str(tmp_path / "data")}})
    out, err = io.StringIO(), io.StringIO()
    assert add_installer_command(config, "Wang.Li", out=out, err=err) == 0
    secret = re.search(r"password: (\S+)", out.getvalue())
    assert secret and SECRET_RE.fullmatch(secret[1]) and "shown only now" in out.getvalue()
    path = tmp_path / "data" / "installers.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = path.read_text(encoding="utf-8")
    assert secret[1] not in text and "$argon2id$" in text and "wang.li" in text
    store = InstallerStore(path)
    assert store.verify("wang.li", secret[1]) and not store.verify("wang.li", secret[1] + "x")

    again = io.StringIO()
    assert add_installer_command(config, "wang.li", out=io.StringIO(), err=again) == 2
    assert "already exists" in again.getvalue()
    reset = io.StringIO()
    assert add_installer_command(config, "wang.li", reset=True, out=reset, err=io.StringIO()) == 0
    new_secret = re.search(r"password: (\S+)", reset.getvalue())
    assert new_secret and new_secret[1] != secret[1]
    assert not store.verify("wang.li", secret[1]) and store.verify("wang.li", new_secret[1])

    bad = io.StringIO()
    assert (
        add_installer_command(config, "../root", out=io.StringIO(), err=bad) == 2
        and "user name" in bad.getvalue()
    )
    listing = io.StringIO()
    assert list_installers_command(config, as_json=True, out=listing) == 0
    assert '"username": "wang.li"' in listing.getvalue() and "argon2" not in listing.getvalue()
    assert remove_installer_command(config, "wang.li", out=io.StringIO(), err=io.StringIO()) == 0
    assert remove_installer_command(config, "wang.li", out=io.StringIO(), err=io.StringIO()) == 2
    assert not list(path.parent.glob("*.tmp"))


def test_a_corrupted_accounts_file_is_reported_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "installers.json"
    path.write_text('{"installers": {"x": "no hash"}}', encoding="utf-8")
    store = InstallerStore(path)
    with pytest.raises(InstallerFileError):
        store.verify("x", "whatever")
    with pytest.raises(InstallerError):
        store.set_password("bad name!", "long enough password")


def test_the_cli_handler_dispatches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from edge.api.installers import installer_command
    from edge.config import parse_config

    config = parse_config({"storage": {"data_dir": str(tmp_path)}})
    assert (
        installer_command(argparse.Namespace(installer_cmd="add", username="ops", reset=False), config) == 0
    )
    assert SECRET_RE.fullmatch(re.search(r"password: (\S+)", capsys.readouterr().out)[1])  # type: ignore[index]
    assert installer_command(argparse.Namespace(installer_cmd="list", json=True), config) == 0
    assert '"ops"' in capsys.readouterr().out
    assert installer_command(argparse.Namespace(installer_cmd="remove", username="ops"), config) == 0
