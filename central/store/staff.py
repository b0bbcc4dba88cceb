"""Staff accounts: argon2id hashes only (`common.passwords`), roles and district scoping."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.store.tables import STAFF_ROLES, District, Staff
from common.db_types import utc_now
from common.passwords import (
    CredentialError,
    Passwords,
    check_new_password,
    generate_secret,
    normalise_username,
)


def get_by_username(session: Session, *, username: str) -> Staff | None:
    return session.scalars(select(Staff).where(Staff.username == username)).first()


def create_staff(
    session: Session,
    passwords: Passwords,
    *,
    username: str,
    role: str,
    district_id: str | None = None,
    display_name: str = "",
    password: str | None = None,
) -> tuple[Staff, str | None]:
    """A new account; returns (account, generated secret or None when `password` was given).

    Refused with `CredentialError` (the message says why): a bad or taken user name, an unknown
    role, a district role without a district (or an admin with one), a weak chosen password.
    """
    name = normalise_username(username)
    if role not in STAFF_ROLES:
        raise CredentialError(f"role must be one of {', '.join(STAFF_ROLES)}")
    if role == "district" and district_id is None:
        raise CredentialError("district staff need a district")
    if role == "admin" and district_id is not None:
        raise CredentialError("an admin sees every district: give no district")
    if district_id is not None and session.get(District, district_id) is None:
        raise CredentialError(f"no district {district_id!r}")
    if get_by_username(session, username=name) is not None:
        raise CredentialError(f"staff account {name!r} already exists")
    secret = None
    if password is None:
        secret = password = generate_secret()
    else:
        check_new_password(password, name)
    account = Staff(
        username=name,
        display_name=display_name[:100],
        password_hash=passwords.hash(password),
        role=role,
        district_id=district_id,
    )
    session.add(account)
    session.flush()
    return account, secret


def set_password(session: Session, passwords: Passwords, *, account: Staff, password: str) -> None:
    check_new_password(password, account.username)
    account.password_hash = passwords.hash(password)
    account.password_changed_at = utc_now()


def count_admins(session: Session) -> int:
    return int(
        session.scalar(select(func.count()).select_from(Staff).where(Staff.role == "admin", Staff.active))
        or 0
    )


def list_staff(session: Session) -> Sequence[Staff]:
    return session.scalars(select(Staff).order_by(Staff.username)).all()
