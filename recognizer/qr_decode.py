"""Finding QR payloads in camera frames, and drawing token QR codes for phones, cards and tests.

Decoding uses zxing-cpp restricted to the QR family: scanning for 1-D and other 2-D symbologies
costs time on every frame and would let any barcode in view (a product label, a poster) reach the
token parser. The restriction is about speed and noise, not security: every payload is still
treated as hostile text and goes through `recognizer.qr_token.verify_token`.

Rendering uses segno with error correction level M (a phone screen under glare or a scuffed
printed card) and alphanumeric mode whenever the text allows it, which our tokens always do.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Final

import numpy as np
import numpy.typing as npt
import segno
import zxingcpp

from recognizer.qr_token import TOKEN_PREFIX

GreyImage = npt.NDArray[np.uint8]

# In zxing-cpp 3.x `QRCode` names the whole QR family (Model 1/2, Micro, rMQR); our tokens only fit
# Model 2, the others just add candidates that fail to parse like any other foreign payload.
_QR_FORMATS: Final = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
_ALPHANUMERIC: Final = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
_OUR_FORMAT_HINT: Final = TOKEN_PREFIX[:2]  # "YZ": any version of our token, see decode_first_qr


def decode_qr_payloads(image: npt.NDArray[np.generic]) -> list[str]:
    """Text of every QR code zxing finds in `image`, in its scan order (empty list if none).

    `image` is a uint8 numpy array: grey (H, W) or (H, W, 1), or colour (H, W, 3) / (H, W, 4).
    Channel order does not matter for finding black-and-white modules, so BGR and RGB frames both
    work. An empty frame (a camera hiccup) has no codes; any other shape or dtype is a caller bug
    and raises ValueError.
    """
    prepared = _prepare(image)
    if prepared is None:
        return []
    return [barcode.text for barcode in zxingcpp.read_barcodes(prepared, formats=_QR_FORMATS)]


def decode_first_qr(image: npt.NDArray[np.generic]) -> str | None:
    """The payload to check in `image`, or None when it holds no QR code.

    When several codes are in view (a member's phone plus a sticker on the wall behind it), the
    first one that looks like one of our tokens wins, else the first one found: a stray code must
    not hide a valid token from the door. Which payload is picked is never a security decision,
    the chosen text is verified like any other.
    """
    payloads = decode_qr_payloads(image)
    for text in payloads:
        if text.startswith(_OUR_FORMAT_HINT):
            return text
    return payloads[0] if payloads else None


def _prepare(image: npt.NDArray[np.generic]) -> GreyImage | None:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]  # zxing reads 1 or 3 channels; alpha carries no modules
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
        raise ValueError(f"image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        return None
    return np.ascontiguousarray(image, dtype=np.uint8)


# ------------------------------------------------------------------------------------- rendering


def make_qr(token: str) -> segno.QRCode:
    """A segno QR code for `token`: level M at least, alphanumeric mode when the text fits it.

    segno may raise the error correction above M when that fits in the same symbol size, which
    buys robustness for free. Micro QR is never used (too small for a token, and not every phone
    or scanner reads it).
    """
    if not isinstance(token, str) or not token:
        raise ValueError("token must be a non-empty string")
    mode = "alphanumeric" if set(token) <= _ALPHANUMERIC else None
    return segno.make_qr(token, error="m", mode=mode)


def render_matrix(token: str) -> npt.NDArray[np.bool_]:
    """The QR modules of `token` as a bool matrix (True = dark), without the quiet zone."""
    return np.array(make_qr(token).matrix, dtype=np.bool_)


def render_image(token: str, *, scale: int = 4, border: int = 4) -> GreyImage:
    """A grey uint8 image (0 = dark, 255 = light) of `token`'s QR code, for tests and demos.

    `scale` is pixels per module and `border` the quiet zone in modules (4 is the standard's
    minimum; scanners may fail on less).
    """
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if not isinstance(border, int) or border < 0:
        raise ValueError(f"border must be a non-negative integer, got {border!r}")
    modules = np.pad(render_matrix(token), border, constant_values=False)
    pixels = np.repeat(np.repeat(modules, scale, axis=0), scale, axis=1)
    return np.where(pixels, 0, 255).astype(np.uint8)


def render_png(
    token: str, path: str | os.PathLike[str] | BinaryIO, *, scale: int = 8, border: int = 4
) -> None:
    """Write `token`'s QR code as a PNG to a file path or a binary file object (e.g. BytesIO)."""
    if not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if not isinstance(border, int) or border < 0:
        raise ValueError(f"border must be a non-negative integer, got {border!r}")
    target = os.fspath(path) if isinstance(path, os.PathLike) else path
    make_qr(token).save(target, kind="png", scale=scale, border=border)
