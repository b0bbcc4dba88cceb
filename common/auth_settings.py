"""The login policy both web apps share: how long a login lasts, and the brakes on guessing.

The station's `[api]` and the centre's `[web]` sections derive from `AuthSettings`, so a key means
the same thing in both files and the defaults stay the cautious ones: logins expire by age and by
idleness, failed logins slow down and then lock (`common.login`), the cookie can be HTTPS-only.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import Field

from common.config_files import Section
from common.login import LoginThrottle
from common.sessions import SessionStore


class AuthSettings(Section):
    session_ttl_s: int = Field(
        12 * 3600,
        ge=300,
        le=7 * 86400,
        description="A login lasts at most this long (seconds); then its owner logs in again.",
    )
    session_idle_s: int = Field(
        2 * 3600,
        ge=60,
        le=7 * 86400,
        description="A login unused for this long (seconds) ends (a phone left on a table).",
    )
    max_sessions: int = Field(
        50, ge=1, le=100_000, description="Logins kept at once; the oldest is ended when more are opened."
    )
    login_max_failures: int = Field(
        5,
        ge=1,
        le=100,
        description="Failed logins in a row that lock an account for login_lockout_s (one client "
        "address may fail four times as often, across accounts, before it is locked out too).",
    )
    login_lockout_s: float = Field(
        300.0,
        ge=1.0,
        le=86400.0,
        allow_inf_nan=False,
        description="How long (seconds) a locked account or address is refused without even checking "
        "the password.",
    )
    login_backoff_s: float = Field(
        1.0,
        ge=0.0,
        le=60.0,
        allow_inf_nan=False,
        description="After a failed login the next attempt waits this long (seconds), doubled after "
        "each further failure, at most 60 s. 0 disables the back-off (the lockout still applies).",
    )
    cookie_secure: bool = Field(
        False,
        description="Send the session cookie only over HTTPS (set it when a TLS proxy serves the page).",
    )

    def session_store(self, clock: Callable[[], float] = time.monotonic) -> SessionStore:
        return SessionStore(
            ttl_s=self.session_ttl_s, idle_s=self.session_idle_s, max_sessions=self.max_sessions, clock=clock
        )

    def login_throttle(self, clock: Callable[[], float] = time.monotonic) -> LoginThrottle:
        return LoginThrottle(
            max_failures=self.login_max_failures,
            lockout_s=self.login_lockout_s,
            backoff_s=self.login_backoff_s,
            clock=clock,
        )
