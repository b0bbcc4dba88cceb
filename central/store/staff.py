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
    _check_role(session, role, district_id)
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


def _check_role(session: Session, role: str, district_id: str | None) -> None:
    if role not in STAFF_ROLES:
        raise CredentialError(f"role must be one of {', '.join(STAFF_ROLES)}")
    if role == "district" and district_id is None:
        raise CredentialError("district staff need a district")
    if role == "admin" and district_id is not None:
        raise CredentialError("an admin sees every district: give no district")
    if district_id is not None and session.get(District, district_id) is None:
        raise CredentialError(f"no district {district_id!r}")


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


def get_by_id(session: Session, *, staff_id: int) -> Staff | None:
    return session.get(Staff, staff_id)


def update_staff(
    session: Session,
    *,
    account: Staff,
    role: str | None = None,
    district_id: str | None = None,
    active: bool | None = None,
    display_name: str | None = None,
) -> list[str]:
    """Change an account's role and district (given together), active flag or display name.

    Returns the fields that changed. Refused with `CredentialError`: the same role/district rules as
    `create_staff`, and nothing that would leave the centre without an active admin.
    """
    changed: list[str] = []
    if role is not None:
        _check_role(session, role, district_id)
        changed += [f for f, old, new in (("role", account.role, role), ("district_id", account.district_id,
                    district_id)) if old != new]  # fmt: skip
    losing_admin = (
        account.role == "admin"
        and account.active
        and ((role is not None and role != "admin") or active is False)
    )
    if losing_admin and count_admins(session) <= 1:
        raise CredentialError("this is the last active admin: make another admin first")
    if role is not None:
        account.role, account.district_id = role, district_id
    if active is not None and active != account.active:
        account.active = active
        changed.append("active")
    if display_name is not None and display_name != account.display_name:
        account.display_name = display_name[:100]
        changed.append("display_name")
    session.flush()
    return changed


def reset_password(session: Session, passwords: Passwords, *, account: Staff) -> str:
    """A new generated secret for the account (shown once to the admin who asked)."""
    secret = generate_secret()
    account.password_hash = passwords.hash(secret)
    account.password_changed_at = utc_now()
    session.flush()
    return secret
