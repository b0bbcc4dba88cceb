"""Pure ASGI middleware: request log and security headers, the authentication gate (body limits:
`common.asgi.BodyLimit`).

Pure ASGI (not `BaseHTTPMiddleware`) so the live MJPEG stream passes through unbuffered, and so the
gate and the size limit act before FastAPI reads a body or resolves a route: an unauthenticated
request gets its 401 whatever it carries, and a 20 MB upload is refused from its Content-Length
without a byte of it being read.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from typing import Any

import anyio
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.asgi import reply, request_cookie
from common.login import LoginRefused
from edge.api.auth import Identity
from edge.api.context import ApiContext
from edge.api.deps import CSRF_HEADER, SESSION_COOKIE

log = logging.getLogger(__name__)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
STREAM_ROUTES = frozenset({"/api/v1/camera/preview.mjpg"})


def is_protected(path: str) -> bool:
    """Everything under /api/v1 and the metrics need credentials; /healthz, the page and login do not."""
    return path == "/metrics" or path == "/api/v1" or path.startswith("/api/v1/")


class RequestLog:
    """Outermost: security headers on every response, one log line and one latency sample per request."""

    def __init__(self, app: ASGIApp, ctx: ApiContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                if is_protected(path) or path.startswith("/auth/"):
                    headers.setdefault("Cache-Control", "no-store")
                elif path.startswith("/static/"):
                    headers.setdefault("Cache-Control", "no-cache")  # revalidate: an upgrade ships new JS
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or (
                "/static" if path.startswith("/static/") else "unmatched"
            )
            method = scope["method"]
            if route not in STREAM_ROUTES:
                self.ctx.metrics.observe_request(route, method, seconds)
            identity = scope.get("state", {}).get("installer")
            fields = {
                "method": method,
                "route": route,
                "status": status,
                "ms": round(seconds * 1000, 1),
                "user": identity.username if isinstance(identity, Identity) else None,
            }
            if status >= 500:
                log.error("request failed", extra={"fields": fields})
            elif method in UNSAFE_METHODS or status >= 400:
                log.info("request", extra={"fields": fields})
            else:
                log.debug("request", extra={"fields": fields})


class AuthGate:
    """Credentials for /api/v1 and /metrics: bearer token, session cookie (+ CSRF header on unsafe
    methods), or, for /metrics only, HTTP Basic (Prometheus' `basic_auth`)."""

    def __init__(self, app: ASGIApp, ctx: ApiContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        authorization = headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        scheme = scheme.lower()
        challenge = {"WWW-Authenticate": 'Bearer realm="yizhan"'}
        identity: Identity | None = None
        if scheme == "bearer" and credentials.strip():
            session = self.ctx.auth.session_for(credentials.strip())
            if session is None:
                await reply(
                    scope,
                    receive,
                    send,
                    401,
                    "the token is not valid (expired or logged out): log in again",
                    "session_expired",
                    headers=challenge,
                )
                return
            identity = Identity(session.username, "bearer", session)
        elif scheme == "basic" and scope["path"] == "/metrics":
            identity = await self._basic(scope, receive, send, credentials)
            if identity is None:
                return
        else:
            token = request_cookie(headers, SESSION_COOKIE)
            if token:
                session = self.ctx.auth.session_for(token)
                if session is None:
                    await reply(
                        scope,
                        receive,
                        send,
                        401,
                        "the login has expired: log in again",
                        "session_expired",
                        headers=challenge,
                    )
                    return
                if scope["method"] in UNSAFE_METHODS and not self.ctx.auth.csrf_ok(
                    session, headers.get(CSRF_HEADER)
                ):
                    await reply(
                        scope,
                        receive,
                        send,
                        403,
                        f"missing or wrong {CSRF_HEADER} header (reload the page)",
                        "csrf",
                    )
                    return
                identity = Identity(session.username, "cookie", session)
        if identity is None:
            await reply(
                scope,
                receive,
                send,
                401,
                "log in first: a session cookie or an Authorization: Bearer token is required",
                "not_authenticated",
                headers=challenge,
            )
            return
        scope.setdefault("state", {})["installer"] = identity
        await self.app(scope, receive, send)

    async def _basic(self, scope: Scope, receive: Receive, send: Send, credentials: str) -> Identity | None:
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        username, sep, password = decoded.partition(":")
        if not sep:
            await reply(
                scope,
                receive,
                send,
                401,
                "malformed Basic credentials",
                "not_authenticated",
                headers={"WWW-Authenticate": 'Basic realm="yizhan"'},
            )
            return None
        client = scope.get("client")
        address = client[0] if client else "unknown"
        try:
            name = await anyio.to_thread.run_sync(self.ctx.auth.check_password, username, password, address)
        except LoginRefused as exc:
            extra: dict[str, Any] = {}
            if exc.retry_after_s is not None:
                extra["headers"] = {"Retry-After": str(max(1, round(exc.retry_after_s + 0.5)))}
            elif exc.status == 401:
                extra["headers"] = {"WWW-Authenticate": 'Basic realm="yizhan"'}
            await reply(scope, receive, send, exc.status, str(exc), exc.code, **extra)
            return None
        return Identity(name, "basic")
