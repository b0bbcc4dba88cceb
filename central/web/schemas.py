"""Response models shared by several routers (one place for how a station or member looks in JSON)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from central.phone.geo import Point, distance_m, navigation_links, wgs84_to_bd09, wgs84_to_gcj02
from central.store import stations as station_store
from central.store.tables import Event, Member, Station


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


class StationOut(PublicStation):
    """A station as staff see it: the directory entry plus groups and health."""

    allowed_groups: list[str]
    active: bool
    state: str
    last_seen_at: dt.datetime | None
    applied_version: int | None
    issued_version: int

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
