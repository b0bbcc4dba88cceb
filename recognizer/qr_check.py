"""Deciding on a QR token at a station: signature and time, then the station's own state.

`recognizer.qr_token` answers "did the centre issue this, and is it current?". A door also has
to ask what the centre may have said since: is the signing key or this very token revoked, is the
member still on the roster and in good standing, is the token meant for this station and a group
the member belongs to, and (for single-use tokens) has it been used already. `QrChecker` runs
those checks in a fixed order and always returns a `QrResult`: hostile text gets a refusal with a
stable reason, never an exception.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
import math
import threading
import time
from collections.abc import Mapping
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt

from recognizer.qr_decode import decode_first_qr
from recognizer.qr_token import (
    QrKeyError,
    TokenClaims,
    TokenError,
    field_problem,
    verify_token,
)
from recognizer.results import Decision, QrResult
from recognizer.roster import MemberInfo

MAX_CLOCK_SKEW_LIMIT_S: Final = 24 * 3600

KEY_REVOKED: Final = "key_revoked"
TOKEN_REVOKED: Final = "token_revoked"
WRONG_STATION: Final = "wrong_station"
UNKNOWN_MEMBER: Final = "unknown_member"
WRONG_GROUP: Final = "wrong_group"
REPLAYED: Final = "replayed"
KEY_CONFIG_ERROR: Final = "key_config_error"
REPLAY_GUARD_FULL: Final = "replay_guard_full"
REPLAY_CHECK_FAILED: Final = "replay_check_failed"


class ReplayGuardError(Exception):
    """The guard cannot tell whether a nonce was used (store full, database unavailable).

    The checker refuses the token with `reason`: when in doubt a single-use token stays unused,
    because letting it through could open the door twice for one ticket.
    """

    def __init__(self, message: str, *, reason: str = REPLAY_CHECK_FAILED) -> None:
        super().__init__(message)
        self.reason = reason


class ReplayGuard(Protocol):
    """Remembers which single-use tokens were already used at this station."""

    def claim(self, kid: str, nonce_hex: str, expires_at: int, now: int) -> bool:
        """Record (kid, nonce_hex) as used; True the first time, False if it was already used.

        `expires_at` is the last second at which the token could still be accepted (the checker
        passes the token's expiry plus the clock-skew tolerance), so the entry may be forgotten
        once `now` is past it. Implementations raise ReplayGuardError, never another exception,
        when they cannot answer (storage full or failing).
        """
        ...

    def was_used(self, kid: str, nonce_hex: str) -> bool:
        """Whether (kid, nonce_hex) was already claimed, without claiming it (a dry run).

        Raises ReplayGuardError, never another exception, when the guard cannot answer.
        """
        ...


class MemoryReplayGuard:
    """In-process ReplayGuard: a dict of used nonces plus a heap ordered by when each may go.

    Entries are dropped only once their token can no longer be accepted, so forgetting never
    re-opens a replay window. When `max_entries` unexpired nonces are held, a new claim raises
    ReplayGuardError(reason="replay_guard_full") rather than evicting one: evicting would make a
    used token valid again, and an attacker could force that by spending tokens. The bound only
    caps memory; size it above the number of single-use tokens a station sees in a validity period.
    Lost on restart, which is why a persistent guard is used in production.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"max_entries must be a positive integer, got {max_entries!r}")
        self._max_entries = max_entries
        self._used: dict[tuple[str, str], int] = {}
        self._by_expiry: list[tuple[int, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._used)

    def claim(self, kid: str, nonce_hex: str, expires_at: int, now: int) -> bool:
        """See ReplayGuard.claim."""
        key = (kid, nonce_hex)
        with self._lock:
            self._prune(now)
            if key in self._used:
                return False
            if len(self._used) >= self._max_entries:
                raise ReplayGuardError(
                    f"replay guard holds {len(self._used)} unexpired nonces", reason=REPLAY_GUARD_FULL
                )
            self._used[key] = expires_at
            heapq.heappush(self._by_expiry, (expires_at, key))
            return True

    def was_used(self, kid: str, nonce_hex: str) -> bool:
        """See ReplayGuard.was_used."""
        with self._lock:
            return (kid, nonce_hex) in self._used

    def _prune(self, now: int) -> None:
        while self._by_expiry and self._by_expiry[0][0] < now:
            _, key = heapq.heappop(self._by_expiry)
            self._used.pop(key, None)


@dataclasses.dataclass(frozen=True, slots=True)
class QrPolicy:
    """Station-side QR settings.

    `max_clock_skew_s` is how far the station's clock may disagree with the issuer's (applied to
    both ends of the validity window). `station_id` is this station's id; a token scoped to a
    station is refused when it differs, including when the station has no id configured.
    """

    max_clock_skew_s: int = 60
    station_id: str | None = None

    def __post_init__(self) -> None:
        skew = self.max_clock_skew_s
        if not isinstance(skew, int) or isinstance(skew, bool) or not 0 <= skew <= MAX_CLOCK_SKEW_LIMIT_S:
            raise ValueError(
                f"max_clock_skew_s must be an integer in 0..{MAX_CLOCK_SKEW_LIMIT_S}, got {skew!r}"
            )
        if self.station_id is not None:
            if not isinstance(self.station_id, str):
                raise ValueError(f"station_id must be text or None, got {type(self.station_id).__name__}")
            problem = field_problem(self.station_id)
            if problem is not None:
                raise ValueError(f"station_id {problem}")


@dataclasses.dataclass(frozen=True, slots=True)
class _Refusal:
    reason: str
    kid: str | None = None
    claims: TokenClaims | None = None


class QrChecker:
    """Turns a QR payload into a QrResult using the station's keys, revocations and roster.

    The inputs that change at runtime (keys, revocation lists, members) are passed to every call
    rather than held here, so the caller can hand in one consistent snapshot per decision.
    """

    def __init__(self, policy: QrPolicy, replay_guard: ReplayGuard) -> None:
        self.policy = policy
        self.replay_guard = replay_guard

    def check(
        self,
        text: str,
        *,
        public_keys: Mapping[str, bytes],
        revoked_kids: frozenset[str],
        revoked_nonces: frozenset[str],
        members: Mapping[str, MemberInfo],
        now: float,
        spend: bool = True,
    ) -> QrResult:
        """Decide on one payload. Never raises because of `text`.

        `spend=False` is a dry run (an installer checking a pass before printing it): a single-use
        token is only looked up in the replay guard, never claimed, so it still opens the door once.

        Order: token (malformed, unsupported_version, unknown_key, bad_signature, bad_validity,
        not_yet_valid, expired), key_revoked, token_revoked, wrong_station, unknown_member, the
        member's own status (member_suspended, member_expired, ...), wrong_group, and last
        replayed, so a refused token never burns its single use. `member_id`, `key_id` and
        `expires_at` of a refusal are filled only from a token whose signature verified; a forged
        token's contents are the attacker's words. Timing "verify" covers the whole check.
        """
        started = time.perf_counter()
        outcome = self._evaluate(text, public_keys, revoked_kids, revoked_nonces, members, now, spend)
        timings = {"verify": (time.perf_counter() - started) * 1000.0}
        if isinstance(outcome, _Refusal):
            claims = outcome.claims
            return QrResult(
                decision=Decision.QR_REFUSED,
                member_id=claims.member_id if claims else None,
                reason=outcome.reason,
                key_id=outcome.kid,
                expires_at=claims.expires_at if claims else None,
                timings_ms=timings,
                single_use=claims.single_use if claims else None,
            )
        return QrResult(
            decision=Decision.QR_OK,
            member_id=outcome.member_id,
            key_id=outcome.kid,
            expires_at=outcome.expires_at,
            timings_ms=timings,
            single_use=outcome.single_use,
        )

    def check_image(
        self,
        image: npt.NDArray[np.generic],
        *,
        public_keys: Mapping[str, bytes],
        revoked_kids: frozenset[str],
        revoked_nonces: frozenset[str],
        members: Mapping[str, MemberInfo],
        now: float,
        spend: bool = True,
    ) -> QrResult | None:
        """Find a QR code in a frame and `check` it; None when the frame holds no QR code.

        Adds timing "decode". See `recognizer.qr_decode.decode_first_qr` for which code is used
        when several are in view.
        """
        started = time.perf_counter()
        text = decode_first_qr(image)
        decode_ms = (time.perf_counter() - started) * 1000.0
        if text is None:
            return None
        result = self.check(
            text,
            public_keys=public_keys,
            revoked_kids=revoked_kids,
            revoked_nonces=revoked_nonces,
            members=members,
            now=now,
            spend=spend,
        )
        return dataclasses.replace(result, timings_ms={"decode": decode_ms, **result.timings_ms})

    def _evaluate(
        self,
        text: str,
        public_keys: Mapping[str, bytes],
        revoked_kids: frozenset[str],
        revoked_nonces: frozenset[str],
        members: Mapping[str, MemberInfo],
        now: float,
        spend: bool,
    ) -> TokenClaims | _Refusal:
        now_s = math.floor(now)
        skew = self.policy.max_clock_skew_s
        try:
            claims = verify_token(text, public_keys, now=now_s, max_clock_skew_s=skew)
        except TokenError as exc:
            return _Refusal(exc.reason, exc.kid, exc.claims)
        except QrKeyError:
            # A broken key entry is configuration, but the token picks which entry is used, so a
            # hostile token must not be able to turn it into a crash: refuse and name the fault.
            return _Refusal(KEY_CONFIG_ERROR)
        kid = claims.kid
        if kid in revoked_kids:
            return _Refusal(KEY_REVOKED, kid, claims)
        if claims.nonce_hex in revoked_nonces:
            return _Refusal(TOKEN_REVOKED, kid, claims)
        if claims.station_scope is not None and claims.station_scope != self.policy.station_id:
            return _Refusal(WRONG_STATION, kid, claims)
        member = members.get(claims.member_id)
        if member is None:
            return _Refusal(UNKNOWN_MEMBER, kid, claims)
        valid, why = member.is_valid_at(dt.datetime.fromtimestamp(now, tz=dt.UTC))
        if not valid:
            return _Refusal(why or "member_invalid", kid, claims)
        if claims.group_scope is not None and claims.group_scope not in member.groups:
            return _Refusal(WRONG_GROUP, kid, claims)
        if claims.single_use:
            try:
                if spend:
                    last_second = claims.expires_at + skew
                    first_use = self.replay_guard.claim(kid, claims.nonce_hex, last_second, now_s)
                else:
                    first_use = not self.replay_guard.was_used(kid, claims.nonce_hex)
            except ReplayGuardError as exc:
                return _Refusal(exc.reason, kid, claims)
            if not first_use:
                return _Refusal(REPLAYED, kid, claims)
        return claims
