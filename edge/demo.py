"""`yizhan demo`: the station's decisions on the fixture photos, with no camera, Pi or broker.

It builds a throw-away station (its own data folder), enrols the public-domain fixture faces,
issues QR tokens, and then shows one decision per line: a member recognised from a *different*
photo, a stranger kept out, a photo with no face, a blurred and a too-small face refused for
quality, a QR code read from an image, and forged, expired, single-use-replayed and revoked tokens
refused. Everything goes through the same code as `yizhan enroll / identify / qr check`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edge.config import Config
from edge.station import RefusedError, Station, read_photo
from recognizer import qr_token
from recognizer.qr_decode import render_image
from recognizer.results import FaceResult, QrResult

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _face_line(label: str, result: FaceResult, expected: str) -> bool:
    distance = "-" if result.distance is None else f"{result.distance:.3f}"
    margin = "-" if result.margin is None else f"{result.margin:.3f}"
    ok = result.decision.value == expected
    _say(
        f"  [{'ok' if ok else 'UNEXPECTED'}] face  {label:<34} -> {result.decision.value:<12} "
        f"member={result.member_id or '-':<14} distance={distance} margin={margin} "
        f"reason={result.reason or '-'} ({result.timings_ms.get('total', 0):.0f} ms)"
    )
    return ok


def _qr_line(label: str, result: QrResult | None, expected: str, expected_reason: str | None = None) -> bool:
    decision = result.decision.value if result else "no_qr_code"
    reason = result.reason if result else None
    ok = decision == expected and (expected_reason is None or reason == expected_reason)
    _say(
        f"  [{'ok' if ok else 'UNEXPECTED'}] qr    {label:<34} -> {decision:<12} "
        f"member={(result.member_id if result else None) or '-':<14} reason={reason or '-'}"
    )
    return ok


def run_demo(config: Config, data_dir: Path | None = None) -> int:
    temporary = data_dir is None
    folder = Path(tempfile.mkdtemp(prefix="yizhan-demo-")) if data_dir is None else data_dir
    if data_dir is not None and folder.exists() and any(folder.iterdir()):
        _say(f"demo data folder {folder} is not empty; give an empty or new folder")
        return 2
    demo_config = config.model_copy(
        update={"storage": config.storage.model_copy(update={"data_dir": folder, "key_file": None})}
    )
    station = Station(demo_config, env={})
    checks: list[bool] = []
    try:
        _say(f"yizhan demo: station {config.station.station_id!r}, data in {folder}")
        kid = station.init_keys()
        _say(f"signing key {kid} created; stations trust only its public half")

        _say("enrolment:")
        for member_id, name, photo in (
            ("m-obama", "Barack Obama", "obama_1.jpg"),
            ("m-biden", "Joe Biden", "biden_1.jpg"),
        ):
            outcome = station.enroll(member_id=member_id, name=name, photos=[FIXTURES / photo], kind="driver")
            _say(f"  enrolled {member_id} ({name}) from {photo}: {len(outcome.template_ids)} template")
        try:
            station.enroll(member_id="m-cat", name="Cat", photos=[FIXTURES / "cat.png"])
            checks.append(False)
            _say("  [UNEXPECTED] a photo without a face was enrolled")
        except RefusedError as exc:
            checks.append(True)
            _say(f"  [ok] refused cat.png: {'; '.join(exc.problems)}")
        station.add_member(member_id="m-zhang", name="张三", kind="courier", groups=("couriers",))
        _say("  added m-zhang (张三) without a face: QR only")

        _say("face decisions (each photo differs from the enrolled one):")
        obama_2 = read_photo(FIXTURES / "obama_2.jpg")
        checks.append(_face_line("obama_2.jpg (member, other photo)", station.identify(obama_2), "match"))
        checks.append(
            _face_line(
                "eileen_collins.png (stranger)",
                station.identify(read_photo(FIXTURES / "eileen_collins.png")),
                "unknown",
            )
        )
        checks.append(
            _face_line(
                "coffee.png (no face)", station.identify(read_photo(FIXTURES / "coffee.png")), "no_face"
            )
        )
        blurred = np.asarray(cv2.GaussianBlur(obama_2, (0, 0), 6), np.uint8)
        checks.append(_face_line("obama_2.jpg blurred", station.identify(blurred), "poor_quality"))
        height, width = obama_2.shape[:2]
        tiny = np.asarray(
            cv2.resize(obama_2, (width // 6, height // 6), interpolation=cv2.INTER_AREA), np.uint8
        )
        checks.append(_face_line("obama_2.jpg shrunk (face ~45 px)", station.identify(tiny), "poor_quality"))

        _say("QR decisions:")
        token = station.issue_qr(member_id="m-zhang", ttl_s=3600)
        _say(f"  token for m-zhang ({len(token)} characters): {token}")
        frame = cv2.cvtColor(render_image(token, scale=3), cv2.COLOR_GRAY2RGB)
        canvas = np.asarray(
            cv2.copyMakeBorder(frame, 120, 120, 200, 200, cv2.BORDER_CONSTANT, value=(90, 90, 90)), np.uint8
        )
        checks.append(_qr_line("QR code in a camera-like image", station.check_qr_image(canvas), "qr_ok"))
        forged = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
        checks.append(_qr_line("forged signature", station.check_qr_text(forged), "qr_refused"))
        private_raw = qr_token.private_key_from_pem(station.signing_key_path.read_bytes())
        old = qr_token.issue_token(private_raw, "m-zhang", now=int(time.time()) - 7200, ttl_s=600)
        checks.append(_qr_line("expired token", station.check_qr_text(old), "qr_refused", "expired"))
        other_station = station.issue_qr(member_id="m-zhang", ttl_s=3600, station="station-elsewhere")
        checks.append(
            _qr_line(
                "token for another station",
                station.check_qr_text(other_station),
                "qr_refused",
                "wrong_station",
            )
        )
        once = station.issue_qr(member_id="m-zhang", ttl_s=600, single_use=True)
        checks.append(_qr_line("single-use token, first use", station.check_qr_text(once), "qr_ok"))
        checks.append(
            _qr_line("single-use token, replayed", station.check_qr_text(once), "qr_refused", "replayed")
        )
        station.revoke_qr(token, "phone lost")
        checks.append(_qr_line("revoked token", station.check_qr_text(token), "qr_refused", "token_revoked"))
        station.remove_member("m-obama")
        _say("  removed m-obama:")
        checks.append(_face_line("obama_2.jpg after removal", station.identify(obama_2), "unknown"))
        fresh = station.issue_qr(member_id="m-biden", ttl_s=600)
        station.remove_member("m-biden")
        checks.append(
            _qr_line(
                "m-biden's token after removal", station.check_qr_text(fresh), "qr_refused", "unknown_member"
            )
        )
    finally:
        station.close()
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)
    passed = sum(checks)
    _say(f"summary: {passed}/{len(checks)} decisions as expected")
    return 0 if passed == len(checks) else 1
