"""A template removed at a station is withdrawn at the centre and at every other station.

"Enrol once, open everywhere" in reverse (docs/mqtt.md, "template removal"): the station's
`up/template_removal` is checked (the member it names, a template the sender holds), remembered
once per template, the centre's copy deleted, `remove_template` fanned out to every holder as a
versioned roster change, and audited. Hostile input: another member's template, another station's
template, unknown member, replay, malformed. End to end: two real stations and the real centre on
a real mosquitto, SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from central_fixtures import CentralDb
from sqlalchemy import select
from sqlalchemy.orm import Session

from central import roster
from central.data_key import DataKey
from central.ingest.messages import EnrolmentIn, Refusal, TemplateRemovalIn, parse_json_message
from central.roster.enrolments import enrolment_received
from central.roster.removals import RemovalRefused, template_removal_received
from central.store import members as member_store
from central.store.tables import AuditEntry, FaceTemplate, RosterChange, Station, TemplateRemoval
from tests.centre_mqtt import (
    Publisher,
    centre_config,
    enrol,
    metric,
    prepare,
    running_centre,
    station,
    station_templates,
    until,
)
from tests.mqtt_broker import Broker, broker
from tests.test_central_roster import T1, T2, T3, built, keyed, station_changes, vector
from tests.test_central_roster_mqtt import vectors

__all__ = ["broker", "keyed"]

NOW = dt.datetime(2026, 12, 8, 2, 0, tzinfo=dt.UTC)


def removal(station_id: str, member_id: str, template_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "type": "template_removal",
        "id": str(uuid.uuid4()),
        "station_id": station_id,
        "seq": 7,
        "ts": NOW.isoformat(),
        "member_id": member_id,
        "template_id": template_id,
        "removed_by": "installer:wang",
        **fields,
    }


def parsed(data: dict[str, Any]) -> TemplateRemovalIn:
    message = parse_json_message("template_removal", data["station_id"], json.dumps(data).encode(), 1 << 20)
    assert isinstance(message, TemplateRemovalIn)
    return message


def receive(db: Session, data: dict[str, Any]) -> Any:
    sender = db.get(Station, data["station_id"])
    assert sender is not None
    return template_removal_received(db, station=sender, message=parsed(data), received_at=NOW)


def fleet_member(
    db: Session, data_key: DataKey, member_id: str, templates: dict[str, str], **kw: Any
) -> None:
    """A member enrolled with cross-station consent; `templates` maps template id -> origin station."""
    member_store.add_member(
        db,
        member_id=member_id,
        name=member_id,
        consent_face=True,
        consent_cross_station=kw.pop("cross", True),
        home_station_id=next(iter(templates.values())),
        **kw,
    )
    for i, (template_id, origin) in enumerate(templates.items()):
        member_store.add_template(
            db,
            data_key.templates,
            member_id=member_id,
            vector=vector(i),
            template_id=template_id,
            origin_station_id=origin,
        )
    roster.member_changed(db, member_id)


def last_ops(db: Session, sid: str) -> list[dict[str, Any]]:
    rows = station_changes(db, sid)
    return rows[-1].ops if rows else []


def test_the_documented_example_is_read_by_the_centre() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "mqtt.md").read_text(encoding="utf-8")
    body = text.split("<!-- example: template_removal -->\n```json\n", 1)[1].split("\n```", 1)[0]
    message = parsed(json.loads(body))
    assert (message.member_id, message.removed_by) == ("m-10294", "installer:wang")


def test_a_removed_fleet_template_is_withdrawn_from_every_holder_once(
    keyed: tuple[CentralDb, DataKey],
) -> None:
    central_db, data_key = keyed
    with central_db.sessions.begin() as db:
        built(db, data_key, "s1", "s2", "s3")
        fleet_member(db, data_key, "m-1", {T1: "s1", T2: "s1"})
        versions = {sid: len(station_changes(db, sid)) for sid in ("s1", "s2", "s3")}
        outcome = receive(db, removal("s1", "m-1", T1))
        assert outcome.new and outcome.held and outcome.stations == 2  # s1 (already gone there) and s2
        assert db.get(FaceTemplate, T1) is None and db.get(FaceTemplate, T2) is not None
        assert last_ops(db, "s2") == [{"op": "remove_template", "member_id": "m-1", "template_id": T1}]
        assert len(station_changes(db, "s3")) == versions["s3"]  # s3 admits riders only: never had it
        row = db.get(TemplateRemoval, T1)
        assert row is not None and row.held and row.stations == 2 and row.removed_by == "installer:wang"
        audit = db.scalars(select(AuditEntry).where(AuditEntry.action == "template_removed")).all()
        assert len(audit) == 1 and audit[0].actor == "station:s1" and audit[0].target_id == "m-1"
        assert audit[0].details["template_id"] == T1 and audit[0].district_id == "d1"
        # Replayed (the same message, or a new id for the same template): nothing more happens.
        changes_before = db.scalar(select(RosterChange.id).order_by(RosterChange.id.desc()).limit(1))
        again = receive(db, removal("s1", "m-1", T1))
        assert not again.new and not again.held
        assert db.scalar(select(RosterChange.id).order_by(RosterChange.id.desc()).limit(1)) == changes_before
        assert len(db.scalars(select(AuditEntry).where(AuditEntry.action == "template_removed")).all()) == 1


def test_a_station_holding_a_fleet_template_may_withdraw_it(keyed: tuple[CentralDb, DataKey]) -> None:
    central_db, data_key = keyed
    with central_db.sessions.begin() as db:
        built(db, data_key, "s1", "s2")
        fleet_member(db, data_key, "m-2", {T1: "s1"})
        outcome = receive(db, removal("s2", "m-2", T1))  # enrolled at s1, removed at s2
        assert outcome.held and db.get(FaceTemplate, T1) is None
        assert {"op": "remove_template", "member_id": "m-2", "template_id": T1} in last_ops(db, "s1")


def test_hostile_removals_change_nothing(keyed: tuple[CentralDb, DataKey]) -> None:
    central_db, data_key = keyed
    with central_db.sessions.begin() as db:
        built(db, data_key, "s1", "s2", "s3")
        fleet_member(db, data_key, "m-a", {T1: "s1"})
        fleet_member(db, data_key, "m-home", {T2: "s1"}, cross=False)  # no consent: s1's own face only
        fleet_member(db, data_key, "m-r", {T3: "s1"}, groups=["sanitation"])  # not admitted at s3
        before = db.scalar(select(RosterChange.id).order_by(RosterChange.id.desc()).limit(1))
        with pytest.raises(RemovalRefused) as wrong:  # a template of another member
            receive(db, removal("s1", "m-home", T1))
        assert wrong.value.reason == "wrong_member"
        with pytest.raises(RemovalRefused) as foreign:  # s1's own template, s2 never held it
            receive(db, removal("s2", "m-home", T2))
        assert foreign.value.reason == "not_held"
        with pytest.raises(RemovalRefused) as absent:  # a member s3 does not admit
            receive(db, removal("s3", "m-r", T3))
        assert absent.value.reason == "not_held"
        # An unknown member, a template the centre never had: acknowledged, nothing to withdraw.
        assert not receive(db, removal("s2", "m-ghost", "d" * 32)).held
        assert not receive(db, removal("s2", "m-a", "e" * 32)).held
        assert {t.template_id for t in db.scalars(select(FaceTemplate))} == {T1, T2, T3}
        assert db.scalar(select(RosterChange.id).order_by(RosterChange.id.desc()).limit(1)) == before
        assert not db.scalars(select(AuditEntry).where(AuditEntry.action == "template_removed")).all()
        assert {r.template_id for r in db.scalars(select(TemplateRemoval))} == {"d" * 32, "e" * 32}


@pytest.mark.parametrize(
    "change",
    [
        {"template_id": "A" * 32},  # upper case
        {"template_id": "a" * 31},
        {"member_id": "../../etc"},
        {"member_id": None},
        {"seq": "7"},
        {"ts": "2026-12-08T02:00:00"},  # no zone
        {"removed_by": "x" * 101},
        {"removed_by": "a\x00b"},
        {"id": "x" * 37},
        {"v": 2},
        {"type": "enrolment"},
        {"station_id": "s2"},  # the topic says s1
    ],
)
def test_malformed_removals_are_refused(change: dict[str, Any]) -> None:
    data = {**removal("s1", "m-1", T1), **change}
    with pytest.raises(Refusal):
        parse_json_message("template_removal", "s1", json.dumps(data).encode(), 1 << 20)


def test_an_enrolment_arriving_after_its_templates_removal_does_not_bring_it_back(
    keyed: tuple[CentralDb, DataKey],
) -> None:
    """Two ingest workers: the removal (seq 8) committed before the enrolment (seq 7) it follows."""
    central_db, data_key = keyed
    with central_db.sessions.begin() as db:
        built(db, data_key, "s1", "s2")
        receive(db, removal("s1", "m-late", T1))
        enrolment = EnrolmentIn.model_validate(
            {
                "v": 1,
                "type": "enrolment",
                "id": str(uuid.uuid4()),
                "station_id": "s1",
                "seq": 7,
                "ts": NOW.isoformat(),
                "member": {
                    "member_id": "m-late",
                    "name": "late",
                    "consent_face": True,
                    "consent_cross_station": True,
                    "consent_at": NOW.isoformat(),
                },
                "templates": [
                    {"template_id": t, "model": "dlib_resnet_v1", "vector": vector(i)}
                    for i, t in enumerate((T1, T2))
                ],
            },
            strict=False,
        )
        outcome = enrolment_received(
            db, data_key.templates, station_id="s1", message=enrolment, received_at=NOW
        )
        assert outcome.templates_stored == 1
        assert {t.template_id for t in db.scalars(select(FaceTemplate))} == {T2}


def test_removed_at_one_station_gone_at_the_centre_and_the_other_station(
    central_db: CentralDb, broker: Broker, tmp_path: Path
) -> None:
    config = centre_config(central_db.url, tmp_path / "centre", broker.port)
    stations: dict[str, dict[str, Any]] = {"st-a": {}, "st-b": {}}
    key = prepare(config, central_db.sessions, stations).key_file(tmp_path / "keys")
    with running_centre(config) as centre:
        a, b = (station(tmp_path, broker.port, sid, key) for sid in stations)
        try:
            for st in (a, b):
                assert until(lambda st=st: st.service.roster.applied_version() >= 1, 20)
            wrong, right = enrol(a, "m-fleet", vectors(1), cross=True)
            assert until(lambda: station_templates(b, "m-fleet") == {wrong, right}, 20), "never reached st-b"

            removed = a.double.station.remove_template(wrong, removed_by="installer:wang")
            assert removed is not None and removed["templates_left"] == 1
            a.service.publisher.wake()
            assert until(lambda: station_templates(b, "m-fleet") == {right}, 20), "still at st-b"
            with central_db.sessions() as db:
                assert {t.template_id for t in db.scalars(select(FaceTemplate))} == {right}
                row = db.get(TemplateRemoval, wrong)
                assert row is not None and row.station_id == "st-a" and row.removed_by == "installer:wang"
                assert db.scalars(select(AuditEntry).where(AuditEntry.action == "template_removed")).all()
            assert until(lambda: a.outbox_depth() == 0, 20), "the removal was never acknowledged"
            assert station_templates(a, "m-fleet") == {right}

            # The reverse: staff remove the other template at the centre: gone at both stations.
            with central_db.sessions.begin() as db:
                assert roster.remove_template(db, "m-fleet", right, "staff:ops") == 2
            centre.mqtt.roster.wake()  # type: ignore[union-attr]
            for st in (a, b):
                assert until(lambda st=st: station_templates(st, "m-fleet") == set(), 20), st.station_id
            assert b.double.station.get_member("m-fleet") is not None  # the member stays (the pass works)
            assert (
                metric(
                    centre, "yizhan_centre_ingest_messages_total", kind="template_removal", outcome="stored"
                )
                == 1.0
            )
        finally:
            for st in (a, b):
                st.stop()


def test_refused_removals_over_mqtt_are_counted_and_not_acknowledged(
    central_db: CentralDb, broker: Broker, tmp_path: Path
) -> None:
    config = centre_config(central_db.url, tmp_path / "centre", broker.port)
    prepare(config, central_db.sessions, ["st-h"])
    with central_db.sessions.begin() as db:
        member_store.add_member(db, member_id="m-1", name="m-1")
    with running_centre(config) as app:
        pub = Publisher(broker.port)
        pub.subscribe("yz/v1/station/st-h/down/#")
        try:
            up = "yz/v1/station/st-h/up/template_removal"

            def refused(reason: str) -> float:
                return metric(
                    app, "yizhan_centre_ingest_refused_total", kind="template_removal", reason=reason
                )

            for payload, reason in (
                (b"{not json", "invalid_json"),
                ({**removal("st-h", "m-1", T1), "template_id": "zz"}, "invalid_payload"),
                (removal("st-other", "m-1", T1), "wrong_station"),
            ):
                before = refused(reason)
                pub.publish(up, payload)
                assert until(lambda r=reason, b=before: refused(r) > b, 10), reason
            good = removal("st-h", "m-1", T2, seq=42)
            pub.publish(up, good)
            pub.publish(up, good)  # replayed: acknowledged again, stored once
            assert until(lambda: any([42, 42] in a["stored"] for a in pub.messages("/down/ack")), 10)
            acked = {
                s
                for a in pub.messages("/down/ack")
                for first, last in a["stored"]
                for s in range(first, last + 1)
            }
            assert acked == {42}
        finally:
            pub.close()


def test_staff_list_and_remove_a_template_through_the_api(central_db: CentralDb, central_config: Any) -> None:
    from dashboard_support import NOW as FLEET_NOW
    from dashboard_support import Api, build_fleet, config_for
    from fastapi.testclient import TestClient

    from central.web.app import create_app

    fleet = build_fleet(central_db, config_for(central_config), now=FLEET_NOW)
    with central_db.sessions.begin() as db:
        member = db.get(member_store.Member, "m-li")
        assert member is not None
        member.consent_cross_station = True
        for i, template_id in enumerate((T1, T2)):
            member_store.add_template(
                db, fleet.ctx.data_key.templates, member_id="m-li", vector=vector(i),
                template_id=template_id, origin_station_id="hd-1",
            )  # fmt: skip
    with TestClient(create_app(fleet.ctx), base_url="https://testserver") as client:
        admin, cy, viewer = Api(client, "admin"), Api(client, "cy.staff"), Api(client, "viewer")
        listed = admin.get("/api/v1/members/m-li/templates")
        assert listed.status_code == 200
        rows = listed.json()
        assert [t["template_id"] for t in rows] == [T1, T2] and rows[0]["scope"] == "fleet"
        assert all("vector" not in t and "ciphertext" not in t for t in rows)
        assert cy.get("/api/v1/members/m-li/templates").status_code == 404  # another district's member
        path = f"/api/v1/members/m-li/templates/{T1}"
        client.cookies.clear()  # the logins above left a session cookie: bearer tokens only from here
        assert client.delete(path).status_code == 401
        assert client.delete(path, headers=viewer.headers).status_code == 403
        assert client.delete(path, headers=cy.headers).status_code == 404
        assert (
            client.delete(f"/api/v1/members/m-wang/templates/{T1}", headers=admin.headers).status_code == 404
        )
        assert (
            client.delete("/api/v1/members/m-li/templates/not-a-template", headers=admin.headers).status_code
            == 422
        )
        removed = client.delete(path, headers=admin.headers)
        assert removed.status_code == 200, removed.text
        assert removed.json() == {
            "member_id": "m-li",
            "template_id": T1,
            "stations": 0,
        }  # no station built yet
        gone = client.delete(path, headers=admin.headers)
        assert gone.status_code == 404 and gone.json()["code"] == "template_not_found"
        assert [t["template_id"] for t in admin.get("/api/v1/members/m-li/templates").json()] == [T2]
    with central_db.sessions() as db:
        entries = db.scalars(select(AuditEntry).where(AuditEntry.action == "template_removed")).all()
        assert [(e.actor, e.target_id, e.district_id, e.details["template_id"]) for e in entries] == [
            ("staff:admin", "m-li", "haidian", T1)
        ]


@pytest.mark.parametrize("sync_on", [True, False])
def test_the_station_queues_the_removal_with_the_removal_and_builds_the_contract_message(
    tmp_path: Path, sync_on: bool
) -> None:
    """Station side: the outbox row is written in the removal's transaction (only with sync on),
    carries ids and who removed it, no face data, and becomes `up/template_removal`."""
    from contract.messages import TemplateRemovalMessage
    from contract.topics import StationTopics
    from edge.station import Station as EdgeStation
    from models import events as event_store
    from models import members as station_members
    from sync.outbox_rows import MessageBuilder, Ready, Row
    from tests.mqtt_broker import station_config

    config = station_config(tmp_path, 1883, station_id="st-a")
    if not sync_on:
        config = config.model_copy(update={"mqtt": config.mqtt.model_copy(update={"enabled": False})})
    edge = EdgeStation(config, env={})
    try:
        with edge.write_sessions() as session, session.begin():
            station_members.add_member(session, member_id="m-1", name="m-1", consent_face=True)
            ids = station_members.add_templates(
                session, edge.cipher, member_id="m-1", encodings=[vector(1), vector(2)],
                qualities=[{}, {}], sources=[None, None],
            )  # fmt: skip
        assert edge.remove_template(ids[0], removed_by="installer:wang") is not None
        assert edge.remove_template(ids[0], removed_by="installer:wang") is None  # gone: nothing queued
        with edge.sessions() as session:
            rows = [r for r in event_store.pending_outbox(session, 100) if r.topic_kind == "template_removal"]
        if not sync_on:
            assert rows == []
            return
        assert len(rows) == 1
        row = rows[0]
        assert row.payload["template_id"] == ids[0] and row.payload["removed_by"] == "installer:wang"
        assert "vector" not in json.dumps(row.payload)
        builder = MessageBuilder(
            sessions=edge.sessions, topics=StationTopics("st-a"), config=config.mqtt,
            resolve_snapshot=None, cipher=None,
        )  # fmt: skip
        ready = builder.build(Row(row.seq, None, row.topic_kind, dict(row.payload), row.created_at))
        assert isinstance(ready, Ready) and ready.topic == "yz/v1/station/st-a/up/template_removal"
        sent = TemplateRemovalMessage.model_validate_json(ready.data)
        assert (sent.member_id, sent.template_id, sent.seq) == ("m-1", ids[0], row.seq)
        assert parsed(json.loads(ready.data)).template_id == ids[0]  # and the centre reads it
    finally:
        edge.close()


def test_a_removal_racing_its_enrolment_in_another_worker_waits_for_it(
    keyed: tuple[CentralDb, DataKey],
) -> None:
    """Two ingest workers, two transactions at once: the enrolment carrying T1 has not committed
    when the removal of T1 arrives. The removal waits for it (a lock per template id), then finds
    T1 and withdraws it; without the lock it would miss T1 and the face would go to every station."""
    import threading

    central_db, data_key = keyed
    with central_db.sessions.begin() as db:
        built(db, data_key, "s1", "s2")
    enrolment = EnrolmentIn.model_validate(
        {
            "v": 1, "type": "enrolment", "id": str(uuid.uuid4()), "station_id": "s1", "seq": 7,
            "ts": NOW.isoformat(),
            "member": {"member_id": "m-race", "name": "race", "consent_face": True,
                       "consent_cross_station": True, "consent_at": NOW.isoformat()},
            "templates": [{"template_id": T1, "model": "dlib_resnet_v1", "vector": vector(1)}],
        },
        strict=False,
    )  # fmt: skip
    outcome: list[Any] = []
    with central_db.sessions.begin() as first:
        enrolment_received(first, data_key.templates, station_id="s1", message=enrolment, received_at=NOW)

        def remove() -> None:
            with central_db.sessions.begin() as second:
                outcome.append(receive(second, removal("s1", "m-race", T1, seq=8)))

        racer = threading.Thread(target=remove)
        racer.start()
        racer.join(0.5)  # on SQLite it waits for the writer lock; on PostgreSQL for the template's
    racer.join(30)
    assert not racer.is_alive() and len(outcome) == 1
    assert outcome[0].held, "the removal missed the template its enrolment was storing"
    with central_db.sessions() as db:
        assert db.get(FaceTemplate, T1) is None
        assert {"op": "remove_template", "member_id": "m-race", "template_id": T1} in last_ops(db, "s2")
