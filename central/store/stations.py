"""Stations and districts: keyword-only functions on a `Session` (the caller commits)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.store import checks
from central.store.tables import District, Station
from common.errors import ValidationError
from contract.schedule import ScheduleConfig

MAX_SERVICES = 32


class StationExistsError(ValidationError):
    """A station with that id is already registered."""


def ensure_district(session: Session, *, district_id: str, name: str | None = None) -> District:
    """The district, created (named after its id unless `name` is given) when it does not exist."""
    checks.identifier(district_id, "district")
    district = session.get(District, district_id)
    if district is None:
        district = District(
            district_id=district_id, name=checks.text(name or district_id, "district name", 200)
        )
        session.add(district)
        session.flush()
    return district


def parse_schedule(schedule: object) -> ScheduleConfig:
    """Opening hours in the contract's `[schedule]` shape, or `ValidationError` saying what is wrong."""
    if isinstance(schedule, ScheduleConfig):
        return schedule
    try:
        return ScheduleConfig.model_validate(schedule)
    except PydanticValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'schedule'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ValidationError(f"opening hours refused: {problems}") from None


def _coordinates(latitude: float | None, longitude: float | None) -> tuple[float | None, float | None]:
    if (latitude is None) != (longitude is None):
        raise ValidationError("latitude and longitude go together (WGS-84 degrees)")
    if latitude is None or longitude is None:
        return None, None
    for value, field, bound in ((latitude, "latitude", 90.0), (longitude, "longitude", 180.0)):
        if not isinstance(value, int | float) or isinstance(value, bool) or not -bound <= value <= bound:
            raise ValidationError(f"{field} must be a number of degrees between -{bound:g} and {bound:g}")
    return float(latitude), float(longitude)


def add_station(
    session: Session,
    *,
    station_id: str,
    name: str,
    district_id: str,
    address: str | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
    schedule: ScheduleConfig | dict[str, Any] | None = None,
    services: Iterable[str] = (),
    contact_name: str | None = None,
    contact_phone: str | None = None,
    allowed_groups: Iterable[str] = (),
) -> Station:
    """Register a station (its district is created if new). `StationExistsError` if the id is taken."""
    checks.identifier(station_id, "station id")
    if session.get(Station, station_id) is not None:
        raise StationExistsError(f"station {station_id!r} already exists")
    lat, lon = _coordinates(latitude, longitude)
    hours = parse_schedule(schedule if schedule is not None else {})
    ensure_district(session, district_id=district_id)
    station = Station(
        station_id=station_id,
        name=checks.text(name, "name", 200),
        district_id=district_id,
        address=checks.text(address, "address", 300, optional=True),
        latitude=lat,
        longitude=lon,
        schedule=hours.model_dump(mode="json"),
        services=checks.names(services, "services", max_items=MAX_SERVICES),
        contact_name=checks.text(contact_name, "contact name", 100, optional=True),
        contact_phone=checks.text(contact_phone, "contact phone", 32, optional=True),
        allowed_groups=checks.names(allowed_groups, "allowed groups"),
    )
    session.add(station)
    session.flush()
    return station


#: What staff may change on a station (`update_station`); health and versions are ingest's.
EDITABLE_FIELDS = (
    "name",
    "district_id",
    "address",
    "latitude",
    "longitude",
    "schedule",
    "services",
    "contact_name",
    "contact_phone",
    "allowed_groups",
    "active",
)


def update_station(session: Session, *, station: Station, changes: dict[str, Any]) -> list[str]:
    """Apply staff edits (keys of EDITABLE_FIELDS) with the checks of `add_station`; returns the
    fields that changed. Coordinates are given together (both None removes them)."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(f"cannot change {', '.join(sorted(unknown))}")
    new: dict[str, Any] = {}
    if "latitude" in changes or "longitude" in changes:
        new["latitude"], new["longitude"] = _coordinates(
            changes.get("latitude", station.latitude), changes.get("longitude", station.longitude)
        )
    for field, value in changes.items():
        if field == "name":
            new[field] = checks.text(value, "name", 200)
        elif field == "district_id":
            new[field] = ensure_district(session, district_id=value).district_id
        elif field == "address":
            new[field] = checks.text(value, "address", 300, optional=True)
        elif field == "schedule":
            new[field] = parse_schedule(value if value is not None else {}).model_dump(mode="json")
        elif field == "services":
            new[field] = checks.names(value or (), "services", max_items=MAX_SERVICES)
        elif field == "allowed_groups":
            new[field] = checks.names(value or (), "allowed groups")
        elif field in ("contact_name", "contact_phone"):
            new[field] = checks.text(value, field.replace("_", " "), 100 if field == "contact_name" else 32,
                                     optional=True)  # fmt: skip
        elif field == "active":
            if not isinstance(value, bool):
                raise ValidationError("active must be true or false")
            new[field] = value
    changed = [f for f in EDITABLE_FIELDS if f in new and new[f] != getattr(station, f)]
    for field in changed:
        setattr(station, field, new[field])
    session.flush()
    return changed


def get_station(session: Session, *, station_id: str) -> Station | None:
    return session.get(Station, station_id)


def list_stations(
    session: Session, *, district_ids: Collection[str] | None = None, active_only: bool = False
) -> Sequence[Station]:
    """Stations ordered by id; `district_ids` limits them (a district staff member's view)."""
    query = select(Station).order_by(Station.station_id)
    if district_ids is not None:
        query = query.where(Station.district_id.in_(list(district_ids)))
    if active_only:
        query = query.where(Station.active.is_(True))
    return session.scalars(query).all()


def is_open(station: Station, at: dt.datetime) -> bool:
    """Whether the station's opening hours admit members at `at` (aware)."""
    return parse_schedule(station.schedule).opening_hours().is_open(at)
