"""Staff login and logout, who am I, changing one's password.

`POST /api/auth/login` is the only way in, so it is outside `/api/v1` (which always needs a login).
It answers with a bearer token for scripts and sets the same token as an HttpOnly, SameSite=Strict
cookie for the dashboard; the CSRF token in the answer must accompany the cookie on every unsafe
request (the page keeps it in memory and gets it again from `/api/v1/auth/me`).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from central.store import audit
from central.store import staff as staff_store
from central.web.deps import ClientAddress, ContextDep, CurrentStaff, DbSession, current_staff
from central.web.errors import ApiError
from central.web.middleware import SESSION_COOKIE
from common.auth_schemas import LoginRequest, PasswordChange
from common.login import LoginRefused
from common.sessions import Session

public = APIRouter(prefix="/api/auth", tags=["auth"])
router = APIRouter(prefix="/api/v1/auth", tags=["auth"], dependencies=[Depends(current_staff)])


class SessionOut(BaseModel):
    username: str
    role: str
    district_id: str | None
    token: str | None = Field(None, description="Bearer token (only in the login answer).")
    csrf_token: str = Field(description="Send as X-CSRF-Token with unsafe requests made with the cookie.")
    expires_in_s: float


def _out(
    ctx: ContextDep, session: Session, role: str, district: str | None, token: str | None = None
) -> SessionOut:
    return SessionOut(
        username=session.username,
        role=role,
        district_id=district,
        token=token,
        csrf_token=session.csrf_token,
        expires_in_s=round(ctx.auth.sessions.expires_in(session), 1),
    )


@public.post("/login", response_model=SessionOut, responses={401: {}, 429: {}})
def login(
    body: LoginRequest, response: Response, ctx: ContextDep, client: ClientAddress, db: DbSession
) -> SessionOut:
    """Log in with a staff account (the first one comes from `yizhan-central init --admin NAME`)."""
    token, session = ctx.auth.login(body.username, body.password, client)
    account = staff_store.get_by_username(db, username=session.username)
    if account is None:  # removed between the check and now
        ctx.auth.sessions.revoke(session)
        raise ApiError(401, "wrong user name or password", "bad_credentials")
    web = ctx.config.web
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=web.session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=web.cookie_secure,
        path="/",
    )
    return _out(ctx, session, account.role, account.district_id, token)


@router.get("/me", response_model=SessionOut)
def me(staff: CurrentStaff, ctx: ContextDep) -> SessionOut:
    """The logged-in account, its role and district, and the CSRF token for this login."""
    return _out(ctx, staff.session, staff.role, staff.district_id)


@router.post("/logout", status_code=204)
def logout(staff: CurrentStaff, ctx: ContextDep, response: Response) -> Response:
    """End this login (the token and the cookie stop working)."""
    ctx.auth.sessions.revoke(staff.session)
    response.status_code = 204
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.post("/password", status_code=204, responses={403: {"description": "Current password wrong"}})
def change_password(
    body: PasswordChange,
    staff: CurrentStaff,
    ctx: ContextDep,
    client: ClientAddress,
    db: DbSession,
    response: Response,
) -> Response:
    """Replace one's own password (10 to 256 characters); the account's other logins end."""
    try:
        ctx.auth.check_password(staff.username, body.current_password, client, db=db)
    except LoginRefused as exc:
        if exc.status != 401:
            raise
        raise ApiError(403, "the current password is wrong", "wrong_password") from None
    account = staff_store.get_by_username(db, username=staff.username)
    assert account is not None
    staff_store.set_password(db, ctx.auth.passwords, account=account, password=body.new_password)
    audit.record(
        db, actor=staff.actor, action="password_changed", client=client, district_id=staff.district_id
    )
    ctx.auth.sessions.revoke_user(staff.username, keep=staff.session)
    response.status_code = 204
    return response
