"""The brakes on guessing passwords: back-off and lockout per account and per client address.

Guessing is slowed per account: every failure doubles the wait before the next attempt
(`backoff_s`), and `max_failures` failures in a row lock the account for `lockout_s`. A client
address is locked too after four times as many failures across accounts, so several people behind
one NAT do not lock each other out while a password sprayer still is. A locked account is refused
without checking the password at all (`LoginGuard.check`), so a lockout also caps the CPU an
attacker can burn on argon2.

Shared by the station's installer logins and the centre's staff logins; each keeps its own
accounts and passes a `verify` callable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0
ADDRESS_FAILURE_FACTOR = 4
MAX_NAME_CHARS = 64

ThrottleKey = tuple[Literal["account", "address"], str]


class LoginRefused(Exception):
    """A login (or password check) that did not succeed; `status` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int, code: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s


@dataclass
class _Attempts:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


@dataclass
class LoginThrottle:
    """Exponential back-off per account, lockout per account and per client address. Thread-safe.

    Addresses get no back-off: people behind one NAT would slow each other down for every typo,
    while the address lockout (four times the account limit) is what stops spraying.
    """

    max_failures: int
    lockout_s: float
    backoff_s: float
    clock: Callable[[], float] = time.monotonic
    max_keys: int = 10_000
    _entries: OrderedDict[ThrottleKey, _Attempts] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def limit(self, key: ThrottleKey) -> int:
        return self.max_failures * (ADDRESS_FAILURE_FACTOR if key[0] == "address" else 1)

    def retry_after(self, keys: list[ThrottleKey]) -> tuple[float, str] | None:
        """(seconds to wait, "locked_out" or "slow_down") if any key must wait, else None."""
        now = self.clock()
        worst: tuple[float, str] | None = None
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is None:
                    continue
                if entry.locked_until > now:
                    wait, code = entry.locked_until - now, "locked_out"
                elif entry.failures and self.backoff_s > 0 and key[0] == "account":
                    delay = min(self.backoff_s * 2 ** (entry.failures - 1), MAX_BACKOFF_S)
                    wait, code = entry.last_failure + delay - now, "slow_down"
                else:
                    continue
                if wait > 0 and (worst is None or wait > worst[0]):
                    worst = (wait, code)
        return worst

    def failure(self, key: ThrottleKey) -> bool:
        """Count a failure; True when it starts a lockout."""
        now = self.clock()
        with self._lock:
            entry = self._entries.pop(key, None) or _Attempts()
            if entry.failures and now - entry.last_failure > self.lockout_s:
                entry = _Attempts()  # a quiet period forgives earlier typos
            entry.failures += 1
            entry.last_failure = now
            locked = entry.failures >= self.limit(key)
            if locked:
                entry.locked_until = now + self.lockout_s
                entry.failures = 0
            self._entries[key] = entry
            while len(self._entries) > self.max_keys:
                self._entries.popitem(last=False)
        return locked

    def success(self, key: ThrottleKey) -> None:
        with self._lock:
            self._entries.pop(key, None)


def login_name(username: object) -> str:
    """The account key a login attempt counts against (trimmed, lower-case, bounded)."""
    return username.strip().lower()[:MAX_NAME_CHARS] if isinstance(username, str) else ""


class LoginGuard:
    """One password check through the throttle: refuse early, count failures, report lockouts.

    `subject` names the kind of account in log events (`installer_lockout`, `staff_lockout`);
    `on_lockout(scope, key)` is called when an account or an address becomes locked (the station
    records an event, the centre raises an alarm).
    """

    def __init__(
        self,
        throttle: LoginThrottle,
        *,
        subject: str,
        on_lockout: Callable[[str, str], None] | None = None,
    ) -> None:
        self.throttle = throttle
        self.subject = subject
        self._on_lockout = on_lockout

    def check(self, username: object, client: str, verify: Callable[[str], bool]) -> str:
        """The normalised name if `verify(name)` says the password is right; LoginRefused otherwise.

        `verify` may itself raise `LoginRefused` (e.g. 503 when the accounts cannot be read): such a
        refusal is passed on without counting as a failed guess.
        """
        name = login_name(username)
        keys: list[ThrottleKey] = [("account", name), ("address", client)]
        waiting = self.throttle.retry_after(keys)
        if waiting is not None:
            wait, code = waiting
            message = (
                f"too many failed logins: locked, try again in {wait:.0f} s"
                if code == "locked_out"
                else f"wait {wait:.1f} s before trying again"
            )
            raise LoginRefused(message, status=429, code=code, retry_after_s=wait)
        if not verify(name):
            for key in keys:
                if self.throttle.failure(key):
                    log.warning(
                        "login locked out",
                        extra={
                            "fields": {"event": f"{self.subject}_lockout", "scope": key[0], "key": key[1]}
                        },
                    )
                    if self._on_lockout is not None:
                        self._on_lockout(key[0], key[1])
            log.info(
                "login failed",
                extra={"fields": {"event": "login_failed", "username": name, "client": client}},
            )
            raise LoginRefused("wrong user name or password", status=401, code="bad_credentials")
        self.throttle.success(("account", name))
        return name
