"""The alarm rules on plain data: which station events and statuses raise or clear what."""

from __future__ import annotations

import datetime as dt

import pytest

from central.alarms import rules
from central.alarms.rules import (
    Clear,
    ClockJudge,
    EventFacts,
    Raise,
    RefusalWindow,
    RuleSettings,
    StationFacts,
    from_event,
    station_actions,
)
from central.store.tables import ALARM_EVENT_KINDS
from door import controller

T0 = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
SETTINGS = RuleSettings(
    offline_after_s=180, clock_skew_max_s=120, refusals_threshold=5, refusals_window_s=600
)


def event(kind: str, **fields: object) -> EventFacts:
    return EventFacts(id=f"e-{kind}", station_id="haidian-012", kind=kind, ts=T0, **fields)  # type: ignore[arg-type]


def only(actions: list[rules.Action]) -> rules.Action:
    assert len(actions) == 1, actions
    return actions[0]


@pytest.mark.parametrize(
    ("kind", "alarm", "severity"),
    [
        ("emergency", "emergency", "emergency"),
        ("door_forced", "door_forced", "critical"),
        ("door_held_open", "door_held_open", "critical"),
        ("tamper", "tamper", "critical"),
        ("camera_down", "camera_down", "critical"),
        ("lockout", "lockout", "warning"),
    ],
)
def test_alarm_events_raise_with_their_severity(kind: str, alarm: str, severity: str) -> None:
    action = only(from_event(event(kind)))
    assert isinstance(action, Raise)
    assert (action.kind, action.severity, action.station_id) == (alarm, severity, "haidian-012")
    assert action.dedup_key == f"{alarm}:haidian-012" and action.event_id == f"e-{kind}"
    assert action.transition and action.occurred_at == T0


def test_conditions_clear_on_the_opposite_event() -> None:
    up = only(from_event(event("camera_up")))
    closed = only(from_event(event("door_closed_after_held", details={"open_s": 95.2})))
    assert isinstance(up, Clear) and up.dedup_key == "camera_down:haidian-012"
    assert isinstance(closed, Clear) and closed.dedup_key == "door_held_open:haidian-012"
    assert closed.details["open_s"] == 95.2


@pytest.mark.parametrize(
    "kind", ["entry", "exit", "refused", "station_started", "remote_snapshot", "ignored"]
)
def test_ordinary_events_raise_nothing(kind: str) -> None:
    assert from_event(event(kind)) == []


def test_the_station_kinds_the_rules_read_are_the_stations_own_and_the_sweeps_index() -> None:
    door_kinds = set(controller.EVENT_KINDS) - {controller.EXIT}
    assert door_kinds <= rules.EVENT_KINDS
    assert rules.EVENT_KINDS | {rules.EV_REFUSED} == set(ALARM_EVENT_KINDS)


def test_hostile_bus_data_is_refused_not_raised() -> None:
    assert EventFacts.from_mapping({"id": "x", "kind": "emergency"}) is None
    assert EventFacts.from_mapping({"id": 5, "station_id": "s", "kind": "emergency"}) is None
    facts = EventFacts.from_mapping(
        {"id": "e1", "station_id": "s", "kind": "door_held_open", "ts": "not a time", "details": ["x"]}
    )
    assert facts is not None and facts.ts is None and facts.details == {}
    weird = only(from_event(EventFacts("e2", "s", "door_held_open", details={"open_s": float("nan")})))
    assert isinstance(weird, Raise) and weird.details["open_s"] is None


def test_refusals_raise_at_the_threshold_within_the_window_only() -> None:
    window = RefusalWindow(SETTINGS)
    results = [window.add("s1", T0 + dt.timedelta(seconds=100 * i)) for i in range(5)]
    assert results[:4] == [None] * 4
    alarm = results[4]
    assert alarm is not None and alarm.kind == "repeated_refusals" and alarm.details["refusals"] == 5
    assert alarm.quiet_s == 600  # no new alarm right after an acknowledgement
    # Spread out over more than the window, they never reach five at once.
    slow = RefusalWindow(SETTINGS)
    assert all(slow.add("s2", T0 + dt.timedelta(seconds=200 * i)) is None for i in range(20))


def test_refusals_are_counted_per_station_and_lockout_refusals_not_at_all() -> None:
    window = RefusalWindow(SETTINGS)
    for i in range(4):
        assert window.add("a", T0 + dt.timedelta(seconds=i)) is None
        assert window.add("b", T0 + dt.timedelta(seconds=i)) is None
    assert not rules.counts_as_refusal(event("refused", reason="lockout"))
    assert rules.counts_as_refusal(event("refused", reason="unknown_face"))


def station(**changes: object) -> StationFacts:
    values: dict[str, object] = {
        "station_id": "s1",
        "active": True,
        "state": "online",
        "last_seen_at": T0,
        "status_received_at": T0,
        "health": {},
    }
    values.update(changes)
    return StationFacts(**values)  # type: ignore[arg-type]


def kinds(actions: list[rules.Action]) -> set[tuple[str, str]]:
    return {(type(a).__name__, a.kind) for a in actions}


def test_last_will_raises_offline_and_a_fresh_heartbeat_clears_it() -> None:
    offline = station_actions(station(state="offline", health=None), T0, SETTINGS)
    assert kinds(offline) == {("Raise", "station_offline")}
    assert offline[0].details["reason"] == "last_will"
    assert not offline[0].transition  # type: ignore[union-attr]
    online = station_actions(station(), T0 + dt.timedelta(seconds=30), SETTINGS)
    assert ("Clear", "station_offline") in kinds(online)


def test_missed_heartbeats_raise_offline_after_the_configured_silence() -> None:
    quiet = station(last_seen_at=T0)
    assert ("Raise", "station_offline") not in kinds(
        station_actions(quiet, T0 + dt.timedelta(seconds=179), SETTINGS)
    )
    late = station_actions(quiet, T0 + dt.timedelta(seconds=181), SETTINGS)
    assert kinds(late) == {("Raise", "station_offline")}
    assert late[0].details == {"reason": "missed_heartbeats", "last_seen_at": T0.isoformat(), "silent_s": 181}


def test_a_station_ingest_marked_offline_for_silence_is_missed_heartbeats_not_a_last_will() -> None:
    marked = station(state="offline", last_seen_at=T0, status_received_at=T0 + dt.timedelta(seconds=200))
    [action] = station_actions(marked, T0 + dt.timedelta(seconds=200), SETTINGS)
    assert action.details["reason"] == "missed_heartbeats"
    will = station(state="offline", last_seen_at=T0, status_received_at=T0 + dt.timedelta(seconds=95))
    assert station_actions(will, T0 + dt.timedelta(seconds=400), SETTINGS)[0].details["reason"] == "last_will"


def test_stations_not_yet_heard_or_decommissioned_raise_nothing() -> None:
    assert station_actions(station(state="unknown", last_seen_at=None), T0, SETTINGS) == []
    assert station_actions(station(active=False, state="offline"), T0, SETTINGS) == []


def test_health_camera_disk_and_enclosure() -> None:
    health = {
        "camera": {"state": "down", "reason": "open_failed"},
        "disk": {"status": "warn", "detail": "300 MiB free"},
        "door": {"tampered": True},
    }
    actions = {a.kind: a for a in station_actions(station(health=health), T0, SETTINGS)}
    assert (
        isinstance(actions["camera_down"], Raise)
        and actions["camera_down"].details["reason"] == "open_failed"
    )
    assert isinstance(actions["disk_low"], Raise) and actions["disk_low"].severity == "warning"
    assert isinstance(actions["tamper"], Raise)
    failing = {a.kind: a for a in station_actions(station(health={"disk": {"status": "fail"}}), T0, SETTINGS)}
    assert failing["disk_low"].severity == "critical"  # type: ignore[union-attr]
    fine = station_actions(
        station(health={"camera": {"state": "up"}, "disk": {"status": "ok"}, "door": {"tampered": False}}),
        T0,
        SETTINGS,
    )
    assert {("Clear", k) for k in ("camera_down", "disk_low", "tamper", "station_offline")} <= kinds(fine)


def test_health_without_an_opinion_changes_nothing() -> None:
    health = {"camera": {"state": "ended"}, "disk": "garbage", "door": {"tampered": None}, "clock": 5}
    assert kinds(station_actions(station(health=health), T0, SETTINGS)) == {("Clear", "station_offline")}
    offline_with_stale_health = station(state="offline", health={"camera": {"state": "up"}})
    assert kinds(station_actions(offline_with_stale_health, T0, SETTINGS)) == {("Raise", "station_offline")}


def test_a_station_that_says_its_own_clock_failed_raises_clock_wrong() -> None:
    health = {"clock": {"status": "fail", "detail": "system time 1970-01-01 is in the past"}}
    actions = {a.kind: a for a in station_actions(station(health=health), T0, SETTINGS)}
    assert (
        isinstance(actions["clock_wrong"], Raise)
        and actions["clock_wrong"].details["reason"] == "station_check"
    )


def clock(offset_s: float, at: dt.datetime) -> dict[str, str]:
    return {"status": "ok", "station_time": (at + dt.timedelta(seconds=offset_s)).isoformat()}


def test_a_clock_off_is_judged_wrong_on_two_agreeing_heartbeats() -> None:
    judge = ClockJudge(SETTINGS)
    first = T0
    assert judge.observe("s1", first, clock(600, first)) is None  # one measurement proves nothing
    second = first + dt.timedelta(seconds=60)
    verdict = judge.observe("s1", second, clock(600.4, second))
    assert isinstance(verdict, Raise) and verdict.kind == "clock_wrong" and verdict.details["skew_s"] == 600.4
    # The same heartbeat judged again (bus, then sweep) gives the same verdict.
    assert judge.observe("s1", second, clock(600.4, second)) == verdict
    third = second + dt.timedelta(seconds=60)
    assert isinstance(judge.observe("s1", third, clock(1, third)), Clear)


def test_heartbeats_queued_while_the_centre_was_away_do_not_look_like_a_wrong_clock() -> None:
    judge = ClockJudge(SETTINGS)
    arrival = T0
    # An hour of queued heartbeats, sent a minute apart, arriving within a second of each other...
    for n in range(60):
        sent = arrival - dt.timedelta(seconds=3600 - 60 * n)
        received = arrival + dt.timedelta(milliseconds=10 * n)
        verdict = judge.observe("s1", received, {"station_time": sent.isoformat()})
        assert not isinstance(verdict, Raise)
    # ... and a slow ingest spreading them over minutes: they still disagree with each other.
    slow = ClockJudge(SETTINGS)
    for n in range(10):
        sent = arrival - dt.timedelta(seconds=3600 - 60 * n)
        received = arrival + dt.timedelta(seconds=30 * n)
        assert not isinstance(slow.observe("s2", received, {"station_time": sent.isoformat()}), Raise)


def test_a_clock_behind_is_wrong_too_and_nonsense_is_ignored() -> None:
    judge = ClockJudge(SETTINGS)
    judge.observe("s1", T0, clock(-900, T0))
    later = T0 + dt.timedelta(seconds=60)
    assert isinstance(judge.observe("s1", later, clock(-899, later)), Raise)
    assert judge.observe("s1", later + dt.timedelta(seconds=60), {"station_time": "yesterday"}) is None
    assert judge.observe("s1", later, None) is None


def test_most_of_the_fleet_silent_at_once_is_one_alarm() -> None:
    now = T0 + dt.timedelta(seconds=600)
    fleet = [station(station_id=f"s{i}", last_seen_at=T0) for i in range(8)]
    fleet += [station(station_id="fresh", last_seen_at=now)]
    alarm = rules.fleet_silent(fleet, now, SETTINGS)
    assert alarm is not None and alarm.kind == "fleet_silent" and alarm.station_id is None
    assert alarm.details["silent"] == 8 and alarm.dedup_key == "fleet_silent:*"
    few = [station(station_id=f"s{i}", last_seen_at=T0) for i in range(3)]
    assert rules.fleet_silent(few, now, SETTINGS) is None  # three stations down are three alarms
    mostly_fine = fleet[:2] + [station(station_id=f"ok{i}", last_seen_at=now) for i in range(10)]
    assert rules.fleet_silent(mostly_fine, now, SETTINGS) is None
    # Ingest may already have marked them offline for the silence: still one fleet alarm.
    marked = [
        station(station_id=f"m{i}", state="offline", last_seen_at=T0, status_received_at=now)
        for i in range(6)
    ]
    alarm = rules.fleet_silent(marked, now, SETTINGS)
    assert alarm is not None and alarm.details["silent"] == 6
