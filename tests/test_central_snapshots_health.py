"""Snapshots (JPEG files by date, rows with size and hash, parked until their event, retention and
disk budget, served to staff, deleted by an erasure) and station health (the station row kept
current from status heartbeats and last wills, a bounded history, stations gone silent)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from central_fixtures import CentralDb
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from central import roster
from central.app import CentralApp
from central.config import SnapshotsConfig
from central.ingest.housekeeping import Housekeeper
from central.live import LiveBus
from central.metrics import CentreMetrics
from central.snapshot_files import SnapshotFiles, enforce
from central.store import members as member_store
from central.store import staff as staff_store
from central.store.tables import Snapshot, Station, StationStatus
from common.passwords import Passwords
from tests.centre_mqtt import (
    Publisher,
    centre_config,
    event_message,
    prepare,
    running_centre,
    snapshot_properties,
    until,
)
from tests.mqtt_broker import Broker, broker

__all__ = ["broker"]

SID = "st-s"
UP = f"yz/v1/station/{SID}/up"


def jpeg(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    return bytes(cv2.imencode(".jpg", image)[1])


@pytest.fixture
def centre(central_db: CentralDb, broker: Broker, tmp_path: Path) -> Iterator[tuple[CentralApp, Publisher]]:
    config = centre_config(central_db.url, tmp_path / "centre", broker.port)
    prepare(config, central_db.sessions, [SID])
    with central_db.sessions.begin() as db:
        staff_store.create_staff(
            db, Passwords(), username="ops", role="admin", password="correct horse battery"
        )
    with running_centre(config) as app:
        pub = Publisher(broker.port)
        pub.subscribe(f"yz/v1/station/{SID}/down/ack")
        try:
            yield app, pub
        finally:
            pub.close()


def acked(pub: Publisher) -> set[int]:
    return {
        s for a in pub.messages("/down/ack") for first, last in a["stored"] for s in range(first, last + 1)
    }


def test_snapshots_are_stored_by_date_served_to_staff_and_erased_with_their_member(
    central_db: CentralDb, centre: tuple[CentralApp, Publisher]
) -> None:
    app, pub = centre
    with central_db.sessions.begin() as db:
        member_store.add_member(db, member_id="m-1", name="张三")
        roster.member_changed(db, "m-1")
    event = event_message(SID, 1, member_id="m-1", snapshot="2026-12-01/x.jpg")
    picture = jpeg(1)
    # The picture first (another worker's batch may hold the event): parked, stored once the event is.
    pub.publish(
        f"{UP}/snapshot/{event['id']}", picture, properties=snapshot_properties(SID, 2, event["id"], picture)
    )
    pub.publish(f"{UP}/event", event)
    assert until(lambda: {1, 2} <= acked(pub), 15)
    pub.publish(
        f"{UP}/snapshot/{event['id']}", picture, properties=snapshot_properties(SID, 2, event["id"], picture)
    )
    with central_db.sessions() as db:
        row = db.get(Snapshot, event["id"])
        assert row is not None and row.station_id == SID and row.size_bytes == len(picture)
        assert row.sha256 == hashlib.sha256(picture).hexdigest()
        assert row.path == f"{event['ts'][:10]}/{event['id']}.jpg"
        assert db.scalar(select(func.count()).select_from(Snapshot)) == 1
    path = app.config.storage.snapshots_dir / row.path
    assert path.read_bytes() == picture
    assert app.web is not None
    client = TestClient(app.web)
    token = client.post("/api/auth/login", json={"username": "ops", "password": "correct horse battery"})
    headers = {"Authorization": f"Bearer {token.json()['token']}"}
    got = client.get(f"/api/v1/events/{event['id']}/snapshot", headers=headers)
    assert got.status_code == 200 and got.content == picture and got.headers["content-type"] == "image/jpeg"
    assert TestClient(app.web).get(f"/api/v1/events/{event['id']}/snapshot").status_code == 401
    assert client.get("/api/v1/events/../../etc/passwd/snapshot", headers=headers).status_code == 404
    # Erasing the member deletes their pictures at the centre (the row says so; the file is gone).
    with central_db.sessions.begin() as db:
        roster.erase_member(db, "m-1", "staff:ops", files=SnapshotFiles(app.config.storage.snapshots_dir))
    assert not path.exists()
    assert client.get(f"/api/v1/events/{event['id']}/snapshot", headers=headers).status_code == 410


def test_retention_and_the_disk_budget_delete_the_oldest_first(central_db: CentralDb, tmp_path: Path) -> None:
    files = SnapshotFiles(tmp_path / "snapshots")
    now = dt.datetime.now(dt.UTC)
    with central_db.sessions.begin() as db:
        for i in range(6):
            data = os.urandom(300 * 1024)
            event_id = f"00000000-0000-4000-8000-{i:012d}"
            relative = files.relative_for(now, event_id)
            files.write(relative, data)
            db.add(
                Snapshot(
                    event_id=event_id,
                    event_ts=now,
                    station_id=SID,
                    path=relative,
                    size_bytes=len(data),
                    sha256="0" * 64,
                    received_at=now - dt.timedelta(days=100 if i == 0 else 6 - i),
                )
            )
    config = SnapshotsConfig.model_construct(
        retention_days=90, disk_budget_mb=1, min_free_mb=0
    )  # (1 MiB: a test)
    report = enforce(central_db.sessions, files, config, now=now)
    assert report.deleted == {"retention": 1, "budget": 2}  # 5 x 300 KiB left > 1 MiB: the two oldest go
    with central_db.sessions() as db:
        live = db.scalars(select(Snapshot.event_id).where(Snapshot.deleted_at.is_(None))).all()
    assert sorted(live) == [f"00000000-0000-4000-8000-{i:012d}" for i in (3, 4, 5)]
    assert sorted(p.name for p in files.root.rglob("*.jpg")) == sorted(f"{e}.jpg" for e in live)
    assert enforce(central_db.sessions, files, config, now=now).total == 0


def test_the_station_row_follows_heartbeats_wills_and_silence(
    central_db: CentralDb, centre: tuple[CentralApp, Publisher]
) -> None:
    app, pub = centre
    now = dt.datetime.now(dt.UTC)

    def status(state: str, **health: object) -> dict[str, object]:
        return {
            "v": 1,
            "type": "status",
            "station_id": SID,
            "state": state,
            "ts": now.isoformat(),
            "health": health if state == "online" else None,
        }

    health = {
        "camera": {"state": "up", "fps": 14.8},
        "disk": {"check": "disk", "status": "ok"},
        "clock": {"station_time": (now + dt.timedelta(seconds=300)).isoformat()},
        "outbox_depth": 3,
        "centre_roster_version": 0,
        "face_model": {"name": "dlib_resnet_v1", "dim": 128},
    }
    with app.live.subscribed({"status"}) as feed:
        for _ in range(5):  # heartbeats: the row follows each, the history keeps one
            pub.publish(f"{UP}/status", status("online", **health))
        pub.publish(f"{UP}/status", status("online", **{**health, "camera": {"state": "down"}}))
        pub.publish(f"{UP}/status", status("offline"))  # the last will

        def row() -> Station:
            with central_db.sessions() as db:
                found = db.get(Station, SID)
                assert found is not None
                return found

        assert until(lambda: row().last_state == "offline", 10)
        feed.drain()  # what the live feed got is checked above; empty it before the next step
    station = row()
    assert station.last_health is not None and station.last_health["outbox_depth"] == 3
    assert 200 < station.last_health["clock_skew_s"] < 400  # the centre's measure of the station's clock
    assert station.last_health["camera"]["state"] == "down"
    with central_db.sessions() as db:
        states = [
            (s.state, (s.health or {}).get("camera", {}).get("state"))
            for s in db.scalars(select(StationStatus).order_by(StationStatus.id))
        ]
    assert states == [("online", "up"), ("online", "down"), ("offline", None)]
    # Silence without a will: after [alarms] offline_after_s the housekeeper marks it offline.
    pub.publish(f"{UP}/status", status("online", **health))
    assert until(lambda: row().last_state == "online", 10)
    keeper = Housekeeper(
        db=central_db.sessions,
        config=app.config,
        files=SnapshotFiles(app.config.storage.snapshots_dir),
        live=LiveBus(),
        metrics=CentreMetrics(),
    )
    keeper.run_once(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10))
    assert row().last_state == "online"
    keeper.run_once(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=app.config.alarms.offline_after_s + 5))
    assert row().last_state == "offline"
    with central_db.sessions() as db:
        last = db.scalars(select(StationStatus).order_by(StationStatus.id.desc()).limit(1)).one()
    assert last.health == {"reason": "missed_heartbeats", "silent_for_s": app.config.alarms.offline_after_s}
