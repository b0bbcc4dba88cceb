"""Small pure-ASGI pieces both web apps use: one error shape, cookies read safely, body limits.

Pure ASGI (not `BaseHTTPMiddleware`) so streams pass through unbuffered, and so a limit acts before
FastAPI reads a body: a 20 MB upload is refused from its Content-Length without a byte of it being
read, and a body that lies about its length is cut off once it passes the limit.

Every refusal has one shape, `{"detail": <sentence>, "code": <stable word>, ...}`: `detail` is
English for logs and scripts, `code` is what pages translate.
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


class ApiError(Exception):
    """A refusal with a status, a sentence, a stable code and optional extra fields."""

    def __init__(
        self,
        status: int,
        detail: str,
        code: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.code = code or STATUS_CODES.get(status, "error")
        self.headers = headers
        self.extra = extra


def error_body(status: int, detail: str, code: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"detail": detail, "code": code or STATUS_CODES.get(status, "error"), **extra}


async def reply(
    scope: Scope, receive: Receive, send: Send, status: int, detail: str, code: str, **kw: Any
) -> None:
    headers = kw.pop("headers", None)
    response = JSONResponse(error_body(status, detail, code, **kw), status_code=status, headers=headers)
    await response(scope, receive, send)


def request_cookie(headers: Headers, name: str) -> str | None:
    raw = headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # http.cookies raises CookieError, and worse, on hostile input
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuse bodies over the limit with 413: from Content-Length before reading, or mid-stream."""

    def __init__(
        self, app: ASGIApp, *, default_bytes: int, upload_bytes: int, upload_paths: frozenset[str]
    ) -> None:
        self.app = app
        self.default_bytes = default_bytes
        self.upload_bytes = upload_bytes
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_bytes if scope["path"] in self.upload_paths else self.default_bytes
        length = Headers(scope=scope).get("content-length")
        if length is not None:
            if not length.isdigit():
                await reply(scope, receive, send, 400, "bad Content-Length header", "bad_request")
                return
            if int(length) > limit:
                await self._too_large(scope, receive, send, limit)
                return
        received = 0
        exceeded = False
        replied = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise _BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal replied
            if exceeded:
                if not replied:  # whatever the app made of the cut-off body, the answer is 413
                    replied = True
                    await self._too_large(scope, receive, send, limit)
                return
            replied = replied or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            if not replied:
                await self._too_large(scope, receive, send, limit)
        except Exception:
            if exceeded and not replied:
                await self._too_large(scope, receive, send, limit)
            else:
                raise

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        size = f"{limit / (1024 * 1024):.0f} MiB" if limit >= 1024 * 1024 else f"{limit // 1024} KiB"
        await reply(
            scope,
            receive,
            send,
            413,
            f"the request body is larger than the {size} limit",
            "too_large",
            limit_bytes=limit,
        )
