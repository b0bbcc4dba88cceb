"""The running daemon and a real mosquitto: roster down, commands, hostile input, outages, kill -9.

One module-scoped daemon (real video on a loop: a face, then a QR code; gpiozero mock pins; the
session's dlib model) talks to a real broker and a paho "centre". Outages (a hostile broker,
`kill -9`) are in test_sync_outage.py: they build their own daemons, and dlib must never be
driven by two daemons at once. No mocks of our own anywhere.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory
from sqlalchemy import select

from contract.signing import CentreSigner
from edge.app import RunOptions, StationDaemon
from edge.demo_video import Scene, face_crop, qr_card, write_video
from edge.station import Station, read_photo
from models import members as member_store
from models.tables import FaceTemplate, QrKey, QrRevocation
from recognizer import qr_token
from recognizer.qr_decode import render_image
from tests.mqtt_broker import (
    DOOR_SECTIONS,
    RELAY_PIN,
    Centre,
    measured,
    rising_edges,
    start_broker,
    station_config,
    wait,
)

SID = "st-d"
DOWN = f"yz/v1/station/{SID}/down"


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, face_model: Any, fixtures: Path
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("sync-daemon")
    broker = start_broker(tmp / "broker")
    centre: Centre | None = None
    daemon: StationDaemon | None = None
    thread: threading.Thread | None = None
    station: Station | None = None
    try:
        signer = CentreSigner.generate("test centre")
        key_file = tmp / "centre.pub"
        key_file.write_text(signer.public_key.b64 + "\n")
        centre = Centre(broker.port, ack_every=0.5, signer=signer).start()
        config = station_config(
            tmp / "data",
            broker.port,
            station_id=SID,
            centre_key_file=str(key_file),
            sections=DOOR_SECTIONS,
            heartbeat_s=1.0,
            resync_interval_s=1.0,
            inbox_queue=10_000,  # every hostile message below is read and judged, none dropped unread
        )
        station = Station(config, env={})
        station.face_model = face_model
        station.init_keys()
        station.add_member(member_id="m-zhang", name="张三")
        token = station.issue_qr(member_id="m-zhang", ttl_s=3600)
        obama = station.check_photos([fixtures / "obama_1.jpg"])[0]
        assert obama.encoding is not None
        rgb = read_photo(fixtures / "obama_2.jpg")
        face = face_crop(rgb, station.photo_pipeline.detect(rgb)[0].box)
        empty = Scene("empty", None, 0.8)
        video = tmp / "door.avi"
        qr = Scene("qr", qr_card(render_image(token, scale=3, border=2)), 1.2)
        write_video(video, [empty, Scene("face", face, 2.0), empty, qr])
        factory = MockFactory()
        relay = factory.pin(RELAY_PIN)
        daemon = StationDaemon(
            config, RunOptions(realtime=True, camera_source=str(video)), pin_factory=factory, station=station
        )
        thread = threading.Thread(target=daemon.run, name="daemon-under-test")
        thread.start()
        running = daemon
        assert wait(lambda: running.sync is not None and running.sync.status()["connected"], 30)
        yield {
            "broker": broker,
            "centre": centre,
            "config": config,
            "station": station,
            "daemon": daemon,
            "relay": relay,
            "token": token,
            "obama": [float(x) for x in obama.encoding],
            "version": 0,
            "signer": signer,
        }
    finally:
        if daemon is not None:
            daemon.stop_event.set()
        if thread is not None:
            thread.join(30)
        if centre is not None:
            centre.stop()
        broker.stop()
        if station is not None:
            station.close()


def next_version(world: dict[str, Any]) -> int:
    world["version"] += 1
    return int(world["version"])


def events_since(centre: Centre, start: int, **match: Any) -> list[dict[str, Any]]:
    found = centre.json_messages("event")[start:]
    return [e for e in found if all(e.get(k) == v for k, v in match.items())]


def test_status_is_retained_and_carries_health(world: dict[str, Any]) -> None:
    centre: Centre = world["centre"]

    def online() -> dict[str, Any] | None:
        statuses = [s for s in centre.json_messages("status") if s["state"] == "online" and s["health"]]
        return statuses[-1] if statuses else None

    status = wait(online, 10)
    assert status is not None and status["station_id"] == SID
    health = status["health"]
    for key in ("camera", "disk", "clock", "roster_version", "centre_roster_version", "outbox_depth", "door"):
        assert key in health, key
    assert health["clock"]["status"] in ("ok", "warn")
    # Retained: a centre that connects later still sees the station's status at once.
    with Centre(world["broker"].port, subscribe=f"yz/v1/station/{SID}/up/status") as late:
        assert wait(lambda: [m for m in late.messages("/up/status") if m.retain], 5)
    requests = centre.json_messages("roster_request")
    assert requests and requests[0]["reason"] == "new" and requests[0]["have_version"] == 0
    # The centre's acknowledgements (down/ack) reach the publisher.
    daemon: StationDaemon = world["daemon"]
    assert daemon.sync is not None
    assert wait(lambda: daemon.sync.status()["centre_ack_seq"] is not None, 5)


def test_remote_open_pulses_the_relay_and_is_acknowledged(world: dict[str, Any]) -> None:
    centre: Centre = world["centre"]
    relay = world["relay"]
    before = rising_edges(relay)
    start = len(centre.json_messages("event"))
    command_id = centre.send_command(SID, "open", seconds=1.5, by="ops:test")
    result = centre.result_for(command_id, 5)
    assert result is not None and result["ok"] is True, result
    assert result["ref_type"] == "command" and result["data"]["kind"] == "entry"
    assert rising_edges(relay) == before + 1
    event = wait(lambda: events_since(centre, start, id=result["data"]["event_id"]), 5)
    assert event and event[0]["method"] == "remote"
    assert event[0]["details"]["command_id"] == command_id and event[0]["details"]["by"] == "centre:ops:test"
    # Replaying the very same message must not open the door again.
    centre.publish(
        f"{DOWN}/command",
        {
            "v": 1,
            "type": "command",
            "id": command_id,
            "name": "open",
            "issued_at": time.time(),
            "expires_at": time.time() + 30,
        },
    )
    replay = wait(
        lambda: [r for r in centre.json_messages("result") if r["ref"] == command_id and not r["ok"]], 5
    )
    assert replay and replay[0]["error"] == "replayed"
    assert rising_edges(relay) == before + 1


def test_commands_that_must_not_run(world: dict[str, Any]) -> None:
    centre: Centre = world["centre"]
    relay = world["relay"]
    before = rising_edges(relay)
    now = time.time()
    expired = f"c-exp-{uuid.uuid4().hex[:8]}"
    centre.publish(
        f"{DOWN}/command",
        {
            "v": 1,
            "type": "command",
            "id": expired,
            "name": "open",
            "issued_at": now - 60,
            "expires_at": now - 30,
        },
    )
    far = f"c-far-{uuid.uuid4().hex[:8]}"
    centre.publish(
        f"{DOWN}/command",
        {"v": 1, "type": "command", "id": far, "name": "open", "issued_at": now, "expires_at": now + 86_400},
    )
    no_expiry = f"c-noexp-{uuid.uuid4().hex[:8]}"
    centre.publish(
        f"{DOWN}/command", {"v": 1, "type": "command", "id": no_expiry, "name": "open", "issued_at": now}
    )
    assert centre.result_for(expired, 5)["error"] == "expired"  # type: ignore[index]
    assert centre.result_for(far, 5)["error"] == "expiry_too_far"  # type: ignore[index]
    assert centre.result_for(no_expiry, 5)["error"] == "invalid_payload"  # type: ignore[index]
    # Valid commands on topics that are not this station's down/command: never executed.
    for topic in (f"{DOWN}/command/extra", f"{DOWN}/roster", "yz/v1/station/st-other/down/command"):
        good = {
            "v": 1,
            "type": "command",
            "id": f"c-wrong-{uuid.uuid4().hex[:8]}",
            "name": "open",
            "issued_at": time.time(),
            "expires_at": time.time() + 30,
        }
        centre.publish(topic, good)
    ping = centre.send_command(SID, "ping")
    assert centre.result_for(ping, 5)["ok"] is True  # type: ignore[index]
    assert rising_edges(relay) == before


def test_member_added_over_mqtt_is_recognised_and_a_suspended_one_refused(world: dict[str, Any]) -> None:
    centre: Centre = world["centre"]
    daemon: StationDaemon = world["daemon"]
    start = len(centre.json_messages("event"))
    template_id = uuid.uuid4().hex
    version = next_version(world)
    add = centre.send_roster(
        SID,
        version,
        [
            {
                "op": "add_member",
                "member": {
                    "member_id": "m-obama",
                    "name": "Barack Obama",
                    "consent_face": True,
                    "templates": [
                        {"template_id": template_id, "model": "dlib_resnet_v1", "vector": world["obama"]}
                    ],
                },
            }
        ],
    )
    result = centre.result_for(add, 5)
    assert result is not None and result["ok"], result
    assert result["data"]["applied_version"] == version
    assert daemon.station is not None and "m-obama" in daemon.station.roster.current.members  # no restart
    entry = wait(lambda: events_since(centre, start, kind="entry", member_id="m-obama"), 20)
    assert entry and entry[0]["method"] == "face"
    start = len(centre.json_messages("event"))
    suspend = centre.send_roster(SID, next_version(world), [{"op": "suspend_member", "member_id": "m-obama"}])
    suspended = centre.result_for(suspend, 5)
    assert suspended is not None and suspended["ok"], suspended and suspended.get("message")
    refused = wait(lambda: events_since(centre, start, kind="refused", member_id="m-obama"), 20)
    assert refused and refused[0]["reason"] == "member_suspended"
    later = [e for e in events_since(centre, start, member_id="m-obama") if e["ts"] > refused[0]["ts"]]
    assert all(e["kind"] != "entry" for e in later)


def test_a_qr_token_revoked_over_mqtt_is_refused(world: dict[str, Any]) -> None:
    centre: Centre = world["centre"]
    start = len(centre.json_messages("event"))
    assert wait(lambda: events_since(centre, start, kind="entry", method="qr", member_id="m-zhang"), 15)
    claims = qr_token.parse_token(world["token"])
    change = centre.send_roster(
        SID,
        next_version(world),
        [
            {
                "op": "revoke_token",
                "revocation": {
                    "nonce_hex": claims.nonce_hex,
                    "member_id": "m-zhang",
                    "expires_at": claims.expires_at,
                    "reason": "phone lost",
                },
            }
        ],
    )
    assert centre.result_for(change, 5)["ok"]  # type: ignore[index]
    start = len(centre.json_messages("event"))
    refused = wait(lambda: events_since(centre, start, kind="refused", method="qr"), 15)
    assert refused and refused[0]["reason"] == "token_revoked"


def roster_state(station: Station) -> dict[str, Any]:
    with station.sessions() as session:
        return {
            "members": [
                (m.member_id, m.name, m.status, list(m.groups or []), m.consent_face, m.consent_cross_station)
                for m in member_store.list_members(session)
            ],
            "templates": sorted(session.scalars(select(FaceTemplate.template_id))),
            "keys": sorted((k.kid, k.revoked_at is None) for k in session.scalars(select(QrKey))),
            "revocations": sorted(session.scalars(select(QrRevocation.nonce_hex))),
            "centre_version": member_store.get_state(session, "sync.roster_version"),
            "roster_version": member_store.get_state(session, "roster_version"),
        }


def hostile_messages(rng: random.Random, applied: int, count: int) -> Iterator[tuple[str, bytes]]:
    """Generated garbage, near misses and well-formed-but-wrong messages for both down topics."""
    vector = [0.01] * 128

    def change(ops: list[Any], version: int | None = None, **extra: Any) -> dict[str, Any]:
        return {
            "v": 1,
            "type": "roster_change",
            "id": f"h-{rng.randrange(10**9)}",
            "version": applied + 1 if version is None else version,
            "issued_at": time.time(),
            "ops": ops,
            **extra,
        }

    member = {"member_id": "m-evil", "name": "Evil", "consent_face": True}
    # Values that are wrong wherever they are used below (never a valid id, name or version).
    bad_values: list[Any] = [None, True, -1, 1e308, "", "x" * 5000, [], {}, [1, 2], 2**70]
    bad_ids = [*bad_values, "..", "a/b", "m zhang", "张", "id\n"]
    generators: list[Callable[[], tuple[str, bytes]]] = [
        lambda: ("roster", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))),
        lambda: ("command", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))),
        lambda: ("roster", b'{"v": 1, "type": "roster_change", "version": NaN}'),
        lambda: ("roster", b'{"v": 1, "v": 1, "type": "roster_change"}'),
        lambda: ("roster", b"[" * 5000),
        lambda: (
            "roster",
            json.dumps(
                change([{"op": "add_member", "member": member}], v=rng.choice([0, 2, "1", True]))
            ).encode(),
        ),
        lambda: (
            "roster",
            json.dumps(
                {**change([{"op": "add_member", "member": member}]), "v": rng.choice([0, 2, "1"])}
            ).encode(),
        ),
        lambda: (
            "roster",
            json.dumps(
                change(
                    [
                        {
                            "op": "add_template",
                            "member_id": "m-zhang",
                            "template": {
                                "template_id": uuid.uuid4().hex,
                                "model": "dlib_resnet_v1",
                                "vector": vector[: rng.choice([0, 127, 129])] or vector + [0.1],
                            },
                        }
                    ]
                )
            ).encode(),
        ),
        lambda: (
            "roster",
            json.dumps(
                change(
                    [
                        {
                            "op": "add_member",
                            "member": {
                                **member,
                                "templates": [
                                    {"template_id": "a" * 32, "model": "dlib_resnet_v1", "vector": vector}
                                ],
                            },
                        }
                    ]
                )
            )
            .replace("0.01", rng.choice(["NaN", "Infinity", "-Infinity", "1e400"]), 1)
            .encode(),
        ),
        lambda: (
            "roster",
            json.dumps(
                change([{"op": "add_member", "member": {**member, "name": rng.choice(bad_values)}}])
            ).encode(),
        ),
        lambda: (
            "roster",
            json.dumps(
                change([{"op": rng.choice(["drop_table", "", None, 5]), "member_id": "m-zhang"}])
            ).encode(),
        ),
        lambda: (
            "roster",
            json.dumps(change([{"op": "remove_member", "member_id": rng.choice(bad_ids)}])).encode(),
        ),
        # Passes the schema, refused by the store (control character, bad phone): rolled back.
        lambda: (
            "roster",
            json.dumps(
                change(
                    [
                        {"op": "remove_member", "member_id": "m-zhang"},
                        {
                            "op": "add_member",
                            "member": {**member, "name": rng.choice(["a\x00b", "\u202e\x07", "x\n\ty"])},
                        },
                    ]
                )
            ).encode(),
        ),
        lambda: (
            "roster",
            json.dumps(
                change(
                    [
                        {"op": "remove_member", "member_id": "m-zhang"},
                        {"op": "add_member", "member": {**member, "phone": "call me maybe"}},
                    ]
                )
            ).encode(),
        ),
        lambda: (
            "roster",
            json.dumps(
                change(
                    [
                        {"op": "remove_member", "member_id": "m-zhang"},
                        {"op": "activate_member", "member_id": "m-nobody"},
                    ]
                )
            ).encode(),
        ),
        lambda: (
            "roster",
            json.dumps(
                change([{"op": "add_qr_key", "key": {"kid": "deadbeef", "public_key": "A" * 43 + "="}}])
            ).encode(),
        ),
        # Duplicates of versions already applied: harmless no-ops.
        lambda: (
            "roster",
            json.dumps(
                change(
                    [{"op": "remove_member", "member_id": "m-zhang"}],
                    version=rng.randint(1, applied) if applied else -1,
                )
            ).encode(),
        ),
        lambda: ("roster", json.dumps({**change([]), "version": rng.choice([*bad_values, 0, "1"])}).encode()),
        lambda: (
            "roster",
            json.dumps(
                {
                    "v": 1,
                    "type": "roster_snapshot",
                    "id": "s",
                    "snapshot_id": "s",
                    "version": applied + 1,
                    "issued_at": 1.0,
                    "part": 2,
                    "parts": 1,
                }
            ).encode(),
        ),
        lambda: ("roster", b"x" * (2 * 1024 * 1024 + 10)),
        lambda: (
            "command",
            json.dumps(
                {
                    "v": 1,
                    "type": "command",
                    "id": f"h-{rng.randrange(10**9)}",
                    "name": rng.choice(["open", "reload", "ping", "set_schedule", "rm -rf", None]),
                    "issued_at": time.time() - 100,
                    "expires_at": rng.choice(
                        [time.time() - 10, "soon", None, float("1e308"), time.time() + 10**7]
                    ),
                    "seconds": rng.choice([5, -1, 1e9, "5", None]),
                }
            ).encode(),
        ),
        lambda: (
            "command",
            json.dumps({"v": 1, "type": "command", "id": rng.choice(bad_ids), "name": "open"}).encode(),
        ),
        lambda: ("command", json.dumps({"v": 1, "type": "roster_change"}).encode()),
        lambda: ("ack", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 100)))),
        lambda: (
            "ack",
            json.dumps(
                {"v": 1, "type": "ack", "id": "a-1", "seq": rng.choice([-1, "7", None, 1.5, 2**64])}
            ).encode(),
        ),
    ]
    for _ in range(count):
        topic, payload = rng.choice(generators)()
        yield f"{DOWN}/{topic}", payload


def test_thousands_of_hostile_messages_change_nothing(world: dict[str, Any]) -> None:
    centre: Centre = world["centre"]
    daemon: StationDaemon = world["daemon"]
    station: Station = world["station"]
    assert daemon.sync is not None and daemon.station is not None
    inbox = daemon.sync.inbox
    assert inbox is not None
    before = roster_state(station)
    memory_version = daemon.station.roster.current.version
    relay_before = rising_edges(world["relay"])
    results_before = len(centre.json_messages("result"))
    rng = random.Random(20261124)
    sent = 0
    for topic, payload in hostile_messages(rng, world["version"], 3000):
        # Half of what parses as an object is signed by the centre's own key, so the checks behind
        # the signature (versions, model, store) are hit as well as the signature check itself.
        try:
            decoded = json.loads(payload)
        except (ValueError, RecursionError):
            decoded = None
        if isinstance(decoded, dict) and rng.random() < 0.5:
            try:
                payload = world["signer"].sign_bytes({**decoded, "station_id": SID})
            except ValueError:
                pass  # not even canonicalisable (2**70): goes out unsigned
        centre.client.publish(topic, payload, qos=rng.choice([0, 1]))
        sent += 1
    # The broker may drop part of a flood (its per-client queue); wait until nothing more comes.
    seen: list[int] = []

    def settled() -> bool:
        seen.append(inbox.stats.received)
        return inbox.idle() and len(seen) > 10 and seen[-1] == seen[-11]

    assert wait(settled, 60, 0.1), vars(inbox.stats)
    ping = centre.send_command(SID, "ping")
    result = centre.result_for(ping, 10)
    assert result is not None and result["ok"], "the daemon no longer answers"
    assert roster_state(station) == before
    assert daemon.station.roster.current.version == memory_version
    assert rising_edges(world["relay"]) == relay_before
    assert daemon.loop is not None
    frames = daemon.loop.stats.frames
    assert wait(lambda: daemon.loop is not None and daemon.loop.stats.frames > frames, 30)  # the loop runs
    errors = [r for r in centre.json_messages("result")[results_before:] if not r["ok"]]
    codes = {r["error"] for r in errors}
    stats = inbox.stats
    measured(
        f"hostile flood: {sent} messages, {stats.refused} refused, {stats.dropped} dropped (queue full), "
        f"{len(errors)} error results sent (rate-limited), codes {sorted(codes)}"
    )
    assert stats.dropped == 0 and stats.received >= 2000  # the broker itself may shed some of a flood
    assert errors and codes <= {
        "invalid_json",
        "invalid_payload",
        "too_large",
        "unsupported_version",
        "unknown_type",
        "apply_failed",
        "expired",
        "expiry_too_far",
        "signature_required",  # the flood is unsigned: refused before its content is read
    }


def test_schedule_and_snapshot_commands(world: dict[str, Any]) -> None:
    centre: Centre = world["centre"]
    station: Station = world["station"]
    schedule = {
        "timezone": "Asia/Shanghai",
        "always_open": False,
        "weekly": {d: "24h" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    }
    set_id = centre.send_command(SID, "set_schedule", schedule=schedule)
    assert centre.result_for(set_id, 5)["ok"]  # type: ignore[index]
    with station.sessions() as session:
        assert json.loads(member_store.get_state(session, "sync.schedule") or "{}")["always_open"] is False
    restore = centre.send_command(SID, "set_schedule", schedule={"always_open": True})
    assert centre.result_for(restore, 5)["ok"]  # type: ignore[index]
    snap = centre.send_command(SID, "snapshot", by="ops:test")
    result = centre.result_for(snap, 5)
    assert result is not None and result["ok"], result
    event_id = result["data"]["event_id"]
    jpeg = wait(lambda: centre.messages(f"/up/snapshot/{event_id}"), 10)
    assert jpeg and jpeg[0].payload[:2] == b"\xff\xd8"
    event = [e for e in centre.json_messages("event") if e["id"] == event_id]
    assert event and event[0]["kind"] == "remote_snapshot" and event[0]["details"]["command_id"] == snap
