"""May this member open this station's door from their phone, now? Pure: facts in, a verdict out.

The station runs a remote `open` without second-guessing it (the centre's signature is the
credential), so every check a face or a pass would meet at the door happens here first: the
member's status and validity, the station's groups and opening hours, a cooldown, the rate limits,
and, for stations that ask for it, the phone's reported position. That last one is a deterrent
only: a browser reports whatever position the phone (or a developer tool) claims, so it stops a
worker opening from across town by mistake, not someone determined (docs/PHONE.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from central.phone.geo import Point, distance_m

#: Stable reason codes (the page translates them).
MEMBER_PENDING = "member_pending"
MEMBER_SUSPENDED = "member_suspended"
NOT_YET_VALID = "not_yet_valid"
MEMBER_EXPIRED = "member_expired"
STATION_OUT_OF_SERVICE = "station_out_of_service"
NOT_ALLOWED_HERE = "not_allowed_here"
STATION_CLOSED = "station_closed"
LOCATION_REQUIRED = "location_required"
TOO_FAR = "too_far"
COOLDOWN = "cooldown"
RATE_LIMITED = "rate_limited"
STATION_OFFLINE = "station_offline"


@dataclass(frozen=True, slots=True)
class OpenFacts:
    now: dt.datetime
    member_status: str
    member_valid_from: dt.datetime | None
    member_valid_until: dt.datetime | None
    member_groups: Sequence[str]
    station_active: bool
    station_groups: Sequence[str]
    station_open_now: bool
    station_opens_at: dt.datetime | None
    #: online / offline / unknown (the latest status ingest stored). Only an online station is
    #: sent the command: one never heard from, or gone, gets the pass instead.
    station_state: str
    station_point: Point | None
    require_location_m: int | None
    phone_point: Point | None
    seconds_since_last_open: float | None
    cooldown_s: float
    member_opens_10min: int
    member_limit_10min: int
    address_opens_10min: int
    address_limit_10min: int


@dataclass(frozen=True, slots=True)
class OpenVerdict:
    allowed: bool
    reason: str | None = None
    detail: str = ""
    distance_m: float | None = None
    retry_after_s: float | None = None
    #: Refusals that are not recorded (so a flood cannot fill the table that counts it).
    counted: bool = True


def decide_open(f: OpenFacts) -> OpenVerdict:
    """The verdict; `allowed` means: send the door the signed command now."""
    if f.address_opens_10min >= f.address_limit_10min:
        return OpenVerdict(False, RATE_LIMITED, "too many requests from this address", None, 600.0, False)
    if f.member_opens_10min >= f.member_limit_10min:
        return OpenVerdict(False, RATE_LIMITED, "too many requests from this member", None, 600.0, False)
    if f.member_status == "pending":
        return OpenVerdict(False, MEMBER_PENDING, "the registration waits for staff approval")
    if f.member_status != "active":
        return OpenVerdict(False, MEMBER_SUSPENDED, "the membership is suspended")
    if f.member_valid_from is not None and f.now < f.member_valid_from:
        return OpenVerdict(False, NOT_YET_VALID, f"valid from {f.member_valid_from.isoformat()}")
    if f.member_valid_until is not None and f.now >= f.member_valid_until:
        return OpenVerdict(False, MEMBER_EXPIRED, f"valid until {f.member_valid_until.isoformat()}")
    if not f.station_active:
        return OpenVerdict(False, STATION_OUT_OF_SERVICE, "the station is out of service")
    if f.station_groups and not set(f.station_groups) & set(f.member_groups):
        return OpenVerdict(False, NOT_ALLOWED_HERE, "this station is for other groups")
    if not f.station_open_now:
        opens = f" (opens {f.station_opens_at.isoformat()})" if f.station_opens_at else ""
        return OpenVerdict(False, STATION_CLOSED, f"the station is closed now{opens}")
    distance = None
    if f.phone_point is not None and f.station_point is not None:
        distance = round(distance_m(f.phone_point, f.station_point), 1)
    if f.require_location_m is not None and f.station_point is not None:
        if f.phone_point is None:
            return OpenVerdict(False, LOCATION_REQUIRED, "this station needs the phone's location to open")
        assert distance is not None
        if distance > f.require_location_m:
            return OpenVerdict(
                False, TOO_FAR, f"{distance:.0f} m away; within {f.require_location_m} m needed", distance
            )
    if f.seconds_since_last_open is not None and f.seconds_since_last_open < f.cooldown_s:
        wait = f.cooldown_s - f.seconds_since_last_open
        return OpenVerdict(False, COOLDOWN, f"opened just now: wait {wait:.0f} s", distance, wait)
    if f.station_state != "online":
        return OpenVerdict(False, STATION_OFFLINE, "the station is not connected now", distance)
    return OpenVerdict(True, None, "", distance)
