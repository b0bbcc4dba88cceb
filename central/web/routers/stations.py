"""Stations for staff: the list (district-scoped, with health), one station, registering one
(admin), editing one (admins; district staff on their own district's stations, not moving them to
another district). An edit that changes who may enter or when goes to the roster."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from central.store import audit
from central.store import stations as station_store
from central.web import roster_link
from central.web.deps import (
    Actor,
    Admin,
    ClientAddress,
    ContextDep,
    CurrentStaff,
    DbSession,
    current_staff,
    scoped_stations,
    station_in_scope,
)
from central.web.errors import ApiError
from central.web.schemas import StationOut

router = APIRouter(prefix="/api/v1/stations", tags=["stations"], dependencies=[Depends(current_staff)])
StationId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class StationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    station_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    name: str = Field(min_length=1, max_length=200)
    district_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    address: str | None = Field(None, max_length=300)
    latitude: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False)
    longitude: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False)
    schedule: dict[str, Any] | None = None
    services: list[str] = Field(default_factory=list, max_length=32)
    contact_name: str | None = Field(None, max_length=100)
    contact_phone: str | None = Field(None, max_length=32)
    allowed_groups: list[str] = Field(default_factory=list, max_length=32)


@router.get("", response_model=list[StationOut])
def list_stations(staff: CurrentStaff, ctx: ContextDep, db: DbSession) -> list[StationOut]:
    """The stations this account may see (its district, or all for admins and unscoped viewers)."""
    now = ctx.now()
    return [StationOut.of(s, now) for s in scoped_stations(db, staff)]


@router.get("/{station_id}", response_model=StationOut)
def get_station(station_id: StationId, staff: CurrentStaff, ctx: ContextDep, db: DbSession) -> StationOut:
    return StationOut.of(station_in_scope(db, staff, station_id), ctx.now())


@router.post("", response_model=StationOut, status_code=201)
def add_station(
    body: StationIn, staff: Admin, ctx: ContextDep, db: DbSession, client: ClientAddress
) -> StationOut:
    """Register a station (admins; `yizhan-central stations add` does the same from the shell)."""
    station = station_store.add_station(db, **body.model_dump())
    audit.record(
        db,
        actor=staff.actor,
        action="station_added",
        target_type="station",
        target_id=station.station_id,
        district_id=station.district_id,
        client=client,
    )
    return StationOut.of(station, ctx.now())


class StationPatch(BaseModel):
    """Only the fields present are changed; null clears an optional one."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    district_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]{1,64}$")
    address: str | None = Field(None, max_length=300)
    latitude: float | None = Field(None, ge=-90, le=90, allow_inf_nan=False)
    longitude: float | None = Field(None, ge=-180, le=180, allow_inf_nan=False)
    schedule: dict[str, Any] | None = None
    services: list[str] | None = Field(None, max_length=32)
    contact_name: str | None = Field(None, max_length=100)
    contact_phone: str | None = Field(None, max_length=32)
    allowed_groups: list[str] | None = Field(None, max_length=32)
    active: StrictBool | None = None


#: Changes that alter which members a station admits, or when: the roster must hear of them.
ROSTER_FIELDS = frozenset({"allowed_groups", "schedule", "active"})


@router.patch("/{station_id}", response_model=StationOut)
def update_station(
    station_id: StationId,
    body: StationPatch,
    staff: Actor,
    ctx: ContextDep,
    db: DbSession,
    client: ClientAddress,
) -> StationOut:
    """Edit a station's details, opening hours, services or groups."""
    station = station_in_scope(db, staff, station_id)
    changes = body.model_dump(include=body.model_fields_set)
    for required in ("name", "district_id", "active"):
        if required in changes and changes[required] is None:
            raise ApiError(422, f"{required} cannot be removed", "invalid_value")
    if "district_id" in changes and staff.role != "admin" and changes["district_id"] != station.district_id:
        raise ApiError(403, "only an admin moves a station to another district", "forbidden_role")
    before = station.district_id
    changed = station_store.update_station(db, station=station, changes=changes)
    if changed:
        if ROSTER_FIELDS & set(changed):
            roster_link.station_changed(db, station_id)
        audit.record(
            db,
            actor=staff.actor,
            action="station_updated",
            target_type="station",
            target_id=station_id,
            district_id=before,
            client=client,
            details={"fields": changed},
        )
    return StationOut.of(station, ctx.now())
