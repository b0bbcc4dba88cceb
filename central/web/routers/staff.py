"""Staff accounts (admins only) and districts.

An account is created with a generated one-time secret, shown once in the answer and never again
(stored as an argon2id hash); its owner changes it after logging in. Roles: `admin` (no
district), `district` (acts on one district), `viewer` (reads; one district or all). Disabling an
account or resetting its secret ends its logins at once. The last active admin cannot be disabled
or demoted, and nobody disables themselves. Every change is audited.

`GET /api/v1/districts` is for everyone (the pickers of the dashboard), scoped like stations.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from sqlalchemy import func, select

from central.store import audit
from central.store import staff as staff_store
from central.store import stations as station_store
from central.store.tables import District, Staff, Station
from central.web.deps import Admin, ClientAddress, ContextDep, CurrentStaff, DbSession, current_staff
from central.web.errors import ApiError

router = APIRouter(prefix="/api/v1", tags=["staff"], dependencies=[Depends(current_staff)])
Username = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]
Role = Literal["admin", "district", "viewer"]
DistrictId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class StaffOut(BaseModel):
    username: str
    display_name: str
    role: str
    district_id: str | None
    active: bool
    created_at: dt.datetime
    password_changed_at: dt.datetime
    last_login_at: dt.datetime | None

    @classmethod
    def of(cls, account: Staff) -> StaffOut:
        return cls(
            username=account.username,
            display_name=account.display_name,
            role=account.role,
            district_id=account.district_id,
            active=account.active,
            created_at=account.created_at,
            password_changed_at=account.password_changed_at,
            last_login_at=account.last_login_at,
        )


class StaffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=32)
    display_name: str = Field("", max_length=100)
    role: Role
    district_id: DistrictId | None = None


class StaffPatch(BaseModel):
    """`role` and `district_id` go together (an admin has none); other fields alone."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    district_id: DistrictId | None = None
    active: StrictBool | None = None
    display_name: str | None = Field(None, max_length=100)


class StaffSecret(StaffOut):
    secret: str = Field(description="The one-time secret: shown now, never again.")


class DistrictOut(BaseModel):
    district_id: str
    name: str
    stations: int
    #: phone registrations: `auto` (active once the number is confirmed) or `staff` (wait for a decision)
    registration_approval: str = "staff"


class DistrictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    district_id: DistrictId
    name: str = Field(min_length=1, max_length=200)


def _account(db: DbSession, username: str) -> Staff:
    account = staff_store.get_by_username(db, username=username.lower())
    if account is None:
        raise ApiError(404, f"no staff account {username!r}", "staff_not_found")
    return account


@router.get("/staff", response_model=list[StaffOut])
def list_staff(_: Admin, db: DbSession) -> list[StaffOut]:
    return [StaffOut.of(a) for a in staff_store.list_staff(db)]


@router.post("/staff", response_model=StaffSecret, status_code=201)
def create_staff(
    body: StaffIn, admin: Admin, ctx: ContextDep, db: DbSession, client: ClientAddress
) -> StaffSecret:
    """A new account; its one-time secret is in the answer (and nowhere else)."""
    account, secret = staff_store.create_staff(
        db,
        ctx.auth.passwords,
        username=body.username,
        role=body.role,
        district_id=body.district_id,
        display_name=body.display_name,
    )
    assert secret is not None
    audit.record(
        db,
        actor=admin.actor,
        action="staff_created",
        target_type="staff",
        target_id=account.username,
        district_id=account.district_id,
        client=client,
        details={"role": account.role},
    )
    return StaffSecret(**StaffOut.of(account).model_dump(), secret=secret)


@router.patch("/staff/{username}", response_model=StaffOut)
def update_staff(
    username: Username, body: StaffPatch, admin: Admin, ctx: ContextDep, db: DbSession, client: ClientAddress
) -> StaffOut:
    account = _account(db, username)
    fields = body.model_fields_set
    if "district_id" in fields and "role" not in fields:
        raise ApiError(422, "give the role with the district", "invalid_value")
    if account.id == admin.id and (body.active is False or ("role" in fields and body.role != "admin")):
        raise ApiError(422, "you cannot disable or demote your own account", "invalid_value")
    changed = staff_store.update_staff(
        db,
        account=account,
        role=body.role if "role" in fields else None,
        district_id=body.district_id,
        active=body.active,
        display_name=body.display_name,
    )
    if changed:
        if "active" in changed and not account.active:
            ctx.auth.sessions.revoke_user(account.username)
        audit.record(
            db,
            actor=admin.actor,
            action="staff_updated",
            target_type="staff",
            target_id=account.username,
            district_id=account.district_id,
            client=client,
            details={"fields": changed, "role": account.role, "active": account.active},
        )
    return StaffOut.of(account)


@router.post("/staff/{username}/reset", response_model=StaffSecret)
def reset_secret(
    username: Username, admin: Admin, ctx: ContextDep, db: DbSession, client: ClientAddress
) -> StaffSecret:
    """A new one-time secret for someone who lost theirs (their logins end)."""
    account = _account(db, username)
    secret = staff_store.reset_password(db, ctx.auth.passwords, account=account)
    ctx.auth.sessions.revoke_user(account.username)
    audit.record(
        db,
        actor=admin.actor,
        action="staff_secret_reset",
        target_type="staff",
        target_id=account.username,
        district_id=account.district_id,
        client=client,
    )
    return StaffSecret(**StaffOut.of(account).model_dump(), secret=secret)


@router.get("/districts", response_model=list[DistrictOut])
def list_districts(staff: CurrentStaff, db: DbSession) -> list[DistrictOut]:
    """Districts (with their station counts) this account may see."""
    counts = dict(db.execute(select(Station.district_id, func.count()).group_by(Station.district_id)).all())
    query = select(District).order_by(District.district_id)
    if staff.district_scope is not None:
        query = query.where(District.district_id.in_(staff.district_scope))
    return [
        DistrictOut(
            district_id=d.district_id,
            name=d.name,
            stations=int(counts.get(d.district_id, 0)),
            registration_approval=d.registration_approval,
        )
        for d in db.scalars(query)
    ]


@router.post("/districts", response_model=DistrictOut, status_code=201)
def add_district(body: DistrictIn, admin: Admin, db: DbSession, client: ClientAddress) -> DistrictOut:
    """A district before its first station (so its staff accounts can be made)."""
    if db.get(District, body.district_id) is not None:
        raise ApiError(409, f"district {body.district_id!r} exists", "district_exists")
    district = station_store.ensure_district(db, district_id=body.district_id, name=body.name)
    audit.record(
        db,
        actor=admin.actor,
        action="district_added",
        target_type="district",
        target_id=district.district_id,
        district_id=district.district_id,
        client=client,
    )
    return DistrictOut(district_id=district.district_id, name=district.name, stations=0)
