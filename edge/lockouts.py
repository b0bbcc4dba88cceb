"""Lockouts of one credential or appearance at a time, never of the door for everyone.

A station-wide lockout let three strangers walking past lock out every member, the person being
enrolled included. Here a run of counted refusals locks only what was tried:

* ``appearance`` - one face track (one person in view, `edge.tracker` track id): someone holding
  photo after photo up to the camera without leaving is refused for `lockout_s`;
* ``member`` - face entry *as* one member: refused faces that came close to that member (within the
  distance cap, failing only the margin or crowd ratio: the lookalike probe that precedes a false
  accept) count toward it, and while it lasts a face matching that member is refused. The member's
  pass still works, and every other member is untouched;
* ``pass`` - one QR pass (a fingerprint of its text: a forger cannot name someone else's pass):
  forged codes, and two-factor codes shown with someone else's face.

Pure bookkeeping on the monotonic clock, guarded by the caller's lock (`edge.access.AccessDecider`).
A lock's `id` ("member:W-0001") is what the API and `doctor` show and what staff clear.
Appearance locks end with the appearance: track ids restart with the daemon, so they are not kept
in a snapshot; member and pass locks survive a restart (`snapshot` / `restore`).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, get_args

Scope: TypeAlias = Literal["appearance", "member", "pass"]
SCOPES: Final[frozenset[str]] = frozenset(get_args(Scope))
#: Scopes that outlive the process (an appearance does not).
DURABLE_SCOPES: Final[frozenset[str]] = frozenset({"member", "pass"})
LOCK_ID = re.compile(r"(appearance|member|pass):([A-Za-z0-9._-]{1,64})")


def pass_fingerprint(text: str) -> str:
    """A pass's lock key: 16 hex digits of SHA-256 over its exact text (never the nonce, which a
    forged token could copy from a colleague's pass to get that pass locked)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class LockKey:
    scope: Scope
    key: str

    @property
    def id(self) -> str:
        return f"{self.scope}:{self.key}"

    @classmethod
    def parse(cls, lock_id: str) -> LockKey:
        match = LOCK_ID.fullmatch(lock_id) if isinstance(lock_id, str) else None
        if match is None:
            raise ValueError(f"not a lockout id: {lock_id!r:.80} (scope:key, e.g. member:W-0001)")
        scope: Scope = match.group(1)  # type: ignore[assignment]
        return cls(scope, match.group(2))


@dataclass(slots=True)
class _Lock:
    until: float
    started: float
    attempts: int
    reason: str
    member_id: str | None


@dataclass(frozen=True, slots=True)
class LockoutInfo:
    """One active lockout, for the API, `doctor` and the lockout event."""

    id: str
    scope: Scope
    key: str
    member_id: str | None
    remaining_s: float
    attempts: int
    reason: str
    age_s: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "scope": self.scope,
            "key": self.key,
            "member_id": self.member_id,
            "remaining_s": round(self.remaining_s, 1),
            "attempts": self.attempts,
            "reason": self.reason,
            "age_s": round(self.age_s, 1),
        }


class Lockouts:
    """Counted refusals and active locks per key (all times monotonic seconds)."""

    def __init__(self, *, attempts: int, window_s: float, lockout_s: float) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self.lockout_s = lockout_s
        self._failures: dict[LockKey, deque[float]] = {}
        self._locks: dict[LockKey, _Lock] = {}

    # -- deciding ---------------------------------------------------------------------------------

    def find(self, keys: Iterable[LockKey], now: float) -> LockoutInfo | None:
        """The first of `keys` that is locked at `now`, if any."""
        for key in keys:
            lock = self._locks.get(key)
            if lock is not None and now < lock.until:
                return self._info(key, lock, now)
        return None

    def count(
        self, keys: Iterable[LockKey], now: float, *, reason: str, member_id: str | None
    ) -> tuple[int, list[LockoutInfo]]:
        """Count one refusal against each key (locked keys excepted); (most attempts, new locks)."""
        most = 0
        started: list[LockoutInfo] = []
        for key in keys:
            if key in self._locks:
                continue
            failures = self._failures.setdefault(key, deque())
            failures.append(now)
            most = max(most, len(failures))
            if len(failures) >= self.attempts:
                lock = _Lock(now + self.lockout_s, now, len(failures), reason, member_id)
                self._locks[key] = lock
                del self._failures[key]
                started.append(self._info(key, lock, now))
        return most, started

    def expire(self, now: float) -> None:
        """Drop failures older than the window and locks that ended."""
        for key in [k for k, lock in self._locks.items() if now >= lock.until]:
            del self._locks[key]
        for key in list(self._failures):
            failures = self._failures[key]
            while failures and now - failures[0] >= self.window_s:
                failures.popleft()
            if not failures:
                del self._failures[key]

    # -- status and staff ---------------------------------------------------------------------------

    def active(self, now: float) -> list[LockoutInfo]:
        """Every lock still running at `now`, the longest remaining first."""
        infos = [self._info(key, lock, now) for key, lock in self._locks.items() if now < lock.until]
        return sorted(infos, key=lambda info: (-info.remaining_s, info.id))

    def remaining(self, now: float) -> float:
        return max((lock.until - now for lock in self._locks.values() if now < lock.until), default=0.0)

    def clear(self, now: float, lock_id: str | None = None, scope: Scope | None = None) -> list[LockoutInfo]:
        """End one lock (by id), every lock of a scope, or all; their counted refusals go too."""
        wanted = None if lock_id is None else LockKey.parse(lock_id)
        cleared = []
        for key, lock in list(self._locks.items()):
            if (wanted is None or key == wanted) and (scope is None or key.scope == scope):
                cleared.append(self._info(key, lock, now))
                del self._locks[key]
        for key in list(self._failures):
            if (wanted is None or key == wanted) and (scope is None or key.scope == scope):
                del self._failures[key]
        return [info for info in cleared if info.remaining_s > 0]

    # -- restart ----------------------------------------------------------------------------------

    def snapshot(self, now: float) -> dict[str, Any]:
        """Durable locks and counted refusals, times as ages / remaining seconds."""
        return {
            "locks": [
                {
                    **self._info(key, lock, now).to_json(),
                    "remaining_s": lock.until - now,
                    "age_s": now - lock.started,
                }
                for key, lock in self._locks.items()
                if key.scope in DURABLE_SCOPES and now < lock.until
            ],
            "failures": [
                {"id": key.id, "ages_s": [now - t for t in failures]}
                for key, failures in self._failures.items()
                if key.scope in DURABLE_SCOPES
            ],
        }

    @staticmethod
    def parse_snapshot(
        state: Mapping[str, Any],
    ) -> tuple[list[tuple[LockKey, float, float, int, str, str | None]], list[tuple[LockKey, list[float]]]]:
        """Validate a `snapshot`; ValueError names the first bad entry."""
        raw_locks, raw_failures = state.get("locks"), state.get("failures")
        if not isinstance(raw_locks, list) or not isinstance(raw_failures, list):
            raise ValueError("lockout snapshot: locks and failures must be lists")
        locks = []
        for entry in raw_locks:
            if not isinstance(entry, Mapping):
                raise ValueError("lockout snapshot: a lock is not an object")
            key = _key(entry)
            attempts = entry.get("attempts")
            reason = entry.get("reason")
            member = entry.get("member_id")
            if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
                raise ValueError(f"lockout snapshot: bad attempts for {key.id}")
            if not isinstance(reason, str) or not isinstance(member, str | None):
                raise ValueError(f"lockout snapshot: bad reason or member for {key.id}")
            remaining = _seconds(entry.get("remaining_s"), f"{key.id} remaining_s")
            age = _seconds(entry.get("age_s"), f"{key.id} age_s")
            locks.append((key, remaining, age, attempts, reason[:200], member))
        failures = []
        for entry in raw_failures:
            if not isinstance(entry, Mapping) or not isinstance(entry.get("ages_s"), list):
                raise ValueError("lockout snapshot: a failure entry is not {id, ages_s}")
            key = _key(entry)
            failures.append((key, [_seconds(age, f"{key.id} ages_s") for age in entry["ages_s"]]))
        return locks, failures

    def restore(self, state: Mapping[str, Any], now: float) -> None:
        """Load a `snapshot` (validated first: on ValueError nothing changes)."""
        locks, failures = self.parse_snapshot(state)
        self._locks = {
            key: _Lock(now + remaining, now - age, attempts, reason, member)
            for key, remaining, age, attempts, reason, member in locks
            if remaining > 0 and key.scope in DURABLE_SCOPES
        }
        self._failures = {
            key: deque(now - age for age in sorted(ages, reverse=True))
            for key, ages in failures
            if ages and key.scope in DURABLE_SCOPES
        }

    def _info(self, key: LockKey, lock: _Lock, now: float) -> LockoutInfo:
        return LockoutInfo(
            id=key.id,
            scope=key.scope,
            key=key.key,
            member_id=lock.member_id,
            remaining_s=max(0.0, lock.until - now),
            attempts=lock.attempts,
            reason=lock.reason,
            age_s=max(0.0, now - lock.started),
        )


def _key(entry: Mapping[str, Any]) -> LockKey:
    try:
        return LockKey.parse(entry.get("id", ""))
    except ValueError as exc:
        raise ValueError(f"lockout snapshot: {exc}") from None


def _seconds(value: Any, what: str) -> float:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 0:
        raise ValueError(f"lockout snapshot: {what} must be a non-negative number, got {value!r}")
    return float(value)
