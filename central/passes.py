"""Member passes (QR credentials) the centre issues: signed with the active QR key, drawn as PNG.

A pass is the `recognizer.qr_token` text signed with the centre's active `qr` signing key; the
station checks it offline with the public keys the roster gave it. Its validity never exceeds the
member's own (`valid_until`) nor `[qr] max_pass_ttl_s` (after a key rotation the old key is trusted
exactly that long). A suspended member gets no pass. The pass's nonce is returned so that it can
be revoked later (`qr_revocations`); the token itself is never stored.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

from sqlalchemy.orm import Session

from central.data_key import DataKey
from central.store import signing_keys
from central.store.tables import Member
from common.errors import ValidationError
from recognizer.qr_decode import make_qr
from recognizer.qr_token import TOKEN_PREFIX, issue_token, parse_token


class NoQrKeyError(ValidationError):
    """The centre has no active QR signing key (`yizhan-central keys rotate --purpose qr`)."""


@dataclass(frozen=True, slots=True)
class IssuedPass:
    token: str
    kid: str
    nonce_hex: str
    issued_at: dt.datetime
    expires_at: dt.datetime


def issue_pass(
    db: Session,
    data_key: DataKey,
    *,
    member: Member,
    now: dt.datetime,
    ttl_s: int,
    max_ttl_s: int,
) -> IssuedPass:
    """Sign a pass for `member` valid from `now` for `ttl_s` seconds, cut to what the member's
    validity and `max_ttl_s` allow. ValidationError when no pass may be issued."""
    if member.status != "active":
        raise ValidationError(f"member {member.member_id!r} is {member.status}: no pass is issued")
    start = int(now.timestamp())
    ttl = min(ttl_s, max_ttl_s)
    if member.valid_until is not None:
        ttl = min(ttl, int(member.valid_until.timestamp()) - start)
    if ttl < 60:
        raise ValidationError(f"member {member.member_id!r} is no longer valid: no pass is issued")
    key = signing_keys.active_key(db, purpose="qr")
    if key is None:
        raise NoQrKeyError("the centre has no active QR key: run `yizhan-central keys rotate --purpose qr`")
    token = issue_token(signing_keys.private_key(key, data_key), member.member_id, now=start, ttl_s=ttl)
    claims = parse_token(token)
    return IssuedPass(
        token=token,
        kid=claims.kid,
        nonce_hex=claims.nonce_hex,
        issued_at=dt.datetime.fromtimestamp(claims.issued_at, dt.UTC),
        expires_at=dt.datetime.fromtimestamp(claims.expires_at, dt.UTC),
    )


def pass_png(token: str, *, scale: int = 8, border: int = 4) -> bytes:
    """The pass as a PNG QR code, drawn as the stations expect to read it (`make_qr`: level M,
    alphanumeric mode), with the standard quiet zone: readable from paper or a phone screen."""
    if not token.startswith(TOKEN_PREFIX):
        raise ValueError("not a pass token")
    out = io.BytesIO()
    make_qr(token).save(out, kind="png", scale=scale, border=border)
    return out.getvalue()
