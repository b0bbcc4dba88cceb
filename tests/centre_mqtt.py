"""The real centre's MQTT side for tests: configuration, keys, stations, and running it in-process.

`centre_config` points a centre at a test database (`central_db`) and a test mosquitto;
`prepare` creates its data key and signing keys (what `yizhan-central init` does) and registers
stations; `running_centre` starts the composition root's workers (ingest, roster fan-out,
housekeeping) without the web server. Stations are the production `SyncService` behind the
`StationPort` double (`station`), or raw paho publishers speaking the contract (`Publisher`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy.orm import Session, sessionmaker

from central.app import CentralApp
from central.config import CentralConfig, parse_config
from central.data_key import DataKey
from central.store import signing_keys
from central.store import stations as station_store
from contract.signing import CentreSigner
from tests.mqtt_broker import station_config, wait
from tests.station_double import StationDouble


def centre_config(db_url: str, data_dir: Path, port: int, **mqtt: Any) -> CentralConfig:
    settings: dict[str, Any] = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": port,
        "username": None,
        "client_id": f"t{uuid.uuid4().hex[:8]}",
        "ack_interval_s": 0.2,
        "batch_ms": 20,
        "reconnect_max_s": 2,
        "snapshot_park_s": 2.0,
        **mqtt,
    }
    return parse_config(
        {
            "storage": {"data_dir": str(data_dir)},
            "database": {"url": db_url},
            "mqtt": settings,
            "web": {"login_backoff_s": 0.0},
            "alarms": {"offline_after_s": 30},
        },
        "test",
    )


@dataclass
class Prepared:
    data_key: DataKey
    signer: CentreSigner  # the centre's messages key (stations pin its public half)

    def key_file(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "centre.pub"
        path.write_text(f"{self.signer.public_key.b64} centre\n")
        return path


def prepare(
    config: CentralConfig,
    sessions: sessionmaker[Session],
    stations: dict[str, dict[str, Any]] | list[str] | tuple[str, ...] = (),
) -> Prepared:
    """What `init` does (data key, QR and messages keys), plus the stations registered."""
    data_key = DataKey.load(config, env={})
    now = dt.datetime.now(dt.UTC)
    with sessions.begin() as db:
        for purpose in ("qr", "messages"):
            if signing_keys.active_key(db, purpose=purpose) is None:
                signing_keys.rotate_key(db, data_key, purpose=purpose, now=now, overlap=dt.timedelta(days=1))
        key = signing_keys.active_key(db, purpose="messages")
        assert key is not None
        signer = signing_keys.message_signer(key, data_key)
        items = stations.items() if isinstance(stations, dict) else ((s, {}) for s in stations)
        for station_id, extra in items:
            if station_store.get_station(db, station_id=station_id) is None:
                station_store.add_station(
                    db,
                    station_id=station_id,
                    name=station_id,
                    district_id=extra.pop("district", "d1"),
                    **extra,
                )
    return Prepared(data_key, signer)


@contextlib.contextmanager
def running_centre(config: CentralConfig) -> Iterator[CentralApp]:
    app = CentralApp(config, env={})
    app.start()
    try:
        assert app.mqtt is not None
        for worker in app.mqtt.ingest:
            assert worker.wait_subscribed(10), "the ingest worker did not subscribe"
        assert app.mqtt.down.wait_connected(10)
        yield app
    finally:
        app.close()


@dataclass
class Station:
    """A station: the production sync code on a real station store, behind the StationPort double."""

    double: StationDouble
    service: Any

    @property
    def station_id(self) -> str:
        return self.double.station_id

    def record(self, kind: str = "entry", **fields: Any) -> dict[str, Any]:
        return self.double.record_event(kind=kind, method=fields.pop("method", "face"), **fields)

    def outbox_depth(self) -> int:
        return int(self.service.publisher.depth())

    def stop(self) -> None:
        self.service.stop(timeout=3.0)
        self.double.close()


def station(folder: Path, port: int, station_id: str, key_file: Path | None, **mqtt: Any) -> Station:
    from sync.service import SyncService

    settings: dict[str, Any] = {"delivery": "centre_ack", "ack_timeout_s": 3.0, "heartbeat_s": 5, **mqtt}
    if key_file is not None:
        settings["centre_key_file"] = str(key_file)
    config = station_config(folder / station_id, port, station_id=station_id, **settings)
    double = StationDouble(config)
    service = SyncService(double)
    service.start()
    assert service.error is None, service.error
    assert wait(lambda: service.status()["connected"], 10), "the station did not connect"
    return Station(double, service)


class Publisher:
    """A bare MQTT v5 client speaking the contract by hand (hostile input, fleet simulation)."""

    def __init__(self, port: int, client_id: str | None = None) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"p-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((message.topic, bytes(message.payload)))

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        time.sleep(0.2)

    def messages(self, suffix: str) -> list[dict[str, Any]]:
        with self._lock:
            found = [p for t, p in self.received if t.endswith(suffix)]
        return [json.loads(p) for p in found]

    def publish(
        self, topic: str, payload: bytes | str | dict[str, Any], properties: Properties | None = None
    ) -> None:
        data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        self.client.publish(topic, data, qos=1, properties=properties).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def event_message(station_id: str, seq: int, **fields: Any) -> dict[str, Any]:
    now = time.time()
    return {
        "v": 1,
        "type": "event",
        "station_id": station_id,
        "seq": seq,
        "id": str(uuid.uuid4()),
        "ts": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="milliseconds"),
        "ts_wall": now,
        "ts_mono": 1.0,
        "kind": "entry",
        "method": "face",
        "member_id": None,
        "reason": None,
        "details": {},
        "snapshot": None,
        "latency_ms": None,
        **fields,
    }


def snapshot_properties(station_id: str, seq: int, event_id: str, data: bytes, **override: Any) -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = "image/jpeg"
    meta = {
        "v": "1",
        "station_id": station_id,
        "seq": str(seq),
        "event_id": event_id,
        "bytes": str(len(data)),
        "sha256": hashlib.sha256(data).hexdigest(),
        **{k: str(v) for k, v in override.items()},
    }
    props.UserProperty = list(meta.items())
    return props


def until(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll until truthy (returns the last value: tests assert it)."""
    return wait(predicate, timeout, 0.05)


def metric(app: CentralApp, name: str, **labels: str) -> float:
    value = app.metrics.registry.get_sample_value(name, labels)
    return float(value or 0.0)


def enrol(
    st: Station, member_id: str, vectors: list[list[float]], *, cross: bool, groups: list[str] | None = None
) -> list[str]:
    """An on-site enrolment at a station, stored exactly as `yizhan enroll` stores it (member,
    encrypted templates, the outbox row in the same transaction), without a camera or dlib."""
    from models import members as member_store
    from sync.enrolment import enqueue_enrolment

    station_store_ = st.double.station
    with station_store_.write_sessions() as session, session.begin():
        member_store.add_member(
            session,
            member_id=member_id,
            name=f"worker {member_id}",
            groups=groups or [],
            kind="courier",
            consent_face=True,
            consent_cross_station=cross,
        )
        ids = member_store.add_templates(
            session,
            station_store_.cipher,
            member_id=member_id,
            encodings=vectors,
            qualities=[{} for _ in vectors],
            sources=[None for _ in vectors],
        )
        enqueue_enrolment(session, member_id=member_id, template_ids=ids)
        st.double.bump_roster(session)
    st.service.publisher.wake()
    return ids


def station_templates(st: Station, member_id: str) -> set[str]:
    from sqlalchemy import select as select_

    from models.tables import FaceTemplate as StationTemplate

    with st.double.sessions() as session:
        return set(
            session.scalars(
                select_(StationTemplate.template_id).where(StationTemplate.member_id == member_id)
            )
        )


def write_config(path: Path, config: CentralConfig) -> Path:
    """`config` as a TOML file for a `yizhan-central` process (only the keys the tests change)."""
    mqtt = config.mqtt
    lines = [
        "[storage]",
        f'data_dir = "{config.storage.data_dir}"',
        "[database]",
        f'url = "{config.database.url}"',
        "[mqtt]",
        f'host = "{mqtt.host}"',
        f"port = {mqtt.port}",
        f'client_id = "{mqtt.client_id}"',
        f"workers = {mqtt.workers}",
        f"ack_interval_s = {mqtt.ack_interval_s}",
        f"batch_ms = {mqtt.batch_ms}",
        f"session_expiry_s = {mqtt.session_expiry_s}",
        f"reconnect_max_s = {mqtt.reconnect_max_s}",
        f"snapshot_park_s = {mqtt.snapshot_park_s}",
        "[logging]",
        'format = "json"',
    ]
    if mqtt.username is not None:
        lines.insert(lines.index("[mqtt]") + 1, f'username = "{mqtt.username}"')
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class IngestProcess:
    """`yizhan-central ingest` as its own process, to be killed with SIGKILL and started again."""

    def __init__(self, config_file: Path, log_file: Path) -> None:
        self.config_file = config_file
        self.log_file = log_file
        self.process: Any = None

    def start(self) -> IngestProcess:
        import subprocess
        import sys

        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "central.cli", "--config", str(self.config_file), "ingest"],
            stdout=log,
            stderr=log,
        )
        log.close()
        assert until(lambda: "ingest worker connected" in self.log_text(), 30), self.log_text()[-3000:]
        return self

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no goodbye, no flush, no commit of what it held."""
        import os
        import signal

        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        import signal

        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except Exception:
                self.kill()
