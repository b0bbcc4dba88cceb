"""我的通行码: the pass a worker's phone shows at the door camera.

It is the station's own QR token (`recognizer.qr_token`: Ed25519, checked offline against the
public keys the roster gave the station), signed with the centre's active `qr` key, valid for
`[phone] pass_ttl_s` (minutes, not the year a printed card gets). The page draws a fresh one every
`pass_refresh_s`, so a screenshot sent to a friend stops opening doors within minutes while the
station itself needs no network to check it. Only active members get one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import segno
from sqlalchemy.orm import Session

from central.data_key import DataKey
from central.store import signing_keys
from common.asgi import ApiError
from recognizer.qr_token import issue_token

#: A phone screen is not a scuffed card: error correction L keeps the symbol at version 6 (41
#: modules) where M needs version 7-8, so each module is larger on the same screen, and a 2-module
#: quiet zone (the page around it is light too) lets the code span the screen's whole width.
#: Measured with a 640x480 camera (bench/phone_pass.py): readable to 40 cm instead of 30.
PASS_ERROR = "l"
PASS_BORDER = 2


@dataclass(frozen=True, slots=True)
class Pass:
    token: str
    kid: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    #: The QR code as an SVG data URI (dark modules on white, `PASS_BORDER` quiet zone): scales
    #: without blur to whatever width the screen gives it.
    svg: str
    modules: int


def issue_pass(db: Session, data_key: DataKey, *, member_id: str, now: dt.datetime, ttl_s: int) -> Pass:
    key = signing_keys.active_key(db, purpose="qr")
    if key is None:
        raise ApiError(503, "the centre has no pass signing key yet (yizhan-central init)", "no_qr_key")
    issued = int(now.timestamp())
    token = issue_token(signing_keys.private_key(key, data_key), member_id, now=issued, ttl_s=ttl_s)
    qr = segno.make_qr(token, error=PASS_ERROR, mode="alphanumeric")
    svg = qr.svg_data_uri(scale=1, border=PASS_BORDER, dark="#000", light="#fff", omitsize=True)
    return Pass(
        token=token,
        kid=key.kid,
        issued_at=dt.datetime.fromtimestamp(issued, dt.UTC),
        expires_at=dt.datetime.fromtimestamp(issued + ttl_s, dt.UTC),
        svg=svg,
        modules=int(qr.symbol_size(border=0)[0]),
    )
