"""One roster for the whole fleet, end to end: real stations (the production sync code on real
station stores), the real centre, a real mosquitto.

"Enrol once, open everywhere": a face enrolled at one station with cross-station consent reaches
every station the member may enter; without that consent it stays on its station. Withdrawing
consent and erasing a member reach every station, and the erasure records which confirmed.
`yizhan sync pull` on a station exits 0 against the running centre, with the shipped broker
configuration (TLS and per-station logins for stations, the centre on its own listener).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from central_fixtures import CentralDb

from central import roster
from central.store import members as member_store
from central.store.tables import Erasure, FaceTemplate
from tests.centre_mqtt import (
    centre_config,
    enrol,
    prepare,
    running_centre,
    station,
    station_templates,
    until,
)
from tests.mqtt_broker import Broker, broker, mosquitto_passwd, shipped_broker

__all__ = ["broker"]


def vectors(seed: int, n: int = 2) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 0.1, 128).tolist() for _ in range(n)]


def test_enrol_once_open_everywhere_and_erasure_reaches_every_station(
    central_db: CentralDb, broker: Broker, tmp_path: Path
) -> None:
    config = centre_config(central_db.url, tmp_path / "centre", broker.port)
    stations = {"st-a": {}, "st-b": {}, "st-c": {"allowed_groups": ["riders"]}}
    key = prepare(config, central_db.sessions, stations).key_file(tmp_path / "keys")
    with running_centre(config) as centre:
        a, b, c = (station(tmp_path, broker.port, sid, key) for sid in stations)
        try:
            for st in (a, b, c):  # each asked for its roster on connect and got a snapshot
                assert until(lambda st=st: st.service.roster.applied_version() >= 1, 20)
            fleet = enrol(a, "m-fleet", vectors(1), cross=True, groups=["couriers"])
            home = enrol(a, "m-home", vectors(2), cross=False, groups=["couriers"])
            assert until(lambda: station_templates(b, "m-fleet") == set(fleet), 20), (
                "the face did not reach st-b"
            )
            assert until(lambda: b.double.station.get_member("m-home") is not None, 20)
            assert station_templates(b, "m-home") == set()  # no cross-station consent: its face stayed home
            assert station_templates(a, "m-home") == set(home)
            assert c.double.station.get_member("m-fleet") is None  # st-c admits riders only
            with central_db.sessions() as db:
                stored = {t.template_id: t for t in db.query(FaceTemplate)}
            assert set(stored) == set(fleet) and {t.scope for t in stored.values()} == {"fleet"}

            # Withdrawing cross-station consent: st-b loses the face, st-a (where it was enrolled) keeps it.
            with central_db.sessions.begin() as db:
                roster.withdraw_consent(db, "m-fleet", "staff:ops", cross_station=True)
            centre.mqtt.roster.wake()  # type: ignore[union-attr]
            assert until(lambda: station_templates(b, "m-fleet") == set(), 20)
            assert station_templates(a, "m-fleet") == set(fleet)

            # Erasure: gone from both stations (st-a's own templates too), confirmed by both.
            with central_db.sessions.begin() as db:
                erasure_id = roster.erase_member(db, "m-fleet", "staff:ops", reason="member_request").id
            centre.mqtt.roster.wake()  # type: ignore[union-attr]
            for st in (a, b):
                assert until(lambda st=st: st.double.station.get_member("m-fleet") is None, 20)
            assert station_templates(a, "m-fleet") == set()

            def confirmed() -> bool:
                with central_db.sessions() as db:
                    row = db.get(Erasure, erasure_id)
                    return row is not None and row.completed_at is not None

            assert until(confirmed, 30), "the stations' confirmations never completed the erasure"
            with central_db.sessions() as db:
                assert member_store.get_member(db, member_id="m-fleet") is None
        finally:
            for st in (a, b, c):
                st.stop()


def test_yizhan_sync_pull_against_the_running_centre_on_the_shipped_broker(
    central_db: CentralDb, tmp_path: Path
) -> None:
    broker_, certs, station_port, centre_port = shipped_broker(
        tmp_path / "broker", stations={"st-a": "secret-a"}, client_cn="st-a"
    )
    try:
        password = tmp_path / "centre.password"
        password.write_text("centre-secret\n")
        password.chmod(0o600)
        config = centre_config(
            central_db.url, tmp_path / "centre", centre_port, username="centre", password_file=str(password)
        )
        prepared = prepare(config, central_db.sessions, ["st-a"])
        with central_db.sessions.begin() as db:
            for i in range(3):
                member_store.add_member(db, member_id=f"m-{i}", name=f"member {i}")
                roster.member_changed(db, f"m-{i}")
        station_dir = tmp_path / "station"
        station_dir.mkdir()
        key_file = prepared.key_file(station_dir)
        secret = station_dir / "mqtt.password"
        secret.write_text("secret-a\n")
        secret.chmod(0o600)
        toml = station_dir / "yizhan.toml"
        toml.write_text(
            f'[storage]\ndata_dir = "{station_dir / "data"}"\n[station]\nstation_id = "st-a"\n'
            f"[api]\nenabled = false\n"
            f'[mqtt]\nenabled = true\nhost = "localhost"\nport = {station_port}\ntls = true\n'
            f'ca_file = "{certs.ca}"\npassword_file = "{secret}"\ncentre_key_file = "{key_file}"\n',
            encoding="utf-8",
        )
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        pull = [sys.executable, "-m", "edge.cli", "--config", str(toml), "sync", "pull", "--timeout", "60"]
        with running_centre(config):
            done = subprocess.run(pull, capture_output=True, text=True, timeout=120, env=env, check=False)
            assert done.returncode == 0, done.stderr[-3000:]
            assert done.stdout.strip() == "roster current at version 1 (3 members)", done.stdout
            with central_db.sessions.begin() as db:
                member_store.add_member(db, member_id="m-late", name="late")
                roster.member_changed(db, "m-late")  # version 2 for st-a
            again = subprocess.run(pull, capture_output=True, text=True, timeout=120, env=env, check=False)
            assert again.returncode == 0, again.stderr[-3000:]
            assert again.stdout.strip() == "roster current at version 2 (4 members)"
        # The centre is gone: pull says so and exits 1.
        late = subprocess.run(
            [*pull[:-1], "5"], capture_output=True, text=True, timeout=60, env=env, check=False
        )
        assert late.returncode == 1 and "the centre did not answer" in late.stderr
    finally:
        broker_.stop()
    _ = (dt, mosquitto_passwd)
