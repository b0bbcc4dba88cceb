"""The pure rules of opening a door from a phone (central.phone.open_rules), edge by edge."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from central.phone.geo import Point
from central.phone.open_rules import OpenFacts, decide_open

NOW = dt.datetime(2026, 11, 24, 4, 0, tzinfo=dt.UTC)
ALLOWED = OpenFacts(
    now=NOW,
    member_status="active",
    member_valid_from=None,
    member_valid_until=None,
    member_groups=["sanitation"],
    station_active=True,
    station_groups=[],
    station_open_now=True,
    station_opens_at=None,
    station_state="online",
    station_point=Point(39.9, 116.4),
    require_location_m=None,
    phone_point=None,
    seconds_since_last_open=None,
    cooldown_s=10.0,
    member_opens_10min=0,
    member_limit_10min=10,
    address_opens_10min=0,
    address_limit_10min=60,
)


def verdict(**changes: object) -> tuple[bool, str | None]:
    result = decide_open(dataclasses.replace(ALLOWED, **changes))  # type: ignore[arg-type]
    return result.allowed, result.reason


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, (True, None)),
        ({"member_status": "pending"}, (False, "member_pending")),
        ({"member_status": "suspended"}, (False, "member_suspended")),
        ({"member_valid_from": NOW + dt.timedelta(seconds=1)}, (False, "not_yet_valid")),
        ({"member_valid_until": NOW}, (False, "member_expired")),
        ({"member_valid_until": NOW + dt.timedelta(seconds=1)}, (True, None)),
        ({"station_active": False}, (False, "station_out_of_service")),
        ({"station_groups": ["couriers"]}, (False, "not_allowed_here")),
        ({"station_groups": ["couriers", "sanitation"]}, (True, None)),
        ({"station_open_now": False}, (False, "station_closed")),
        ({"station_state": "unknown"}, (False, "station_offline")),  # never heard from: no command
        ({"station_state": "offline"}, (False, "station_offline")),
        ({"seconds_since_last_open": 9.9}, (False, "cooldown")),
        ({"seconds_since_last_open": 10.0}, (True, None)),
        ({"require_location_m": 100}, (False, "location_required")),
        ({"require_location_m": 100, "phone_point": Point(39.9005, 116.4)}, (True, None)),  # ~56 m
        ({"require_location_m": 50, "phone_point": Point(39.9005, 116.4)}, (False, "too_far")),
        ({"require_location_m": 100, "station_point": None}, (True, None)),  # no coordinates: no check
        ({"member_opens_10min": 10}, (False, "rate_limited")),
        ({"address_opens_10min": 60}, (False, "rate_limited")),
        ({"member_status": "suspended", "address_opens_10min": 60}, (False, "rate_limited")),  # brakes first
    ],
)
def test_rules(changes: dict[str, object], expected: tuple[bool, str | None]) -> None:
    assert verdict(**changes) == expected


def test_rate_limits_are_not_recorded_and_say_when_to_retry() -> None:
    limited = decide_open(dataclasses.replace(ALLOWED, member_opens_10min=10))
    assert not limited.counted and limited.retry_after_s == 600.0
    cooling = decide_open(dataclasses.replace(ALLOWED, seconds_since_last_open=4.0))
    assert cooling.counted and cooling.retry_after_s == pytest.approx(6.0)
    near = decide_open(dataclasses.replace(ALLOWED, phone_point=Point(39.9005, 116.4)))
    assert near.allowed and near.distance_m == pytest.approx(55.6, abs=0.5)
