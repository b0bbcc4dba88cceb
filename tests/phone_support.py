"""Shared set-up for the phone tests (this module holds no tests).

`SmsReceiver` is a real HTTP server on 127.0.0.1 standing in for a union's SMS gateway: it keeps
every message the centre posts (JSON body and headers) and can be told to refuse. `RecordingFleet`
is the phone pages' seam to the roster and the doors (`central.phone.fleet.Fleet`) recording what
it was asked, for the tests of the phone API itself; the end-to-end tests use the real one.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from argon2 import PasswordHasher
from central_fixtures import CentralDb
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from central.config import CentralConfig
from central.data_key import DataKey
from central.phone.fleet import CentreFleet
from central.phone.web.context import read_sessions
from central.signing import MessageSigner
from central.store import ingest as ingest_store
from central.store import signing_keys
from central.store import staff as staff_store
from central.store import stations as station_store
from central.store.tables import District, Member, Station
from central.web.app import create_app
from central.web.auth import StaffAuth
from central.web.context import WebContext
from common.db_types import utc_now
from common.passwords import Passwords


@dataclass
class SmsMessage:
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def code(self) -> str:
        return str(self.body["code"])


class SmsReceiver:
    def __init__(self) -> None:
        self.messages: list[SmsMessage] = []
        self.fail_with: int | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                with receiver._lock:
                    receiver.messages.append(SmsMessage(json.loads(raw), dict(self.headers.items())))
                    status = receiver.fail_with or 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}' if status == 200 else b'{"error": "refused"}')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def last(self, phone: str) -> SmsMessage:
        with self._lock:
            for message in reversed(self.messages):
                if message.body.get("phone") == phone:
                    return message
        raise AssertionError(f"no SMS to {phone}")

    def code_for(self, phone: str) -> str:
        message = self.last(phone)
        # the code is in the text the person reads too, not only in the JSON field
        assert re.search(rf"(?<![0-9]){message.code}(?![0-9])", message.body["text"]), message.body["text"]
        return message.code


@contextmanager
def sms_receiver() -> Iterator[SmsReceiver]:
    receiver = SmsReceiver()
    try:
        yield receiver
    finally:
        receiver.close()


@dataclass
class RecordingLink:
    """The broker side of `central.commands.send_command` for tests without a broker: it takes every
    publish (PUBACK at once) and keeps the topic and the signed payload."""

    published: list[tuple[str, bytes]] = field(default_factory=list)
    connected: bool = True

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> int:
        self.published.append((topic, payload))
        return len(self.published)

    def wait_all(self, infos: list[Any], timeout: float) -> bool:
        return True


@dataclass
class RecordingFleet:
    """Roster calls recorded (the roster's own tests cover what they write); doors asked through the
    real `central.commands.send_command` (recorded, audited, signed) onto a `RecordingLink`."""

    changed: list[str] = field(default_factory=list)
    withdrawn: list[tuple[str, str, bool, bool]] = field(default_factory=list)
    opens: list[dict[str, Any]] = field(default_factory=list)
    web: WebContext | None = None

    def member_changed(self, db: Session, member_id: str) -> None:
        self.changed.append(member_id)

    def withdraw_consent(
        self, db: Session, member_id: str, actor: str, *, face: bool, cross_station: bool
    ) -> None:
        self.withdrawn.append((member_id, actor, face, cross_station))

    def send_open(
        self,
        db: Session,
        *,
        station_id: str,
        member_id: str,
        by: str,
        reason: str,
        ttl_s: int,
        client: str | None = None,
    ) -> str:
        assert self.web is not None, "phone_env binds the fleet to its web context"
        command_id = CentreFleet(self.web).send_open(
            db, station_id=station_id, member_id=member_id, by=by, reason=reason, ttl_s=ttl_s, client=client
        )
        self.opens.append(
            {
                "command_id": command_id,
                "station_id": station_id,
                "member_id": member_id,
                "by": by,
                "ttl_s": ttl_s,
            }
        )
        return command_id


def answer(
    env: Env, command_id: str, *, ok: bool, error: str | None = None, message: str | None = None
) -> None:
    """A station's `up/result` as ingest handles it: the answer on the command row, then the bus."""
    with env.db.sessions.begin() as session:
        command = ingest_store.answer_command(
            session,
            station_id=_station_of(env, command_id),
            command_id=command_id,
            ok=ok,
            error=error,
            message=message,
            data={"kind": "entry"} if ok else {},
            at=utc_now(),
        )
        assert command is not None, f"no open command {command_id} to answer"
        station_id = command.station_id
    env.ctx.live.publish(
        "result",
        {"ref": command_id, "ok": ok, "code": error, "message": message, "command_id": command_id},
        station_id=station_id,
    )


def _station_of(env: Env, command_id: str) -> str:
    return next(o["station_id"] for o in env.fleet.opens if o["command_id"] == command_id)


# -- a real browser at a phone's size, and a real server for it ---------------------------------------

#: A 360 px wide Android phone (the narrowest common width) held in one hand, DPR 3.
PHONE_SCREEN = {"width": 360, "height": 780, "pixelRatio": 3.0}
ANDROID_UA = (
    "Mozilla/5.0 (Linux; Android 13; V2219A) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/116.0 Mobile Safari/537.36"
)
#: What WeChat's built-in browser (XWeb) says it is.
WECHAT_UA = ANDROID_UA + " XWEB/1160065 MMWEBSDK/20231202 MicroMessenger/8.0.47.2560(0x28002F35) WeChat/arm64"


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free 127.0.0.1 port in a thread; yields its base URL."""
    import time

    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def phone_browser(profile: Any, user_agent: str = ANDROID_UA) -> Iterator[Any]:
    """Headless Chromium emulating a 360 px phone (browser_support: skipped locally without
    chromium, a failure under CI)."""
    from browser_support import chromium

    driver = chromium(profile, phone=True, screen=PHONE_SCREEN, user_agent=user_agent)
    try:
        yield driver
    finally:
        driver.quit()


def allow_location(driver: Any, origin: str, lat: float, lon: float, accuracy: float = 15.0) -> None:
    """Grant the page geolocation and say where the phone is (the browser's own permission flow)."""
    driver.execute_cdp_cmd("Browser.grantPermissions", {"origin": origin, "permissions": ["geolocation"]})
    driver.execute_cdp_cmd(
        "Emulation.setGeolocationOverride", {"latitude": lat, "longitude": lon, "accuracy": accuracy}
    )


def severe_console_errors(driver: Any, allowed: tuple[str, ...] = ()) -> list[str]:
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and not any(text in entry["message"] for text in allowed)
    ]


# -- a centre with stations, staff and a QR key, for the phone tests ----------------------------------

FAST = Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
PASSWORD = "correct horse battery"
NOON_SHANGHAI = dt.datetime(2026, 11, 24, 4, 0, tzinfo=dt.UTC)
NIGHT_ONLY = {
    "always_open": False,
    "timezone": "Asia/Shanghai",
    "weekly": {d: ["20:00-22:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
}
PHONE = "13800138000"


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class Phone:
    """One phone: its own cookie jar, the page's CSRF handling."""

    def __init__(self, app: Any) -> None:
        self.client = TestClient(app, base_url="https://testserver")
        self.csrf = self.client.get("/api/m/csrf").json()["csrf_token"]

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        headers = {"X-CSRF-Token": self.csrf, **kw.pop("headers", {})}
        return self.client.post(path, json=body if body is not None else {}, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, **kw)

    def logged_in(self, response: Any) -> Any:
        assert response.status_code in (200, 202), response.text
        if response.json().get("csrf_token"):
            self.csrf = response.json()["csrf_token"]
        return response.json()


@dataclass
class Env:
    app: Any
    ctx: WebContext
    fleet: RecordingFleet
    sms: SmsReceiver
    clock: Clock
    db: CentralDb

    def phone(self) -> Phone:
        return Phone(self.app)

    def staff(self, username: str = "admin") -> dict[str, str]:
        with TestClient(self.app, base_url="https://testserver") as client:
            response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
            assert response.status_code == 200, response.text
            return {"Authorization": f"Bearer {response.json()['token']}"}

    def register(self, phone: Phone, number: str = PHONE, station: str = "hd-1", **fields: Any) -> Any:
        body = {
            "station_id": station,
            "name": "张三",
            "phone": number,
            "kind": "courier",
            "agree": True,
            **fields,
        }
        started = phone.post("/api/m/register", body)
        assert started.status_code == 202, started.text
        data = started.json()
        if data["state"] == "awaiting_staff":
            return phone.logged_in(started)
        code = self.sms.code_for(number)
        return phone.logged_in(
            phone.post(f"/api/m/register/{data['registration_id']}/verify", {"code": code})
        )

    def member(self, member_id: str) -> Member:
        with self.db.sessions() as session:
            member = session.get(Member, member_id)
            assert member is not None
            session.expunge(member)
            return member


def _build(central_db: CentralDb, central_config: CentralConfig, sms_url: str | None, **phone: Any) -> Any:
    config = central_config.model_copy(
        update={
            "sms": central_config.sms.model_copy(update={"url": sms_url}),
            "phone": central_config.phone.model_copy(update=phone),
        }
    )
    return config


@contextmanager
def phone_env(
    central_db: CentralDb,
    central_config: CentralConfig,
    options: dict[str, Any] | None = None,
    fleet: Any = None,
    clock: Clock | None = None,
) -> Iterator[Env]:
    """A centre web app with four stations, staff accounts, a QR key, a real local SMS gateway."""
    options = options or {}
    with sms_receiver() as sms:
        config = _build(
            central_db, central_config, None if options.get("no_sms") else sms.url, **options.get("phone", {})
        )
        clock = clock or Clock(NOON_SHANGHAI)
        fleet = fleet if fleet is not None else RecordingFleet()
        data_key = DataKey.load(config)
        ctx = WebContext(
            config=config,
            db=central_db.sessions,
            auth=StaffAuth(central_db.sessions, config.web, passwords=FAST),
            data_key=data_key,
            now=clock,
            fleet=fleet,
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
            )
            station_store.add_station(
                db, station_id="hd-2", name="海淀二号", district_id="haidian", schedule=NIGHT_ONLY
            )
            station_store.add_station(
                db,
                station_id="hd-3",
                name="海淀三号",
                district_id="haidian",
                latitude=39.90,
                longitude=116.40,
            )
            station_store.add_station(
                db, station_id="cy-1", name="朝阳一号", district_id="chaoyang", allowed_groups=["sanitation"]
            )
            db.get(Station, "hd-3").require_location_m = 200  # type: ignore[union-attr]
            for station in db.query(Station):
                station.last_state = "online"  # as ingest records a station's status
            db.get(District, "haidian").registration_approval = "auto"  # type: ignore[union-attr]
            for name, role, district in (
                ("admin", "admin", None),
                ("cy.staff", "district", "chaoyang"),
                ("hd.staff", "district", "haidian"),
                ("viewer", "viewer", None),
            ):
                staff_store.create_staff(
                    db, FAST, username=name, role=role, district_id=district, password=PASSWORD
                )
            signing_keys.rotate_key(db, data_key, purpose="qr", now=clock(), overlap=dt.timedelta(days=1))
            signing_keys.rotate_key(db, data_key, purpose="messages", now=clock(), overlap=dt.timedelta(1))
        ctx.signer = MessageSigner(read_sessions(central_db.sessions), data_key)
        ctx.down = RecordingLink()  # type: ignore[assignment]
        if isinstance(fleet, RecordingFleet):
            fleet.web = ctx
        app = create_app(ctx)
        yield Env(app, ctx, fleet, sms, clock, central_db)
