"""Login sessions held in memory, keyed by the SHA-256 of their token, and the CSRF check.

Sessions are in memory only: a restart logs everyone out, and no session secret ever touches the
disk. A session token is a bearer credential (the `Authorization: Bearer` header, or the HttpOnly
cookie a page uses); the store keeps only its SHA-256, so a memory dump or a log line cannot be
replayed. Each session carries its own CSRF token, which a page must echo in a header on every
state-changing request it makes with the cookie (`csrf_ok`).

The station uses one store for its installers; the centre one for its staff. Times are
`time.monotonic()` (a Pi's wall clock may jump when NTP arrives).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_TOKEN_CHARS = 256


@dataclass
class Session:
    """One login. Times are `time.monotonic()`."""

    key: str  # SHA-256 of the token: the token itself is never kept
    username: str
    csrf_token: str
    created: float
    last_seen: float


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def csrf_ok(session: Session, presented: str | None) -> bool:
    """True when `presented` (the request's CSRF header) is this session's CSRF token."""
    return presented is not None and hmac.compare_digest(
        session.csrf_token.encode("utf-8"), presented.encode("utf-8", "surrogatepass")
    )


class SessionStore:
    """Logins in memory, expired by age (`ttl_s`) and by idleness (`idle_s`). Thread-safe."""

    def __init__(
        self, *, ttl_s: float, idle_s: float, max_sessions: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.idle_s = idle_s
        self.max_sessions = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, username: str) -> tuple[str, Session]:
        """A new session; returns (token, session). The token is shown to the client only."""
        token = secrets.token_urlsafe(32)
        now = self._clock()
        session = Session(token_key(token), username, secrets.token_urlsafe(24), now, now)
        with self._lock:
            self._expire(now)
            self._sessions[session.key] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return token, session

    def get(self, token: str) -> Session | None:
        """The live session for a token (and mark it used), or None."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        key = token_key(token)
        now = self._clock()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[key]
                return None
            session.last_seen = now
            return session

    def is_live(self, session: Session) -> bool:
        """Whether `session` is still open (not revoked, not expired), without marking it used: a
        long-lived stream checks its login with this and does not keep an idle login alive."""
        with self._lock:
            return self._sessions.get(session.key) is session and not self._expired(session, self._clock())

    def revoke(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.key, None)

    def revoke_user(self, username: str, *, keep: Session | None = None) -> int:
        """End every session of `username` except `keep` (after a password change or removal)."""
        with self._lock:
            doomed = [
                k
                for k, s in self._sessions.items()
                if s.username == username and (keep is None or k != keep.key)
            ]
            for key in doomed:
                del self._sessions[key]
        return len(doomed)

    def expires_in(self, session: Session) -> float:
        """Seconds until the session ends if it stays idle."""
        now = self._clock()
        return max(0.0, min(session.created + self.ttl_s, session.last_seen + self.idle_s) - now)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.created >= self.ttl_s or now - session.last_seen >= self.idle_s

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[key]
