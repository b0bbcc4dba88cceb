"""CLI paths a new user and an attacker hurt themselves on (issue 10, items 3, 6 and 14)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import Cli


def png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height), 200).save(buf, format="PNG")
    return buf.getvalue()


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (what a 49 MP phone photo announces)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def count_members(cli: Cli) -> int:
    result = cli("members", "list", "--json")
    assert result.code == 0, result.err
    return len(result.json())


# -- item 14: very thin images are refused cleanly, never a cv2 crash ------------------------------


@pytest.mark.parametrize(("width", "height"), [(1, 200_000), (30_000, 10)])
def test_thin_images_are_refused_with_exit_2(cli: Cli, tmp_path: Path, width: int, height: int) -> None:
    photo = tmp_path / "strip.png"
    photo.write_bytes(png(width, height))
    for args in (
        ("enroll", "--member-id", "w-1", "--name", "Strip", str(photo)),
        ("identify", str(photo), "--json"),
        ("qr", "check", str(photo), "--json"),
    ):
        result = cli(*args)
        assert result.code == 2, (args, result.err)
        assert f"{width}x{height} pixels" in result.err
        assert "Traceback" not in result.err
    assert count_members(cli) == 0


# -- item 6: the page's pixel limit applies to the CLI too, with the real reason -------------------


def test_a_49_megapixel_photo_is_refused_by_the_cli_with_its_size(cli: Cli, tmp_path: Path) -> None:
    photo = tmp_path / "phone.png"
    photo.write_bytes(png_header_claiming(8000, 6125))  # 49 MP: refused before any pixel is decoded
    result = cli("enroll", "--member-id", "w-1", "--name", "Big", str(photo))
    assert result.code == 2
    assert "8000x6125 pixels, more than the 25000000 pixel limit" in result.err
    identify = cli("identify", str(photo), "--json")
    assert identify.code == 2 and "pixel limit" in identify.err
    assert count_members(cli) == 0


def test_the_cli_pixel_limit_follows_the_api_setting(cli: Cli, tmp_path: Path, station_dir: Path) -> None:
    config = station_dir / "yizhan.toml"
    config.write_text(config.read_text() + "\n[api]\nmax_upload_megapixels = 1.0\n")
    photo = tmp_path / "two-mp.png"
    photo.write_bytes(png(2000, 1000))
    result = cli("identify", str(photo), "--json")
    assert result.code == 2 and "more than the 1000000 pixel limit" in result.err


# -- item 14: long text is a token, never a file name ----------------------------------------------


@pytest.mark.parametrize("length", [256, 1000, 4095, 5000])
def test_qr_check_with_long_text_is_a_refused_token_not_a_crash(cli: Cli, length: int) -> None:
    for text in ("A" * length, "YZ1:" + "B" * (length - 4), "/" + "c" * (length - 1)):
        result = cli("qr", "check", text, "--json")
        assert result.code == 0, result.err
        assert result.json()["decision"] == "qr_refused" and result.json()["reason"] == "malformed"


# -- item 3: `qr check` is a dry run -----------------------------------------------------------------


def test_qr_check_never_spends_a_single_use_pass(cli: Cli, station_dir: Path) -> None:
    assert cli("keys", "init").code == 0
    assert cli("members", "add", "--member-id", "q-1", "--name", "李四").code == 0
    token = cli("qr", "issue", "--member-id", "q-1", "--ttl", "600", "--single-use").out.strip()
    for _ in range(3):
        checked = cli("qr", "check", token, "--json").json()
        assert checked["decision"] == "qr_ok" and checked["single_use"] is True and checked["dry_run"] is True
    text = cli("qr", "check", token)
    assert text.code == 0 and "single-use pass was not used up" in text.out

    # The door (which spends it) still accepts it exactly once.
    from edge.config import load_config
    from edge.station import Station

    config, _ = load_config(station_dir / "yizhan.toml")
    station = Station(config, env={})
    try:
        assert station.check_qr_text(token).decision.value == "qr_ok"
        assert station.check_qr_text(token).reason == "replayed"
    finally:
        station.close()
    # Once used at the door, the dry run says so (and still spends nothing).
    used = cli("qr", "check", token, "--json").json()
    assert used["decision"] == "qr_refused" and used["reason"] == "replayed"


# -- item 6: a printed pass says whose it is and until when -------------------------------------------


def test_a_pass_png_carries_the_name_and_expiry_and_still_scans(cli: Cli, tmp_path: Path) -> None:
    import numpy as np

    from recognizer.qr_decode import decode_first_qr

    assert cli("keys", "init").code == 0
    assert cli("members", "add", "--member-id", "W-0001", "--name", "张三丰").code == 0
    card = tmp_path / "pass.png"
    token = cli("qr", "issue", "--member-id", "W-0001", "--ttl", "86400", "--png", str(card)).out.strip()
    with Image.open(card) as image:
        text = dict(image.text)  # type: ignore[attr-defined]
        grey = np.asarray(image.convert("L"))
    assert text["yizhan:member_id"] == "W-0001" and text["yizhan:name"] == "张三丰"
    assert text["Title"] == "张三丰 (W-0001)"
    assert text["yizhan:expires"].endswith("(UTC+08:00)")  # the station's zone (Asia/Shanghai default)
    from recognizer.qr_token import parse_token

    assert int(text["yizhan:expires_at"]) == parse_token(token).expires_at
    assert decode_first_qr(grey) == token
    # The label is drawn under the code: a band of rows below the QR code holds dark pixels.
    from recognizer.qr_decode import render_image

    qr_height = render_image(token, scale=8, border=4).shape[0]
    label = grey[qr_height:]
    assert label.shape[0] > 40 and (label < 128).sum() > 500


# -- item 6: doctor names the time it really waited for a camera ------------------------------------


def test_doctor_camera_message_names_the_real_wait() -> None:
    from edge.config import parse_config
    from edge.doctor import check_camera

    config = parse_config({"camera": {"source": "3", "open_timeout_s": 4.0, "read_timeout_s": 2.0}})
    ticks = iter([100.0, 100.0])  # refused at once (no such device)
    refused = check_camera(config, opener=lambda _: False, clock=lambda: next(ticks))
    assert refused.status == "fail" and "cannot be opened (refused after 0.0 s" in refused.detail
    assert "within 0.0 s" not in refused.detail
    ticks = iter([100.0, 106.0])  # opened, then no frame until the read timed out
    silent = check_camera(config, opener=lambda _: False, clock=lambda: next(ticks))
    assert silent.status == "fail" and "no frame within 6 s" in silent.detail


# -- item 6: one time zone, newest first ---------------------------------------------------------------


def _record_at(station_dir: Path, *stamps: str) -> list[str]:
    import datetime as dt

    from edge.config import load_config
    from edge.recorder import EventRecorder
    from edge.station import Station

    config, _ = load_config(station_dir / "yizhan.toml")
    station = Station(config, env={})
    try:
        recorder = EventRecorder(station.sessions)
        return [
            recorder.record(
                kind="entry",
                method="qr",
                member_id=f"m-{i}",
                ts_wall=dt.datetime.fromisoformat(s).timestamp(),
            )["id"]
            for i, s in enumerate(stamps)
        ]
    finally:
        station.close()


def test_events_use_the_station_zone_everywhere_and_limit_keeps_the_newest(
    cli: Cli, station_dir: Path
) -> None:
    # Same UTC day (2026-03-01), two Shanghai days: 23:30 on the 1st and 00:30 on the 2nd.
    ids = _record_at(station_dir, "2026-03-01T15:30:00+00:00", "2026-03-01T16:30:00+00:00")
    listed = cli("events", "list", "--kind", "entry", "--json").json()
    assert [e["id"] for e in listed] == ids[::-1]  # newest first
    assert listed[0]["ts"] == "2026-03-02T00:30:00.000+08:00"
    newest = cli("events", "list", "--kind", "entry", "--limit", "1", "--json").json()
    assert [e["id"] for e in newest] == [ids[1]]
    since = cli("events", "list", "--kind", "entry", "--since", "2026-03-02", "--json").json()
    assert [e["id"] for e in since] == [ids[1]]  # local midnight, not UTC midnight
    days = cli("events", "stats", "--since", "2026-03-01", "--json").json()
    assert [(d["day"], d["entries"]) for d in days] == [("2026-03-01", 1), ("2026-03-02", 1)]
    text = cli("events", "list", "--kind", "entry")
    assert "Asia/Shanghai, UTC+08:00" in text.out and "2026-03-02T00:30:00.000+08:00" in text.out
    assert cli("events", "list", "--limit", "0").code == 2


# -- item 6: a relative camera file is next to the config file -------------------------------------------


def test_a_relative_camera_path_is_resolved_from_the_config_folder(tmp_path: Path) -> None:
    from edge.config import load_config

    folder = tmp_path / "etc"
    folder.mkdir()
    config_file = folder / "yizhan.toml"
    for source, expected in (
        ("door.mp4", str(folder / "door.mp4")),
        ("videos/door.mp4", str(folder / "videos" / "door.mp4")),
        ("/srv/door.mp4", "/srv/door.mp4"),
        ("0", "0"),
        ("rtsp://cam.local/stream", "rtsp://cam.local/stream"),
        ("demo", "demo"),
    ):
        config_file.write_text(f'[camera]\nsource = "{source}"\n', encoding="utf-8")
        config, _ = load_config(config_file)
        assert config.camera.source == expected, source
