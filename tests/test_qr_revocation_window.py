"""A revoked pass stays refused for as long as any pass could be accepted: expiry plus clock skew."""

from __future__ import annotations

import time
from pathlib import Path

from edge.config import parse_config
from edge.station import Station
from recognizer import qr_token


def test_a_revoked_pass_is_still_refused_inside_the_clock_skew_window(tmp_path: Path) -> None:
    config = parse_config({"storage": {"data_dir": str(tmp_path)}, "qr": {"max_clock_skew_s": 120}})
    station = Station(config, env={})
    try:
        station.init_keys()
        station.add_member(member_id="m-1", name="李四")
        private = qr_token.private_key_from_pem(station.signing_key_path.read_bytes())
        now = int(time.time())
        # Expired 40 s ago: still accepted, because the issuer's clock may be 120 s ahead of ours.
        token = qr_token.issue_token(private, "m-1", now=now - 100, ttl_s=60)
        assert station.check_qr_text(token).decision.value == "qr_ok"
        station.revoke_qr(token, "lost phone")
        refused = station.check_qr_text(token)
        assert refused.decision.value == "qr_refused" and refused.reason == "token_revoked"
        # Far past expiry + skew it is refused as expired (the revocation may then be pruned).
        old = qr_token.issue_token(private, "m-1", now=now - 1000, ttl_s=60)
        assert station.check_qr_text(old).reason == "expired"
    finally:
        station.close()
