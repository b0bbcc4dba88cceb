"""Members and their face templates: keyword-only functions on a `Session` (the caller commits).

Templates are encrypted with the data key's `TemplateCipher` (AES-GCM bound to member and template
id) and name the model that made them; `scope` says which stations may hold them (tables.py).
Roster fan-out to the stations is not done here: the roster code calls these functions and writes
the matching `roster_changes` rows in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from central.store import checks
from central.store.tables import MEMBER_KINDS, FaceTemplate, Member, Station
from common.db_types import utc_now
from common.errors import ValidationError
from common.template_cipher import TemplateCipher, as_template_vector
from contract.messages import check_model_dim

TEMPLATE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
MODEL_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")  # the contract's FaceModelName
DEFAULT_MODEL = "dlib_resnet_v1"


class MemberExistsError(ValidationError):
    """A member with that id already exists."""


class MemberNotFoundError(ValidationError, LookupError):
    """No member with that id."""


def new_member_id() -> str:
    return f"m-{secrets.token_hex(5)}"


def _aware(value: dt.datetime | None, field: str) -> dt.datetime | None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValidationError(f"{field} needs a time zone (e.g. 2027-12-31T23:59:59+08:00)")
    return value


def add_member(
    session: Session,
    *,
    member_id: str | None = None,
    name: str,
    phone: str | None = None,
    kind: str | None = None,
    employer: str | None = None,
    groups: Iterable[str] = (),
    valid_from: dt.datetime | None = None,
    valid_until: dt.datetime | None = None,
    consent_face: bool = False,
    consent_cross_station: bool = False,
    home_station_id: str | None = None,
    status: str = "active",
    source: str = "staff",
) -> Member:
    """Create a member (an id is made up when none is given). Consents are stamped with now."""
    member_id = checks.identifier(member_id or new_member_id(), "member id")
    if session.get(Member, member_id) is not None:
        raise MemberExistsError(f"member {member_id!r} already exists")
    if kind is not None and kind not in MEMBER_KINDS:
        raise ValidationError(f"kind must be one of {', '.join(MEMBER_KINDS)}")
    if consent_cross_station and not consent_face:
        raise ValidationError("cross-station consent needs face consent")
    valid_from, valid_until = _aware(valid_from, "valid_from"), _aware(valid_until, "valid_until")
    if valid_from and valid_until and valid_until <= valid_from:
        raise ValidationError("valid_until must be after valid_from")
    if home_station_id is not None and session.get(Station, home_station_id) is None:
        raise ValidationError(f"home station {home_station_id!r} does not exist")
    now = utc_now()
    member = Member(
        member_id=member_id,
        name=checks.text(name, "name", 100),
        phone=checks.text(phone, "phone", 32, optional=True),
        kind=kind,
        employer=checks.text(employer, "employer", 200, optional=True),
        groups=checks.names(groups, "groups"),
        valid_from=valid_from,
        valid_until=valid_until,
        status=status,
        consent_face=consent_face,
        consent_face_at=now if consent_face else None,
        consent_cross_station=consent_cross_station,
        consent_cross_station_at=now if consent_cross_station else None,
        home_station_id=home_station_id,
        source=source,
    )
    session.add(member)
    session.flush()
    return member


def get_member(session: Session, *, member_id: str) -> Member | None:
    return session.get(Member, member_id)


@dataclass(frozen=True, slots=True)
class MemberRow:
    member: Member
    templates: int


def list_members(
    session: Session,
    *,
    search: str | None = None,
    limit: int = 1000,
    offset: int = 0,
    home_station_ids: Collection[str] | None = None,
    status: str | None = None,
) -> list[MemberRow]:
    """Members by id with their template counts; `search` matches id, name or phone (substring).

    `home_station_ids` limits them to members enrolled at those stations (a district's staff);
    `status` to one status.
    """
    counts = (
        select(FaceTemplate.member_id, func.count().label("n")).group_by(FaceTemplate.member_id).subquery()
    )
    query = (
        select(Member, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.member_id == Member.member_id)
        .order_by(Member.member_id)
        .limit(limit)
        .offset(offset)
    )
    if home_station_ids is not None:
        query = query.where(Member.home_station_id.in_(list(home_station_ids)))
    if status is not None:
        query = query.where(Member.status == status)
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                Member.member_id.ilike(pattern, escape="\\"),
                Member.name.ilike(pattern, escape="\\"),
                Member.phone.ilike(pattern, escape="\\"),
            )
        )
    return [MemberRow(member, int(n)) for member, n in session.execute(query).all()]


def add_template(
    session: Session,
    cipher: TemplateCipher,
    *,
    member_id: str,
    vector: npt.ArrayLike,
    template_id: str | None = None,
    model: str = DEFAULT_MODEL,
    origin_station_id: str | None = None,
) -> FaceTemplate:
    """Store one encrypted template of face model `model` (its name bound into the encryption; a
    known model's vectors must have its length). Needs face consent; its scope follows
    cross-station consent.

    Adding a template id that exists for the same member does nothing (a station re-uploading an
    enrolment never duplicates it); for another member it is refused.
    """
    member = session.get(Member, member_id)
    if member is None:
        raise MemberNotFoundError(f"no member {member_id!r}")
    if not member.consent_face:
        raise ValidationError(f"member {member_id!r} has not consented to face recognition")
    template_id = template_id or secrets.token_hex(16)
    if not TEMPLATE_ID_RE.fullmatch(template_id):
        raise ValidationError("template id must be 32 lowercase hex characters")
    existing = session.get(FaceTemplate, template_id)
    if existing is not None:
        if existing.member_id != member_id:
            raise ValidationError(f"template {template_id} belongs to another member")
        return existing
    scope = "fleet" if member.consent_cross_station else "station"
    if scope == "station" and origin_station_id is None:
        raise ValidationError("a template without cross-station consent needs the station it stays on")
    if not isinstance(model, str) or not MODEL_RE.fullmatch(model):
        raise ValidationError(
            f"face model name {str(model)[:80]!r} is not one (e.g. dlib_resnet_v1, onnx-1a2b3c4d)"
        )
    arr = as_template_vector(vector, dim=None)
    try:
        check_model_dim(model, int(arr.shape[0]))  # a known model's vectors have its length
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    template = FaceTemplate(
        template_id=template_id,
        member_id=member_id,
        model=model,
        dim=int(arr.shape[0]),
        key_fingerprint=cipher.fingerprint,
        ciphertext=cipher.encrypt(member_id, template_id, arr, model=model),
        scope=scope,
        origin_station_id=origin_station_id,
    )
    session.add(template)
    session.flush()
    return template


def member_templates(
    session: Session, cipher: TemplateCipher, *, member_id: str
) -> list[tuple[FaceTemplate, npt.NDArray[np.float32]]]:
    """The member's templates, decrypted (a wrong key or a damaged row raises, never skips)."""
    rows: Sequence[FaceTemplate] = session.scalars(
        select(FaceTemplate).where(FaceTemplate.member_id == member_id).order_by(FaceTemplate.created_at)
    ).all()
    return [
        (
            t,
            cipher.decrypt(
                t.member_id, t.template_id, t.key_fingerprint, t.ciphertext, model=t.model, dim=t.dim
            ),
        )
        for t in rows
    ]


def template_rows(session: Session, *, member_id: str) -> Sequence[FaceTemplate]:
    """The member's template rows, oldest first, without decrypting anything (for listing)."""
    return session.scalars(
        select(FaceTemplate)
        .where(FaceTemplate.member_id == member_id)
        .order_by(FaceTemplate.created_at, FaceTemplate.template_id)
    ).all()


#: What staff may change on a member (`update_member`); the rest is the roster's or ingest's.
EDITABLE_FIELDS = (
    "name",
    "phone",
    "kind",
    "employer",
    "groups",
    "valid_from",
    "valid_until",
    "consent_face",
    "consent_cross_station",
    "home_station_id",
)


@dataclass(frozen=True, slots=True)
class MemberUpdate:
    changed: list[str]
    templates_widened: int


def update_member(session: Session, *, member: Member, changes: Mapping[str, object]) -> MemberUpdate:
    """Apply staff edits (keys of EDITABLE_FIELDS; None clears an optional field) with the same
    checks as `add_member`. A consent withdrawal is not an edit: it goes through
    `central.roster.withdraw_consent` (which deletes the face data everywhere and records the
    erasure), so it is refused here. Granted cross-station consent widens the member's templates to
    the fleet. The caller tells the roster.
    """
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(f"cannot change {', '.join(sorted(unknown))}")
    new = {field: getattr(member, field) for field in EDITABLE_FIELDS}
    for field, value in changes.items():
        if field == "name":
            new[field] = checks.text(value, "name", 100)
        elif field == "phone":
            new[field] = checks.text(value, "phone", 32, optional=True)
        elif field == "employer":
            new[field] = checks.text(value, "employer", 200, optional=True)
        elif field == "kind":
            if value is not None and value not in MEMBER_KINDS:
                raise ValidationError(f"kind must be one of {', '.join(MEMBER_KINDS)}")
            new[field] = value
        elif field == "groups":
            if not isinstance(value, list | tuple):
                raise ValidationError("groups must be a list")
            new[field] = checks.names(value, "groups")
        elif field in ("valid_from", "valid_until"):
            if value is not None and not isinstance(value, dt.datetime):
                raise ValidationError(f"{field} must be a date and time")
            new[field] = _aware(value, field)
        elif field in ("consent_face", "consent_cross_station"):
            if not isinstance(value, bool):
                raise ValidationError(f"{field} must be true or false")
            new[field] = value
        elif field == "home_station_id":
            if value is not None and session.get(Station, checks.identifier(value, "home station")) is None:
                raise ValidationError(f"home station {value!r} does not exist")
            new[field] = value
    if new["consent_cross_station"] and not new["consent_face"]:
        raise ValidationError("cross-station consent needs face consent")
    if new["valid_from"] and new["valid_until"] and new["valid_until"] <= new["valid_from"]:
        raise ValidationError("valid_until must be after valid_from")
    for consent in ("consent_face", "consent_cross_station"):
        if getattr(member, consent) and not new[consent]:
            raise ValueError(f"{consent} is withdrawn with central.roster.withdraw_consent, not edited")
    changed = [f for f in EDITABLE_FIELDS if new[f] != getattr(member, f)]
    now = utc_now()
    widened = 0
    for field in changed:
        setattr(member, field, new[field])
    if "consent_face" in changed:
        member.consent_face_at = now
    if "consent_cross_station" in changed:
        member.consent_cross_station_at = now
        templates: Sequence[FaceTemplate] = session.scalars(
            select(FaceTemplate).where(
                FaceTemplate.member_id == member.member_id, FaceTemplate.scope == "station"
            )
        ).all()
        for template in templates:
            if template.ciphertext:  # a withdrawn placeholder (no data) stays where it is
                template.scope = "fleet"
                widened += 1
    session.flush()
    return MemberUpdate(changed, widened)


def set_status(session: Session, *, member: Member, status: str) -> bool:
    """Suspend or re-activate a member (a pending one is activated by approval). True if changed."""
    if status not in ("active", "suspended"):
        raise ValidationError("status must be active or suspended")
    if member.status == status:
        return False
    member.status = status
    session.flush()
    return True


def template_count(session: Session, *, member_id: str) -> int:
    return int(
        session.scalar(
            select(func.count()).select_from(FaceTemplate).where(FaceTemplate.member_id == member_id)
        )
        or 0
    )


def member_names(session: Session, *, member_ids: Collection[str]) -> dict[str, str]:
    """{member id: name} for the ids that exist (events keep ids of erased members)."""
    ids = [i for i in set(member_ids) if i]
    if not ids:
        return {}
    rows = session.execute(select(Member.member_id, Member.name).where(Member.member_id.in_(ids)))
    return {member_id: name for member_id, name in rows}


def member_district(session: Session, member: Member) -> str | None:
    """The district of the member's home station (None without one): audit entries about the
    member are scoped to it, so district staff see them."""
    if member.home_station_id is None:
        return None
    station = session.get(Station, member.home_station_id)
    return station.district_id if station is not None else None
