"""Remote opening from the staff dashboard, end to end: headless Chromium, the real centre, a real
mosquitto and a real station daemon whose relay is a gpiozero mock pin.

A staff member logs in, opens the station's page, gives a reason, clicks "远程开门", confirms, and
the page shows the station's answer ("门已打开"); the relay pin went high, the command and its
reason are in the audit log under the staff member's name (in the database and on the audit
page), and the station's "entry by remote" event reaches the centre and the station page. A viewer
gets no button (and a 403 from the API). A stopped station is never shown as opened: the page says
the station is offline, and a station that looks online but never answers shows "expired".

Nothing here is a stand-in: the station is `StationDaemon` (camera on a looping empty-doorway
video, the session's dlib model, MQTT sync with the centre's key pinned), the centre is
`CentralApp` with `[mqtt] enabled` serving its own FastAPI app under uvicorn. Waits are generous
(a loaded 2-core machine), nothing is timed. Screenshots: tests/artifacts/dashboard-remote-*.png.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from central_fixtures import CentralDb
from dashboard_support import FAST, PASSWORD, serve_app
from gpiozero.pins.mock import MockFactory
from sqlalchemy import select
from test_api_support import running_daemon
from test_dashboard_browser import Browser, _desktop, desktop, log_in

from central.store import staff as staff_store
from central.store.tables import AuditEntry, Command, Event, Station
from edge.app import StationDaemon
from edge.demo_video import Scene, write_video
from edge.station import Station as StationStore
from tests.centre_mqtt import Publisher, centre_config, prepare, running_centre, until
from tests.mqtt_broker import RELAY_PIN, Broker, broker, rising_edges, station_config

__all__ = ["_desktop", "broker", "desktop"]  # fixtures (a fresh desktop Chromium per test)

SID = "st-a"
COMMAND_TTL_S = 20  # generous: a loaded machine still delivers the command well inside it
STAFF = (("ops", "district", "haidian"), ("look", "viewer", None))


@dataclass
class World:
    db: CentralDb
    url: str
    broker: Broker
    daemon: StationDaemon
    factory: MockFactory

    @property
    def relay(self) -> Any:
        return self.factory.pin(RELAY_PIN)

    def state(self) -> str | None:
        with self.db.sessions() as session:
            row = session.get(Station, SID)
            return row.last_state if row is not None else None


@pytest.fixture
def world(central_db: CentralDb, broker: Broker, tmp_path: Path, face_model: Any) -> Iterator[World]:
    config = centre_config(central_db.url, tmp_path / "centre", broker.port, command_ttl_s=COMMAND_TTL_S)
    prepared = prepare(config, central_db.sessions, {SID: {"district": "haidian"}})
    with central_db.sessions.begin() as db:
        db.get(Station, SID).name = "海淀测试驿站"  # type: ignore[union-attr]
        for name, role, district in STAFF:
            staff_store.create_staff(
                db, FAST, username=name, role=role, district_id=district, password=PASSWORD
            )
    station_dir = tmp_path / "station"
    station_cfg = station_config(
        station_dir / SID,
        broker.port,
        station_id=SID,
        sections={"camera": {"realtime": True, "fps_limit": 5.0}},
        centre_key_file=str(prepared.key_file(tmp_path / "keys")),
        delivery="centre_ack",
        ack_timeout_s=3.0,
        heartbeat_s=5,
    )
    station = StationStore(station_cfg, env={})
    station.face_model = face_model  # the session's loaded dlib model
    video = station_dir / "door.avi"
    write_video(video, [Scene("empty", None, 2.0)])  # an empty doorway, looping
    try:
        with running_centre(config) as app, serve_app(app.web) as url:  # type: ignore[arg-type]
            with running_daemon(station_cfg, station, video, with_sync=True) as (daemon, factory):
                world = World(central_db, url, broker, daemon, factory)
                assert until(lambda: daemon.sync is not None and daemon.sync.status()["connected"], 30)
                assert until(lambda: world.state() == "online", 30), "the centre never saw the station"
                yield world
    finally:
        station.close()


def station_page(b: Browser, world: World) -> None:
    b.go(f"{world.url}/dashboard/#/stations/{SID}")
    b.wait(lambda: "海淀测试驿站" in b.text("#view h1"), 30)


def click_open(b: Browser, world: World, reason: str, seconds: int = 2) -> str:
    """Fill the reason and the seconds, click "远程开门", confirm; returns the command's id."""
    b.wait(lambda: b.els("#open-door") and b.el("#open-door").is_enabled(), 30)
    before = len(commands(world))
    b.el("#open-reason").clear()
    b.el("#open-reason").send_keys(reason)
    b.el("#open-seconds").clear()
    b.el("#open-seconds").send_keys(str(seconds))
    b.el("#open-door").click()
    b.wait(lambda: b.el("#dialog").is_displayed())
    dialog = b.text("#dialog")
    assert "海淀测试驿站" in dialog and reason in dialog and f"{seconds} 秒" in dialog
    b.el("#dialog-ok").click()
    assert until(lambda: len(commands(world)) == before + 1, 30), "the page sent no command"
    return commands(world)[-1].id


def answer(b: Browser, command_id: str, timeout: float = 60.0) -> tuple[str, str]:
    """The command's final state as the page shows it (data-state, text), once it shows that command."""
    script = "const r = document.getElementById('open-result'); return [r.dataset.command, r.dataset.state]"
    final = ("ok", "failed", "expired")
    b.wait(lambda: (shown := b.js(script))[0] == command_id and shown[1] in final, timeout)
    return b.js(script)[1], b.text("#open-result")


def commands(world: World) -> list[Command]:
    with world.db.sessions() as db:
        return list(db.scalars(select(Command).order_by(Command.issued_at)))


@pytest.mark.parametrize("central_db", ["postgresql"], indirect=True)
def test_staff_open_a_door_and_see_the_stations_answer(world: World, desktop: Browser) -> None:
    b = desktop
    edges = rising_edges(world.relay)
    # A viewer sees the station but gets no button, and the API refuses them too.
    log_in(b, world.url, "look")
    station_page(b, world)
    b.wait(lambda: "只读账号不能远程开门" in b.text("#view"))
    assert not b.els("#open-door") and not b.els("#open-reason")
    login = httpx.post(f"{world.url}/api/auth/login", json={"username": "look", "password": PASSWORD})
    token = login.json()["token"]
    refused = httpx.post(
        f"{world.url}/api/v1/stations/{SID}/commands",
        json={"name": "open", "reason": "viewer tries anyway"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.status_code == 403, refused.text
    b.shot("dashboard-remote-viewer.png")
    assert commands(world) == [] and rising_edges(world.relay) == edges
    b.el("#logout").click()
    b.wait(lambda: b.el("#view-login").is_displayed())

    # District staff open it: reason, confirmation, the station's answer on the page.
    log_in(b, world.url, "ops")
    station_page(b, world)
    assert "在线" in b.text("#station-state")
    b.el("#open-door").click()  # no reason yet: refused on the page, nothing sent
    b.wait(lambda: "请填写开门原因" in b.text("#open-result"))
    assert commands(world) == []
    reason = "快递员手机没电，电话核实身份"
    command_id = click_open(b, world, reason, seconds=2)
    state, text = answer(b, command_id)
    assert state == "ok" and "门已打开" in text, text
    b.shot("dashboard-remote-open.png")

    # The relay really was driven high by the station.
    assert until(lambda: rising_edges(world.relay) == edges + 1, 10), [s.state for s in world.relay.states]
    (command,) = commands(world)
    assert command.id == command_id
    assert command.state == "ok" and command.issued_by == "staff:ops" and command.reason == reason
    assert command.result is not None and command.result["kind"] == "entry"
    event_id = command.result["event_id"]

    # The station's event reaches the centre (and the station page, live).
    def stored() -> Event | None:
        with world.db.sessions() as db:
            return db.scalars(select(Event).where(Event.id == event_id)).first()

    event = until(stored, 30)
    assert event is not None and event.station_id == SID and event.kind == "entry"
    assert event.method == "remote" and event.details["command_id"] == command.id
    assert event.details["by"] == "centre:staff:ops"
    b.wait(lambda: b.els(f"#station-entries [data-event='{event_id}']"), 30)

    # Audited under the staff member's name, with the reason: in the database and on the audit page.
    with world.db.sessions() as db:
        audit = db.scalars(select(AuditEntry).where(AuditEntry.action == "remote_open")).all()
    assert len(audit) == 1 and audit[0].actor == "staff:ops" and audit[0].target_id == SID
    assert audit[0].details["reason"] == reason and audit[0].details["command_id"] == command.id
    b.go(f"{world.url}/dashboard/#/audit")
    row = "#audit-table [data-action='remote_open']"
    b.wait(lambda: b.els(row), 30)
    assert reason in b.text(row) and "staff:ops" in b.text(row)
    b.shot("dashboard-remote-audit.png")
    assert not b.severe_logs(), b.severe_logs()


@pytest.mark.parametrize("central_db", ["sqlite"], indirect=True)
def test_a_stopped_station_is_never_shown_as_opened(world: World, desktop: Browser) -> None:
    b = desktop
    edges = rising_edges(world.relay)
    log_in(b, world.url, "ops")
    station_page(b, world)
    # The station stops: it says "offline" on its way out, and the centre sends it nothing.
    world.daemon.stop()
    assert until(lambda: world.state() == "offline", 30)
    b.wait(lambda: "离线" in b.text("#station-state") and "离线" in b.text("#view dl"), 30)  # live status
    offline = click_open(b, world, "夜班环卫工人被锁在门外")
    state, text = answer(b, offline)
    assert state == "failed" and "门已打开" not in text, text
    assert "驿站离线" in text, text  # the reason is shown, not only "did not open"
    b.shot("dashboard-remote-offline.png")

    # A station the centre believes online but that never answers: the command expires, on the page.
    mute = Publisher(world.broker.port)
    try:
        status = {"v": 1, "type": "status", "station_id": SID, "state": "online",
                  "ts": dt.datetime.now(dt.UTC).isoformat(), "health": {}}  # fmt: skip
        mute.publish(f"yz/v1/station/{SID}/up/status", status)
        assert until(lambda: world.state() == "online", 30)
        silent = click_open(b, world, "夜班环卫工人被锁在门外")
        state, text = answer(b, silent, timeout=COMMAND_TTL_S + 60)
        assert state == "expired" and "门已打开" not in text and "过期" in text, text
        b.shot("dashboard-remote-expired.png")
    finally:
        mute.close()
    sent = {c.id: c for c in commands(world)}
    assert set(sent) == {offline, silent} and sent[offline].error == "station_offline"
    assert not any(c.state == "ok" for c in sent.values())
    assert rising_edges(world.relay) == edges
    assert not b.severe_logs(), b.severe_logs()
