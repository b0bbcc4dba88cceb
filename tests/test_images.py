"""Untrusted image bytes: everything bad becomes ImageError with a reason, never a crash."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recognizer.images import ImageError, decode_image


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size: a decompression bomb's calling card."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"hello, I am not a picture", "not a readable image"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 50, "image"),
        (png_header_claiming(100_000, 100_000), "pixel limit"),
    ],
)
def test_hostile_bytes(data: bytes, words: str) -> None:
    with pytest.raises(ImageError, match=words):
        decode_image(data)


def test_truncated_jpeg(fixtures: Path) -> None:
    import face_recognition  # noqa: F401  (sets PIL's LOAD_TRUNCATED_IMAGES process-wide)

    data = (fixtures / "obama_1.jpg").read_bytes()
    with pytest.raises(ImageError):
        decode_image(data[: len(data) // 3])


def test_exif_rotation_is_applied() -> None:
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    out = decode_image(buf.getvalue())
    assert out.shape == (40, 20, 3)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "I;16", "CMYK"])
def test_unusual_modes_become_rgb(mode: str) -> None:
    img = Image.new(mode, (32, 16))
    buf = io.BytesIO()
    img.save(buf, format="TIFF" if mode in ("I;16", "CMYK") else "PNG")
    out = decode_image(buf.getvalue())
    assert out.dtype == np.uint8 and out.shape == (16, 32, 3) and out.flags["C_CONTIGUOUS"]


def test_fixture_decodes(fixtures: Path) -> None:
    out = decode_image((fixtures / "obama_1.jpg").read_bytes())
    assert out.shape == (1137, 910, 3)


def _png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (width, height), 128).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("width", "height"), [(1, 200_000), (30_000, 10), (2000, 100), (10, 10)])
def test_strips_and_specks_are_refused_before_opencv_sees_them(width: int, height: int) -> None:
    """They pass the pixel limit, but scaled for detection one side becomes 0 and cv2.resize crashes."""
    with pytest.raises(ImageError, match=rf"{width}x{height} pixels"):
        decode_image(_png(width, height))


def test_a_long_but_plausible_photo_is_kept() -> None:
    assert decode_image(_png(1000, 100)).shape == (100, 1000, 3)
