"""我的通行码: the pass a worker's phone shows at the door camera.

It is the centre's member pass (`central.passes.issue_pass`: the station's own Ed25519 QR token,
signed with the active `qr` key, cut to the member's validity and `[qr] max_pass_ttl_s`), valid for
`[phone] pass_ttl_s` (minutes, not the year a printed card gets). What this module adds is the
drawing for a phone screen. The page draws a fresh one every
`pass_refresh_s`, so a screenshot sent to a friend stops opening doors within minutes while the
station itself needs no network to check it. Only active members get one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import segno
from sqlalchemy.orm import Session

from central import passes
from central.data_key import DataKey
from central.store.tables import Member
from common.asgi import ApiError
from common.errors import ValidationError

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


def issue_pass(
    db: Session, data_key: DataKey, *, member: Member, now: dt.datetime, ttl_s: int, max_ttl_s: int
) -> Pass:
    try:
        issued = passes.issue_pass(db, data_key, member=member, now=now, ttl_s=ttl_s, max_ttl_s=max_ttl_s)
    except passes.NoQrKeyError:
        message = "the centre has no pass signing key yet (yizhan-central init)"
        raise ApiError(503, message, "no_qr_key") from None
    except ValidationError as exc:
        raise ApiError(403, str(exc), "no_pass") from None
    qr = segno.make_qr(issued.token, error=PASS_ERROR, mode="alphanumeric")
    svg = qr.svg_data_uri(scale=1, border=PASS_BORDER, dark="#000", light="#fff", omitsize=True)
    return Pass(
        token=issued.token,
        kid=issued.kid,
        issued_at=issued.issued_at,
        expires_at=issued.expires_at,
        svg=svg,
        modules=int(qr.symbol_size(border=0)[0]),
    )
