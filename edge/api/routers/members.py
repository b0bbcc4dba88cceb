"""Members: list and search, create (QR-only), change validity / status / details, delete; issue a
printable pass; the newest photo the station keeps of a member; the member id rule for the page.

Deleting a member deletes their face templates (same transaction, by cascade) and the snapshot
files of every event naming them; the event rows stay, because the access log outlives the
membership. Every change is also recorded as an event naming the installer (`details.by`).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from edge.api.deps import ContextDep, CurrentInstaller, StationDep, actor, current_installer
from edge.api.errors import ApiError
from edge.api.retry import retry_locked
from edge.api.schemas import (
    MEMBER_ID_PATTERN,
    Group,
    Instant,
    MemberFields,
    MemberId,
    MemberOut,
    MemberStatus,
    Name,
    Phone,
    Strict,
    WorkerKind,
    new_member_id,
)
from edge.api.snapshot_files import delete_member_snapshots, member_photo, snapshot_store
from edge.pass_card import PassLabel, cjk_font_path, write_pass_card
from edge.station import RefusedError
from models.members import GROUPS_MAX
from models.tables import MEMBER_ID_MAX
from recognizer.qr_token import MAX_TTL_S, parse_token

router = APIRouter(prefix="/api/v1/members", tags=["members"], dependencies=[Depends(current_installer)])
rules = APIRouter(prefix="/api/v1", tags=["members"], dependencies=[Depends(current_installer)])

MemberPath = Annotated[str, Path(pattern=MEMBER_ID_PATTERN, description="Member id")]


class MemberPage(BaseModel):
    items: list[MemberOut]
    total: int
    offset: int
    limit: int


class MemberCreate(MemberFields):
    member_id: MemberId | None = Field(
        None, description="Letters, digits, '.', '_', '-'; generated when absent."
    )


class MemberUpdate(Strict):
    """Only the fields given change; null clears phone, kind and the validity bounds."""

    name: Name | None = None
    phone: Phone | None = None
    groups: list[Group] | None = Field(None, max_length=GROUPS_MAX)
    kind: WorkerKind | None = None
    valid_from: Instant | None = None
    valid_until: Instant | None = None
    status: MemberStatus | None = None
    consent_face: bool | None = Field(
        None, description="false withdraws consent and deletes the face templates."
    )
    consent_cross_station: bool | None = None
    requires_pass: bool | None = Field(
        None, description="true: the door never admits this member by face alone (the pass names them)."
    )


class TemplateOut(BaseModel):
    """One face template: when, how, by whom, its quality and what the installer confirmed."""

    template_id: str
    member_id: str
    model: str = Field(description="The face model that made it (only the active model's are used)")
    created_at: str | None
    origin: str | None = Field(description="photo | upload | camera | centre (None: from before origins)")
    enrolled_by: str | None
    source: str | None
    quality: dict[str, Any]
    policy: str | None
    findings: list[dict[str, Any]]
    confirmed: dict[str, Any] | None


class TemplateRemoved(BaseModel):
    template_id: str
    member_id: str
    templates_left: int


TemplatePath = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="Template id")]


class Removed(BaseModel):
    member_id: str
    removed: bool
    snapshots_deleted: int


def _matches(member: dict[str, Any], needle: str) -> bool:
    return any(needle in str(member.get(k) or "").casefold() for k in ("member_id", "name", "phone"))


@router.get("", response_model=MemberPage)
def list_members(
    station: StationDep,
    q: Annotated[str | None, Query(max_length=100, description="Part of the id, name or phone")] = None,
    status: MemberStatus | None = None,
    kind: WorkerKind | None = None,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> MemberPage:
    """Members ordered by id, filtered by a search text, status and kind."""
    members = station.list_members()
    needle = (q or "").strip().casefold()
    selected = [
        m
        for m in members
        if (not needle or _matches(m, needle))
        and (status is None or m["status"] == status)
        and (kind is None or m["kind"] == kind)
    ]
    page = selected[offset : offset + limit]
    return MemberPage(items=[MemberOut(**m) for m in page], total=len(selected), offset=offset, limit=limit)


@router.post("", response_model=MemberOut, status_code=201, responses={409: {"description": "Id taken"}})
def create_member(
    body: MemberCreate, station: StationDep, ctx: ContextDep, installer: CurrentInstaller
) -> MemberOut:
    """A member without a face (QR code only); add a face later by enrolling with the same id and name."""
    member_id = body.member_id or new_member_id()
    member = retry_locked(
        lambda: station.add_member(member_id=member_id, **body.store_fields()), what="member_created"
    )
    ctx.audit("member_created", by=actor(installer), member_id=member_id)
    ctx.refresh_roster()
    return MemberOut(**member)


@router.get("/{member_id}", response_model=MemberOut, responses={404: {"description": "No such member"}})
def get_member(member_id: MemberPath, station: StationDep) -> MemberOut:
    member = station.get_member(member_id)
    if member is None:
        raise ApiError(404, f"no member {member_id!r}", "member_not_found")
    return MemberOut(**member)


@router.patch("/{member_id}", response_model=MemberOut, responses={404: {"description": "No such member"}})
def update_member(
    member_id: MemberPath,
    body: MemberUpdate,
    station: StationDep,
    ctx: ContextDep,
    installer: CurrentInstaller,
) -> MemberOut:
    """Change validity, status (suspend / activate), details or consent."""
    changes = body.model_dump(exclude_unset=True)
    for field in ("name", "status", "groups", "consent_face", "consent_cross_station", "requires_pass"):
        if field in changes and changes[field] is None:
            raise ApiError(422, f"{field} cannot be null", "invalid_value")
    if not changes:
        raise ApiError(422, "nothing to change: give at least one field", "invalid_request")
    member = retry_locked(lambda: station.update_member(member_id, **changes), what="member_updated")
    ctx.audit("member_updated", by=actor(installer), member_id=member_id, details={"fields": sorted(changes)})
    ctx.refresh_roster()
    return MemberOut(**member)


@router.get(
    "/{member_id}/templates",
    response_model=list[TemplateOut],
    responses={404: {"description": "No such member"}},
)
def list_templates(member_id: MemberPath, station: StationDep) -> list[TemplateOut]:
    """The member's face templates, oldest first (the encrypted vectors never leave the store)."""
    if station.get_member(member_id) is None:
        raise ApiError(404, f"no member {member_id!r}", "member_not_found")
    return [TemplateOut(**t) for t in station.list_templates(member_id)]


@router.delete(
    "/{member_id}/templates/{template_id}",
    response_model=TemplateRemoved,
    responses={404: {"description": "No such template for this member"}},
)
def remove_template(
    member_id: MemberPath,
    template_id: TemplatePath,
    station: StationDep,
    ctx: ContextDep,
    installer: CurrentInstaller,
) -> TemplateRemoved:
    """Delete one face template (e.g. a photo of the wrong person); the others stay."""
    owned = (
        {t["template_id"] for t in station.list_templates(member_id)}
        if station.get_member(member_id)
        else set()
    )
    if template_id not in owned:
        raise ApiError(404, f"member {member_id!r} has no template {template_id!r}", "template_not_found")
    removed = retry_locked(
        lambda: station.remove_template(template_id, removed_by=actor(installer)), what="template_removed"
    )
    if removed is None:
        raise ApiError(404, f"member {member_id!r} has no template {template_id!r}", "template_not_found")
    ctx.audit(
        "template_removed",
        by=actor(installer),
        member_id=member_id,
        details={"template_id": template_id, "templates_left": removed["templates_left"]},
    )
    ctx.refresh_roster()
    return TemplateRemoved(
        template_id=template_id, member_id=member_id, templates_left=removed["templates_left"]
    )


@router.delete("/{member_id}", response_model=Removed, responses={404: {"description": "No such member"}})
def delete_member(
    member_id: MemberPath, station: StationDep, ctx: ContextDep, installer: CurrentInstaller
) -> Removed:
    """Delete the member, their face templates and their event snapshots (event rows are kept)."""
    if not retry_locked(lambda: station.remove_member(member_id), what="member_removed"):
        raise ApiError(404, f"no member {member_id!r}", "member_not_found")
    deleted = delete_member_snapshots(station, snapshot_store(ctx.services), member_id)
    ctx.audit(
        "member_removed", by=actor(installer), member_id=member_id, details={"snapshots_deleted": deleted}
    )
    ctx.refresh_roster()
    return Removed(member_id=member_id, removed=True, snapshots_deleted=deleted)


# -- the member id rule ------------------------------------------------------------------------------


class MemberIdRule(BaseModel):
    """What the page checks while the installer types: the same pattern the API validates with."""

    pattern: str = Field(description="Regular expression (ECMAScript and Python agree on it)")
    max_length: int
    reserved: list[str]


class Rules(BaseModel):
    member_id: MemberIdRule


@rules.get("/rules", response_model=Rules)
def input_rules() -> Rules:
    """Input rules the page shows before submitting (so it never guesses them)."""
    return Rules(
        member_id=MemberIdRule(pattern=MEMBER_ID_PATTERN, max_length=MEMBER_ID_MAX, reserved=[".", ".."])
    )


# -- passes ------------------------------------------------------------------------------------------


class PassRequest(Strict):
    valid_days: int | None = Field(
        None,
        ge=1,
        le=MAX_TTL_S // 86400,
        description="Days the pass works; default [qr] default_ttl_s. Never past the member's own validity.",
    )
    single_use: bool = Field(False, description="Opens the door once (at this station).")


class PassOut(BaseModel):
    member_id: str
    name: str
    token: str
    expires_at: str = Field(description="ISO 8601, UTC")
    expires_local: str = Field(description="In the station's time zone, offset printed")
    single_use: bool
    label: list[str] = Field(description="The lines printed on the card")
    name_printed: bool = Field(description="False when the station has no font for the name")
    png_base64: str = Field(description="The printable card: QR code, name, id, expiry")


@router.post(
    "/{member_id}/passes",
    response_model=PassOut,
    status_code=201,
    responses={404: {"description": "No such member"}, 422: {"description": "No pass for this member"}},
)
def issue_pass(
    member_id: MemberPath,
    station: StationDep,
    ctx: ContextDep,
    installer: CurrentInstaller,
    body: PassRequest | None = None,
) -> PassOut:
    """Issue a signed QR pass for the member and render it as a printable card (a face is never the
    only way in: this is how a QR-only member, or anyone whose face fails, gets in)."""
    request = body or PassRequest()
    member = station.get_member(member_id)
    if member is None:
        raise ApiError(404, f"no member {member_id!r}", "member_not_found")
    if member["status"] != "active":
        raise ApiError(
            422, f"member {member_id!r} is {member['status']}: activate them first", "member_suspended"
        )
    config = station.config
    ttl = request.valid_days * 86400 if request.valid_days is not None else config.qr.default_ttl_s
    if member["valid_until"]:
        left = dt.datetime.fromisoformat(member["valid_until"]).timestamp() - time.time()
        if left <= 0:
            raise ApiError(
                422, f"member {member_id!r} is no longer valid: extend their validity first", "member_expired"
            )
        ttl = min(ttl, int(left))
    try:
        token = station.issue_qr(member_id=member_id, ttl_s=max(1, ttl), single_use=request.single_use)
    except RefusedError as exc:
        code = "no_signing_key" if "signing key" in str(exc) else "refused"
        raise ApiError(422, str(exc), code) from None
    claims = parse_token(token)  # the card is labelled from what the token says, never a guess
    label = PassLabel(
        member_id=member_id,
        name=member["name"],
        expires_at=claims.expires_at,
        timezone=config.schedule.timezone,
        single_use=claims.single_use,
        station=claims.station_scope,
    )
    png = io.BytesIO()
    write_pass_card(token, label, png)  # type: ignore[arg-type]  # PIL writes to file objects too
    expires_at = dt.datetime.fromtimestamp(claims.expires_at, dt.UTC)
    ctx.audit(
        "qr_issued",
        by=actor(installer),
        member_id=member_id,
        details={
            "expires_at": expires_at.isoformat(),
            "single_use": claims.single_use,
            "key_id": claims.kid,
            "nonce": claims.nonce_hex,  # names the pass in a revocation list, should it be withdrawn
        },
    )
    name_printed = cjk_font_path() is not None or member["name"].isascii()
    return PassOut(
        member_id=member_id,
        name=member["name"],
        token=token,
        expires_at=expires_at.isoformat(),
        expires_local=label.expiry_text(),
        single_use=claims.single_use,
        label=label.lines(name_drawable=name_printed),
        name_printed=name_printed,
        png_base64=base64.b64encode(png.getvalue()).decode("ascii"),
    )


@router.get(
    "/{member_id}/photo",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "No picture kept"}},
)
def member_picture(member_id: MemberPath, station: StationDep, ctx: ContextDep) -> FileResponse:
    """The newest face the station keeps of the member (their latest event snapshot), to tell two
    people apart on screen; 404 when none is kept (never entered, or snapshots pruned)."""
    path = member_photo(station, snapshot_store(ctx.services), member_id)
    if path is None:
        raise ApiError(404, f"no picture of {member_id!r} is kept", "no_photo")
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})
