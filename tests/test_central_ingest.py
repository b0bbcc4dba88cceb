"""The centre's ingest against a real mosquitto and real stations (the production sync code).

Events, snapshots, enrolments, results and statuses are stored once and acknowledged only after
the commit (`down/ack`, signed): a station delivering by the centre's ack (`delivery =
centre_ack`) empties its outbox exactly when the centre has the rows. Every test runs on SQLite
and PostgreSQL (`central_db`).
"""

from __future__ import annotations

from pathlib import Path

from central_fixtures import CentralDb
from sqlalchemy import func, select

from central.store.tables import Event, Station
from tests.centre_mqtt import centre_config, prepare, running_centre, station, until
from tests.mqtt_broker import Broker, broker

__all__ = ["broker"]


def test_a_stations_events_are_stored_once_and_acknowledged_after_the_commit(
    central_db: CentralDb, broker: Broker, tmp_path: Path
) -> None:
    config = centre_config(central_db.url, tmp_path / "centre", broker.port)
    prepared = prepare(config, central_db.sessions, ["st-a"])
    key = prepared.key_file(tmp_path / "keys")
    with running_centre(config) as centre:
        st = station(tmp_path, broker.port, "st-a", key)
        try:
            ids = [st.record("entry")["id"] for _ in range(20)]
            assert until(lambda: st.outbox_depth() == 0, 20), "the centre's acks never emptied the outbox"
            with central_db.sessions() as db:
                stored = set(db.scalars(select(Event.id).where(Event.station_id == "st-a")))
                assert set(ids) <= stored
                assert db.scalar(select(func.count()).select_from(Event)) == len(stored)
                row = db.get(Station, "st-a")
                assert row is not None
            assert until(lambda: _state(central_db, "st-a") == "online", 10)
            assert st.service.status()["delivery"] == "centre_ack"
        finally:
            st.stop()
        assert until(lambda: _state(central_db, "st-a") == "offline", 10)
        assert centre.mqtt is not None


def _state(db: CentralDb, station_id: str) -> str | None:
    with db.sessions() as session:
        row = session.get(Station, station_id)
        return row.last_state if row is not None else None
