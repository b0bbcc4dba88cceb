"""Staff side of the workers' phones: the approval queue, each district's approval rule, posters.

* `GET /api/v1/registrations` — registrations waiting for staff (district-scoped), oldest first.
* `POST /api/v1/registrations/{id}/approve` / `.../reject` — `{"note": "..."}`; approving makes the
  member active and tells the roster (the member reaches every station they may enter);
  rejecting deletes the member and what they typed.
* `GET|PUT /api/v1/districts/{id}/registration` — `{"approval": "auto" | "staff"}`: whether a
  registration with a confirmed phone number is active at once or waits for staff.
* `GET /api/v1/stations/{id}/poster.png|pdf` — the printable A4 poster for the station's door.
* `PUT /api/v1/stations/{id}/phone-location` — `{"within_m": 100}` or `{"within_m": null}`: opening
  from a phone needs the phone's reported position within that many metres (a deterrent only: a
  browser reports whatever the phone claims; docs/PHONE.md).

The dashboard shows these (a queue panel and a poster button); the routes are the contract.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from central.phone.poster import PosterContent, PosterError, find_font, hours_text, poster_bytes, station_url
from central.store import audit
from central.store import phone as phone_store
from central.store.tables import District, Member, Registration
from central.web.deps import (
    Actor,
    ClientAddress,
    ContextDep,
    CurrentStaff,
    DbSession,
    current_staff,
    district_scope,
    station_in_scope,
)
from central.web.errors import ApiError

router = APIRouter(prefix="/api/v1", tags=["registrations"], dependencies=[Depends(current_staff)])
StationId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
DistrictId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
RegistrationId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


class RegistrationOut(BaseModel):
    registration_id: str
    state: str
    station_id: str | None
    district_id: str
    created_at: dt.datetime
    verified_phone: bool
    member_id: str | None
    name: str | None
    phone: str | None
    kind: str | None
    employer: str | None
    consent_face: bool | None
    consent_cross_station: bool | None

    @classmethod
    def of(cls, registration: Registration, member: Member | None) -> RegistrationOut:
        return cls(
            registration_id=registration.id,
            state=registration.state,
            station_id=registration.station_id,
            district_id=registration.district_id,
            created_at=registration.created_at,
            verified_phone=registration.verified_at is not None,
            member_id=registration.member_id,
            name=member.name if member else None,
            phone=member.phone if member else registration.phone,
            kind=member.kind if member else None,
            employer=member.employer if member else None,
            consent_face=member.consent_face if member else None,
            consent_cross_station=member.consent_cross_station if member else None,
        )


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(None, max_length=500)


class ApprovalRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approval: Literal["auto", "staff"]


def _registration(db: DbSession, staff: CurrentStaff, registration_id: str) -> Registration:
    registration = phone_store.get_registration(db, registration_id=registration_id, for_update=True)
    scope = district_scope(staff)
    if registration is None or (scope is not None and registration.district_id not in scope):
        raise ApiError(404, f"no registration {registration_id!r}", "not_found")
    return registration


@router.get("/registrations", response_model=list[RegistrationOut])
def waiting(staff: CurrentStaff, db: DbSession) -> list[RegistrationOut]:
    """Registrations waiting for a staff decision in this account's districts, oldest first."""
    rows = phone_store.list_registrations(db, states=("awaiting_staff",), district_ids=district_scope(staff))
    return [RegistrationOut.of(r, db.get(Member, r.member_id) if r.member_id else None) for r in rows]


def _decide(
    request: Request,
    registration_id: str,
    body: DecisionIn,
    staff: Actor,
    db: DbSession,
    client: str,
    approve: bool,
) -> RegistrationOut:
    registration = _registration(db, staff, registration_id)
    request.app.state.phone.accounts.decide(
        db, registration, approve=approve, actor=staff.actor, note=body.note, client=client
    )
    member = db.get(Member, registration.member_id) if registration.member_id else None
    return RegistrationOut.of(registration, member)


@router.post("/registrations/{registration_id}/approve", response_model=RegistrationOut)
def approve(
    registration_id: RegistrationId,
    body: DecisionIn,
    request: Request,
    staff: Actor,
    db: DbSession,
    client: ClientAddress,
) -> RegistrationOut:
    """The member becomes active and reaches every station they may enter (through the roster)."""
    return _decide(request, registration_id, body, staff, db, client, True)


@router.post("/registrations/{registration_id}/reject", response_model=RegistrationOut)
def reject(
    registration_id: RegistrationId,
    body: DecisionIn,
    request: Request,
    staff: Actor,
    db: DbSession,
    client: ClientAddress,
) -> RegistrationOut:
    """The member and everything they typed are deleted; the row keeps that it was rejected."""
    return _decide(request, registration_id, body, staff, db, client, False)


def _district(db: DbSession, staff: CurrentStaff, district_id: str) -> District:
    district = db.get(District, district_id)
    scope = district_scope(staff)
    if district is None or (scope is not None and district_id not in scope):
        raise ApiError(404, f"no district {district_id!r}", "not_found")
    return district


@router.get("/districts/{district_id}/registration", response_model=ApprovalRule)
def approval_rule(district_id: DistrictId, staff: CurrentStaff, db: DbSession) -> ApprovalRule:
    return ApprovalRule.model_validate({"approval": _district(db, staff, district_id).registration_approval})


@router.put("/districts/{district_id}/registration", response_model=ApprovalRule)
def set_approval_rule(
    district_id: DistrictId, body: ApprovalRule, staff: Actor, db: DbSession, client: ClientAddress
) -> ApprovalRule:
    """`auto`: a registration whose phone number was confirmed by SMS is active at once; `staff`:
    it waits for a decision. Without an SMS gateway every registration waits for staff anyway."""
    district = _district(db, staff, district_id)
    if district.registration_approval != body.approval:
        audit.record(
            db,
            actor=staff.actor,
            action="registration_approval_set",
            target_type="district",
            target_id=district_id,
            district_id=district_id,
            client=client,
            details={"from": district.registration_approval, "to": body.approval},
        )
        district.registration_approval = body.approval
    return body


class LocationRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    within_m: int | None = Field(
        description="Metres from the station; null: no location check.", ge=10, le=100_000
    )


@router.put("/stations/{station_id}/phone-location", response_model=LocationRule)
def set_location_rule(
    station_id: StationId, body: LocationRule, staff: Actor, db: DbSession, client: ClientAddress
) -> LocationRule:
    """Require (or stop requiring) the phone's position near the station to open it from a phone."""
    station = station_in_scope(db, staff, station_id)
    if body.within_m is not None and (station.latitude is None or station.longitude is None):
        raise ApiError(422, "the station has no coordinates to measure the distance from", "invalid_value")
    if station.require_location_m != body.within_m:
        audit.record(
            db,
            actor=staff.actor,
            action="phone_location_rule_set",
            target_type="station",
            target_id=station_id,
            district_id=station.district_id,
            client=client,
            details={"from": station.require_location_m, "to": body.within_m},
        )
        station.require_location_m = body.within_m
    return body


def poster_base_url(ctx: ContextDep, request: Request) -> str:
    """Where phones reach the centre: `[web] public_url`, else the address this request came to."""
    return ctx.config.web.public_url or str(request.base_url).rstrip("/")


@router.get(
    "/stations/{station_id}/poster.{kind}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "application/pdf": {}}}},
)
def poster(
    station_id: StationId,
    kind: Literal["png", "pdf"],
    request: Request,
    staff: CurrentStaff,
    ctx: ContextDep,
    db: DbSession,
) -> Response:
    """The station's A4 door poster (QR code to the station's phone page), PNG or PDF."""
    station = station_in_scope(db, staff, station_id)
    content = PosterContent(
        station_id=station.station_id,
        name=station.name,
        url=station_url(poster_base_url(ctx, request), station.station_id),
        address=station.address,
        hours=hours_text(station.schedule),
        contact=station.contact_phone,
    )
    try:
        data = poster_bytes(content, find_font(ctx.config.phone.poster_font_file), kind)
    except PosterError as exc:
        raise ApiError(503, str(exc), "poster_unavailable") from None
    media = "image/png" if kind == "png" else "application/pdf"
    filename = f"poster-{station.station_id}.{kind}"
    return Response(
        data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )
