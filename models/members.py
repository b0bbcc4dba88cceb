"""Members, their encrypted face templates, the roster built from them, and station key/values.

Every function takes a `Session` and only flushes: the caller decides when to commit, so an enrolment
(member + templates + event) can be one transaction. Input is validated before anything is written,
and writes that can fail on a constraint run inside a SAVEPOINT, so a refused call leaves the
caller's transaction (and everything stored) exactly as it was. Errors are `ValidationError` (bad
input, message names the field), `DuplicateMemberError`, `MemberNotFoundError`, and, when reading
templates, `TemplateDecryptError` subclasses.

Consent: face templates are stored only for a member with ``consent_face=True``, and withdrawing
that consent (``update_member(..., consent_face=False)``) deletes the member's templates in the same
transaction. Biometric data without consent must not exist, not merely be unused.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.template_cipher import TemplateCipher, as_template_vector
from models.database import StoreError, ValidationError
from models.tables import MEMBER_ID_MAX, FaceTemplate, Member, StationState, utc_now
from recognizer.encoder import DLIB_DIM, MODEL_DLIB
from recognizer.roster import MemberInfo, RosterSnapshot

KINDS: frozenset[str] = frozenset({"courier", "rider", "sanitation", "driver", "other"})
STATUSES: frozenset[str] = frozenset({"active", "suspended"})
NAME_MAX = 100
PHONE_MAX = 32
GROUP_MAX = 64
GROUPS_MAX = 32
SOURCE_MAX = 200
STATE_KEY_MAX = 64
MODEL_NAME_MAX = 64
MAX_TEMPLATES_PER_MEMBER = 50  # the upper bound of [recognition] max_templates_per_member
ROSTER_VERSION_KEY = "roster_version"

_ID_RE = re.compile(rf"[A-Za-z0-9._-]{{1,{MEMBER_ID_MAX}}}")
_PHONE_RE = re.compile(r"\+?[0-9 ()-]+")
_UPDATABLE = frozenset(
    {
        "name",
        "phone",
        "groups",
        "kind",
        "valid_from",
        "valid_until",
        "status",
        "consent_face",
        "consent_cross_station",
        "requires_pass",
    }
)
ORIGINS: frozenset[str] = frozenset({"photo", "upload", "camera", "centre"})
ENROLLED_BY_MAX = 100

#: `FaceTemplate.source` of a template the centre's roster put here; anything else was enrolled at
#: this station (sync.snapshot_apply keeps those through a snapshot: the centre may never have them).
CENTRE_SOURCE = "centre"


class DuplicateMemberError(StoreError, ValueError):
    """A member with this id already exists."""


class MemberNotFoundError(StoreError, LookupError):
    """No member with this id."""


# --- validation helpers (also used by models.qr_store and models.events) ---------------------------


def validate_identifier(value: object, field: str, *, max_len: int = MEMBER_ID_MAX) -> str:
    """1..max_len characters of [A-Za-z0-9._-], and not "." or ".." (ids end up in paths and topics)."""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string, got {type(value).__name__}")
    if not value:
        raise ValidationError(f"{field} must not be empty")
    if len(value) > max_len:
        raise ValidationError(f"{field} is {len(value)} characters long, the maximum is {max_len}")
    if not _ID_RE.fullmatch(value) or value in {".", ".."}:
        raise ValidationError(f"{field} {value!r} may only contain letters A-Z a-z, digits, '.', '_' and '-'")
    return value


def validate_text(value: object, field: str, *, max_len: int, allow_empty: bool = False) -> str:
    """A printable string (any script; no control characters), surrounding whitespace stripped."""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string, got {type(value).__name__}")
    text = value.strip()
    if not text and not allow_empty:
        raise ValidationError(f"{field} must not be empty")
    if len(text) > max_len:
        raise ValidationError(f"{field} is {len(text)} characters long, the maximum is {max_len}")
    if not text.isprintable():
        raise ValidationError(f"{field} contains control or non-printable characters")
    return text


def validate_bool(value: object, field: str) -> bool:
    """Exactly True or False: 0/1/"yes" are refused, they usually mean a parsing bug upstream."""
    if not isinstance(value, bool):
        raise ValidationError(f"{field} must be True or False, got {value!r}")
    return value


def json_safe(value: object, field: str) -> Any:
    """Round-trip `value` through strict JSON (numpy scalars become numbers; NaN, inf, sets refused)."""

    def default(obj: object) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        raise TypeError(f"{type(obj).__name__} is not JSON serialisable")

    try:
        return json.loads(json.dumps(value, allow_nan=False, default=default))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{field} is not valid JSON data: {exc}") from exc


def _validate_datetime(value: object, field: str) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        raise ValidationError(f"{field} must be a datetime or None, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{field} must be timezone-aware (e.g. datetime(..., tzinfo=UTC))")
    return value.astimezone(dt.UTC)


def _validate_phone(value: object) -> str | None:
    if value is None:
        return None
    phone = validate_text(value, "phone", max_len=PHONE_MAX)
    if not _PHONE_RE.fullmatch(phone) or sum(c.isdigit() for c in phone) < 3:
        raise ValidationError(f"phone {phone!r} may only contain digits, spaces, '+', '-', '(' and ')'")
    return phone


def _validate_groups(value: object) -> list[str]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ValidationError("groups must be a list of strings (a single string is not a list)")
    groups: list[str] = []
    for i, group in enumerate(value):
        name = validate_text(group, f"groups[{i}]", max_len=GROUP_MAX)
        if name not in groups:
            groups.append(name)
    if len(groups) > GROUPS_MAX:
        raise ValidationError(f"groups has {len(groups)} entries, the maximum is {GROUPS_MAX}")
    return groups


def _validate_kind(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in KINDS:
        raise ValidationError(f"kind must be one of {sorted(KINDS)} or None, got {value!r}")
    return value


def _validate_status(value: object) -> str:
    if not isinstance(value, str) or value not in STATUSES:
        raise ValidationError(f"status must be one of {sorted(STATUSES)}, got {value!r}")
    return value


def _check_period(valid_from: dt.datetime | None, valid_until: dt.datetime | None) -> None:
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise ValidationError(
            f"valid_until ({valid_until.isoformat()}) must be later than "
            f"valid_from ({valid_from.isoformat()})"
        )


def _validate_field(field: str, value: object) -> object:
    if field == "name":
        return validate_text(value, "name", max_len=NAME_MAX)
    if field == "phone":
        return _validate_phone(value)
    if field == "groups":
        return _validate_groups(value)
    if field == "kind":
        return _validate_kind(value)
    if field in {"valid_from", "valid_until"}:
        return _validate_datetime(value, field)
    if field == "status":
        return _validate_status(value)
    if field in {"consent_face", "consent_cross_station", "requires_pass"}:
        return validate_bool(value, field)
    raise ValidationError(f"unknown or read-only member field {field!r}; updatable: {sorted(_UPDATABLE)}")


def validate_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Check member fields (any subset) exactly as `add_member` / `update_member` will, without a
    session: a caller that must not fail half-way (a roster snapshot written in batches) checks
    everything first."""
    values = {field: _validate_field(field, value) for field, value in fields.items()}
    valid_from, valid_until = values.get("valid_from"), values.get("valid_until")
    _check_period(
        valid_from if isinstance(valid_from, dt.datetime) else None,
        valid_until if isinstance(valid_until, dt.datetime) else None,
    )
    return values


# --- members ---------------------------------------------------------------------------------------


def add_member(
    session: Session,
    *,
    member_id: str,
    name: str,
    phone: str | None = None,
    groups: Sequence[str] = (),
    kind: str | None = None,
    valid_from: dt.datetime | None = None,
    valid_until: dt.datetime | None = None,
    status: str = "active",
    consent_face: bool = False,
    consent_cross_station: bool = False,
) -> Member:
    """Create a member (flushed, not committed). `consent_at` is set when any consent is given."""
    member_id = validate_identifier(member_id, "member_id")
    values: dict[str, Any] = {
        field: _validate_field(field, value)
        for field, value in (
            ("name", name),
            ("phone", phone),
            ("groups", groups),
            ("kind", kind),
            ("valid_from", valid_from),
            ("valid_until", valid_until),
            ("status", status),
            ("consent_face", consent_face),
            ("consent_cross_station", consent_cross_station),
        )
    }
    _check_period(values["valid_from"], values["valid_until"])
    same = session.scalar(select(Member.member_id).where(func.lower(Member.member_id) == member_id.lower()))
    if same == member_id:
        raise DuplicateMemberError(f"member {member_id!r} already exists")
    if same is not None:
        raise DuplicateMemberError(
            f"member {same!r} already exists: member ids are compared ignoring case, so "
            f"{member_id!r} is the same id; use {same!r} or another id"
        )
    now = utc_now()
    member = Member(
        member_id=member_id,
        consent_at=now if values["consent_face"] or values["consent_cross_station"] else None,
        created_at=now,
        updated_at=now,
        **values,
    )
    try:
        with session.begin_nested():
            session.add(member)
    except IntegrityError as exc:
        # Another connection inserted the same id between our check and our flush.
        raise DuplicateMemberError(f"member {member_id!r} already exists") from exc
    return member


def get_member(session: Session, member_id: str) -> Member | None:
    """The member with this id, or None."""
    if not isinstance(member_id, str):
        raise ValidationError(f"member_id must be a string, got {type(member_id).__name__}")
    return session.get(Member, member_id)


def _require_member(session: Session, member_id: str) -> Member:
    member = get_member(session, member_id)
    if member is None:
        raise MemberNotFoundError(f"no member {member_id!r}")
    return member


def list_members(session: Session) -> list[Member]:
    """All members, ordered by member_id (stable, so listings and rosters are reproducible)."""
    return list(session.scalars(select(Member).order_by(Member.member_id)))


def update_member(session: Session, member_id: str, /, **fields: Any) -> Member:
    """Change some fields of a member; all values are validated before any is applied.

    Changing a consent flag stamps `consent_at`. Setting ``consent_face=False`` deletes the member's
    face templates (see the module docstring). `member_id` itself cannot be changed.
    """
    member = _require_member(session, member_id)
    values = {field: _validate_field(field, value) for field, value in fields.items()}
    valid_from = values.get("valid_from", member.valid_from)
    valid_until = values.get("valid_until", member.valid_until)
    _check_period(
        valid_from if isinstance(valid_from, dt.datetime) else None,
        valid_until if isinstance(valid_until, dt.datetime) else None,
    )
    now = utc_now()
    consent_changed = any(
        field in values and values[field] != getattr(member, field)
        for field in ("consent_face", "consent_cross_station")
    )
    with session.begin_nested():
        for field, value in values.items():
            setattr(member, field, value)
        if consent_changed:
            member.consent_at = now
        if values.get("consent_face") is False:
            member.templates.clear()
        member.updated_at = now
    return member


def remove_member(session: Session, member_id: str) -> bool:
    """Delete a member and (by cascade) their templates; False if there was no such member.

    Events naming the member are kept: the access log outlives the membership.
    """
    member = get_member(session, member_id)
    if member is None:
        return False
    with session.begin_nested():
        session.delete(member)
    return True


# --- templates -------------------------------------------------------------------------------------


def add_templates(
    session: Session,
    cipher: TemplateCipher,
    *,
    member_id: str,
    encodings: Sequence[npt.ArrayLike],
    qualities: Sequence[dict[str, Any]],
    sources: Sequence[str | None],
    origin: str | None = None,
    enrolled_by: str | None = None,
    model: str = MODEL_DLIB,
    dim: int = DLIB_DIM,
) -> list[str]:
    """Encrypt and store face encodings of face model `model` for a member; returns the new ids.

    `origin` says how they were taken ("photo", "upload", "camera", "centre") and `enrolled_by` who
    took them (an installer account, "cli:<user>"): `list_templates` shows both.

    All-or-nothing: every vector (`dim` finite floats), quality dict and source is checked first,
    and the rows are written in one SAVEPOINT. Refused for a member without face consent.
    """
    model = validate_text(model, "model", max_len=MODEL_NAME_MAX)
    member = _require_member(session, member_id)
    if not member.consent_face:
        raise ValidationError(
            f"member {member_id!r} has not consented to face recognition (consent_face is False); "
            "record consent with update_member(..., consent_face=True) before enrolling a face"
        )
    encodings = list(encodings)
    qualities = list(qualities)
    sources = list(sources)
    if not encodings:
        raise ValidationError("encodings must not be empty")
    if not (len(encodings) == len(qualities) == len(sources)):
        raise ValidationError(
            f"encodings, qualities and sources must have the same length "
            f"(got {len(encodings)}, {len(qualities)}, {len(sources)})"
        )
    if origin is not None and origin not in ORIGINS:
        raise ValidationError(f"origin must be one of {sorted(ORIGINS)} or None, got {origin!r}")
    if enrolled_by is not None:
        enrolled_by = validate_text(enrolled_by, "enrolled_by", max_len=ENROLLED_BY_MAX)
    existing = template_count(session, member_id)
    if existing + len(encodings) > MAX_TEMPLATES_PER_MEMBER:
        raise ValidationError(
            f"member {member_id!r} would have {existing + len(encodings)} templates, "
            f"the maximum is {MAX_TEMPLATES_PER_MEMBER}"
        )
    prepared: list[tuple[npt.NDArray[np.float32], dict[str, Any], str | None]] = []
    for i, (encoding, quality, source) in enumerate(zip(encodings, qualities, sources, strict=True)):
        vector = as_template_vector(encoding, f"encodings[{i}]", dim)
        if not isinstance(quality, dict) or not all(isinstance(k, str) for k in quality):
            raise ValidationError(f"qualities[{i}] must be a dict with string keys")
        quality_json = json_safe(quality, f"qualities[{i}]")
        source_text = None if source is None else validate_text(source, f"sources[{i}]", max_len=SOURCE_MAX)
        prepared.append((vector, quality_json, source_text))
    now = utc_now()
    ids: list[str] = []
    with session.begin_nested():
        for vector, quality_json, source_text in prepared:
            template_id = uuid.uuid4().hex
            session.add(
                FaceTemplate(
                    template_id=template_id,
                    member_id=member_id,
                    key_fingerprint=cipher.fingerprint,
                    ciphertext=cipher.encrypt(member_id, template_id, vector, model),
                    quality=quality_json,
                    source=source_text,
                    created_at=now,
                    origin=origin,
                    enrolled_by=enrolled_by,
                    model=model,
                )
            )
            ids.append(template_id)
    return ids


def delete_templates(session: Session, member_id: str) -> int:
    """Delete all face templates of a member (e.g. re-enrolment); returns how many were deleted."""
    member = _require_member(session, member_id)
    count = len(member.templates)
    with session.begin_nested():
        member.templates.clear()
    return count


def list_templates(session: Session, member_id: str) -> list[FaceTemplate]:
    """A member's templates, oldest first (the encrypted vector is not decrypted here)."""
    _require_member(session, member_id)
    query = (
        select(FaceTemplate)
        .where(FaceTemplate.member_id == member_id)
        .order_by(FaceTemplate.created_at, FaceTemplate.template_id)
    )
    return list(session.scalars(query))


def get_template(session: Session, template_id: str) -> FaceTemplate | None:
    if not isinstance(template_id, str):
        raise ValidationError(f"template_id must be a string, got {type(template_id).__name__}")
    return session.get(FaceTemplate, template_id)


def remove_template(session: Session, template_id: str) -> str | None:
    """Delete one template; returns its member's id, or None if there was no such template."""
    row = get_template(session, template_id)
    if row is None:
        return None
    member_id = row.member_id
    with session.begin_nested():
        session.delete(row)
    return member_id


def template_origin(row: FaceTemplate) -> str | None:
    """How a template was enrolled; rows from before origins were recorded: from their source."""
    if row.origin:
        return row.origin
    if row.source == "centre":
        return "centre"
    return None


def add_lookalike(
    session: Session, member_id: str, *, other: str, distance: float, confirmed_by: str | None
) -> Member:
    """Record a confirmed lookalike of `member_id` and require the pass for them at the door."""
    member = _require_member(session, member_id)
    entry = json_safe(
        {
            "member_id": validate_identifier(other, "other"),
            "distance": round(float(distance), 4),
            "confirmed_by": confirmed_by,
            "at": utc_now().isoformat(),
        },
        "lookalike",
    )
    with session.begin_nested():
        member.lookalikes = [e for e in (member.lookalikes or []) if e.get("member_id") != other] + [entry]
        member.requires_pass = True
        member.updated_at = utc_now()
    return member


def delete_templates_not_of(session: Session, model: str) -> dict[str, int]:
    """Delete every template of a face model other than `model`; returns {model: count deleted}."""
    counts: dict[str, int] = {}
    with session.begin_nested():
        for template in session.scalars(select(FaceTemplate).where(FaceTemplate.model != model)):
            counts[template.model] = counts.get(template.model, 0) + 1
            session.delete(template)
    return counts


def template_count(session: Session, member_id: str, model: str | None = None) -> int:
    """Number of templates stored for a member (0 for an unknown member); of `model` only if given."""
    query = select(func.count()).select_from(FaceTemplate).where(FaceTemplate.member_id == member_id)
    if model is not None:
        query = query.where(FaceTemplate.model == model)
    return int(session.scalar(query) or 0)


def template_counts(session: Session, model: str | None = None) -> dict[str, int]:
    """member_id -> number of templates (of `model` only, if given), for every member (0 included)."""
    join = FaceTemplate.member_id == Member.member_id
    if model is not None:
        join = join & (FaceTemplate.model == model)
    query = (
        select(Member.member_id, func.count(FaceTemplate.template_id))
        .outerjoin(FaceTemplate, join)
        .group_by(Member.member_id)
        .order_by(Member.member_id)
    )
    return {str(member_id): int(count) for member_id, count in session.execute(query)}


def template_models(session: Session) -> dict[str, dict[str, int]]:
    """member_id -> {face model: number of templates}, for members holding any template.

    What a station that switched encoders needs to say who must re-enrol: a member whose templates
    are all another model's has no face at this door until enrolled again (QR keeps working).
    """
    query = (
        select(FaceTemplate.member_id, FaceTemplate.model, func.count(FaceTemplate.template_id))
        .group_by(FaceTemplate.member_id, FaceTemplate.model)
        .order_by(FaceTemplate.member_id, FaceTemplate.model)
    )
    found: dict[str, dict[str, int]] = {}
    for member_id, model, count in session.execute(query):
        found.setdefault(str(member_id), {})[str(model)] = int(count)
    return found


def member_info(m: Member) -> MemberInfo:
    """The door's immutable view of a member."""
    return MemberInfo(
        member_id=m.member_id,
        name=m.name,
        status=m.status,
        groups=tuple(m.groups or ()),
        kind=m.kind,
        valid_from=m.valid_from,
        valid_until=m.valid_until,
        requires_pass=bool(m.requires_pass),
    )


def load_roster(
    session: Session,
    cipher: TemplateCipher,
    *,
    version: int | None = None,
    model: str = MODEL_DLIB,
    dim: int = DLIB_DIM,
) -> RosterSnapshot:
    """Decrypt every template of face model `model` and build the snapshot the door matches against.

    Raises `TemplateKeyMismatch` / `TemplateCorrupt` on the first bad row: a roster missing rows would
    quietly turn members away, so a partial roster is never built. Templates of other models stay
    stored and untouched (a station switched back finds them again) but are not loaded: their vectors
    mean nothing to this model. Members without templates of `model` are in `members` (they can
    still use QR). `version` defaults to the stored ``roster_version`` (or 0).
    """
    if version is None:
        stored = get_state(session, ROSTER_VERSION_KEY)
        try:
            version = int(stored) if stored is not None else 0
        except ValueError as exc:
            raise StoreError(f"station_state {ROSTER_VERSION_KEY!r} is not an integer: {stored!r}") from exc
    members = [member_info(m) for m in list_members(session)]
    query = select(
        FaceTemplate.member_id,
        FaceTemplate.template_id,
        FaceTemplate.key_fingerprint,
        FaceTemplate.ciphertext,
    ).where(FaceTemplate.model == model)
    query = query.order_by(FaceTemplate.member_id, FaceTemplate.created_at, FaceTemplate.template_id)
    rows = [
        (member_id, cipher.decrypt(member_id, template_id, fingerprint, blob, model, dim))
        for member_id, template_id, fingerprint, blob in session.execute(query)
    ]
    return RosterSnapshot.build(rows, members, version=version, model=model, dim=dim)


# --- station key/values ----------------------------------------------------------------------------


def get_state(session: Session, key: str, default: str | None = None) -> str | None:
    """The stored value for `key`, or `default`."""
    row = session.get(StationState, key)
    return default if row is None else row.value


def set_state(session: Session, key: str, value: str) -> None:
    """Store `value` under `key` (insert or replace; flushed, not committed)."""
    key = validate_text(key, "key", max_len=STATE_KEY_MAX)
    if not isinstance(value, str):
        raise ValidationError(f"value must be a string, got {type(value).__name__}")
    with session.begin_nested():
        row = session.get(StationState, key)
        if row is None:
            session.add(StationState(key=key, value=value))
        else:
            row.value = value
