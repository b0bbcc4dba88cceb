"""Cross-site request forgery protection for the phone API (`/api/m/`), before any route runs.

Phone logins are a cookie (`yizhan_phone`, HttpOnly, SameSite=Lax, months long: a worker must
not type a code at every door), so every state-changing request must also prove it was made by
our own page:

* with a login cookie: the `X-CSRF-Token` header must be HMAC(key, SHA-256 of the login token)
  (the page gets it from `GET /api/m/me` or the login answer). Nothing to store, and it is bound
  to that one login, so a value planted from elsewhere is useless;
* without one (registering, asking for a code): double submit: the header must equal the
  `yizhan_m_csrf` cookie that every phone page sets (a cross-site page can neither read our
  cookie nor add the header without a CORS preflight we never grant).

Before all that, every `/api/m/` request counts against its client address in a token bucket
(`[phone] requests_per_address_per_minute`, bursts of a quarter of it): a flood, or a script
holding the answer long-poll open from one address, gets 429 without reaching a route or the
database. Generous on purpose: riders behind one carrier NAT share an address.

Which of the two a request passed is left in `scope["state"]["phone_csrf"]` ("session" or
"anonymous"): the routes that act for a logged-in member require "session". A browser's `Origin`
header, when sent, must name this host. JSON bodies only (FastAPI refuses other content types
for JSON models, so a form post cannot smuggle one in).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from common.asgi import reply, request_cookie

LOGIN_COOKIE = "yizhan_phone"
ANON_CSRF_COOKIE = "yizhan_m_csrf"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
API_PREFIX = "/api/m/"


def session_csrf(key: bytes, token: str) -> str:
    """The CSRF token of one login (derived, never stored)."""
    digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
    return hmac.new(key, b"phone-csrf|" + digest, hashlib.sha256).hexdigest()


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


def _origin_ok(headers: Headers) -> bool:
    origin = headers.get("origin")
    if origin is None or origin == "null":
        return origin is None  # "null" (sandboxed frames, file://) is never our page
    host = headers.get("host")
    return host is not None and urlsplit(origin).netloc.lower() == host.lower()


class AddressBuckets:
    """Token buckets per client address (bounded: the least recently seen are forgotten). Thread-safe."""

    def __init__(
        self, per_minute: int, *, max_addresses: int = 20_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(10.0, per_minute / 4)
        self.max_addresses = max_addresses
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, address: str) -> float | None:
        """None if the request may go, else the seconds until it could."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.pop(address, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            wait = None if tokens >= 1.0 else (1.0 - tokens) / self.rate
            self._buckets[address] = (tokens - 1.0 if wait is None else tokens, now)
            while len(self._buckets) > self.max_addresses:
                self._buckets.popitem(last=False)
        return wait


class PhoneGate:
    def __init__(self, app: ASGIApp, key: bytes, per_minute: int = 600) -> None:
        self.app = app
        self.key = key
        self.buckets = AddressBuckets(per_minute)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.buckets.take(client[0] if client else "unknown")
        if wait is not None:
            retry = str(max(1, round(wait + 0.5)))
            await reply(
                scope,
                receive,
                send,
                429,
                "too many requests from this address",
                "rate_limited",
                headers={"Retry-After": retry},
            )
            return
        headers = Headers(scope=scope)
        state = scope.setdefault("state", {})
        state["phone_csrf"] = None
        if scope["method"] in UNSAFE_METHODS:
            if not _origin_ok(headers):
                await reply(scope, receive, send, 403, "cross-site request refused", "csrf")
                return
            presented = headers.get(CSRF_HEADER)
            if presented is not None and len(presented) > 128:
                presented = None
            login = request_cookie(headers, LOGIN_COOKIE)
            if login and len(login) <= 256 and _same(presented, session_csrf(self.key, login)):
                state["phone_csrf"] = "session"
            elif _same(presented, _anon_cookie(headers)):
                state["phone_csrf"] = "anonymous"
            else:
                await reply(
                    scope,
                    receive,
                    send,
                    403,
                    f"missing or wrong {CSRF_HEADER} header (reload the page)",
                    "csrf",
                )
                return
        await self.app(scope, receive, send)


def _anon_cookie(headers: Headers) -> str | None:
    value = request_cookie(headers, ANON_CSRF_COOKIE)
    return value if value is not None and 32 <= len(value) <= 128 else None
