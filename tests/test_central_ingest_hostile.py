"""Every message from a station is untrusted (issue 12, "Bad input"): refused, counted, logged, never
crashing ingest, never stored under another station, never acknowledged.

A hand-made publisher speaks the contract on a real mosquitto (the test broker has no ACL, so it
may also write on a topic that is not its own, as a station whose broker login leaked could with a
misconfigured ACL). Each hostile message is checked for its refusal reason in the metrics, and at
the end the database holds exactly the good messages and the acks cover exactly their seqs.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from central_fixtures import CentralDb
from sqlalchemy import func, select

from central.app import CentralApp
from central.store.tables import Enrolment, Event, FaceTemplate, Member, Snapshot, StationStatus
from tests.centre_mqtt import (
    Publisher,
    centre_config,
    event_message,
    metric,
    prepare,
    running_centre,
    snapshot_properties,
    until,
)
from tests.mqtt_broker import Broker, broker

__all__ = ["broker"]

SID, OTHER = "st-h", "st-other"
UP = f"yz/v1/station/{SID}/up"
MAX_PAYLOAD = 128 * 1024


def jpeg(seed: int = 0) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return bytes(data)


@pytest.fixture
def centre(central_db: CentralDb, broker: Broker, tmp_path: Path) -> Iterator[tuple[CentralApp, Publisher]]:
    config = centre_config(central_db.url, tmp_path / "centre", broker.port, max_payload_bytes=MAX_PAYLOAD)
    prepare(config, central_db.sessions, [SID, OTHER])
    with running_centre(config) as app:
        publisher = Publisher(broker.port)
        publisher.subscribe(f"yz/v1/station/{SID}/down/#")
        try:
            yield app, publisher
        finally:
            publisher.close()


def refused(app: CentralApp, kind: str, reason: str) -> float:
    return metric(app, "yizhan_centre_ingest_refused_total", kind=kind, reason=reason)


def acked(publisher: Publisher) -> set[int]:
    seqs: set[int] = set()
    for ack in publisher.messages("/down/ack"):
        assert ack["sig"]["alg"] == "ed25519"
        for first, last in ack["stored"]:
            seqs.update(range(first, last + 1))
    return seqs


def expect(app: CentralApp, kind: str, reason: str, before: float) -> None:
    assert until(lambda: refused(app, kind, reason) > before, 10), f"{kind}: {reason} was not counted"


def test_hostile_messages_of_every_type_are_refused_and_counted(
    central_db: CentralDb, centre: tuple[CentralApp, Publisher]
) -> None:
    app, pub = centre
    good: list[dict[str, Any]] = []
    seq = iter(range(1, 10_000))

    def send(kind: str, payload: Any, reason: str, topic: str | None = None, **kw: Any) -> None:
        before = refused(app, kind, reason)
        pub.publish(topic or f"{UP}/{kind}", payload, **kw)
        expect(app, kind, reason, before)

    # -- events ------------------------------------------------------------------------------------
    first = event_message(SID, next(seq))
    pub.publish(f"{UP}/event", first)
    good.append(first)
    send("event", b"x" * (MAX_PAYLOAD + 1), "too_large")
    send("event", {**event_message(SID, next(seq)), "details": {"pad": "x" * 70_000}}, "too_large")
    send("event", b"\xff\xfe not utf-8", "invalid_json")
    send("event", b'{"v": 1, "v": 1}', "invalid_json")  # duplicate key
    send("event", b'{"v": 1, "latency_ms": NaN}', "invalid_json")
    send("event", b"[1, 2, 3]", "invalid_payload")
    send("event", {**event_message(SID, next(seq)), "v": 2}, "unsupported_version")
    send("event", {**event_message(SID, next(seq)), "v": "1"}, "unsupported_version")
    send("event", {**event_message(SID, next(seq)), "v": 1.0}, "unsupported_version")
    send("event", {**event_message(SID, next(seq)), "type": "status"}, "unknown_type")
    send("event", event_message(OTHER, next(seq)), "wrong_station")  # our topic, another's name
    send("event", {**event_message(SID, next(seq)), "seq": "5"}, "invalid_payload")
    send("event", {**event_message(SID, next(seq)), "id": "not-a-uuid"}, "invalid_payload")
    send("event", {**event_message(SID, next(seq)), "ts": "yesterday"}, "invalid_payload")
    send(
        "event", {**event_message(SID, next(seq)), "ts": "2026-11-24T06:31:07"}, "invalid_payload"
    )  # no zone
    send("event", {**event_message(SID, next(seq)), "kind": "entry; DROP TABLE"}, "invalid_payload")
    send("event", {**event_message(SID, next(seq)), "reason": "a\x00b"}, "invalid_payload")
    send("event", {**event_message(SID, next(seq)), "member_id": "../../etc"}, "invalid_payload")
    send("event", {**event_message(SID, next(seq)), "latency_ms": -1}, "invalid_payload")
    unknown = {**event_message("st-ghost", 1)}
    send("event", unknown, "unknown_station", topic="yz/v1/station/st-ghost/up/event")
    # A replay is stored once (and acknowledged again); a forged copy of another station's event is refused.
    pub.publish(f"{UP}/event", first)
    theirs = event_message(OTHER, 1)
    pub.publish(f"yz/v1/station/{OTHER}/up/event", theirs)
    send("event", {**theirs, "station_id": SID, "seq": next(seq)}, "event_id_taken")
    # -- snapshots ----------------------------------------------------------------------------------
    picture = jpeg()
    event_id = first["id"]
    topic = f"{UP}/snapshot/{event_id}"
    snap_seq = next(seq)
    send("snapshot", picture, "invalid_payload", topic=topic)  # no properties at all
    send(
        "snapshot",
        picture,
        "invalid_payload",
        topic=topic,
        properties=snapshot_properties(SID, snap_seq, str(uuid.uuid4()), picture),
    )
    send(
        "snapshot",
        picture,
        "wrong_station",
        topic=topic,
        properties=snapshot_properties(OTHER, snap_seq, event_id, picture),
    )
    send(
        "snapshot",
        picture,
        "bad_checksum",
        topic=topic,
        properties=snapshot_properties(SID, snap_seq, event_id, picture, sha256="0" * 64),
    )
    send(
        "snapshot",
        b"GIF89a" + picture,
        "not_jpeg",
        topic=topic,
        properties=snapshot_properties(SID, snap_seq, event_id, b"GIF89a" + picture),
    )
    send(
        "unknown",
        picture,
        "bad_topic",
        topic=f"{UP}/snapshot/NOT-A-UUID",
        properties=snapshot_properties(SID, snap_seq, event_id, picture),
    )
    stray = str(uuid.uuid4())
    send(
        "snapshot",
        picture,
        "unknown_event",
        topic=f"{UP}/snapshot/{stray}",
        properties=snapshot_properties(SID, next(seq), stray, picture),
    )  # fmt: skip  (parked, then refused)
    their_picture_topic = f"{UP}/snapshot/{theirs['id']}"
    send(
        "snapshot",
        picture,
        "unknown_event",
        topic=their_picture_topic,
        properties=snapshot_properties(SID, next(seq), theirs["id"], picture),
    )
    pub.publish(topic, picture, properties=snapshot_properties(SID, snap_seq, event_id, picture))
    good.append({"seq": snap_seq})
    # -- status, result, enrolment, roster request, topics -------------------------------------------
    status = {"v": 1, "type": "status", "station_id": SID, "state": "online", "ts": first["ts"], "health": {}}
    send("status", {**status, "state": "sleeping"}, "invalid_payload")
    send("status", {**status, "health": [1, 2]}, "invalid_payload")
    send("status", {**status, "station_id": OTHER}, "wrong_station")
    result = {
        "v": 1,
        "type": "result",
        "station_id": SID,
        "ref": "c-1",
        "ref_type": "command",
        "ok": True,
        "ts": first["ts"],
    }
    send("result", {**result, "ok": "yes"}, "invalid_payload")
    send("result", {**result, "ref": "x" * 49}, "invalid_payload")
    enrolment = {
        "v": 1,
        "type": "enrolment",
        "id": str(uuid.uuid4()),
        "station_id": SID,
        "seq": next(seq),
        "ts": first["ts"],
        "templates_withheld": 0,
        "member": {
            "member_id": "m-hostile",
            "name": "x",
            "groups": [],
            "status": "active",
            "consent_face": True,
            "consent_cross_station": True,
        },
    }
    vector = [0.01] * 128
    send(
        "enrolment",
        {
            **enrolment,
            "templates": [{"template_id": "a" * 32, "model": "dlib_resnet_v1", "vector": vector[:100]}],
        },
        "invalid_payload",
    )
    send(
        "enrolment",
        {
            **enrolment,
            "templates": [{"template_id": "a" * 32, "model": "dlib_resnet_v1", "vector": [1e9] * 128}],
        },
        "invalid_payload",
    )
    withheld = {
        **enrolment,
        "id": str(uuid.uuid4()),
        "seq": next(seq),
        "member": {**enrolment["member"], "member_id": "m-nocross", "consent_cross_station": False},
        "templates": [{"template_id": "b" * 32, "model": "dlib_resnet_v1", "vector": vector}],
    }
    send("enrolment", withheld, "templates_refused")  # stored without the face it should not have sent
    good.append(withheld)
    request = {
        "v": 1,
        "type": "roster_request",
        "station_id": SID,
        "id": "q-1",
        "have_version": -1,
        "reason": "connect",
        "ts": first["ts"],
    }
    send("roster_request", request, "invalid_payload")
    send("unknown", b"{}", "bad_topic", topic=f"{UP}/bogus")
    send("unknown", b"{}", "bad_topic", topic=f"{UP}/event/extra")

    # -- what is stored: the good messages only, acknowledged exactly ---------------------------------
    good_seqs = {m["seq"] for m in good}
    assert until(lambda: acked(pub) >= good_seqs, 15), (acked(pub), good_seqs)
    with central_db.sessions() as db:
        events = db.execute(select(Event.id, Event.station_id)).all()
        assert sorted(events) == sorted([(first["id"], SID), (theirs["id"], OTHER)])
        assert db.scalar(select(func.count()).select_from(Snapshot)) == 1
        assert db.scalar(select(func.count()).select_from(Enrolment)) == 1
        assert db.get(Member, "m-nocross") is not None and db.get(Member, "m-hostile") is None
        assert db.scalars(select(FaceTemplate)).all() == []  # no face without cross-station consent
        assert db.scalar(select(func.count()).select_from(StationStatus)) == 0
    refused_seqs = set(range(1, next(seq))) - good_seqs
    assert not (acked(pub) & refused_seqs), "a refused message was acknowledged"
    assert metric(app, "yizhan_centre_ingest_messages_total", kind="event", outcome="duplicate") >= 1


def test_a_flood_of_garbage_neither_stops_ingest_nor_grows_anything(
    central_db: CentralDb, centre: tuple[CentralApp, Publisher]
) -> None:
    app, pub = centre
    rng = random.Random(12)
    kinds = ["event", "status", "result", "enrolment", "roster_request", "snapshot/" + str(uuid.uuid4())]
    for i in range(1500):
        kind = rng.choice(kinds)
        choice = rng.random()
        if choice < 0.3:
            payload: bytes = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
        elif choice < 0.6:
            message = event_message(SID, i + 1)
            key = rng.choice(list(message))
            message[key] = rng.choice([None, -1, 2**70, "x" * 300, [], {}, True, "\u0000"])
            payload = json.dumps(message).encode()
        else:
            payload = json.dumps(
                {"v": 1, "type": kind.split("/")[0], "station_id": SID, "junk": "y" * rng.randint(0, 2000)}
            ).encode()
        pub.client.publish(f"{UP}/{kind}", payload, qos=1)
    assert until(
        lambda: (
            app.metrics.registry.get_sample_value(
                "yizhan_centre_ingest_messages_total", {"kind": "event", "outcome": "refused"}
            )
            is not None
        ),
        30,
    )
    good = event_message(SID, 99_999)
    pub.publish(f"{UP}/event", good)
    assert until(lambda: 99_999 in acked(pub), 30), "ingest stopped after the flood"
    with central_db.sessions() as db:
        stored = db.execute(select(Event.id, Event.station_id)).all()
    # Some mutations leave a valid event (a null reason, empty details): stored, under its station only.
    assert (good["id"], SID) in stored and {station for _, station in stored} == {SID}
    assert app.mqtt is not None and all(w.failures == 0 for w in app.mqtt.ingest)
