"""Members for staff: search, create, edit, suspend, erase, and their QR pass.

Scope: admins (and viewers without a district) see every member; district staff and district
viewers see the members whose home station (where they were enrolled, or which the staff member
gave) is in their district, and get 404 for any other id. Viewers change nothing (403).

Every change is audited and, in the same transaction, handed to the roster (`roster_link`), which
turns it into versioned changes for every station concerned. Erasing needs the member id typed
back as confirmation; it leaves an `erasures` row without the person's data.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy.orm import Session

from central.passes import issue_pass, pass_png
from central.store import audit
from central.store import members as member_store
from central.store.tables import Member
from central.web import roster_link
from central.web.auth import StaffIdentity
from central.web.deps import (
    Actor,
    ClientAddress,
    ContextDep,
    CurrentStaff,
    DbSession,
    current_staff,
    member_in_scope,
    scoped_station_ids,
    station_in_scope,
)
from central.web.errors import ApiError
from central.web.schemas import MemberOut

router = APIRouter(prefix="/api/v1/members", tags=["members"], dependencies=[Depends(current_staff)])
ID = r"^[A-Za-z0-9._-]{1,64}$"
MemberId = Annotated[str, Path(pattern=ID)]
TemplateId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
Kind = Literal["courier", "rider", "sanitation", "driver", "other"]
Group = Annotated[str, Field(min_length=1, max_length=64)]


class _Editable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str | None = Field(None, max_length=32)
    kind: Kind | None = None
    employer: str | None = Field(None, max_length=200)
    groups: list[Group] = Field(default_factory=list, max_length=32)
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    consent_face: StrictBool = False
    consent_cross_station: StrictBool = False
    home_station_id: str | None = Field(None, pattern=ID)


class MemberIn(_Editable):
    member_id: str | None = Field(None, pattern=ID, description="Made up when not given.")
    name: str = Field(min_length=1, max_length=100)


class MemberPatch(_Editable):
    """Only the fields present are changed; null clears an optional one."""

    name: str | None = Field(None, min_length=1, max_length=100)


class MemberDetail(MemberOut):
    source: str
    consent_face_at: dt.datetime | None
    consent_cross_station_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of_member(cls, member: Member, templates: int) -> MemberDetail:
        return cls(
            **MemberOut.of(member, templates).model_dump(),
            source=member.source,
            consent_face_at=member.consent_face_at,
            consent_cross_station_at=member.consent_cross_station_at,
            created_at=member.created_at,
            updated_at=member.updated_at,
        )


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=200)


class EraseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confirm: str = Field(max_length=64, description="The member id again: erasing cannot be undone.")
    reason: Literal["member_request", "staff", "consent_withdrawn"] = "member_request"


class EraseOut(BaseModel):
    member_id: str
    templates_deleted: int
    snapshots_deleted: int
    stations_pending: list[str]


class TemplateOut(BaseModel):
    """A face template as staff see it: never the vector."""

    template_id: str
    model: str
    scope: Literal["fleet", "station"]
    origin_station_id: str | None
    at_centre: bool = Field(
        description="False: only its origin station holds it (cross-station consent withdrawn)."
    )
    created_at: dt.datetime


class TemplateRemovedOut(BaseModel):
    member_id: str
    template_id: str
    stations: int = Field(description="Stations told to delete it.")


class PassIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    valid_days: int = Field(
        365, ge=1, le=1827, description="Cut to the member's validity and [qr] max_pass_ttl_s."
    )


class PassOut(BaseModel):
    member_id: str
    name: str
    token: str
    kid: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    png_base64: str


def _check_home(db: Session, staff: StaffIdentity, home_station_id: str | None) -> None:
    """District staff put members on their own district's stations (and must name one)."""
    if home_station_id is None:
        if staff.district_scope is not None:
            raise ApiError(422, "district staff must give the member's home station", "invalid_value")
        return
    try:
        station_in_scope(db, staff, home_station_id)
    except ApiError:
        raise ApiError(422, f"no station {home_station_id!r} in your district", "invalid_value") from None


def _audit(
    db: Session, staff: StaffIdentity, action: str, member: Member | str, client: str, **details: Any
) -> None:
    member_id = member if isinstance(member, str) else member.member_id
    district = details.pop("district_id", None)
    if district is None and not isinstance(member, str):
        district = member_store.member_district(db, member)
    audit.record(
        db,
        actor=staff.actor,
        action=action,
        target_type="member",
        target_id=member_id,
        district_id=district,
        client=client,
        details=details,
    )


@router.get("", response_model=list[MemberOut])
def list_members(
    staff: CurrentStaff,
    db: DbSession,
    search: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[Literal["active", "suspended", "pending"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[MemberOut]:
    """Members by id; `search` matches id, name or phone."""
    rows = member_store.list_members(
        db,
        search=search,
        limit=limit,
        offset=offset,
        status=status,
        home_station_ids=scoped_station_ids(db, staff),
    )
    return [MemberOut.of(r.member, r.templates) for r in rows]


@router.post("", response_model=MemberDetail, status_code=201)
def create_member(body: MemberIn, staff: Actor, db: DbSession, client: ClientAddress) -> MemberDetail:
    """A new member (QR pass only until a face is enrolled at a station)."""
    _check_home(db, staff, body.home_station_id)
    member = member_store.add_member(db, **body.model_dump(), source="staff")
    roster_link.member_changed(db, member.member_id)
    _audit(db, staff, "member_created", member, client, name_given=True)
    return MemberDetail.of_member(member, 0)


@router.get("/{member_id}", response_model=MemberDetail)
def get_member(member_id: MemberId, staff: CurrentStaff, db: DbSession) -> MemberDetail:
    member = member_in_scope(db, staff, member_id)
    return MemberDetail.of_member(member, member_store.template_count(db, member_id=member_id))


@router.patch("/{member_id}", response_model=MemberDetail)
def update_member(
    member_id: MemberId, body: MemberPatch, staff: Actor, db: DbSession, client: ClientAddress
) -> MemberDetail:
    """Change details, validity, groups or consents. Withdrawn face consent deletes the member's
    face templates; withdrawn cross-station consent keeps them at their own station only."""
    member = member_in_scope(db, staff, member_id)
    changes = body.model_dump(include=body.model_fields_set)
    if "home_station_id" in changes:
        _check_home(db, staff, changes["home_station_id"])
    if "name" in changes and changes["name"] is None:
        raise ApiError(422, "name cannot be removed", "invalid_value")
    face_off = member.consent_face and changes.get("consent_face") is False
    cross_off = member.consent_cross_station and (face_off or changes.get("consent_cross_station") is False)
    if face_off or cross_off:
        # A withdrawal is the roster's: it deletes the face data here and on every station
        # (recorded as an erasure without the data) and writes its own audit entry.
        roster_link.withdraw_consent(
            db, member_id, staff.actor, face=face_off, cross_station=cross_off, client=client
        )
        changes = {k: v for k, v in changes.items() if k not in ("consent_face", "consent_cross_station")}
    outcome = member_store.update_member(db, member=member, changes=changes)
    if outcome.changed:
        roster_link.member_changed(db, member_id)
        _audit(db, staff, "member_updated", member, client, fields=outcome.changed)
    return MemberDetail.of_member(member, member_store.template_count(db, member_id=member_id))


def _set_status(
    member_id: str, status: str, body: Reason | None, staff: StaffIdentity, db: Session, client: str
) -> MemberDetail:
    member = member_in_scope(db, staff, member_id)
    if member_store.set_status(db, member=member, status=status):
        roster_link.member_changed(db, member_id)
        action = "member_suspended" if status == "suspended" else "member_activated"
        _audit(db, staff, action, member, client, reason=body.reason if body else None)
    return MemberDetail.of_member(member, member_store.template_count(db, member_id=member_id))


@router.post("/{member_id}/suspend", response_model=MemberDetail)
def suspend_member(
    member_id: MemberId, staff: Actor, db: DbSession, client: ClientAddress, body: Reason | None = None
) -> MemberDetail:
    """No station lets the member in until re-activated (their data stays)."""
    return _set_status(member_id, "suspended", body, staff, db, client)


@router.post("/{member_id}/activate", response_model=MemberDetail)
def activate_member(
    member_id: MemberId, staff: Actor, db: DbSession, client: ClientAddress, body: Reason | None = None
) -> MemberDetail:
    """Re-activate a suspended member (or approve a pending registration)."""
    return _set_status(member_id, "active", body, staff, db, client)


@router.get("/{member_id}/templates", response_model=list[TemplateOut])
def list_templates(member_id: MemberId, staff: CurrentStaff, db: DbSession) -> list[TemplateOut]:
    """The member's face templates at the centre, oldest first (ids, model, where they may go)."""
    member_in_scope(db, staff, member_id)
    return [
        TemplateOut(
            template_id=t.template_id,
            model=t.model,
            scope="fleet" if t.scope == "fleet" else "station",
            origin_station_id=t.origin_station_id,
            at_centre=bool(t.ciphertext),  # empty: the centre deleted its copy (roster.state.WITHDRAWN)
            created_at=t.created_at,
        )
        for t in member_store.template_rows(db, member_id=member_id)
    ]


@router.delete("/{member_id}/templates/{template_id}", response_model=TemplateRemovedOut)
def remove_template(
    member_id: MemberId, template_id: TemplateId, staff: Actor, db: DbSession, client: ClientAddress
) -> TemplateRemovedOut:
    """Remove one face template (a photo of the wrong person): deleted at the centre and sent as
    `remove_template` to every station that holds it; the member keeps the other templates."""
    member_in_scope(db, staff, member_id)
    stations = roster_link.remove_template(db, member_id, template_id, staff.actor, client=client)
    if stations is None:
        raise ApiError(404, f"member {member_id!r} has no template {template_id!r}", "template_not_found")
    return TemplateRemovedOut(member_id=member_id, template_id=template_id, stations=stations)


@router.post("/{member_id}/erase", response_model=EraseOut)
def erase_member(
    member_id: MemberId, body: EraseIn, staff: Actor, ctx: ContextDep, db: DbSession, client: ClientAddress
) -> EraseOut:
    """Erase the member everywhere (face templates, snapshots, personal data); cannot be undone."""
    member_in_scope(db, staff, member_id)  # 404 outside the account's districts
    if body.confirm != member_id:
        raise ApiError(422, "type the member id in `confirm` to erase", "confirmation_required")
    outcome = roster_link.erase_member(
        db,
        member_id,
        staff.actor,
        reason=body.reason,
        snapshots_dir=ctx.config.storage.snapshots_dir,
        client=client,
    )
    return EraseOut(
        member_id=member_id,
        templates_deleted=outcome.templates_deleted,
        snapshots_deleted=outcome.snapshots_deleted,
        stations_pending=outcome.stations_pending,
    )


@router.post("/{member_id}/passes", response_model=PassOut, status_code=201)
def issue_member_pass(
    member_id: MemberId,
    staff: Actor,
    ctx: ContextDep,
    db: DbSession,
    client: ClientAddress,
    body: PassIn | None = None,
) -> PassOut:
    """A QR pass for the member, signed with the centre's active QR key (the PNG is in the answer;
    the token is not stored, its nonce is audited so it can be revoked)."""
    member = member_in_scope(db, staff, member_id)
    issued = issue_pass(
        db,
        ctx.data_key,
        member=member,
        now=ctx.now(),
        ttl_s=(body.valid_days if body else 365) * 86_400,
        max_ttl_s=ctx.config.qr.max_pass_ttl_s,
    )
    _audit(
        db,
        staff,
        "pass_issued",
        member,
        client,
        kid=issued.kid,
        nonce=issued.nonce_hex,
        expires_at=issued.expires_at.isoformat(),
    )
    return PassOut(
        member_id=member_id,
        name=member.name,
        token=issued.token,
        kid=issued.kid,
        issued_at=issued.issued_at,
        expires_at=issued.expires_at,
        png_base64=base64.b64encode(pass_png(issued.token)).decode("ascii"),
    )
