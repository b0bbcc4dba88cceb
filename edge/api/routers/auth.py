"""Logging in and out, who am I, changing one's password.

`POST /auth/login` is the only way in and therefore outside `/api/v1` (which always needs
credentials). It answers with a bearer token for scripts and sets the same token as an HttpOnly,
SameSite=Strict cookie for the page; the CSRF token in the answer must accompany the cookie on
every unsafe request (the page keeps it in memory and gets it again from `/api/v1/auth/me`).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from common.auth_schemas import LoginRequest, PasswordChange
from common.login import LoginRefused
from common.passwords import check_new_password
from common.sessions import Session
from edge.api.deps import SESSION_COOKIE, ClientAddress, ContextDep, CurrentInstaller, current_installer
from edge.api.errors import ApiError

public = APIRouter(prefix="/auth", tags=["auth"])
router = APIRouter(prefix="/api/v1/auth", tags=["auth"], dependencies=[Depends(current_installer)])


class SessionOut(BaseModel):
    username: str
    token: str | None = Field(None, description="Bearer token (only in the login answer).")
    csrf_token: str = Field(description="Send as X-CSRF-Token with unsafe requests made with the cookie.")
    expires_in_s: float
    expires_at: float = Field(description="Unix time the login ends if left idle.")


def _session_out(ctx: ContextDep, session: Session, token: str | None = None) -> SessionOut:
    remaining = ctx.auth.sessions.expires_in(session)
    return SessionOut(
        username=session.username,
        token=token,
        csrf_token=session.csrf_token,
        expires_in_s=round(remaining, 1),
        expires_at=round(time.time() + remaining, 1),
    )


@public.post(
    "/login",
    response_model=SessionOut,
    responses={
        401: {"description": "Wrong user name or password"},
        429: {"description": "Slow down / locked"},
    },
)
def login(body: LoginRequest, response: Response, ctx: ContextDep, client: ClientAddress) -> SessionOut:
    """Log in with an installer account (made with `yizhan installer add`)."""
    token, session = ctx.auth.login(body.username, body.password, client)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=ctx.settings.session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=ctx.settings.cookie_secure,
        path="/",
    )
    return _session_out(ctx, session, token)


@router.get("/me", response_model=SessionOut)
def me(installer: CurrentInstaller, ctx: ContextDep) -> SessionOut:
    """The logged-in installer and the CSRF token for this login."""
    if installer.session is None:
        raise ApiError(400, "HTTP Basic credentials have no session", "no_session")
    return _session_out(ctx, installer.session)


@router.post("/logout", status_code=204)
def logout(installer: CurrentInstaller, ctx: ContextDep, response: Response) -> Response:
    """End this login (the token and the cookie stop working)."""
    ctx.auth.logout(installer)
    response.status_code = 204
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.post("/password", status_code=204, responses={401: {"description": "Current password wrong"}})
def change_password(
    body: PasswordChange,
    installer: CurrentInstaller,
    ctx: ContextDep,
    client: ClientAddress,
    response: Response,
) -> Response:
    """Replace one's own password (at least 10 characters); other logins of the account end."""
    check_new_password(body.new_password, installer.username)
    try:
        ctx.auth.change_password(installer, body.current_password, body.new_password, client)
    except LoginRefused as exc:
        if exc.status != 401:
            raise
        raise ApiError(403, "the current password is wrong", "wrong_password") from None
    ctx.audit("installer_password_changed", by=f"installer:{installer.username}")
    response.status_code = 204
    return response
