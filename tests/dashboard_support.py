"""A small fleet for the dashboard's tests: two districts, three stations, staff of every role,
a QR key, members and events; helpers to store events as ingest does (row, then bus notice).

`Fleet` wraps a WebContext on a `central_db` (SQLite and PostgreSQL); `fleet_context` builds it.
`serve(ctx)` runs the app under real uvicorn on a free port (server-sent events and the browser
need a real server; the TestClient buffers whole responses).
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from argon2 import PasswordHasher
from central_fixtures import CentralDb
from fastapi.testclient import TestClient

from central import live
from central.config import CentralConfig
from central.data_key import DataKey
from central.metrics import CentreMetrics
from central.signing import MessageSigner
from central.store import events as event_store
from central.store import members as member_store
from central.store import signing_keys
from central.store import staff as staff_store
from central.store import stations as station_store
from central.store.tables import Alarm, Snapshot
from central.web.app import create_app
from central.web.auth import StaffAuth
from central.web.context import WebContext
from central.web.event_views import row_fields, views
from common.passwords import Passwords

FAST = Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
PASSWORD = "correct horse battery"
NOW = dt.datetime(2026, 11, 24, 4, 0, tzinfo=dt.UTC)  # noon in Beijing
STAFF = (
    ("admin", "admin", None),
    ("hd.staff", "district", "haidian"),
    ("cy.staff", "district", "chaoyang"),
    ("viewer", "viewer", None),
    ("hd.viewer", "viewer", "haidian"),
)


@dataclass
class Fleet:
    ctx: WebContext
    db: CentralDb

    def store_event(
        self,
        *,
        station_id: str,
        kind: str = "entry",
        member_id: str | None = None,
        ts: dt.datetime | None = None,
        method: str | None = "face",
        reason: str | None = None,
        snapshot: bytes | None = None,
        publish: bool = True,
        received_at: dt.datetime | None = None,
    ) -> str:
        """Store an event (and its snapshot file) as ingest does, then tell the bus."""
        event_id = str(uuid.uuid4())
        ts = ts or dt.datetime.now(dt.UTC)
        with self.ctx.db.begin() as db:
            values: dict[str, Any] = dict(
                id=event_id,
                ts=ts,
                station_id=station_id,
                seq=None,
                kind=kind,
                method=method,
                member_id=member_id,
                reason=reason,
                details={"distance": 0.31} if kind == "entry" else {},
                snapshot=f"{event_id}.jpg" if snapshot else None,
            )
            if received_at is not None:
                values["received_at"] = received_at
            assert event_store.store_event(db, **values)
            if snapshot is not None:
                folder = self.ctx.config.storage.snapshots_dir / ts.strftime("%Y-%m-%d")
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{event_id}.jpg").write_bytes(snapshot)
                db.add(
                    Snapshot(
                        event_id=event_id,
                        event_ts=ts,
                        station_id=station_id,
                        path=f"{ts:%Y-%m-%d}/{event_id}.jpg",
                        size_bytes=len(snapshot),
                        sha256="0" * 64,
                    )
                )
        if publish:
            with self.ctx.db() as db:
                event = event_store.get_event(db, event_id=event_id)
                assert event is not None
                data = views(db, [row_fields(event)])[0].model_dump(mode="json")
                district = data["district_id"]
            data = {k: data[k] for k in ("id", "station_id", "ts", "kind", "method", "member_id", "reason",
                                         "details", "snapshot")}  # fmt: skip
            self.ctx.live.publish(live.EVENT, data, station_id=station_id, district=district)
        return event_id

    def raise_alarm(self, *, station_id: str, kind: str = "emergency", severity: str = "emergency") -> int:
        """An open alarm row as the alarm engine writes it, then its bus notice."""
        with self.ctx.db.begin() as db:
            station = station_store.get_station(db, station_id=station_id)
            assert station is not None
            alarm = Alarm(
                station_id=station_id,
                district_id=station.district_id,
                kind=kind,
                severity=severity,
                dedup_key=f"{kind}:{station_id}:{uuid.uuid4().hex[:8]}",
                details={},
            )
            db.add(alarm)
            db.flush()
            alarm_id, district = alarm.id, station.district_id
            notice = {"id": alarm.id, "station_id": station_id, "kind": kind, "severity": severity,
                      "raised_at": alarm.raised_at.isoformat(), "state": "open"}  # fmt: skip
        self.ctx.live.publish(live.ALARM, notice, station_id=station_id, district=district)
        return alarm_id


def build_fleet(db: CentralDb, config: CentralConfig, *, now: dt.datetime | None = None) -> Fleet:
    ctx = WebContext(
        config=config,
        db=db.sessions,
        auth=StaffAuth(db.sessions, config.web, passwords=FAST),
        data_key=DataKey.load(config),
        metrics=CentreMetrics(),
        **({"now": (lambda: now)} if now is not None else {}),
    )
    ctx.signer = MessageSigner(db.sessions, ctx.data_key)  # as CentralApp: commands are signed
    with db.sessions.begin() as s:
        station_store.add_station(
            s, station_id="hd-1", name="海淀一号", district_id="haidian", latitude=39.98, longitude=116.31,
            address="海淀区中关村大街1号", services=["water", "charging"],
        )  # fmt: skip
        station_store.add_station(s, station_id="hd-2", name="海淀二号", district_id="haidian",
                                  latitude=39.96, longitude=116.30)  # fmt: skip
        station_store.add_station(s, station_id="cy-1", name="朝阳一号", district_id="chaoyang",
                                  latitude=39.92, longitude=116.44)  # fmt: skip
        for name, role, district in STAFF:
            staff_store.create_staff(
                s, FAST, username=name, role=role, district_id=district, password=PASSWORD
            )
        signing_keys.rotate_key(s, ctx.data_key, purpose="qr", now=NOW, overlap=dt.timedelta(days=1))
        signing_keys.rotate_key(s, ctx.data_key, purpose="messages", now=NOW, overlap=dt.timedelta(days=1))
        member_store.add_member(s, member_id="m-li", name="李娜", phone="13912345678", kind="sanitation",
                                home_station_id="hd-1", consent_face=True, groups=["sanitation"])  # fmt: skip
        member_store.add_member(s, member_id="m-wang", name="王强", kind="rider", home_station_id="cy-1")
        member_store.add_member(s, member_id="m-zhao", name="赵敏", kind="courier")  # no home station
    return Fleet(ctx, db)


def config_for(central_config: CentralConfig, **dashboard: Any) -> CentralConfig:
    web = central_config.web.model_copy(update={"login_backoff_s": 0.0})
    return central_config.model_copy(
        update={"web": web, "dashboard": central_config.dashboard.model_copy(update=dashboard)}
    )


class Api:
    """A TestClient logged in as one staff member (bearer token)."""

    def __init__(self, client: TestClient, username: str) -> None:
        self.client = client
        response = client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        body = response.json()
        self.headers = {"Authorization": f"Bearer {body['token']}"}
        self.token = body["token"]
        self.csrf = body["csrf_token"]

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=self.headers, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.client.post(path, headers=self.headers, json=json, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any) -> Any:
        return self.client.patch(path, headers=self.headers, json=json, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextmanager
def serve(ctx: WebContext) -> Iterator[str]:
    """The app under real uvicorn on 127.0.0.1 (its own thread); yields the base URL."""
    port = free_port()
    server = _Server(
        uvicorn.Config(
            create_app(ctx), host="127.0.0.1", port=port, log_config=None, access_log=False,
            timeout_graceful_shutdown=1,
        )
    )  # fmt: skip
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def snapshots_dir(ctx: WebContext) -> Path:
    return ctx.config.storage.snapshots_dir
