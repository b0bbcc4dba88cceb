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
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(
        b"IEND", b""
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
