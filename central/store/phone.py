"""Workers' phones: registrations, one-time codes, long-lived logins, openings (the caller commits).

Keyword-only functions on a `Session`, like the rest of `central.store`. The rate limits of the
phone pages are counts over these rows (codes sent to a number, wrong codes, registrations and
openings per client address, openings per member), so they hold across restarts and across
several web processes without any shared memory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from central.store.tables import Event, Member, PhoneCode, PhoneLogin, PhoneOpen, Registration, Station
from common.errors import ValidationError

#: Mainland mobile numbers: 11 digits starting 13-19 (MIIT numbering plan).
_MOBILE = re.compile(r"^1[3-9][0-9]{9}$")
_SEPARATORS = str.maketrans("", "", " -()\u00a0")
TOKEN_BYTES = 32


def normalise_phone(value: object) -> str:
    """A mainland mobile number as 11 digits, from what people type (+86, spaces, dashes)."""
    if not isinstance(value, str) or len(value) > 32:
        raise ValidationError("phone must be a mobile number (11 digits)")
    digits = value.strip().translate(_SEPARATORS)
    for prefix in ("+86", "0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            digits = digits[len(prefix) :]
            break
    if not _MOBILE.fullmatch(digits):
        raise ValidationError("phone must be a mainland mobile number (11 digits starting 13-19)")
    return digits


def mask_phone(phone: str | None) -> str | None:
    """138****8000: enough for a person to recognise their number, not enough to read it off."""
    if not phone:
        return None
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "****"


# -- registrations ----------------------------------------------------------------------------------


def create_registration(
    session: Session,
    *,
    station: Station,
    phone: str,
    details: dict[str, Any],
    state: str,
    client: str | None,
    now: dt.datetime,
) -> Registration:
    registration = Registration(
        id=secrets.token_hex(16),
        station_id=station.station_id,
        district_id=station.district_id,
        phone=phone,
        details=details,
        state=state,
        client=client[:64] if client else None,
        created_at=now,
    )
    session.add(registration)
    session.flush()
    return registration


def get_registration(
    session: Session, *, registration_id: str, for_update: bool = False
) -> Registration | None:
    if not isinstance(registration_id, str) or not re.fullmatch(r"[0-9a-f]{32}", registration_id):
        return None
    query = select(Registration).where(Registration.id == registration_id)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).first()


def registrations_since(session: Session, *, since: dt.datetime, client: str | None = None) -> int:
    """Registrations started since `since` (from `client`, or from anyone)."""
    query = select(func.count()).select_from(Registration).where(Registration.created_at >= since)
    if client is not None:
        query = query.where(Registration.client == client[:64])
    return int(session.scalar(query) or 0)


def list_registrations(
    session: Session, *, states: Sequence[str], district_ids: Sequence[str] | None = None, limit: int = 200
) -> Sequence[Registration]:
    query = (
        select(Registration)
        .where(Registration.state.in_(list(states)))
        .order_by(Registration.created_at)
        .limit(limit)
    )
    if district_ids is not None:
        query = query.where(Registration.district_id.in_(list(district_ids)))
    return session.scalars(query).all()


def purge_stale(session: Session, *, now: dt.datetime, keep: dt.timedelta = dt.timedelta(days=1)) -> int:
    """Forget unconfirmed registrations and spent codes older than `keep` (they hold phone numbers).

    Called now and then by the registration path itself; cheap (indexed on state and time).
    """
    cutoff = now - keep
    removed = _count(
        session.execute(
            delete(Registration).where(Registration.state == "code_sent", Registration.created_at < cutoff)
        )
    )
    return removed + _count(session.execute(delete(PhoneCode).where(PhoneCode.created_at < cutoff)))


def _count(result: object) -> int:
    """Rows a DELETE / UPDATE touched (its CursorResult's rowcount)."""
    return int(getattr(result, "rowcount", 0) or 0)


# -- one-time codes ---------------------------------------------------------------------------------


def add_code(
    session: Session,
    *,
    phone: str,
    purpose: str,
    code_mac: str,
    registration_id: str | None,
    client: str | None,
    now: dt.datetime,
    ttl: dt.timedelta,
) -> PhoneCode:
    code = PhoneCode(
        phone=phone,
        purpose=purpose,
        code_mac=code_mac,
        registration_id=registration_id,
        client=client[:64] if client else None,
        created_at=now,
        expires_at=now + ttl,
        attempts=0,
    )
    session.add(code)
    session.flush()
    return code


def latest_code(
    session: Session, *, phone: str, purpose: str, registration_id: str | None = None
) -> PhoneCode | None:
    """The newest code for this number and purpose (locked for update: guesses are counted)."""
    query = (
        select(PhoneCode)
        .where(PhoneCode.phone == phone, PhoneCode.purpose == purpose)
        .order_by(PhoneCode.created_at.desc(), PhoneCode.id.desc())
        .limit(1)
        .with_for_update()
    )
    if registration_id is not None:
        query = query.where(PhoneCode.registration_id == registration_id)
    return session.scalars(query).first()


def codes_sent_since(
    session: Session, *, since: dt.datetime, phone: str | None = None, client: str | None = None
) -> int:
    query = select(func.count()).select_from(PhoneCode).where(PhoneCode.created_at >= since)
    if phone is not None:
        query = query.where(PhoneCode.phone == phone)
    if client is not None:
        query = query.where(PhoneCode.client == client[:64])
    return int(session.scalar(query) or 0)


def wrong_codes_since(session: Session, *, phone: str, since: dt.datetime) -> int:
    """Wrong guesses for this number, over all its codes, since `since`."""
    query = select(func.coalesce(func.sum(PhoneCode.attempts), 0)).where(
        PhoneCode.phone == phone, PhoneCode.created_at >= since
    )
    return int(session.scalar(query) or 0)


# -- logins -----------------------------------------------------------------------------------------


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_login(
    session: Session,
    *,
    member_id: str,
    now: dt.datetime,
    ttl: dt.timedelta,
    client: str | None,
    device: str | None,
) -> tuple[str, PhoneLogin]:
    """A new login; returns (the token for the cookie, the row). Only the token's hash is stored."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    login = PhoneLogin(
        token_sha256=token_sha256(token),
        member_id=member_id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + ttl,
        client=client[:64] if client else None,
        device=device[:200] if device else None,
    )
    session.add(login)
    session.flush()
    return token, login


def login_for_token(session: Session, *, token: str, now: dt.datetime) -> PhoneLogin | None:
    """The live login for a cookie value, or None (unknown, revoked, expired, malformed)."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        return None
    login = session.scalars(select(PhoneLogin).where(PhoneLogin.token_sha256 == token_sha256(token))).first()
    if login is None or login.revoked_at is not None or login.expires_at <= now:
        return None
    return login


def revoke_logins(session: Session, *, member_id: str, now: dt.datetime, keep_id: int | None = None) -> int:
    """End every live login of a member (except `keep_id`); returns how many ended."""
    query = update(PhoneLogin).where(PhoneLogin.member_id == member_id, PhoneLogin.revoked_at.is_(None))
    if keep_id is not None:
        query = query.where(PhoneLogin.id != keep_id)
    return _count(session.execute(query.values(revoked_at=now)))


def live_logins(session: Session, *, member_id: str, now: dt.datetime) -> Sequence[PhoneLogin]:
    return session.scalars(
        select(PhoneLogin)
        .where(
            PhoneLogin.member_id == member_id, PhoneLogin.revoked_at.is_(None), PhoneLogin.expires_at > now
        )
        .order_by(PhoneLogin.created_at)
    ).all()


def member_by_phone(session: Session, *, phone: str) -> Member | None:
    """The member registered with this number (the oldest, should a number appear twice)."""
    return session.scalars(
        select(Member).where(Member.phone == phone).order_by(Member.created_at).limit(1)
    ).first()


# -- openings ---------------------------------------------------------------------------------------


def find_open(session: Session, *, member_id: str, request_id: str) -> PhoneOpen | None:
    return session.scalars(
        select(PhoneOpen).where(PhoneOpen.member_id == member_id, PhoneOpen.request_id == request_id)
    ).first()


def opens_since(
    session: Session, *, since: dt.datetime, member_id: str | None = None, client: str | None = None
) -> int:
    query = select(func.count()).select_from(PhoneOpen).where(PhoneOpen.at >= since)
    if member_id is not None:
        query = query.where(PhoneOpen.member_id == member_id)
    if client is not None:
        query = query.where(PhoneOpen.client == client[:64])
    return int(session.scalar(query) or 0)


def last_sent_open(session: Session, *, member_id: str, station_id: str) -> PhoneOpen | None:
    """The member's latest opening at this station that went out to the door (for the cooldown)."""
    return session.scalars(
        select(PhoneOpen)
        .where(
            PhoneOpen.member_id == member_id,
            PhoneOpen.station_id == station_id,
            PhoneOpen.outcome.in_(("sent", "opened")),
        )
        .order_by(PhoneOpen.at.desc())
        .limit(1)
    ).first()


def purge_opens(session: Session, *, before: dt.datetime) -> int:
    """Forget phone opening requests older than `before` (the stations' events keep the openings)."""
    return _count(session.execute(delete(PhoneOpen).where(PhoneOpen.at < before)))


def record_open(session: Session, **values: Any) -> PhoneOpen:
    row = PhoneOpen(**values)
    session.add(row)
    session.flush()
    return row


def member_events(session: Session, *, member_id: str, limit: int = 50) -> Sequence[tuple[Event, str | None]]:
    """The member's own events (entries, refusals, exits), newest first, with each station's name."""
    rows = session.execute(
        select(Event, Station.name)
        .outerjoin(Station, Station.station_id == Event.station_id)
        .where(Event.member_id == member_id)
        .order_by(Event.ts.desc(), Event.id)
        .limit(limit)
    ).all()
    return [(event, name) for event, name in rows]
