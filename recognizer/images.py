"""Decoding untrusted image bytes into RGB arrays, safely.

Photos come from installers' phones and, later, from HTTP uploads: they may be truncated, not images
at all, rotated by EXIF only, 16-bit, palette, or decompression bombs. Everything funnels through
`decode_image`, which either returns a C-contiguous uint8 RGB array or raises `ImageError` with a
message an installer can act on.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

RgbImage = npt.NDArray[np.uint8]

#: Larger than any camera frame or phone photo we expect (a 48 MP phone is ~8000x6000); a bomb is
#: refused before its pixels are allocated.
MAX_PIXELS = 50_000_000
MAX_BYTES = 40 * 1024 * 1024
#: A photo of a face or of a QR code is never a strip: a 1x200000 or 30000x10 "image" passes the
#: pixel limit but scales to zero pixels on one side, which crashes OpenCV's resize. Refused first.
MIN_SIDE = 16
MAX_ASPECT = 10.0


class ImageError(ValueError):
    """The bytes given are not a usable image; the message says why."""


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> RgbImage:
    """Decode image bytes (JPEG, PNG, WebP, BMP...) to an upright RGB uint8 array."""
    if not data:
        raise ImageError("the file is empty")
    # `import face_recognition` sets this process-wide flag to True, after which PIL pads truncated
    # files with grey instead of failing: a half-uploaded photo would be enrolled. Always refuse.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    if len(data) > MAX_BYTES:
        raise ImageError(
            f"the file is {len(data) // (1024 * 1024)} MiB, larger than the {MAX_BYTES >> 20} MiB limit"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width < 1 or height < 1:
                    raise ImageError("the image has no pixels")
                _check_shape(width, height)
                if width * height > max_pixels:
                    raise ImageError(
                        f"the image is {width}x{height} pixels, more than the {max_pixels} pixel limit"
                    )
                img.load()
                upright = ImageOps.exif_transpose(img)
                rgb = upright.convert("RGB")
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"the image claims more pixels than the {max_pixels} pixel limit") from None
    except UnidentifiedImageError as exc:
        raise ImageError(f"not a readable image ({exc.__class__.__name__})") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # PIL reports truncated or malformed files through these.
        raise ImageError(f"the image is damaged or truncated: {exc}") from exc
    array = np.asarray(rgb, dtype=np.uint8)
    # EXIF rotation only swaps the sides; checked again on what is returned all the same.
    _check_shape(int(array.shape[1]), int(array.shape[0]))
    return np.ascontiguousarray(array)


def _check_shape(width: int, height: int) -> None:
    """Refuse strips and specks: too thin to hold a face or a QR code, and a crash in cv2.resize."""
    if min(width, height) < MIN_SIDE:
        raise ImageError(
            f"the image is {width}x{height} pixels: a side under {MIN_SIDE} pixels cannot hold a face "
            "or a QR code"
        )
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageError(
            f"the image is {width}x{height} pixels: more than {MAX_ASPECT:g} times longer than wide, "
            "not a photo of a face or a QR code"
        )
