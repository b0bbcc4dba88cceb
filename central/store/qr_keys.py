"""QR signing keys: generated and rotated here; stations only ever get the public halves.

`rotate_key` makes a new Ed25519 key the active one and moves the previous active key to
`retiring`: it signs nothing more but stays trusted until `trusted_until` (now + the longest pass
validity, `[qr] max_pass_ttl_s`), so passes it signed just before the rotation keep opening doors.
Private keys are sealed with the data key (`central.data_key`) before they touch the database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from central.data_key import DataKey
from central.store.tables import QrKey
from recognizer.qr_token import generate_signing_key, kid_for

SEAL_PURPOSE = "qr-private-key"


def active_key(session: Session) -> QrKey | None:
    return session.scalars(select(QrKey).where(QrKey.state == "active")).first()


def rotate_key(
    session: Session, data_key: DataKey, *, now: dt.datetime, max_pass_ttl: dt.timedelta, label: str = ""
) -> tuple[QrKey, QrKey | None]:
    """A new active key; returns (new key, the key it replaced or None)."""
    previous = session.scalars(select(QrKey).where(QrKey.state == "active").with_for_update()).first()
    if previous is not None:
        previous.state = "retiring"
        previous.retired_at = now
        previous.trusted_until = now + max_pass_ttl
        session.flush()  # the one-active-key index must see it retired before the new one arrives
    private_raw, public_raw = generate_signing_key()
    kid = kid_for(public_raw)
    key = QrKey(
        kid=kid,
        public_key=public_raw,
        private_key=data_key.seal(SEAL_PURPOSE, kid, private_raw),
        key_fingerprint=data_key.fingerprint,
        label=label or f"centre {now:%Y-%m-%d}",
        state="active",
        created_at=now,
    )
    session.add(key)
    session.flush()
    return key, previous


def private_key(key: QrKey, data_key: DataKey) -> bytes:
    """The raw Ed25519 private key of `key` (to sign a pass); raises if the data key is wrong."""
    return data_key.open_sealed(SEAL_PURPOSE, key.kid, key.key_fingerprint, key.private_key)


def trusted_keys(session: Session, *, now: dt.datetime) -> Sequence[QrKey]:
    """Keys the stations must trust now: the active one and the retiring ones not yet past their time."""
    return session.scalars(
        select(QrKey)
        .where(
            or_(QrKey.state == "active", (QrKey.state == "retiring") & (QrKey.trusted_until > now)),
        )
        .order_by(QrKey.created_at)
    ).all()


def list_keys(session: Session) -> Sequence[QrKey]:
    return session.scalars(select(QrKey).order_by(QrKey.created_at)).all()
