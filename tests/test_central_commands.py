"""Commands from staff to a station, through the centre's API, to a real station and back.

The station is the production sync code behind the `StationPort` double (its door records remote
openings instead of pulsing GPIO); the centre is the whole app (web, ingest, roster) on a real
mosquitto. A remote opening needs a reason, is signed (the station pinned the centre's key),
audited, and shows the station's answer; an offline station is told about at once; an unanswered
command expires.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from central_fixtures import CentralDb
from fastapi.testclient import TestClient
from sqlalchemy import select

from central.app import CentralApp
from central.store import staff as staff_store
from central.store.tables import AuditEntry, Station
from common.passwords import Passwords
from tests.centre_mqtt import Publisher, centre_config, prepare, running_centre, station, until
from tests.centre_mqtt import Station as StationUnderTest
from tests.mqtt_broker import Broker, broker

__all__ = ["broker"]

PASSWORD = "correct horse battery"


@dataclass
class Api:
    client: TestClient
    app: CentralApp

    def login(self, username: str) -> dict[str, str]:
        response = self.client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['token']}"}

    def command(self, who: dict[str, str], station_id: str, **body: Any) -> Any:
        return self.client.post(f"/api/v1/stations/{station_id}/commands", json=body, headers=who)

    def outcome(self, who: dict[str, str], command_id: str, timeout: float = 15.0) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            got = self.client.get(f"/api/v1/commands/{command_id}", headers=who)
            assert got.status_code == 200, got.text
            body: dict[str, Any] = got.json()
            return body if body["state"] not in ("pending", "sent") else None

        found = until(finished, timeout)
        assert found, f"command {command_id} never finished"
        return dict(found)


@pytest.fixture
def api(central_db: CentralDb, broker: Broker, tmp_path: Path) -> Iterator[tuple[Api, StationUnderTest]]:
    config = centre_config(central_db.url, tmp_path / "centre", broker.port, command_ttl_s=5)
    stations = {"st-a": {"district": "haidian"}, "st-far": {"district": "chaoyang"}}
    prepared = prepare(config, central_db.sessions, stations)
    with central_db.sessions.begin() as db:
        for name, role, district in (
            ("ops", "district", "haidian"),
            ("look", "viewer", None),
            ("cy", "district", "chaoyang"),
        ):
            staff_store.create_staff(
                db, Passwords(), username=name, role=role, district_id=district, password=PASSWORD
            )
    with running_centre(config) as app:
        st = station(tmp_path, broker.port, "st-a", prepared.key_file(tmp_path / "keys"))
        try:
            assert until(lambda: _state(central_db, "st-a") == "online", 15)
            assert app.web is not None
            yield Api(TestClient(app.web), app), st
        finally:
            st.stop()


def _state(db: CentralDb, station_id: str) -> str | None:
    with db.sessions() as session:
        row = session.get(Station, station_id)
        return row.last_state if row is not None else None


def test_a_remote_opening_is_signed_audited_and_shows_the_stations_answer(
    central_db: CentralDb, api: tuple[Api, StationUnderTest]
) -> None:
    web, st = api
    ops = web.login("ops")
    with web.app.live.subscribed({"result"}) as feed:
        response = web.command(ops, "st-a", name="open", reason="courier locked out at night", seconds=4)
        assert response.status_code == 202, response.text
        command_id = response.json()["command_id"]
        done = web.outcome(ops, command_id)
        assert done["state"] == "ok" and done["ok"] is True and done["issued_by"] == "staff:ops"
        assert done["result"]["kind"] == "entry" and done["result"]["seconds"] == 4
        assert done["reason"] == "courier locked out at night"
        live = until(lambda: [m for m in feed.drain() if m.data.get("ref") == command_id], 5)
        assert live and live[0].data["ok"] is True and live[0].data["command_id"] == command_id
    assert (
        st.double.opens
        and st.double.opens[0]["by"] == "centre:staff:ops"
        and st.double.opens[0]["seconds"] == 4
    )
    with central_db.sessions() as db:
        audit = db.scalars(select(AuditEntry).where(AuditEntry.action == "remote_open")).all()
    assert len(audit) == 1 and audit[0].actor == "staff:ops" and audit[0].details["reason"]
    assert audit[0].district_id == "haidian"

    ping = web.command(ops, "st-a", name="ping")
    assert ping.status_code == 202
    assert web.outcome(ops, ping.json()["command_id"])["result"]["pong"] is True
    hours = {"timezone": "Asia/Shanghai", "always_open": False, "weekly": {"mon": ["06:00-22:00"]}}
    schedule = web.command(ops, "st-a", name="set_schedule", schedule=hours)
    assert web.outcome(ops, schedule.json()["command_id"])["state"] == "ok"
    assert st.double.schedules and st.double.schedules[-1].weekly["mon"]
    with central_db.sessions() as db:
        row = db.get(Station, "st-a")
        assert row is not None and row.schedule["weekly"]["mon"] == ["06:00-22:00"]


def test_commands_are_refused_before_anything_is_sent(api: tuple[Api, StationUnderTest]) -> None:
    web, st = api
    ops, look, cy = web.login("ops"), web.login("look"), web.login("cy")
    assert web.command(ops, "st-a", name="open").status_code == 422  # no reason
    assert web.command(ops, "st-a", name="open", reason="x", seconds=601).status_code == 422
    assert web.command(ops, "st-a", name="open", reason="ok reason", seconds=0).status_code == 422
    assert web.command(ops, "st-a", name="self_destruct").status_code == 422
    assert web.command(ops, "st-a", name="ping", seconds=3).status_code == 422  # not a ping argument
    assert (
        web.command(ops, "st-a", name="set_schedule", schedule={"weekly": {"mon": "whenever"}}).status_code
        == 422
    )
    assert web.command(look, "st-a", name="ping").status_code == 403  # viewers look only
    assert web.command(cy, "st-a", name="ping").status_code == 404  # another district's station
    assert web.command(ops, "st-nowhere", name="ping").status_code == 404
    anonymous = TestClient(web.app.web)  # type: ignore[arg-type]  # (the other client holds a login cookie)
    assert anonymous.post("/api/v1/stations/st-a/commands", json={"name": "ping"}).status_code == 401
    accepted = web.command(ops, "st-a", name="ping").json()["command_id"]
    assert web.client.get(f"/api/v1/commands/{accepted}", headers=cy).status_code == 404
    assert st.double.opens == []


def test_an_offline_station_is_reported_at_once_and_a_silent_one_expires(
    central_db: CentralDb, broker: Broker, api: tuple[Api, StationUnderTest]
) -> None:
    web, st = api
    ops = web.login("ops")
    st.stop()
    assert until(lambda: _state(central_db, "st-a") == "offline", 15)
    response = web.command(ops, "st-a", name="open", reason="door stuck")
    assert response.status_code == 202
    body = response.json()
    assert body["state"] == "failed" and body["error"] == "station_offline" and "offline" in body["message"]
    # A station that says it is online but never answers: the command expires ([mqtt] command_ttl_s = 5).
    mute = Publisher(broker.port)
    try:
        mute.publish(
            "yz/v1/station/st-a/up/status",
            {
                "v": 1,
                "type": "status",
                "station_id": "st-a",
                "state": "online",
                "ts": "2026-12-01T00:00:00+00:00",
                "health": {},
            },
        )
        assert until(lambda: _state(central_db, "st-a") == "online", 10)
        sent = web.command(ops, "st-a", name="ping").json()
        assert sent["state"] in ("pending", "sent")
        time.sleep(5.5)
        done = web.outcome(ops, sent["command_id"], timeout=10)
        assert done["state"] == "expired" and done["ok"] is False and done["error"] == "expired"
    finally:
        mute.close()
