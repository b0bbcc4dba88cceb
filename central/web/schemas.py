"""Response models shared by several routers (one place for how a station or member looks in JSON)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from central.phone.geo import Point, distance_m, navigation_links, wgs84_to_bd09, wgs84_to_gcj02
from central.snapshot_files import SNAPSHOT_URL
from central.store import stations as station_store
from central.store.tables import Event, Member, Station
from central.store.visits import station_timezone


class Contact(BaseModel):
    name: str | None
    phone: str | None


class PublicStation(BaseModel):
    """A station in the public directory (issue 11): what a worker needs to find an open one."""

    station_id: str
    name: str
    district_id: str
    address: str | None
    latitude: float | None
    longitude: float | None
    open_now: bool
    hours: dict[str, Any]
    services: list[str]
    contact: Contact

    @classmethod
    def of(cls, station: Station, now: dt.datetime) -> PublicStation:
        return cls(
            station_id=station.station_id,
            name=station.name,
            district_id=station.district_id,
            address=station.address,
            latitude=station.latitude,
            longitude=station.longitude,
            open_now=station_store.is_open(station, now),
            hours=station.schedule,
            services=list(station.services),
            contact=Contact(name=station.contact_name, phone=station.contact_phone),
        )


class MapPoint(BaseModel):
    lat: float
    lon: float


class NavLinks(BaseModel):
    app: str = Field(description="The app's URI scheme (opens the installed app).")
    web: str = Field(description="The vendor's https page (works in any browser, WeChat's too).")


class DirectoryStation(PublicStation):
    """A station in the public directory with what a phone needs to get there."""

    gcj02: MapPoint | None = Field(
        description="The position in GCJ-02 (Amap, Tencent); WGS-84 is latitude/longitude."
    )
    bd09: MapPoint | None = Field(description="The position in BD-09 (Baidu).")
    distance_m: float | None = Field(description="From the lat/lon given (WGS-84), when given.")
    nav: dict[str, NavLinks] = Field(description="amap / baidu / tencent: links in each app's datum.")

    @classmethod
    def of(cls, station: Station, now: dt.datetime, here: Point | None = None) -> DirectoryStation:
        base = PublicStation.of(station, now).model_dump()
        if station.latitude is None or station.longitude is None:
            return cls(**base, gcj02=None, bd09=None, distance_m=None, nav={})
        point = Point(station.latitude, station.longitude)
        gcj, bd = wgs84_to_gcj02(point), wgs84_to_bd09(point)
        links = navigation_links(point, station.name, station.address)
        return cls(
            **base,
            gcj02=MapPoint(lat=round(gcj.lat, 7), lon=round(gcj.lon, 7)),
            bd09=MapPoint(lat=round(bd.lat, 7), lon=round(bd.lon, 7)),
            distance_m=round(distance_m(here, point), 1) if here is not None else None,
            nav={name: NavLinks(app=link.app, web=link.web) for name, link in links.items()},
        )


def _pick(health: Any, *path: str) -> Any:
    """health[path...] when every step is a JSON object, else None (station data is untrusted)."""
    value = health
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _text(value: Any, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return None
    return float(value)


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


class StationHealth(BaseModel):
    """The station's last heartbeat, summarised (docs/mqtt.md "status"); None where it said nothing.

    `clock_skew_s` is the station's clock minus the centre's when the heartbeat arrived (positive:
    the station is ahead). `roster_behind` is how many roster versions the station has not applied.
    """

    heartbeat_age_s: float | None
    camera: str | None
    camera_fps: float | None
    disk: str | None
    disk_detail: str | None
    clock: str | None
    clock_skew_s: float | None
    outbox_depth: int | None
    outbox_oldest_age_s: float | None
    door_open: bool | None
    door_alarm: bool | None
    tampered: bool | None
    roster_version: int | None
    roster_behind: int | None
    face_model: str | None

    @classmethod
    def of(cls, station: Station, now: dt.datetime) -> StationHealth:
        health = station.last_health if isinstance(station.last_health, dict) else {}
        station_time = _parse_time(_pick(health, "clock", "station_time"))
        skew = (
            (station_time - station.last_status_at).total_seconds()
            if station_time is not None and station.last_status_at is not None
            else None
        )
        depth = _number(health.get("outbox_depth"))
        applied = station.applied_version
        door = _pick(health, "door")

        def flag(key: str) -> bool | None:
            value = _pick(door, key)
            return value if isinstance(value, bool) else None

        return cls(
            heartbeat_age_s=(
                round((now - station.last_seen_at).total_seconds(), 1) if station.last_seen_at else None
            ),
            camera=_text(_pick(health, "camera", "state"), 16),
            camera_fps=_number(_pick(health, "camera", "fps")),
            disk=_text(_pick(health, "disk", "status"), 16),
            disk_detail=_text(_pick(health, "disk", "detail")),
            clock=_text(_pick(health, "clock", "status"), 16),
            clock_skew_s=round(skew, 1) if skew is not None else None,
            outbox_depth=int(depth) if depth is not None else None,
            outbox_oldest_age_s=_number(health.get("outbox_oldest_age_s")),
            door_open=flag("door_open"),
            door_alarm=flag("alarm"),
            tampered=flag("tampered"),
            roster_version=applied,
            roster_behind=(station.issued_version - applied) if applied is not None else None,
            face_model=_text(_pick(health, "face_model", "name"), 64),
        )


class StationOut(PublicStation):
    """A station as staff see it: the directory entry plus groups and health."""

    allowed_groups: list[str]
    active: bool
    state: str
    last_seen_at: dt.datetime | None
    applied_version: int | None
    issued_version: int
    timezone: str
    health: StationHealth

    @classmethod
    def of(cls, station: Station, now: dt.datetime) -> StationOut:
        return cls(
            **PublicStation.of(station, now).model_dump(),
            allowed_groups=list(station.allowed_groups),
            active=station.active,
            state=station.last_state,
            last_seen_at=station.last_seen_at,
            applied_version=station.applied_version,
            issued_version=station.issued_version,
            timezone=station_timezone(station),
            health=StationHealth.of(station, now),
        )


class MemberOut(BaseModel):
    member_id: str
    name: str
    phone: str | None
    kind: str | None
    employer: str | None
    groups: list[str]
    status: str
    valid_from: dt.datetime | None
    valid_until: dt.datetime | None
    consent_face: bool
    consent_cross_station: bool
    home_station_id: str | None
    templates: int

    @classmethod
    def of(cls, member: Member, templates: int) -> MemberOut:
        return cls(
            member_id=member.member_id,
            name=member.name,
            phone=member.phone,
            kind=member.kind,
            employer=member.employer,
            groups=list(member.groups),
            status=member.status,
            valid_from=member.valid_from,
            valid_until=member.valid_until,
            consent_face=member.consent_face,
            consent_cross_station=member.consent_cross_station,
            home_station_id=member.home_station_id,
            templates=templates,
        )


class EventOut(BaseModel):
    id: str
    station_id: str
    ts: dt.datetime
    kind: str
    method: str | None
    member_id: str | None
    reason: str | None
    latency_ms: float | None
    snapshot: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, event: Event) -> EventOut:
        return cls(
            id=event.id,
            station_id=event.station_id,
            ts=event.ts,
            kind=event.kind,
            method=event.method,
            member_id=event.member_id,
            reason=event.reason,
            latency_ms=event.latency_ms,
            snapshot=event.snapshot,
            details=event.details,
        )


class EventView(EventOut):
    """An event as the dashboard shows it: with the station's and member's names, whether the door
    opened, and where its snapshot is (`snapshot_state`: none / pending (the station has one, it
    has not arrived) / ok / expired (retention removed it))."""

    district_id: str | None
    station_name: str | None
    member_name: str | None
    granted: bool
    received_at: dt.datetime | None
    snapshot_state: str
    snapshot_url: str | None


GRANTED_KINDS = frozenset({"entry", "exit"})


def snapshot_url(event_id: str) -> str:
    return SNAPSHOT_URL.format(event_id=event_id)
