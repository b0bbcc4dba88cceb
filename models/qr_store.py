"""QR signing keys, revoked tokens, and the durable single-use (replay) guard.

Like `models.members`, the functions take a `Session` and only flush; the caller commits. The one
exception is `SqlReplayGuard`, which commits each claim itself: a nonce must be recorded durably
*before* the door opens, or a power cut right after opening would let the same QR code in twice.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from models.database import StoreError, ValidationError
from models.members import validate_identifier, validate_text
from models.tables import MEMBER_ID_MAX, QrKey, QrNonce, QrRevocation, utc_now

PUBLIC_KEY_BYTES = 32
LABEL_MAX = 100
REASON_MAX = 200
_NONCE_RE = re.compile(r"[0-9a-f]{8,128}")
log = logging.getLogger(__name__)


class UnknownKeyError(StoreError, LookupError):
    """No QR signing key with this kid."""


class ReplayGuardUnavailable(StoreError):
    """The nonce store could not answer (database locked or failing, or the input was refused)."""


def _validate_nonce(nonce_hex: object) -> str:
    if not isinstance(nonce_hex, str):
        raise ValidationError(f"nonce_hex must be a string, got {type(nonce_hex).__name__}")
    nonce = nonce_hex.lower()
    if not _NONCE_RE.fullmatch(nonce):
        raise ValidationError("nonce_hex must be 8 to 128 hexadecimal characters")
    return nonce


def _validate_unix(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{field} must be an integer unix time, got {value!r}")
    if not 0 <= value < 2**53:
        raise ValidationError(f"{field} is out of range: {value}")
    return value


def add_public_key(session: Session, *, kid: str, public_key: bytes, label: str = "") -> QrKey:
    """Register an Ed25519 public key under `kid`.

    Idempotent for the same key (a re-sent key list is harmless, and a revoked key stays revoked).
    A kid that already holds a *different* key is refused: silently swapping the key behind a kid
    would make tokens signed by an unknown party valid.
    """
    kid = validate_identifier(kid, "kid")
    if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_BYTES:
        size = len(public_key) if isinstance(public_key, bytes) else type(public_key).__name__
        raise ValidationError(f"public_key must be {PUBLIC_KEY_BYTES} bytes (raw Ed25519), got {size}")
    label = validate_text(label, "label", max_len=LABEL_MAX, allow_empty=True)
    existing = session.get(QrKey, kid)
    if existing is not None:
        if existing.public_key != public_key:
            raise ValidationError(f"kid {kid!r} is already registered with a different public key")
        return existing
    row = QrKey(kid=kid, public_key=public_key, label=label, added_at=utc_now())
    with session.begin_nested():
        session.add(row)
    return row


def public_keys(session: Session) -> dict[str, bytes]:
    """kid -> raw public key, for the keys that are not revoked."""
    query = select(QrKey.kid, QrKey.public_key).where(QrKey.revoked_at.is_(None)).order_by(QrKey.kid)
    return {str(kid): bytes(key) for kid, key in session.execute(query)}


def revoked_kids(session: Session) -> frozenset[str]:
    """The kids of revoked keys (so a token naming one is refused as revoked, not as unknown)."""
    return frozenset(session.scalars(select(QrKey.kid).where(QrKey.revoked_at.is_not(None))))


def revoke_key(session: Session, kid: str) -> bool:
    """Revoke a signing key; True if it was active, False if it was already revoked.

    The row is kept (with `revoked_at`), so re-adding the same key later cannot un-revoke it.
    """
    row = session.get(QrKey, kid)
    if row is None:
        raise UnknownKeyError(f"no QR signing key with kid {kid!r}")
    if row.revoked_at is not None:
        return False
    with session.begin_nested():
        row.revoked_at = utc_now()
    return True


def revoke_token(
    session: Session, *, nonce_hex: str, member_id: str | None = None, expires_at: int, reason: str
) -> QrRevocation:
    """Revoke one QR token by its nonce, until `expires_at` (unix seconds; after that it is dead anyway).

    Revoking an already revoked nonce keeps the original reason and extends `expires_at` if later.
    """
    nonce = _validate_nonce(nonce_hex)
    if member_id is not None:
        # Informational only, and it comes from a signed token whose rules may differ from ours:
        # a revocation must not fail because of an unusual id.
        member_id = validate_text(member_id, "member_id", max_len=MEMBER_ID_MAX)
    expires = _validate_unix(expires_at, "expires_at")
    reason = validate_text(reason, "reason", max_len=REASON_MAX)
    with session.begin_nested():
        row = session.get(QrRevocation, nonce)
        if row is None:
            row = QrRevocation(
                nonce_hex=nonce, member_id=member_id, expires_at=expires, reason=reason, created_at=utc_now()
            )
            session.add(row)
        else:
            row.expires_at = max(row.expires_at, expires)
    return row


def revoked_nonces(session: Session, now: int, *, skew_s: int) -> frozenset[str]:
    """Nonces of revoked tokens that a checker could still accept at `now`.

    A checker accepts a token until its expiry *plus* the clock-skew tolerance, so a revocation
    must be honoured just as long: pass the checker's `skew_s` ([qr] max_clock_skew_s). Without it
    a revoked pass worked again for the skew window right after its expiry.
    """
    query = select(QrRevocation.nonce_hex).where(QrRevocation.expires_at >= now - skew_s)
    return frozenset(session.scalars(query))


def prune_revocations(session: Session, now: int, *, skew_s: int) -> int:
    """Delete revocations of tokens no checker with this `skew_s` can accept any more."""
    result = session.execute(delete(QrRevocation).where(QrRevocation.expires_at < now - skew_s))
    return int(getattr(result, "rowcount", 0) or 0)


class SqlReplayGuard:
    """Single-use QR tokens: `claim` succeeds once per (kid, nonce), across restarts and power cuts.

    Each claim is one INSERT ... ON CONFLICT DO NOTHING committed in its own transaction (with
    synchronous=FULL): the primary key decides atomically, even between processes, and a True
    answer is on disk before the door opens. The transaction starts with the write, so it waits for
    other writers (busy_timeout) rather than failing on a read-to-write lock upgrade.

    When it cannot answer (database error, refused input) `claim` raises ``error_factory(message)``
    and nothing else, so the caller can deny with a stable reason. The QR checker's protocol wants
    its own ``ReplayGuardError``; pass that class as `error_factory` (this module does not import
    the checker, which would pull the QR image stack into every process using the store).

    Every `prune_every` claims, rows that expired more than `prune_grace_s` before `now` are
    deleted. The grace period protects against a wrong clock (a Raspberry Pi has no RTC): a clock
    briefly far in the future must not wipe nonces that are still valid once it is corrected. A
    failed prune is logged and does not affect the claim, which is already committed.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        prune_every: int = 256,
        prune_grace_s: int = 86_400,
        error_factory: Callable[[str], Exception] = ReplayGuardUnavailable,
    ) -> None:
        if prune_every < 1:
            raise ValidationError("prune_every must be at least 1")
        if prune_grace_s < 0:
            raise ValidationError("prune_grace_s must not be negative")
        self._sessions = session_factory
        self._prune_every = prune_every
        self._prune_grace_s = prune_grace_s
        self._error_factory = error_factory
        self._lock = threading.Lock()
        self._claims = 0

    def claim(self, kid: str, nonce_hex: str, expires_at: int, now: int) -> bool:
        """True the first time (kid, nonce_hex) is claimed, False on every later call."""
        try:
            kid = validate_identifier(kid, "kid")
            nonce = _validate_nonce(nonce_hex)
            expires = _validate_unix(expires_at, "expires_at")
            statement = (
                sqlite_insert(QrNonce)
                .values(kid=kid, nonce_hex=nonce, expires_at=expires)
                .on_conflict_do_nothing(index_elements=["kid", "nonce_hex"])
            )
            with self._sessions() as session, session.begin():
                result = session.execute(statement)
                fresh = int(getattr(result, "rowcount", 0) or 0) == 1
        except (StoreError, SQLAlchemyError) as exc:
            raise self._error_factory(f"replay guard could not record nonce of key {kid!r}: {exc}") from exc
        with self._lock:
            self._claims += 1
            prune = self._claims % self._prune_every == 0
        if prune:
            try:
                self.prune(now)
            except SQLAlchemyError:
                log.warning("pruning expired QR nonces failed; will retry later", exc_info=True)
        return fresh

    def was_used(self, kid: str, nonce_hex: str) -> bool:
        """Whether (kid, nonce) was claimed already; a read, so a dry-run check spends nothing."""
        try:
            kid = validate_identifier(kid, "kid")
            nonce = _validate_nonce(nonce_hex)
            with self._sessions() as session:
                row = session.get(QrNonce, (kid, nonce))
        except (StoreError, SQLAlchemyError) as exc:
            raise self._error_factory(f"replay guard could not look up nonce of key {kid!r}: {exc}") from exc
        return row is not None

    def prune(self, now: int) -> int:
        """Delete nonces that expired more than the grace period before `now`; returns how many."""
        cutoff = now - self._prune_grace_s
        with self._sessions() as session, session.begin():
            result = session.execute(delete(QrNonce).where(QrNonce.expires_at < cutoff))
            return int(getattr(result, "rowcount", 0) or 0)
