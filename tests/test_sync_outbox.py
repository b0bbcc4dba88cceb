"""Events, snapshots and enrolments up to a real mosquitto: lossless, in order, PUBACK-confirmed.

Every test runs Debian's mosquitto on a free loopback port (tests/mqtt_broker.py) and a paho
"centre" subscribed the way the real centre must be (persistent session, QoS 1). The station
side is the production code: `sync.flush.flush_command` (what `yizhan sync flush` runs) or the
`OutboxPublisher` + `MqttLink` pair the daemon uses.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from contract.topics import StationTopics
from edge.recorder import EventRecorder
from edge.snapshots import SnapshotStore
from edge.station import Station
from models import events as event_store
from models import members as member_store
from models.tables import OutboxItem
from sync.client import MqttLink
from sync.enrolment import enqueue_enrolment
from sync.outbox_publisher import OutboxPublisher
from tests.mqtt_broker import (
    Broker,
    Centre,
    broker,
    bulk_events,
    flush,
    free_port,
    measured,
    shipped_broker,
    start_broker,
    station_config,
)

__all__ = ["broker"]  # the fixture, imported for pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def depth(station: Station) -> int:
    with station.sessions() as session:
        return event_store.outbox_depth(session)


def test_events_round_trip_with_the_contract_fields(
    broker: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = station_config(tmp_path / "data", broker.port)
    station = Station(config, env={})
    recorder = EventRecorder(station.sessions)
    recorded = [
        recorder.record(kind="entry", method="qr", member_id="m-zhang", details={"qr_reason": "ok"}),
        recorder.record(kind="refused", method="face", reason="unknown_face", details={"distance": 0.71}),
        recorder.record(kind="exit", method="exit_button"),
    ]
    station.close()
    with Centre(broker.port) as centre:
        assert flush(config, 10) == 0
        assert "the outbox is empty" in capsys.readouterr().err
        centre.wait_for(lambda: len(centre.json_messages("event")) >= 3, 5)
        events = centre.json_messages("event")
    assert [e["id"] for e in events] == [r["id"] for r in recorded]
    for sent, got in zip(recorded, events, strict=True):
        assert {"id", "station_id", "ts", "kind", "method", "member_id"} <= set(got)
        assert got["station_id"] == "st-1" and got["v"] == 1 and got["type"] == "event"
        for key in ("id", "ts", "kind", "method", "member_id", "reason", "details"):
            assert got[key] == sent[key]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    topics = {m.topic for m in centre.messages("/up/event")}
    assert topics == {"yz/v1/station/st-1/up/event"}
    station = Station(config, env={})
    assert depth(station) == 0
    station.close()
    assert flush(config, 1) == 0  # nothing left: exits at once


def test_flush_times_out_with_the_count_left(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = station_config(tmp_path / "data", free_port(), connect_timeout_s=0.5)
    station = Station(config, env={})
    bulk_events(station.sessions, 7)
    station.close()
    started = time.monotonic()
    assert flush(config, 1.0) == 1
    assert time.monotonic() - started < 30  # gives up (bound far above its 1 s timeout)
    err = capsys.readouterr().err
    assert "7 message(s) left in the outbox" in err


def test_drain_10000_queued_events_on_loopback(broker: Broker, tmp_path: Path) -> None:
    """10,000 queued events drained with the default settings: all of them, once each, in order.
    How fast (the target is 10 s) is measured by `python -m bench.sync`, not asserted here."""
    config = station_config(tmp_path / "data", broker.port)
    station = Station(config, env={})
    ids = bulk_events(station.sessions, 10_000)
    station.close()
    with Centre(broker.port) as centre:
        started = time.monotonic()
        assert flush(config, 300) == 0
        elapsed = time.monotonic() - started
        centre.wait_for(lambda: len(centre.messages("/up/event")) >= 10_000, 60)
        received = [e["id"] for e in centre.json_messages("event")]
    measured(f"drain of 10,000 queued events on loopback: {elapsed:.2f} s ({10_000 / elapsed:.0f}/s)")
    assert received == ids  # all of them, once each, in the order they were written


def test_no_subscriber_means_not_delivered(broker: Broker, tmp_path: Path) -> None:
    """PUBACK 0x10 (no matching subscribers: the broker dropped it) keeps the rows; they go out,
    in order, once the centre is there."""
    config = station_config(tmp_path / "data", broker.port)
    station = Station(config, env={})
    ids = bulk_events(station.sessions, 20)
    holder: list[OutboxPublisher] = []
    link = MqttLink(
        config.mqtt,
        client_id="yz-st-1",
        username=None,
        clean_start=True,
        on_ack=lambda mid, rc: holder[0].on_ack(mid, rc),
        on_connected=lambda: holder[0].on_connected(),
    )
    publisher = OutboxPublisher(
        sessions=station.sessions, link=link, topics=StationTopics("st-1"), config=config.mqtt
    )
    holder.append(publisher)
    link.start()
    publisher.start()
    try:
        deadline = time.monotonic() + 60
        while publisher.stats.no_subscribers == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert publisher.stats.no_subscribers > 0
        assert depth(station) == 20  # nothing marked sent
        with Centre(broker.port) as centre:
            centre.wait_for(lambda: len(centre.messages("/up/event")) >= 20, 10)
            deadline = time.monotonic() + 60
            while depth(station) and time.monotonic() < deadline:
                time.sleep(0.05)
            received = [e["id"] for e in centre.json_messages("event")]
        assert received == ids and depth(station) == 0
        with station.sessions() as session:
            attempts = [o.attempts for o in session.scalars(select(OutboxItem))]
        assert max(attempts) >= 1  # the refused round was counted
    finally:
        publisher.stop()
        link.stop()
        station.close()


def test_broker_killed_mid_stream_every_event_arrives(tmp_path: Path) -> None:
    """SIGKILL the broker while a backlog drains, restart it: every event arrives (deduplicated by
    id, as the centre must), and the outbox ends empty. A PUBACK only means the broker had the
    message; what it had not yet passed on dies with it, and comes back because the centre's
    acknowledgements (down/ack) lag behind and the station re-publishes what they do not cover."""
    broker = start_broker(tmp_path / "broker")
    config = station_config(tmp_path / "data", broker.port, max_messages_per_s=1500)
    station = Station(config, env={})
    ids = bulk_events(station.sessions, 6000)
    station.close()
    results: list[int] = []
    centre = Centre(broker.port, ack_every=0.2).start()
    try:
        flusher = threading.Thread(target=lambda: results.append(flush(config, 60)))
        flusher.start()
        centre.wait_for(lambda: len(centre.messages("/up/event")) >= 1500, 20)
        broker.kill()
        got_before = len(centre.messages("/up/event"))
        time.sleep(1.0)
        broker.start()
        flusher.join(60)
        assert results == [0]
        centre.wait_for(lambda: {e["id"] for e in centre.json_messages("event")} >= set(ids), 10)
        received = [e["id"] for e in centre.json_messages("event")]
    finally:
        centre.stop()
        broker.stop()
    counts = Counter(received)
    duplicates = sum(c - 1 for c in counts.values())
    measured(f"broker killed after {got_before} of 6000 events: all arrived, {duplicates} duplicate(s)")
    assert set(counts) == set(ids)
    assert duplicates <= 1500  # re-sent: what the acknowledgements did not cover yet; never a loss


def test_snapshots_follow_their_events(broker: Broker, tmp_path: Path) -> None:
    config = station_config(tmp_path / "data", broker.port)
    station = Station(config, env={})
    store = SnapshotStore(config.storage.data_dir / "snapshots", config.snapshots)
    recorder = EventRecorder(station.sessions)
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[30:90, 40:120] = (40, 160, 220)
    now = time.time()
    with_file = "0f7d5f4e-9a43-4a1e-8d51-3c1f0d1e2a01"
    path = store.path_for(with_file, now)
    recorder.record(
        kind="entry", method="qr", member_id="m-1", snapshot=path, event_id=with_file, ts_wall=now
    )
    store.save(with_file, frame, None, now)
    missing = "0f7d5f4e-9a43-4a1e-8d51-3c1f0d1e2a02"
    recorder.record(
        kind="refused",
        method="face",
        snapshot=store.path_for(missing, now),
        event_id=missing,
        ts_wall=now,
    )
    station.close()
    quick = station_config(tmp_path / "data", broker.port, snapshot_wait_s=1.0)
    with Centre(broker.port) as centre:
        assert flush(quick, 15) == 0
        centre.wait_for(lambda: centre.messages(f"/up/snapshot/{with_file}"), 5)
        snapshots = centre.messages("/up/snapshot/")
    assert [m.topic for m in snapshots] == [f"yz/v1/station/st-1/up/snapshot/{with_file}"]
    jpeg = (config.storage.data_dir / "snapshots" / path).read_bytes()
    assert snapshots[0].payload == jpeg and jpeg[:2] == b"\xff\xd8"
    props = snapshots[0].properties
    assert props["content_type"] == "image/jpeg"
    assert props["user"]["event_id"] == with_file
    assert props["user"]["sha256"] == hashlib.sha256(jpeg).hexdigest()


def test_enrolment_templates_leave_only_with_cross_station_consent(broker: Broker, tmp_path: Path) -> None:
    config = station_config(tmp_path / "data", broker.port, enrolment_photos=True)
    station = Station(config, env={})
    rng = np.random.default_rng(3)
    vectors = rng.normal(0, 0.1, size=(2, 128)).astype(np.float32)
    photo = b"\xff\xd8\xff\xe0fake-jpeg-bytes\xff\xd9"
    with station.sessions() as session, session.begin():
        for member_id, cross, vector in (("m-yes", True, vectors[0]), ("m-no", False, vectors[1])):
            member_store.add_member(
                session, member_id=member_id, name=member_id, consent_face=True, consent_cross_station=cross
            )
            template_ids = member_store.add_templates(
                session,
                station.cipher,
                member_id=member_id,
                encodings=[vector],
                qualities=[{}],
                sources=["x"],
            )
            enqueue_enrolment(
                session,
                member_id=member_id,
                template_ids=template_ids,
                photos_jpeg=[photo],
                include_photos=True,
            )
    station.close()
    with Centre(broker.port) as centre:
        assert flush(config, 10) == 0
        centre.wait_for(lambda: len(centre.json_messages("enrolment")) >= 2, 5)
        enrolments = {e["member"]["member_id"]: e for e in centre.json_messages("enrolment")}
    yes, no = enrolments["m-yes"], enrolments["m-no"]
    assert yes["member"]["consent_cross_station"] is True and yes["member"]["consent_at"]
    assert len(yes["templates"]) == 1 and yes["templates_withheld"] == 0
    assert np.allclose(yes["templates"][0]["vector"], vectors[0], atol=1e-7)
    assert base64.b64decode(yes["photos_jpeg_b64"][0]) == photo
    assert no["templates"] == [] and no["templates_withheld"] == 1 and no["photos_jpeg_b64"] == []
    station = Station(config, env={})
    with station.sessions() as session:
        rows = list(session.scalars(select(OutboxItem)))
    station.close()
    assert all("photos_jpeg_b64" not in row.payload for row in rows)  # dropped once delivered


def test_offline_buffer_capacity(tmp_path: Path) -> None:
    """What a day offline costs: bytes of SQLite per event (event row + outbox row, a realistic
    face entry), and how many events fit in a 500 MB budget (target: at least 150,000)."""
    config = station_config(tmp_path / "data", free_port())
    station = Station(config, env={})
    db = config.storage.database_path
    with station.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    before = db.stat().st_size
    count = 20_000
    bulk_events(station.sessions, count)
    with station.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    grown = db.stat().st_size - before
    per_event = grown / count
    started = time.perf_counter()
    with station.sessions() as session:
        first = event_store.pending_outbox(session, 500)
    query_ms = (time.perf_counter() - started) * 1000
    station.close()
    fits = int(500 * 1024 * 1024 / per_event)
    measured(
        f"offline buffer: {per_event:.0f} bytes per event (event + outbox row); "
        f"{fits:,} events in 500 MB; 150,000 events = {150_000 * per_event / 1e6:.0f} MB; "
        f"first 500 pending of {count} read in {query_ms:.1f} ms"
    )
    assert len(first) == 500
    assert fits >= 150_000


def test_shipped_broker_config_tls_password_acl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/mosquitto/ as shipped (paths and ports swapped): TLS with a verified certificate, a
    password read from a 0600 file, and the ACL keeping a station inside its own topics. A refused
    publish (PUBACK 0x87) is never marked sent."""
    running, certs, tls_port, local_port = shipped_broker(
        tmp_path / "broker", stations={"st-tls": "station-secret"}, client_cn="st-tls"
    )
    secret = tmp_path / "mqtt.password"
    secret.write_text("station-secret\n")
    secret.chmod(0o600)
    tls: dict[str, Any] = {
        "tls": True,
        "ca_file": str(certs.ca),
        "password_file": str(secret),
        "host": "localhost",
    }
    try:
        with Centre(local_port, username="centre", password="centre-secret") as centre:
            # The station's own topics: delivered over TLS.
            good = station_config(tmp_path / "good", tls_port, station_id="st-tls", **tls)
            station = Station(good, env={})
            ids = bulk_events(station.sessions, 5)
            station.close()
            assert flush(good, 10) == 0
            centre.wait_for(lambda: len(centre.json_messages("event")) >= 5, 5)
            assert [e["id"] for e in centre.json_messages("event")] == ids
            # Mutual TLS as well (the broker accepts, the station presents a certificate).
            mutual = station_config(
                tmp_path / "mutual",
                tls_port,
                station_id="st-tls",
                cert_file=str(certs.client_cert),
                key_file=str(certs.client_key),
                **tls,
            )
            station = Station(mutual, env={})
            bulk_events(station.sessions, 2)
            station.close()
            assert flush(mutual, 10) == 0
            # The same credentials pretending to be another station: refused by the ACL, kept.
            forged = station_config(
                tmp_path / "forged", tls_port, station_id="st-other", username="st-tls", **tls
            )
            station = Station(forged, env={})
            bulk_events(station.sessions, 3)
            station.close()
            assert flush(forged, 3) == 1
            assert "3 message(s) left" in capsys.readouterr().err
            assert not centre.messages("/st-other/")
    finally:
        running.stop()
    # A password file others can read is refused before anything is sent.
    secret.chmod(0o644)
    assert flush(good, 2) == 2
    assert "chmod 600" in capsys.readouterr().err
