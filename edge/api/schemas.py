"""Field types shared by the routers: the same bounds as the store, checked before it is touched.

The store validates again (it is the authority); checking here too gives a 422 that names the field
before any work is done (a photo check costs a second of CPU on a Pi) and documents the bounds in
the OpenAPI schema.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from models.members import GROUP_MAX, GROUPS_MAX, NAME_MAX, PHONE_MAX
from models.tables import MEMBER_ID_MAX

MEMBER_ID_PATTERN = rf"^[A-Za-z0-9._-]{{1,{MEMBER_ID_MAX}}}$"
EVENT_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
KIND_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"

WorkerKind = Literal["courier", "rider", "sanitation", "driver", "other"]
MemberStatus = Literal["active", "suspended"]


def _utc(value: dt.datetime) -> dt.datetime:
    try:
        return value.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        raise ValueError("date out of range") from None


def _member_id(value: str) -> str:
    if value in {".", ".."}:
        raise ValueError("'.' and '..' are not member ids")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_utc)]
MemberId = Annotated[str, StringConstraints(pattern=MEMBER_ID_PATTERN), AfterValidator(_member_id)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=NAME_MAX)]
Phone = Annotated[str, StringConstraints(min_length=1, max_length=PHONE_MAX)]
Group = Annotated[str, StringConstraints(min_length=1, max_length=GROUP_MAX)]


def new_member_id() -> str:
    """A readable id for a member enrolled without one: m-<date>-<6 hex>."""
    return f"m-{dt.datetime.now(dt.UTC):%Y%m%d}-{secrets.token_hex(3)}"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MemberOut(BaseModel):
    member_id: str
    name: str
    phone: str | None
    groups: list[str]
    kind: str | None
    status: str
    valid_from: str | None
    valid_until: str | None
    consent_face: bool
    consent_cross_station: bool
    templates: int
    requires_pass: bool = Field(
        False, description="The door never admits this member by face alone: the pass names them."
    )
    lookalikes: list[dict[str, Any]] = Field(
        default_factory=list, description="Confirmed lookalikes: member_id, distance, confirmed_by, at."
    )
    #: Templates of another face model only (the station switched encoders): no face at this door
    #: until enrolled again; the pass still works.
    needs_reenrolment: bool = False


class MemberFields(Strict):
    """What an installer types about a person (shared by creation and enrolment)."""

    name: Name
    phone: Phone | None = None
    groups: list[Group] = Field(default_factory=list, max_length=GROUPS_MAX)
    kind: WorkerKind | None = None
    valid_from: Instant | None = Field(
        None, description="ISO 8601 with a time zone, e.g. 2026-12-01T00:00:00+08:00."
    )
    valid_until: Instant | None = Field(None, description="Access ends at this instant (exclusive).")
    status: MemberStatus = "active"
    consent_cross_station: bool = Field(
        False, description="The member agreed in writing that their face template may go to other stations."
    )

    @model_validator(mode="after")
    def _period(self) -> MemberFields:
        if (
            self.valid_from is not None
            and self.valid_until is not None
            and self.valid_until <= self.valid_from
        ):
            raise ValueError("valid_until must be later than valid_from")
        return self

    def store_fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "phone": self.phone,
            "groups": list(self.groups),
            "kind": self.kind,
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            "status": self.status,
            "consent_cross_station": self.consent_cross_station,
        }
