"""Ingest's batch path without a broker: what the hot path was made cheaper around must still hold.

A batch of station messages with one hostile message among good ones stores the good ones,
refuses and counts the bad one, PUBACKs every message only once the batch's rows are committed
(checked from another session at the moment of each PUBACK), and acknowledges to the station the
`seq`s it stored, never the refused one; a redelivered batch stores nothing twice. The acks'
hand-written canonical form is the RFC 8785 one the stations verify; the inbox hands over whole
batches; the simulated fleet's template events are what the centre's strict reader accepts.
Every database test runs on SQLite and PostgreSQL (`central_db`).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from central_fixtures import CentralDb
from sqlalchemy import func, select

from bench.fleet_stations import EVENT_TEMPLATE, EventIds, IsoClock
from central.ingest.acks import ack_messages
from central.ingest.batch import Inbound
from central.ingest.messages import EventIn, parse_json_message
from central.ingest.parts import MqttSide
from central.ingest.worker import _Inbox
from central.live import LiveBus
from central.metrics import CentreMetrics
from central.store.tables import Event
from contract.messages import parse_ack
from contract.signing import ack_canonical, verify_message
from tests.centre_mqtt import centre_config, event_message, prepare

SID = "st-batch"
TOPIC = f"yz/v1/station/{SID}/up/event"


def inbound(payload: bytes, mid: int, topic: str = TOPIC) -> Inbound:
    return Inbound(
        topic=topic,
        payload=payload,
        size=len(payload),
        mid=mid,
        qos=1,
        generation=0,
        received_wall=time.time(),
        received_mono=time.monotonic(),
    )


class RecordingClient:
    """Stands in for paho's client: records each PUBACK with the event ids committed at that moment."""

    def __init__(self, db: CentralDb) -> None:
        self.db = db
        self.acked: list[tuple[int, set[str]]] = []

    def ack(self, mid: int, qos: int) -> None:
        with self.db.sessions() as session:  # another connection: sees only what is committed
            self.acked.append((mid, set(session.scalars(select(Event.id)))))


def test_a_batch_with_a_hostile_message_stores_the_good_ones_and_pubacks_after_the_commit(
    central_db: CentralDb, tmp_path: Path
) -> None:
    config = centre_config(central_db.url, tmp_path / "centre", 1)  # no broker: nothing connects
    prepared = prepare(config, central_db.sessions, [SID])
    metrics = CentreMetrics()
    side = MqttSide.build(config, central_db.sessions, prepared.data_key, LiveBus(), metrics)
    worker = side.ingest[0]
    client = RecordingClient(central_db)
    worker._client = client  # type: ignore[assignment]

    events = [event_message(SID, seq) for seq in range(1, 7)]
    batch = [inbound(json.dumps(e).encode(), mid=e["seq"]) for e in events]
    hostile = [
        inbound(b'{"v": 1, "v": 1}', mid=101),  # duplicate key
        inbound(json.dumps({**event_message(SID, 50), "station_id": "st-other"}).encode(), mid=102),
        inbound(json.dumps({**event_message(SID, 51), "seq": "51"}).encode(), mid=103),
    ]
    batch[2:2] = hostile[:1]
    batch[5:5] = hostile[1:]
    worker._process(batch)

    good = {e["id"] for e in events}
    with central_db.sessions() as session:
        assert set(session.scalars(select(Event.id))) == good
    assert sorted(mid for mid, _ in client.acked) == sorted(item.mid for item in batch)
    for mid, committed in client.acked:
        if mid <= 6:  # a stored event is PUBACKed only once its row is committed
            assert next(e["id"] for e in events if e["seq"] == mid) in committed
    refused = {
        reason: metrics.registry.get_sample_value(
            "yizhan_centre_ingest_refused_total", {"kind": "event", "reason": reason}
        )
        for reason in ("invalid_json", "wrong_station", "invalid_payload")
    }
    assert refused == {"invalid_json": 1.0, "wrong_station": 1.0, "invalid_payload": 1.0}
    assert worker._acks.take() == {SID: [1, 2, 3, 4, 5, 6]}  # the refused seqs are never acknowledged

    # The broker sends the batch again (a PUBACK lost with a connection): stored once, acked again.
    client.acked.clear()
    worker._process([inbound(json.dumps(e).encode(), mid=200 + e["seq"]) for e in events])
    with central_db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == len(events)
    assert len(client.acked) == len(events)
    assert worker._acks.take() == {SID: [1, 2, 3, 4, 5, 6]}
    duplicates = metrics.registry.get_sample_value(
        "yizhan_centre_ingest_messages_total", {"kind": "event", "outcome": "duplicate"}
    )
    assert duplicates == len(events)


def test_a_signed_ack_is_the_canonical_form_the_stations_verify(
    central_db: CentralDb, tmp_path: Path
) -> None:
    config = centre_config(central_db.url, tmp_path / "centre", 1)
    prepared = prepare(config, central_db.sessions, [SID])
    side = MqttSide.build(config, central_db.sessions, prepared.data_key, LiveBus(), CentreMetrics())
    rng = random.Random(7)
    for _ in range(200):
        seqs = rng.sample(range(1, 5000), rng.randint(1, 300)) + [2**53 - 1]
        station = rng.choice([SID, "st-1", "A.b_c-9", "x" * 64])
        for message in ack_messages(station, seqs):
            body = {k: v for k, v in message.items()}
            canonical = ack_canonical(station, message["id"], message["stored"])
            assert canonical == rfc8785.dumps(body)
            published = side.signer.sign_ack(station, message["id"], message["stored"])
            data = json.loads(published)
            assert verify_message(data, [prepared.signer.public_key], station) == prepared.signer.kid
            ack = parse_ack(
                published, 1 << 20, lambda d, s=station: verify_message(d, [prepared.signer.public_key], s)
            )
            assert [list(r) for r in ack.stored] == message["stored"]
    # A station id the short path does not write verbatim still gets a valid, signed ack.
    odd = json.loads(side.signer.sign_ack('st "quoted"', "a-1", [[1, 3]]))
    assert odd["stored"] == [[1, 3]]
    assert verify_message(odd, [prepared.signer.public_key], 'st "quoted"') == prepared.signer.kid


def test_ack_canonical_refuses_what_it_cannot_write_verbatim() -> None:
    for station, ack_id, stored in (
        ('st"1', "a-1", [[1, 1]]),
        ("st-1", "a-\u00e9", [[1, 1]]),
        ("st-1", "a-1", [[1.0, 2]]),
        ("st-1", "a-1", [[True, 2]]),
        ("st-1", "a-1", [[1, 2**53]]),
    ):
        try:
            ack_canonical(station, ack_id, stored)  # type: ignore[arg-type]
        except ValueError:
            continue
        raise AssertionError(f"accepted {station!r} {ack_id!r} {stored!r}")


def test_the_inbox_hands_over_whole_batches_and_pushes_back_when_full() -> None:
    inbox = _Inbox(max_bytes=10 * 100)
    items = [inbound(b"x" * 100, mid=n) for n in range(25)]
    taken: list[list[Inbound]] = []

    def consume() -> None:
        while sum(len(b) for b in taken) < len(items):
            batch = inbox.take(4, 5.0, 5.0)
            if batch:
                taken.append(batch)

    consumer = threading.Thread(target=consume, daemon=True)
    producer = threading.Thread(target=lambda: [inbox.put(i) for i in items], daemon=True)
    producer.start()
    deadline = time.monotonic() + 30
    while len(inbox) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(inbox) == 10 and producer.is_alive()  # full: paho's thread waits (back-pressure)
    consumer.start()
    producer.join(30)
    consumer.join(30)
    assert not producer.is_alive() and not consumer.is_alive()  # neither blocked for good
    assert [i.mid for b in taken for i in b] == list(range(25))  # in order, each once
    assert all(len(b) <= 4 for b in taken) and max(len(b) for b in taken) == 4
    # A lone message is handed over after the batch wait, not held until the batch fills.
    inbox.put(inbound(b"y", mid=99))
    assert [i.mid for i in inbox.take(1000, 0.05, 1.0)] == [99]


def test_the_simulated_stations_events_are_what_the_centre_accepts() -> None:
    ids, iso = EventIds(), IsoClock()
    seen: set[str] = set()
    for seq in range(1, 2000):
        sent = time.time()
        payload = (
            EVENT_TEMPLATE % (SID, seq, ids(), iso(sent), sent, time.monotonic(), seq % 97, sent)
        ).encode()
        message: Any = parse_json_message("event", SID, payload, 1 << 20)
        assert isinstance(message, EventIn) and message.seq == seq
        assert abs(message.ts.timestamp() - sent) < 0.001
        assert message.details["bench_sent"] == sent
        seen.add(message.id)
    assert len(seen) == 1999


_PROPERTY_SAMPLES = r"""
import json, sys
from paho.mqtt import _packet
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
if sys.argv[1] == "fast":
    from central.ingest import paho_speed
    assert paho_speed.install()
out = []
settings = [
    (PacketTypes.PUBLISH, {"UserProperty": [("station_id", "st-1"), ("sha256", "ab" * 32)],
                           "PayloadFormatIndicator": 1, "MessageExpiryInterval": 60,
                           "ContentType": "image/jpeg", "ResponseTopic": "r/t",
                           "CorrelationData": b"\x00\x01"}),
    (PacketTypes.CONNECT, {"SessionExpiryInterval": 600, "ReceiveMaximum": 4000,
                           "MaximumPacketSize": 1 << 20}),
    (PacketTypes.PUBLISH, {}),
]
for packet_type, values in settings:
    props = Properties(packet_type)
    for name, value in values.items():
        setattr(props, name, value)
    packed = props.pack()
    again = Properties(packet_type)
    again.unpack(packed)
    again.clear()
    again.unpack(packed)
    out.append([packed.hex(), str(again), again.isEmpty(), sorted(again.json())])
    try:
        setattr(Properties(PacketTypes.PUBACK), "ReceiveMaximum", 5)
    except Exception as exc:
        out.append(type(exc).__name__)
publish = _packet.decode_publish(0x32, bytes.fromhex("0003612f62000700") + b"payload", 5)
puback = _packet.decode_puback(0x40, b"\x00\x07", 5)
out.append([publish.topic.hex(), publish.mid, str(publish.properties), publish.payload.hex(),
            puback.mid, str(puback.reason), str(puback.properties)])
print(json.dumps(out))
"""


def test_the_faster_paho_properties_pack_and_unpack_as_paho_does() -> None:
    import subprocess
    import sys

    runs = [
        subprocess.run(
            [sys.executable, "-c", _PROPERTY_SAMPLES, mode],
            capture_output=True, text=True, check=True, timeout=120,
            cwd=Path(__file__).resolve().parent.parent,
        ).stdout
        for mode in ("paho", "fast")
    ]  # fmt: skip
    assert json.loads(runs[0]) == json.loads(runs[1])
    assert "ProtocolError" in runs[0] or "MQTTException" in runs[0]  # the checks still apply


def test_a_committed_batch_reaches_the_live_bus_in_order_with_one_call() -> None:
    bus = LiveBus()
    events = bus.subscribe({"event"}, maxlen=3)
    everything = bus.subscribe(maxlen=100)
    bus.publish_many(
        [("event", {"n": n}, "st-1", "d1") for n in range(5)] + [("status", {"n": 99}, "st-1", "d1")]
    )
    assert [m.data["n"] for m in everything.drain()] == [0, 1, 2, 3, 4, 99]
    assert [m.data["n"] for m in events.drain()] == [2, 3, 4] and events.dropped == 2
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(events.get(timeout=30).data["n"]))  # type: ignore[union-attr]
    waiter.start()
    bus.publish_many([("event", {"n": 7}, None, None)])
    waiter.join(30)
    assert got == [7]
    with pytest.raises(ValueError, match="unknown live topic"):
        bus.publish_many([("no-such-topic", {}, None, None)])
    assert bus.published == 7


def test_a_batch_locks_all_its_template_ids_at_once_in_order_before_any_message(
    central_db: CentralDb, tmp_path: Path, monkeypatch: Any
) -> None:
    """Two workers holding [removal of B, enrolment with A] and [enrolment with A, removal of B]
    must not each take one template lock and wait for the other: the batch takes every id it
    names, sorted, before the first message; the messages' own locks come after (held already)."""
    from central.store import removals as removal_store

    config = centre_config(central_db.url, tmp_path / "centre", 1)
    prepared = prepare(config, central_db.sessions, [SID])
    side = MqttSide.build(config, central_db.sessions, prepared.data_key, LiveBus(), CentreMetrics())
    worker = side.ingest[0]
    worker._client = RecordingClient(central_db)  # type: ignore[assignment]
    calls: list[list[str]] = []
    real = removal_store.lock_templates

    def spy(session: Any, template_ids: Any) -> None:
        calls.append(sorted(set(template_ids)))
        real(session, template_ids)

    monkeypatch.setattr(removal_store, "lock_templates", spy)
    now = dt.datetime.now(dt.UTC).isoformat()
    a, b = "a" * 32, "b" * 32
    removal = {
        "v": 1,
        "type": "template_removal",
        "id": "rm-1",
        "station_id": SID,
        "seq": 1,
        "ts": now,
        "member_id": "m-lock",
        "template_id": b,
        "removed_by": "installer:wang",
    }
    enrolment = {
        "v": 1, "type": "enrolment", "id": "en-1", "station_id": SID, "seq": 2, "ts": now,
        "member": {"member_id": "m-lock", "name": "lock", "consent_face": True,
                   "consent_cross_station": True, "consent_at": now},
        "templates": [{"template_id": a, "model": "dlib_resnet_v1", "vector": [0.01] * 128}],
    }  # fmt: skip
    base = f"yz/v1/station/{SID}/up/"
    worker._process(
        [
            inbound(json.dumps(removal).encode(), mid=1, topic=base + "template_removal"),
            inbound(json.dumps(enrolment).encode(), mid=2, topic=base + "enrolment"),
        ]
    )
    assert calls, "no template lock taken"
    assert calls[0] == [a, b], calls  # every id of the batch, first, in order
    assert all(set(c) <= {a, b} for c in calls[1:])
    assert worker._acks.take() == {SID: [1, 2]}  # both handled and acknowledged after the commit
