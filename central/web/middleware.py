"""The gate in front of `/api/v1/`, and the security headers on every response (pure ASGI).

The gate runs before FastAPI reads a body or matches a route, so a request without a valid login
gets its 401 whatever it carries (a malformed body, an unknown path under /api/v1). A login is a
bearer token (`Authorization: Bearer`, for scripts) or the session cookie the dashboard uses; with
the cookie, state-changing methods also need the session's CSRF token in `X-CSRF-Token`.
The gate only checks the session; `deps.current_staff` then loads the account as it is now.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.asgi import reply, request_cookie
from common.sessions import SessionStore, csrf_ok

SESSION_COOKIE = "yizhan_staff"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def content_security_policy(img_origins: tuple[str, ...] = ()) -> str:
    """The CSP, with extra image origins (the dashboard map's configured tile server) if any."""
    if not img_origins:
        return CONTENT_SECURITY_POLICY
    extra = " ".join(img_origins)
    return CONTENT_SECURITY_POLICY.replace(
        "img-src 'self' blob: data:", f"img-src 'self' blob: data: {extra}"
    )


CHALLENGE = {"WWW-Authenticate": 'Bearer realm="yizhan-central"'}


def is_protected(path: str) -> bool:
    return path == "/api/v1" or path.startswith("/api/v1/")


class StaffGate:
    def __init__(self, app: ASGIApp, sessions: SessionStore) -> None:
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            session = self.sessions.get(credentials.strip())
            via = "bearer"
        else:
            token = request_cookie(headers, SESSION_COOKIE)
            session = self.sessions.get(token) if token else None
            via = "cookie" if token else "none"
        if session is None:
            detail, code = (
                (
                    "log in first: a session cookie or an Authorization: Bearer token is required",
                    "not_authenticated",
                )
                if via == "none"
                else ("the login has expired or was ended: log in again", "session_expired")
            )
            await reply(scope, receive, send, 401, detail, code, headers=CHALLENGE)
            return
        if (
            via == "cookie"
            and scope["method"] in UNSAFE_METHODS
            and not csrf_ok(session, headers.get(CSRF_HEADER))
        ):
            await reply(
                scope, receive, send, 403, f"missing or wrong {CSRF_HEADER} header (reload the page)", "csrf"
            )
            return
        scope.setdefault("state", {})["staff_session"] = session
        await self.app(scope, receive, send)


class SecurityHeaders:
    """No sniffing, no framing, no referrer, a strict CSP; API answers are never cached."""

    def __init__(self, app: ASGIApp, img_origins: tuple[str, ...] = ()) -> None:
        self.app = app
        self.csp = content_security_policy(img_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("Content-Security-Policy", self.csp)
                if path.startswith("/api/") and not path.startswith("/api/public/"):
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
