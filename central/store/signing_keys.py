"""The centre's Ed25519 signing keys: generated and rotated here; stations only get public halves.

Two purposes (tables.SigningKey): `qr` signs member passes, `messages` signs what the centre
publishes on `down/` (docs/mqtt.md, "Signatures"; `contract.signing.CentreSigner`). `rotate_key`
makes a new key the active one of its purpose and moves the previous one to `retiring`: it signs
nothing more but stays trusted until `trusted_until` (for QR keys: now + the longest pass validity,
`[qr] max_pass_ttl_s`, so passes signed just before the rotation keep opening doors). Private keys
are sealed with the data key (`central.data_key`) before they touch the database. Telling the
stations (`add_qr_key` / `revoke_qr_key`, `add_centre_key` / `revoke_centre_key`) is the roster's job.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from central.data_key import DataKey
from central.store.tables import KEY_PURPOSES, SigningKey
from common.errors import ValidationError
from contract.signing import CentreSigner
from recognizer.qr_token import generate_signing_key, kid_for

SEAL_PURPOSE = "signing-key"


def _check(purpose: str) -> str:
    if purpose not in KEY_PURPOSES:
        raise ValidationError(f"a key's purpose is one of {', '.join(KEY_PURPOSES)}")
    return purpose


def active_key(session: Session, *, purpose: str) -> SigningKey | None:
    return session.scalars(
        select(SigningKey).where(SigningKey.purpose == _check(purpose), SigningKey.state == "active")
    ).first()


def rotate_key(
    session: Session,
    data_key: DataKey,
    *,
    purpose: str,
    now: dt.datetime,
    overlap: dt.timedelta,
    label: str = "",
) -> tuple[SigningKey, SigningKey | None]:
    """A new active key for `purpose`; returns (new key, the key it replaced or None).

    The replaced key stays trusted until `now + overlap`.
    """
    _check(purpose)
    previous = session.scalars(
        select(SigningKey)
        .where(SigningKey.purpose == purpose, SigningKey.state == "active")
        .with_for_update()
    ).first()
    if previous is not None:
        previous.state = "retiring"
        previous.retired_at = now
        previous.trusted_until = now + overlap
        session.flush()  # the one-active-key index must see it retired before the new one arrives
    private_raw, public_raw = generate_signing_key()
    kid = kid_for(public_raw)
    key = SigningKey(
        kid=kid,
        purpose=purpose,
        public_key=public_raw,
        private_key=data_key.seal(SEAL_PURPOSE, kid, private_raw),
        key_fingerprint=data_key.fingerprint,
        label=label or f"centre {purpose} {now:%Y-%m-%d}",
        state="active",
        created_at=now,
    )
    session.add(key)
    session.flush()
    return key, previous


def private_key(key: SigningKey, data_key: DataKey) -> bytes:
    """The raw 32-byte Ed25519 private key (to sign); raises if the data key is not the one used."""
    return data_key.open_sealed(SEAL_PURPOSE, key.kid, key.key_fingerprint, key.private_key)


def message_signer(key: SigningKey, data_key: DataKey) -> CentreSigner:
    """The contract's signer for a `messages` key: what signs every `down/` message."""
    if key.purpose != "messages":
        raise ValidationError(f"key {key.kid} signs {key.purpose} passes, not messages")
    raw = private_key(key, data_key)
    return CentreSigner(Ed25519PrivateKey.from_private_bytes(raw), label=key.label)


def public_key_b64(key: SigningKey) -> str:
    """The public key as the contract writes it (base64 of the 32 raw bytes)."""
    return base64.b64encode(key.public_key).decode("ascii")


def trusted_keys(session: Session, *, purpose: str, now: dt.datetime) -> Sequence[SigningKey]:
    """Keys the stations must trust now: the active one and the retiring ones not yet past their time."""
    return session.scalars(
        select(SigningKey)
        .where(
            SigningKey.purpose == _check(purpose),
            or_(
                SigningKey.state == "active",
                (SigningKey.state == "retiring") & (SigningKey.trusted_until > now),
            ),
        )
        .order_by(SigningKey.created_at)
    ).all()


def list_keys(session: Session) -> Sequence[SigningKey]:
    return session.scalars(select(SigningKey).order_by(SigningKey.purpose, SigningKey.created_at)).all()
