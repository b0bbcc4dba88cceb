"""The alarm engine on both databases: the live bus, the crash-proof sweep, dedup and clearing."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from alarm_support import T0, Clock, add_station, heartbeat, store_event
from central_fixtures import CentralDb
from sqlalchemy import func, select, update

from central import live
from central.alarms.engine import AlarmEngine
from central.config import AlarmsConfig
from central.live import LiveBus, LiveMessage
from central.store import alarms as alarm_store
from central.store.tables import Alarm, AlarmDelivery, AlarmEvent, Station

CONFIG = AlarmsConfig(offline_after_s=180, refusals_per_10min=5, sweep_interval_s=600)


def make_engine(db: CentralDb, clock: Clock, config: AlarmsConfig = CONFIG) -> tuple[AlarmEngine, LiveBus]:
    bus = LiveBus()
    engine = AlarmEngine(db.sessions, bus, config, clock=clock)
    engine._started_at = clock() - dt.timedelta(hours=1)  # listening for a while (see the grace test)
    engine._watermark = clock() - dt.timedelta(hours=1)
    return engine, bus


def bus_event(data: dict[str, Any]) -> LiveMessage:
    return LiveMessage(live.EVENT, data, station_id=data["station_id"])


def alarms(db: CentralDb, **where: Any) -> list[Alarm]:
    with db.sessions.begin() as session:
        query = select(Alarm).order_by(Alarm.id)
        for key, value in where.items():
            query = query.where(getattr(Alarm, key) == value)
        return list(session.scalars(query).all())


def fanouts(db: CentralDb) -> list[tuple[int, str]]:
    with db.sessions.begin() as session:
        rows = session.execute(
            select(AlarmDelivery.alarm_id, AlarmDelivery.purpose)
            .where(AlarmDelivery.channel == "fanout")
            .order_by(AlarmDelivery.id)
        )
        return [(int(a), str(p)) for a, p in rows]


def test_an_emergency_on_the_bus_raises_an_alarm_published_on_the_bus(central_db: CentralDb) -> None:
    clock = Clock()
    add_station(central_db.sessions, "s1")
    engine, bus = make_engine(central_db, clock)
    watcher = bus.subscribe({live.ALARM})
    data = store_event(central_db.sessions, "s1", "emergency", ts=T0, method="emergency_button")
    engine.handle(bus_event(data))
    [alarm] = alarms(central_db)
    assert (alarm.kind, alarm.severity, alarm.state, alarm.station_id, alarm.district_id) == (
        "emergency",
        "emergency",
        "open",
        "s1",
        "haidian",
    )
    assert alarm.event_id == data["id"] and alarm.dedup_key == "emergency:s1"
    message = watcher.get(timeout=5)
    assert message is not None and message.data["id"] == alarm.id and message.data["change"] == "raised"
    assert message.district == "haidian" and message.data["state"] == "open"
    assert fanouts(central_db) == [(alarm.id, "raised")]


def test_the_same_event_twice_and_the_sweep_after_the_bus_raise_once(central_db: CentralDb) -> None:
    clock = Clock()
    add_station(central_db.sessions, "s1")
    engine, _ = make_engine(central_db, clock)
    data = store_event(central_db.sessions, "s1", "door_forced", ts=T0)
    engine.handle(bus_event(data))
    engine.handle(bus_event(data))
    engine.sweep()
    [alarm] = alarms(central_db)
    assert alarm.details["repeats"] == 0
    with central_db.sessions.begin() as session:
        assert session.scalar(select(func.count()).select_from(AlarmEvent)) == 1


def test_an_event_committed_but_never_published_is_raised_by_the_sweep(central_db: CentralDb) -> None:
    clock = Clock()
    add_station(central_db.sessions, "s1")
    # Committed, then the process died before publishing: only the database knows.
    store_event(central_db.sessions, "s1", "tamper", ts=T0 - dt.timedelta(minutes=30))
    engine, _ = make_engine(central_db, clock)
    engine.sweep()
    [alarm] = alarms(central_db)
    assert alarm.kind == "tamper" and engine.stats.swept_events == 1


def test_a_restarted_engine_looks_back_and_finds_what_it_missed(central_db: CentralDb) -> None:
    clock = Clock()
    add_station(central_db.sessions, "s1")
    store_event(central_db.sessions, "s1", "emergency", ts=T0 - dt.timedelta(hours=3))
    store_event(central_db.sessions, "s1", "door_held_open", ts=T0 - dt.timedelta(days=3))  # too old
    engine = AlarmEngine(
        central_db.sessions, LiveBus(), CONFIG.model_copy(update={"sweep_lookback_s": 86400}), clock=clock
    )
    engine.start()
    try:
        deadline = time.monotonic() + 30
        while not alarms(central_db) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        engine.stop()
    assert [a.kind for a in alarms(central_db)] == ["emergency"]


def test_more_presses_count_on_the_open_alarm_and_after_the_ack_raise_a_new_one(
    central_db: CentralDb,
) -> None:
    clock = Clock()
    add_station(central_db.sessions, "s1")
    engine, _ = make_engine(central_db, clock)
    for n in range(3):
        engine.handle(
            bus_event(store_event(central_db.sessions, "s1", "emergency", ts=T0 + dt.timedelta(seconds=n)))
        )
    [alarm] = alarms(central_db)
    assert alarm.details["repeats"] == 2 and alarm.details["last_event_id"]
    with central_db.sessions.begin() as session:
        alarm_store.acknowledge(
            session, alarm_id=alarm.id, staff_id=None, note="called the station", now=clock()
        )
    engine.handle(
        bus_event(store_event(central_db.sessions, "s1", "emergency", ts=T0 + dt.timedelta(minutes=5)))
    )
    first, second = alarms(central_db)
    assert first.state == "acknowledged" and second.state == "open" and second.id != first.id
    assert [p for _, p in fanouts(central_db)] == ["raised", "raised"]


def test_a_condition_clears_stays_open_and_comes_back_on_the_same_alarm(central_db: CentralDb) -> None:
    clock = Clock()
    add_station(central_db.sessions, "s1")
    engine, _ = make_engine(central_db, clock)
    engine.handle(
        bus_event(store_event(central_db.sessions, "s1", "camera_down", ts=T0, reason="read_failed"))
    )
    clock.advance(60)
    engine.handle(
        bus_event(store_event(central_db.sessions, "s1", "camera_up", ts=T0 + dt.timedelta(seconds=60)))
    )
    [alarm] = alarms(central_db)
    assert alarm.state == "open" and alarm.cleared_at == clock()
    assert alarm.details["cleared"]["event_kind"] == "camera_up"
    clock.advance(60)
    engine.handle(
        bus_event(store_event(central_db.sessions, "s1", "camera_down", ts=T0 + dt.timedelta(seconds=120)))
    )
    [alarm] = alarms(central_db)
    assert alarm.cleared_at is None and alarm.details["occurrences"] == 2
    assert [p for _, p in fanouts(central_db)] == ["raised", "cleared", "again"]


def test_missed_heartbeats_raise_offline_and_a_heartbeat_clears_it(central_db: CentralDb) -> None:
    clock = Clock()
    add_station(central_db.sessions, "s1")
    add_station(central_db.sessions, "new")  # never heard from: nothing expected of it
    heartbeat(central_db.sessions, "s1", at=clock())
    engine, bus = make_engine(central_db, clock)
    engine.sweep()
    assert alarms(central_db) == []
    clock.advance(181)
    engine.sweep()
    [alarm] = alarms(central_db)
    assert (alarm.kind, alarm.details["reason"]) == ("station_offline", "missed_heartbeats")
    engine.sweep()  # still silent: the same alarm, nothing written
    assert len(alarms(central_db)) == 1 and alarms(central_db)[0].details["repeats"] == 0
    clock.advance(10)
    heartbeat(central_db.sessions, "s1", at=clock())
    engine.handle(LiveMessage(live.STATUS, {"station_id": "s1", "state": "online"}, station_id="s1"))
    [alarm] = alarms(central_db)
    assert alarm.cleared_at is not None and alarm.state == "open"


def test_the_last_will_raises_offline_on_the_status_notice(central_db: CentralDb) -> None:
    clock = Clock()
    add_station(central_db.sessions, "s1")
    engine, _ = make_engine(central_db, clock)
    heartbeat(central_db.sessions, "s1", at=clock(), state="offline")
    engine.handle(LiveMessage(live.STATUS, {"station_id": "s1", "state": "offline"}, station_id="s1"))
    [alarm] = alarms(central_db)
    assert alarm.kind == "station_offline" and alarm.details["reason"] == "last_will"


def test_an_acknowledged_condition_is_not_raised_again_by_every_heartbeat(central_db: CentralDb) -> None:
    clock = Clock()
    add_station(central_db.sessions, "s1")
    engine, _ = make_engine(central_db, clock)
    disk = {"camera": {"state": "up"}, "disk": {"status": "warn", "detail": "300 MiB free"}}
    heartbeat(central_db.sessions, "s1", at=clock(), health=disk)
    engine.check_stations(["s1"])
    [alarm] = alarms(central_db)
    with central_db.sessions.begin() as session:
        alarm_store.acknowledge(session, alarm_id=alarm.id, staff_id=None, note="disk ordered", now=clock())
    for _ in range(3):
        clock.advance(60)
        heartbeat(central_db.sessions, "s1", at=clock(), health=disk)
        engine.check_stations(["s1"])
    assert len(alarms(central_db)) == 1
    # Worse now: the disk is failing. A new, critical alarm.
    heartbeat(central_db.sessions, "s1", at=clock(), health={"disk": {"status": "fail"}})
    engine.check_stations(["s1"])
    first, second = alarms(central_db)
    assert second.state == "open" and second.severity == "critical" and first.cleared_at is not None


def test_disk_warn_then_fail_escalates_the_open_alarm(central_db: CentralDb) -> None:
    clock = Clock()
    add_station(central_db.sessions, "s1")
    engine, _ = make_engine(central_db, clock)
    heartbeat(central_db.sessions, "s1", at=clock(), health={"disk": {"status": "warn"}})
    engine.check_stations(None)
    heartbeat(central_db.sessions, "s1", at=clock(), health={"disk": {"status": "fail"}})
    engine.check_stations(None)
    [alarm] = alarms(central_db)
    assert alarm.severity == "critical"
    assert [p for _, p in fanouts(central_db)] == ["raised", "escalated"]


def test_refusals_raise_one_alarm_from_the_bus_or_from_the_sweep(central_db: CentralDb) -> None:
    clock = Clock()
    add_station(central_db.sessions, "s1")
    add_station(central_db.sessions, "s2")
    engine, _ = make_engine(central_db, clock)
    for n in range(7):
        data = store_event(
            central_db.sessions, "s1", "refused", ts=T0 + dt.timedelta(seconds=n), reason="unknown_face"
        )
        engine.handle(bus_event(data))
    for n in range(6):  # s2's refusals never reached the bus
        store_event(
            central_db.sessions, "s2", "refused", ts=T0 + dt.timedelta(seconds=n), reason="bad_signature"
        )
    for n in range(9):  # the door refusing everyone during a lockout is not probing
        store_event(central_db.sessions, "s2", "refused", ts=T0 + dt.timedelta(seconds=n), reason="lockout")
    engine.sweep()
    engine.sweep()
    found = {(a.station_id, a.kind): a for a in alarms(central_db)}
    assert set(found) == {("s1", "repeated_refusals"), ("s2", "repeated_refusals")}
    assert found[("s2", "repeated_refusals")].details["refusals"] == 6
    with central_db.sessions.begin() as session:
        for alarm in found.values():
            alarm_store.acknowledge(session, alarm_id=alarm.id, staff_id=None, note="looked", now=clock())
    engine.handle(
        bus_event(store_event(central_db.sessions, "s1", "refused", ts=T0 + dt.timedelta(seconds=30)))
    )
    engine.sweep()
    assert len(alarms(central_db)) == 2  # quiet for the window after one was raised


def test_a_silent_fleet_is_one_alarm_not_one_per_station(central_db: CentralDb) -> None:
    clock = Clock()
    for n in range(6):
        add_station(central_db.sessions, f"s{n}")
        heartbeat(central_db.sessions, f"s{n}", at=clock())
    engine, _ = make_engine(central_db, clock)
    clock.advance(600)  # the broker died: nobody is heard
    engine.sweep()
    [alarm] = alarms(central_db)
    assert alarm.kind == "fleet_silent" and alarm.station_id is None and alarm.details["silent"] == 6
    for n in range(6):
        heartbeat(central_db.sessions, f"s{n}", at=clock())
    engine.sweep()
    [alarm] = alarms(central_db)
    assert alarm.cleared_at is not None


def test_right_after_a_restart_old_heartbeats_are_not_missed_heartbeats(central_db: CentralDb) -> None:
    clock = Clock()
    add_station(central_db.sessions, "s1")
    heartbeat(central_db.sessions, "s1", at=clock() - dt.timedelta(hours=2))
    engine = AlarmEngine(central_db.sessions, LiveBus(), CONFIG, clock=clock)
    engine._started_at = clock()
    engine.sweep()
    assert alarms(central_db) == []  # the centre itself was away: give stations time to report
    clock.advance(181)
    engine.sweep()
    assert [a.kind for a in alarms(central_db)] == ["station_offline"]


def test_stations_ingest_marked_offline_while_the_centre_was_down_wait_for_the_grace(
    central_db: CentralDb,
) -> None:
    clock = Clock()
    add_station(central_db.sessions, "s1")
    heartbeat(central_db.sessions, "s1", at=clock() - dt.timedelta(hours=2))
    with central_db.sessions.begin() as session:  # what ingest's housekeeping does to a silent row
        session.execute(
            update(Station)
            .where(Station.station_id == "s1")
            .values(last_state="offline", last_status_at=clock())
        )
    engine = AlarmEngine(central_db.sessions, LiveBus(), CONFIG, clock=clock)
    engine._started_at = clock()
    engine.sweep()
    assert alarms(central_db) == []
    clock.advance(181)
    engine.sweep()
    [alarm] = alarms(central_db)
    assert alarm.details["reason"] == "missed_heartbeats"


def test_concurrent_raises_of_one_key_make_one_alarm(central_db: CentralDb) -> None:
    clock = Clock()
    add_station(central_db.sessions, "s1")
    engines = [make_engine(central_db, clock)[0] for _ in range(4)]
    events = [
        store_event(central_db.sessions, "s1", "door_forced", ts=T0 + dt.timedelta(seconds=n))
        for n in range(4)
    ]
    errors: list[BaseException] = []

    def run(engine: AlarmEngine, data: dict[str, Any]) -> None:
        try:
            engine.handle(bus_event(data))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=pair) for pair in zip(engines, events, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    [alarm] = alarms(central_db)
    assert alarm.details["repeats"] == 3


def test_hostile_bus_messages_change_nothing_and_do_not_stop_the_engine(central_db: CentralDb) -> None:
    clock = Clock()
    add_station(central_db.sessions, "s1")
    bus = LiveBus()
    engine = AlarmEngine(central_db.sessions, bus, CONFIG, clock=clock)
    engine.start()
    try:
        for data in (
            {},
            {"id": None, "station_id": "s1", "kind": "emergency"},
            {"id": "x" * 5000, "station_id": "s1", "kind": "emergency"},  # too long for the column
            {"id": "e", "station_id": ["s1"], "kind": "emergency"},
        ):
            bus.publish(live.EVENT, data, station_id="s1")
        bus.publish(live.STATUS, {"station_id": 7})
        good = store_event(central_db.sessions, "s1", "emergency", ts=T0)
        bus.publish(live.EVENT, good, station_id="s1")
        deadline = time.monotonic() + 30
        while not alarms(central_db) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        engine.stop()
    [alarm] = alarms(central_db)
    assert alarm.event_id == good["id"]


@pytest.mark.parametrize("kind", ["entry", "exit", "station_started"])
def test_ordinary_events_write_nothing(central_db: CentralDb, kind: str) -> None:
    clock = Clock()
    add_station(central_db.sessions, "s1")
    engine, _ = make_engine(central_db, clock)
    engine.handle(bus_event(store_event(central_db.sessions, "s1", kind, ts=T0)))
    engine.sweep()
    with central_db.sessions.begin() as session:
        assert session.scalar(select(func.count()).select_from(AlarmEvent)) == 0
    assert alarms(central_db) == []
