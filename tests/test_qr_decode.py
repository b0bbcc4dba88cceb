"""QR rendering and decoding from frames: sizes, rotation, colour layouts, clutter and timing."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import segno
import zxingcpp

from recognizer.qr_check import MemoryReplayGuard, QrChecker, QrPolicy
from recognizer.qr_decode import (
    decode_first_qr,
    decode_qr_payloads,
    make_qr,
    render_image,
    render_matrix,
    render_png,
)
from recognizer.qr_token import generate_signing_key, issue_token, kid_for
from recognizer.results import Decision, QrResult
from recognizer.roster import MemberInfo

T0 = 1_760_000_000
PRIV, PUB = generate_signing_key()
KEYS = {kid_for(PUB): PUB}
MEMBERS = {"M-0001234567": MemberInfo("M-0001234567", "Wang Li")}
TOKEN = issue_token(PRIV, "M-0001234567", now=T0, ttl_s=86_400, station="ST-7")
FIXTURES = Path(__file__).parent / "fixtures"

Image = npt.NDArray[np.uint8]


def _frame(seed: int = 0) -> Image:
    """A 640x480 BGR frame that looks like a dim camera view: a gradient plus sensor noise."""
    rng = np.random.default_rng(seed)
    gradient = np.linspace(90, 200, 640, dtype=np.float32)[None, :, None]
    noise = rng.normal(0.0, 6.0, (480, 640, 3)).astype(np.float32)
    return np.asarray(np.clip(gradient + noise, 0, 255), dtype=np.uint8)


def _png(data: bytes) -> Image:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert image is not None
    return np.asarray(image, dtype=np.uint8)


def _read(path: Path) -> Image:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, path
    return np.asarray(image, dtype=np.uint8)


def _paste(frame: Image, code: Image, top: int, left: int) -> Image:
    out = frame.copy()
    h, w = code.shape[:2]
    out[top : top + h, left : left + w] = code[..., None] if out.ndim == 3 and code.ndim == 2 else code
    return out


def _code_of_size(token: str, pixels: int) -> Image:
    """The token's code (quiet zone included) resampled to `pixels` square, as a camera would."""
    big = render_image(token, scale=8, border=4)
    return np.asarray(cv2.resize(big, (pixels, pixels), interpolation=cv2.INTER_AREA), dtype=np.uint8)


def _check_image(image: npt.NDArray[np.generic], checker: QrChecker | None = None) -> QrResult | None:
    checker = checker or QrChecker(QrPolicy(station_id="ST-7"), MemoryReplayGuard())
    return checker.check_image(
        image,
        public_keys=KEYS,
        revoked_kids=frozenset(),
        revoked_nonces=frozenset(),
        members=MEMBERS,
        now=T0 + 5,
    )


# ------------------------------------------------------------------------------------ rendering


def test_tokens_render_in_alphanumeric_mode_at_level_m_or_better() -> None:
    qr = make_qr(TOKEN)
    assert qr.mode == "alphanumeric"
    assert qr.error in {"M", "Q", "H"}
    assert not qr.is_micro
    # Version 8 is 49x49 modules: comfortable on a phone and on a credit-card sized print.
    assert isinstance(qr.version, int) and qr.version <= 8


def test_render_matrix_is_the_bare_module_grid() -> None:
    matrix = render_matrix(TOKEN)
    assert matrix.dtype == np.bool_
    size = make_qr(TOKEN).symbol_size(border=0)[0]
    assert matrix.shape == (size, size)
    assert matrix[0, :7].all()  # top-left finder pattern row


def test_render_image_scale_and_border() -> None:
    modules = render_matrix(TOKEN).shape[0]
    image = render_image(TOKEN, scale=3, border=2)
    assert image.dtype == np.uint8 and image.shape == ((modules + 4) * 3,) * 2
    assert set(np.unique(image)) == {0, 255}
    assert (image[:6] == 255).all()  # quiet zone is light


@pytest.mark.parametrize(("scale", "border"), [(0, 4), (-1, 4), (4, -1)])
def test_render_refuses_bad_geometry(scale: int, border: int) -> None:
    with pytest.raises(ValueError):
        render_image(TOKEN, scale=scale, border=border)
    with pytest.raises(ValueError):
        render_png(TOKEN, io.BytesIO(), scale=scale, border=border)


def test_render_refuses_empty_text() -> None:
    with pytest.raises(ValueError):
        make_qr("")


def test_non_alphanumeric_text_still_renders() -> None:
    assert decode_first_qr(render_image("https://example.com/a?b=c")) == "https://example.com/a?b=c"


def test_png_to_memory_and_to_file(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    render_png(TOKEN, buffer, scale=5)
    assert decode_first_qr(_png(buffer.getvalue())) == TOKEN
    path = tmp_path / "token.png"
    render_png(TOKEN, path)
    assert decode_first_qr(_read(path)) == TOKEN


# ------------------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_rendered_token_decodes_at_several_scales(scale: int) -> None:
    assert decode_qr_payloads(render_image(TOKEN, scale=scale)) == [TOKEN]


@pytest.mark.parametrize("pixels", [100, 160, 300])
def test_code_pasted_into_a_640x480_frame(pixels: int) -> None:
    frame = _paste(_frame(), _code_of_size(TOKEN, pixels), 120, 250)
    assert decode_first_qr(frame) == TOKEN


def test_small_code_near_the_frame_corner() -> None:
    frame = _paste(_frame(1), _code_of_size(TOKEN, 100), 480 - 100, 640 - 100)
    assert decode_first_qr(frame) == TOKEN


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_code_rotated_by_right_angles(turns: int) -> None:
    frame = _paste(_frame(), np.ascontiguousarray(np.rot90(_code_of_size(TOKEN, 200), turns)), 100, 200)
    assert decode_first_qr(frame) == TOKEN


@pytest.mark.parametrize("angle", [17.0, 45.0, -30.0])
def test_code_rotated_by_an_arbitrary_angle(angle: float) -> None:
    canvas = np.full((300, 300), 255, np.uint8)  # room for the 200 px code's diagonal
    canvas[50:250, 50:250] = _code_of_size(TOKEN, 200)
    matrix = cv2.getRotationMatrix2D((150.0, 150.0), angle, 1.0)
    rotated = cv2.warpAffine(canvas, matrix, (300, 300), borderMode=cv2.BORDER_CONSTANT, borderValue=255)
    frame = _paste(_frame(), np.asarray(rotated, dtype=np.uint8), 90, 170)
    assert decode_first_qr(frame) == TOKEN


def test_grey_rgb_and_bgra_frames() -> None:
    bgr = _paste(_frame(), _code_of_size(TOKEN, 160), 100, 100)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    assert decode_first_qr(grey) == TOKEN
    assert decode_first_qr(grey[:, :, None]) == TOKEN
    assert decode_first_qr(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)) == TOKEN
    assert decode_first_qr(cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA)) == TOKEN
    assert decode_first_qr(bgr[:, ::-1][:, ::-1]) == TOKEN  # non-contiguous view


def test_inverted_code_on_a_dark_screen() -> None:
    frame = _paste(_frame(), 255 - _code_of_size(TOKEN, 160), 100, 100)
    assert decode_first_qr(frame) == TOKEN


def test_frames_without_a_code() -> None:
    assert decode_first_qr(_frame()) is None
    assert decode_qr_payloads(np.zeros((480, 640, 3), np.uint8)) == []
    assert decode_first_qr(np.full((480, 640), 255, np.uint8)) is None
    assert decode_first_qr(_read(FIXTURES / "coffee.png")) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pure_noise_has_no_code(seed: int) -> None:
    noise = np.random.default_rng(seed).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert decode_first_qr(noise) is None
    binary = (np.random.default_rng(seed).random((480, 640)) > 0.5).astype(np.uint8) * 255
    assert decode_first_qr(binary) is None


def test_empty_frames_have_no_code() -> None:
    assert decode_first_qr(np.zeros((0, 0), np.uint8)) is None
    assert decode_qr_payloads(np.zeros((0, 640, 3), np.uint8)) == []


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((10, 10), np.float32),
        np.zeros((10, 10), np.uint16),
        np.zeros((10, 10), bool),
        np.zeros((10, 10, 2), np.uint8),
        np.zeros((10, 10, 3, 1), np.uint8),
        np.zeros(10, np.uint8),
    ],
)
def test_unsupported_arrays_are_a_clear_value_error(image: npt.NDArray[np.generic]) -> None:
    with pytest.raises(ValueError, match="image must be"):
        decode_qr_payloads(image)


def test_non_array_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="numpy array"):
        decode_qr_payloads([[0, 255]])  # type: ignore[arg-type]


def test_other_barcode_symbologies_are_ignored() -> None:
    barcode = zxingcpp.create_barcode("YZ1:ABC", zxingcpp.BarcodeFormat.Code128)
    linear = np.asarray(zxingcpp.write_barcode_to_image(barcode, scale=3), dtype=np.uint8)
    padded = np.pad(linear, 40, constant_values=255)
    assert zxingcpp.read_barcodes(padded)  # it is a readable barcode...
    assert decode_qr_payloads(padded) == []  # ...just not a QR code


def test_every_code_in_view_is_reported() -> None:
    frame = _paste(_frame(), _code_of_size("HELLO", 120), 40, 40)
    frame = _paste(frame, _code_of_size(TOKEN, 200), 200, 380)
    assert sorted(decode_qr_payloads(frame)) == sorted(["HELLO", TOKEN])


def test_our_token_wins_over_a_foreign_code() -> None:
    frame = _paste(_frame(), _code_of_size("https://example.com/menu", 160), 20, 20)
    frame = _paste(frame, _code_of_size(TOKEN, 200), 240, 400)
    assert decode_first_qr(frame) == TOKEN


# ---------------------------------------------------------------------------------- check_image


def test_check_image_accepts_a_token_in_a_frame() -> None:
    frame = _paste(_frame(), _code_of_size(TOKEN, 100), 200, 300)
    result = _check_image(frame)
    assert result is not None
    assert result.decision is Decision.QR_OK
    assert result.member_id == "M-0001234567"
    assert set(result.timings_ms) == {"decode", "verify"}


def test_check_image_without_a_code_is_none() -> None:
    assert _check_image(_frame()) is None
    assert _check_image(np.zeros((0, 0), np.uint8)) is None


def test_check_image_refuses_foreign_and_hostile_payloads() -> None:
    hostile = [
        "https://example.com/menu",
        "YZ1:" + "A" * 200,
        "YZ1:" + TOKEN[4:].lower(),
        "YZ9:" + TOKEN[4:],
        TOKEN[:-3],
    ]
    for payload in hostile:
        result = _check_image(_paste(_frame(), _code_of_size(payload, 260), 100, 100))
        assert result is not None and result.decision is Decision.QR_REFUSED, payload
        assert result.reason in {"malformed", "unsupported_version"}
        assert "decode" in result.timings_ms


def test_check_image_refuses_binary_and_oversized_payloads() -> None:
    binary = segno.make_qr(bytes(range(256)) * 2, error="l", mode="byte")
    control = segno.make_qr("YZ1:\x00\x1b[2J\u202e", error="l")
    huge = segno.make_qr("YZ1:" + "A" * 2000, error="l")
    for qr in (binary, control, huge):
        buffer = io.BytesIO()
        qr.save(buffer, kind="png", scale=2, border=4)
        result = _check_image(_png(buffer.getvalue()))
        assert result is not None and result.decision is Decision.QR_REFUSED
        assert result.reason in {"malformed", "unsupported_version"}


def test_check_image_single_use_replay_across_frames() -> None:
    once = issue_token(PRIV, "M-0001234567", now=T0, ttl_s=600, single_use=True)
    frame = _paste(_frame(), _code_of_size(once, 160), 100, 100)
    checker = QrChecker(QrPolicy(), MemoryReplayGuard())
    first, second = _check_image(frame, checker), _check_image(frame, checker)
    assert first is not None and first.decision is Decision.QR_OK
    assert second is not None and second.reason == "replayed"
